"""The generated project runs as a real worker: the runpod SDK's one-shot mode executes one job.

``python handler.py --test_input '{"input": ...}'`` runs the job through the SDK's own job runner
and prints ``Job result: {...}``. (That mode does not iterate generators, so plain and async
handlers are used here.) The worker gets a private HOME and no webhook URL, as in the notes.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers

CELL = '''
import numpy as np
import mylib

# values are summed with numpy, then scaled by a helper from mylib.py
def total(values):
    return float(np.sum(np.asarray(values, dtype=float)))

def handler(job):
    values = job["input"]["values"]
    return {"total": mylib.scale(total(values), FACTOR), "n": len(values), "mean": float(stats.mean(values))}

print(handler({"input": None}))  # a notebook test call: it would crash the worker if it were shipped
'''

ASYNC_CELL = '''
import asyncio

async def handler(job):
    await asyncio.sleep(0)
    return {"echo": job["input"], "kind": "async"}
'''


def run_worker(project_dir: Path, job_input: object, tmp_path: Path) -> tuple[int, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
        "RUNPOD_SKIP_GPU_CHECK": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        [sys.executable, str(project_dir / "handler.py"), "--test_input", json.dumps({"input": job_input})],
        cwd=home, env=env, capture_output=True, text=True, timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def job_result(output: str) -> dict:
    match = re.search(r"Job result: (\{.*\})\s*$", output, re.MULTILINE)
    assert match, output
    return ast.literal_eval(match.group(1))


def test_a_packaged_cell_runs_a_job_in_the_real_sdk(pkg, nbdir, tmp_path):
    (nbdir / "mylib.py").write_text("def scale(x, factor):\n    return x * factor\n")
    import statistics

    project = pkg(CELL, user_ns={"FACTOR": 10, "stats": statistics, "np": np}, capture=["FACTOR"])
    assert {"mylib.py", "captured.pkl"} <= set(project.files)
    assert any(line.startswith("numpy==") for line in project.requirements)

    rc, output = run_worker(project.path, {"values": [1, 2, 3.5]}, tmp_path)

    assert rc == 0, output
    assert job_result(output) == {"output": {"total": 65.0, "n": 3, "mean": 6.5 / 3}}


def test_an_async_handler_runs_too(pkg, tmp_path):
    project = pkg(ASYNC_CELL)
    rc, output = run_worker(project.path, {"x": 1}, tmp_path)
    assert rc == 0, output
    assert job_result(output) == {"output": {"echo": {"x": 1}, "kind": "async"}}
