"""The demo ends with the one command that opens the quickstart in JupyterLab with the sidebar:
that command exists in the environment the demo ran in, and there the server extension and the
Lab extension are both enabled."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from runpod_jupyter.cli import demo

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run(*argv: str) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return ANSI.sub("", result.stdout + result.stderr)


def test_jupyterlab_is_a_dependency_of_the_main_install():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(re.match(r"jupyterlab\b", dep) for dep in project["dependencies"])


@pytest.mark.slow  # runs the jupyter command line of the demo's environment
def test_the_demo_ends_with_a_lab_command_that_works_here():
    out = io.StringIO()
    demo.print_next_step(out, cwd=ROOT)
    text = out.getvalue()
    command = demo.lab_command(cwd=ROOT)
    assert command in text and "JupyterLab" in text
    argv = shlex.split(command)
    jupyter = Path(argv[0]) if Path(argv[0]).is_absolute() else ROOT / argv[0]
    assert argv[1] == "lab" and (ROOT / argv[2]).resolve() == (demo.notebooks_dir() / demo.QUICKSTART).resolve()
    assert jupyter.is_file() and jupyter.parent == Path(sys.executable).parent  # the demo's own environment
    assert re.match(r"\d+\.", _run(str(jupyter), "lab", "--version").strip())
    assert re.search(r"runpod_jupyter\s+enabled", _run(str(jupyter), "server", "extension", "list"))
    assert re.search(r"runpod-jupyter v\S+\s+enabled\s+OK", _run(str(jupyter), "labextension", "list"))


def test_a_failed_demo_names_no_lab_command():
    out = io.StringIO()
    demo.print_next_step(out, cwd=ROOT, failed="cell 2 (x): boom")
    assert "The demo stopped at cell 2" in out.getvalue() and "jupyter lab" not in out.getvalue()
