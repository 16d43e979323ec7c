"""Fixtures for the packaging tests: a private output root and local-module directory per test."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from runpod_jupyter.packaging import WorkerProject, package_cell


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where worker projects are written."""
    root = tmp_path / "workers"
    root.mkdir()
    return root


@pytest.fixture
def nbdir(tmp_path: Path) -> Path:
    """The notebook's directory: where local modules are looked for (never the repository)."""
    path = tmp_path / "notebook"
    path.mkdir()
    return path


@pytest.fixture
def pkg(out: Path, nbdir: Path):
    """package_cell with dedented source, a private output root and local-module dir."""

    def run(source: str, **options: Any) -> WorkerProject:
        options.setdefault("name", "ep")
        options.setdefault("output_root", out)
        options.setdefault("local_dir", nbdir)
        return package_cell(textwrap.dedent(source), **options)

    return run
