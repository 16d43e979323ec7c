"""%%runpod_deploy end to end in a real kernel (nbclient): deploy, run, stream, cancel, restart
the kernel, find the jobs again, redeploy changed code to the same endpoint."""

from __future__ import annotations

import json

import nbformat
import pytest
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

from runpod_jupyter import embedded

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers

MARKER = "rpa_NBMARKER0001"

DEPLOY = """%%runpod_deploy echo --local --gpu ADA_24 --workers-max 2 --idle-timeout 30
import time
import numpy as np
import runpod

VERSION = {version}

def handler(job):
    n = job["input"].get("n", 3)
    delay = job["input"].get("delay", 0.05)
    for i in range(n):
        runpod.serverless.progress_update(job, f"{{i + 1}}/{{n}}")
        time.sleep(delay)
        yield {{"i": i, "root": float(np.sqrt(i)), "version": VERSION}}
"""

BEFORE_RESTART = [
    "%load_ext runpod_jupyter",
    DEPLOY.format(version=1),
    "print('ENDPOINT', echo.endpoint_id)",
    "plain = [echo.run({'n': 3}) for _ in range(3)]\n"
    "streamed = echo.run({'n': 4})\n"
    "chunks = list(streamed.stream(timeout=60))\n"
    "print('CHUNKS', len(chunks), chunks[-1])",
    "import time\n"
    "slow = echo.run({'n': 200, 'delay': 0.25})\n"
    "deadline = time.monotonic() + 60\n"
    "while slow.status.value != 'IN_PROGRESS' and time.monotonic() < deadline:\n"
    "    time.sleep(0.1)\n"
    "print('CANCELLED', slow.cancel().value)",
    "print('RESULTS', [len(j.result(timeout=60)) for j in plain])",
]
AFTER_RESTART = [
    "print('FRESH', 'echo' not in globals() and 'plain' not in globals())\n%load_ext runpod_jupyter",
    "jobs = %runpod_jobs echo\n"
    "print('JOBS', json.dumps(sorted(j.state.status.value for j in jobs)))",
    DEPLOY.format(version=2),
    "print('ENDPOINT', echo.endpoint_id)\n"
    "print('VERSION', echo.run_sync({'n': 1}, timeout=60)[0]['version'])",
    "%runpod_delete echo",
]


def _lines(cell, prefix: str) -> list[str]:
    out = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            out += [line[len(prefix) + 1:] for line in output["text"].splitlines() if line.startswith(prefix + " ")]
    return out


@pytest.fixture()
def kernel_env(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", MARKER)  # present, yet never shown anywhere
    yield
    embedded.stop()  # the instance the kernel started (shared runtime dir)


def test_deploy_run_restart_redeploy(tmp_path, kernel_env):
    cells = BEFORE_RESTART + ["import json"] + AFTER_RESTART
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in cells])
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells[: len(BEFORE_RESTART)]):
            client.execute_cell(cell, index)
        run_sync(client.km.restart_kernel)(now=True)
        run_sync(client.kc.wait_for_ready)(timeout=60)
        for index in range(len(BEFORE_RESTART), len(cells)):
            client.execute_cell(nb.cells[index], index)

    first_id = _lines(nb.cells[2], "ENDPOINT")[0]
    chunk_count, last_chunk = _lines(nb.cells[3], "CHUNKS")[0].split(" ", 1)
    assert chunk_count == "4" and "'version': 1" in last_chunk
    assert _lines(nb.cells[4], "CANCELLED") == ["CANCELLED"]
    assert _lines(nb.cells[5], "RESULTS") == ["[3, 3, 3]"]
    after = len(BEFORE_RESTART) + 1
    assert _lines(nb.cells[after], "FRESH") == ["True"]  # the kernel really restarted
    statuses = json.loads(_lines(nb.cells[after + 1], "JOBS")[0])
    assert statuses == ["CANCELLED"] + ["COMPLETED"] * 4  # all 5 jobs, found again after the restart
    assert _lines(nb.cells[after + 3], "ENDPOINT") == [first_id]  # updated, not duplicated
    assert _lines(nb.cells[after + 3], "VERSION") == ["2"]  # the new code answers

    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text()
    assert MARKER not in saved
    state = embedded.read_state(embedded.default_state_file())
    assert state is None or state["api_key"] not in saved
    assert "Traceback" not in saved
