"""Every notebook in notebooks/ runs top to bottom in a real kernel (cloud cells skip without a
key), and what is committed is clean: no outputs, no keys, no local paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from runpod_jupyter import embedded

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _run(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(book, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return book


def _text(book: nbformat.NotebookNode) -> str:
    parts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


@pytest.fixture()
def shared_instance(monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    yield
    embedded.stop()


@pytest.mark.slow
def test_quickstart_through_the_demo_command(tmp_path, monkeypatch):
    """The README's main command: runs the quickstart headless and summarises it."""
    import os
    import subprocess
    import sys

    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_DEMOMARKER0123456789")  # the demo must not use or show it
    result = subprocess.run(
        [sys.executable, "-m", "runpod_jupyter.cli", "demo", "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "jobs          9: 9 COMPLETED" in result.stdout and "All cells ran" in result.stdout
    assert "rpa_DEMOMARKER" not in result.stdout + result.stderr
    book = nbformat.read(tmp_path / "out" / "quickstart.ipynb", as_version=4)
    out = _text(book)
    assert "{'i': 4, 'text': 'HELLO 4!'}" in out  # streamed
    assert "[1, 2, 3, 4, 5, 6, 7, 8]" in out  # the batch, in input order
    assert "warning: " not in out and "error: " not in out  # nothing wrong with a healthy endpoint
    assert "deleted endpoint echo" in out
    assert "rpa_DEMOMARKER" not in (tmp_path / "out" / "quickstart.ipynb").read_text()
    assert (tmp_path / "out" / "quickstart.html").stat().st_size > 10_000
    assert embedded.find() is None  # it stopped what it started


@pytest.mark.slow
def test_streaming(tmp_path, shared_instance):
    out = _text(_run("streaming", tmp_path))
    assert re.search(r"1[0-9] chunks; 4 images", out)
    assert "COMPLETED" in out


@pytest.mark.slow
def test_troubleshooting(tmp_path, shared_instance):
    out = _text(_run("troubleshooting", tmp_path))
    assert "crash loop" in out and "weights not found" in out
    assert "exit code 137" in out and "often out of memory" in out
    assert "no capacity in AMPERE_80" in out and "answered" in out  # the pool's stock reads NONE
    assert "throttled" in out
    assert "exit code 139" in out and "A segmentation fault" in out
    assert "exit code 2" in out and "handler.py was not found" in out
    assert "health registered: False" in out and "No worker has registered yet" in out
    assert "health registered: True" in out and "s each on a warm worker" in out
    assert "although it is still listed" in out and "The account balance is $-1.00" in out


@pytest.mark.slow
def test_cloud_skips_without_a_key(tmp_path, shared_instance, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.runpod/config.toml either
    out = _text(_run("cloud", tmp_path))
    assert "cloud cells will skip" in out and "skipped" in out
    assert "ADA_24" in out and "1,000 jobs" in out


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebooks_are_clean(path):
    book = nbformat.read(path, as_version=4)
    raw = path.read_text()
    assert all(not cell.get("outputs") and not cell.get("execution_count") for cell in book.cells if cell.cell_type == "code")
    assert not re.search(r"rpa_[A-Za-z0-9]{8,}", raw)
    assert not re.search(r"(/root/|/home/|/tmp/|/Users/|C:\\\\)", raw)
    assert json.loads(raw)["metadata"]["kernelspec"]["name"] == "python3"
