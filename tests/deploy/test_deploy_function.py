"""``runpod_jupyter.deploy(function)``: the function given is the handler, whatever its name, and
the preflight advice a deploy produces is reported, not only kept on the Deployment."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from runpod_jupyter import deploy, embedded

MODULE = """
import runpod

PREFIX = "shouted: "

def shout(job):
    return PREFIX + str(job["input"]).upper()
"""


def _load(tmp_path: Path, source: str):
    """A module loaded from a file, as a notebook's helper module would be."""
    name = f"worker_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_a_function_of_any_name_is_the_handler(tmp_path):
    shout = _load(tmp_path, MODULE).shout
    dry = deploy(shout, "shouter", backend="local", dry_run=True)
    assert dry.project.handler_name == "shout"
    assert '"handler": shout' in dry.project.handler_path.read_text()


@pytest.mark.slow
def test_deploy_runs_the_function_and_reports_its_advice(tmp_path):
    shout = _load(tmp_path, MODULE).shout
    seen: list[tuple[str, str]] = []
    dep = deploy(shout, "shouter", backend="local", gpu="ADA_24", env={"HF_TOKEN": "plainvalue123456"},
                 on_progress=lambda phase, detail: seen.append((phase, detail)))
    try:
        assert dep.run_sync("hi", timeout=120) == "shouted: HI"
        advice = [detail for phase, detail in seen if phase == "advice"]
        assert any("HF_TOKEN" in line and line.startswith("warning:") for line in advice), seen
        assert all("plainvalue123456" not in line for line in advice)
    finally:
        dep.delete()
        embedded.stop()
