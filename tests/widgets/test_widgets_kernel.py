"""The live views in a real kernel (nbclient) against the embedded RunPod the kernel starts.
What the browser would receive is read from a second client on the kernel's IOPub channel.

One notebook: an endpoint deployed without waiting (so its view sees the worker start), a
streaming job with progress and an image, an endpoint pinned to a GPU pool with no capacity,
and one whose handler crashes at start-up. The saved notebook must read well without a kernel
and must not contain the API key.
"""

from __future__ import annotations

import json
import time

import nbformat
import pytest
from kernel_tap import IOPubTap
from nbclient import NotebookClient
from support import local_post

from runpod_jupyter import embedded

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers

MARKER = "rpa_WIDGETMARK001"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

WAIT_FOR_VIEW = """import json, time
from runpod_jupyter.widgets import views_of
def wait_view(subject, ready, limit=90):
    view = views_of(subject)[0]
    deadline = time.monotonic() + limit
    while not ready(view.state) and time.monotonic() < deadline:
        time.sleep(0.1)
    return view.state
"""

CELLS = [
    "%load_ext runpod_jupyter\nimport sys\nprint('WIDGETS_LOADED', 'ipywidgets' in sys.modules or 'anywidget' in sys.modules)",
    f"""%%runpod_deploy streamer --local --gpu ADA_24 --workers-max 1 --idle-timeout 60 --no-wait
import time
import runpod
time.sleep(1)  # a start that takes a second: Initializing shows however fast the worker process starts
PNG = "{PNG}"
def handler(job):
    n, delay = job["input"]["n"], job["input"]["delay"]
    for i in range(n):
        runpod.serverless.progress_update(job, f"{{i + 1}}/{{n}}")
        time.sleep(delay)
        yield f"chunk {{i}} "
    yield {{"image": "data:image/png;base64," + PNG, "caption": "a dot"}}
""",
    WAIT_FOR_VIEW + "print('IDLE', wait_view(streamer, lambda s: s['workers']['idle'] >= 1)['workers']['idle'])",
    "job = streamer.run({'n': 6, 'delay': 0.4})\njob",
    "batch = streamer.map([{'n': 1, 'delay': 0.01}] * 3)\nbatch",
    "print('RESULT', len(job.result(timeout=90)))\nimport runpod_jupyter.widgets as rw\nprint('SETTLED', rw.settle(60))",
    # (the test sets AMPERE_80's capacity to 0 here)
    "%%runpod_deploy nogpu --local --gpu AMPERE_80 --workers-max 1 --no-wait\ndef handler(job):\n    return job['input']",
    "stuck = nogpu.run({'x': 1})",
    """%%runpod_deploy crashing --local --gpu ADA_24 --workers-max 1 --no-wait
import runpod
def load_weights():
    raise RuntimeError("model weights missing")
WEIGHTS = load_weights()
def handler(job):
    return WEIGHTS
""",
    "codes = lambda s: [f['code'] for f in s['findings']]\n"
    "print('NOGPU', json.dumps(codes(wait_view(nogpu, lambda s: 'no-gpu-capacity' in codes(s)))))\n"
    "print('CRASHY', json.dumps(codes(wait_view(crashing, lambda s: 'crash-loop' in codes(s)))))\n"
    "stuck.cancel()\nprint('SETTLED', rw.settle(30))",
]
NOGPU_CELL = 6
ENDPOINTS = ("streamer", "nogpu", "crashing")


def _delete_endpoints(names: tuple[str, ...]) -> None:
    """The embedded RunPod keeps endpoints across restarts: leave none behind for other tests."""
    from runpod_jupyter.api import Client
    from runpod_jupyter.endpoints import delete_endpoint

    instance = embedded.find()
    if instance is None:
        return
    with Client(instance.settings()) as client:
        for spec in client.list_endpoints():
            if spec.name in names:
                delete_endpoint(client, spec.id)


def _printed(cell, prefix: str) -> list[str]:
    out = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            out += [line[len(prefix) + 1:] for line in output["text"].splitlines() if line.startswith(prefix + " ")]
    return out


def _displayed(cell) -> list[dict]:
    return [o["data"] for o in cell.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")]


def _first(seq: list, predicate) -> int:
    return next((i for i, value in enumerate(seq) if predicate(value)), -1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Execute the notebook once; yield (notebook, tap, saved text, the embedded RunPod's key)."""
    import os

    root = tmp_path_factory.mktemp("widgets-kernel")
    saved_key = os.environ.get("RUNPOD_API_KEY")
    os.environ["RUNPOD_API_KEY"] = MARKER  # present in the kernel, yet never shown
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(root)}})
    tap = None
    local_key = None
    try:
        with client.setup_kernel():
            tap = IOPubTap(client.km.connection_file)
            for index, cell in enumerate(nb.cells):
                if index == NOGPU_CELL:
                    instance = embedded.find()
                    assert instance is not None, "the kernel's deploy should have started the embedded RunPod"
                    local_key = instance.api_key.reveal()
                    local_post(instance, "/local/gpus", {"AMPERE_80": 0})
                client.execute_cell(cell, index)
            time.sleep(0.5)  # let the tap drain what the kernel already sent
    finally:
        if tap is not None:
            tap.close()
        _delete_endpoints(ENDPOINTS)
        embedded.stop()
        if saved_key is None:
            os.environ.pop("RUNPOD_API_KEY", None)
        else:
            os.environ["RUNPOD_API_KEY"] = saved_key
    path = root / "widgets.ipynb"
    nbformat.write(nb, path)
    yield nb, tap, path.read_text(), local_key


def _endpoint_states(tap: IOPubTap, name: str) -> list[dict]:
    for comm_id in tap.widgets("EndpointView"):
        states = [s for s in tap.values(comm_id, "state") if s]
        if states and states[0].get("name") == name:
            return states
    raise AssertionError(f"no endpoint view for {name!r} was sent to the browser")


def test_loading_the_extension_imports_no_widget_library(run):
    nb = run[0]
    assert _printed(nb.cells[0], "WIDGETS_LOADED") == ["False"]


def test_endpoint_view_follows_the_workers(run):
    tap = run[1]
    states = _endpoint_states(tap, "streamer")
    assert all(s["backend"] == "local" for s in states)
    seen = [{k for k, n in s["workers"].items() if n} for s in states]
    initializing = _first(seen, lambda ws: "initializing" in ws)
    idle = _first(seen, lambda ws: "idle" in ws)
    running = _first(seen, lambda ws: "running" in ws)
    assert -1 < initializing < idle < running, [sorted(ws) for ws in seen]
    assert any(s["jobs"]["inProgress"] == 1 for s in states)
    last = states[-1]
    assert last["jobs"]["completed"] >= 1
    assert last["settings"]["gpus"][0]["id"] == "ADA_24" and last["settings"]["workersMax"] == 1
    assert last["cost"]["spent"] > 0  # the embedded RunPod billed the running seconds


def test_job_view_gets_progress_and_chunks_in_order(run):
    tap = run[1]
    (comm_id,) = tap.widgets("JobView")
    states = [s for s in tap.values(comm_id, "state") if s]
    progress = [s["progress"]["text"] for s in states if s.get("progress")]
    steps = [int(p.split("/")[0]) for p in progress]
    assert steps and steps == sorted(steps) and steps[-1] >= 5, progress
    fractions = [s["progress"]["fraction"] for s in states if s.get("progress")]
    assert all(0 < f <= 1 for f in fractions)
    statuses = [s["status"] for s in states]
    assert statuses[-1] == "COMPLETED" and "IN_PROGRESS" in statuses
    final = states[-1]
    assert final["delayMs"] is not None and final["executionMs"] is not None and final["worker"]
    assert [step[1] for step in final["timeline"]][:3] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]

    tails = [t for t in tap.values(comm_id, "tail") if t]
    assert [t["seq"] for t in tails] == list(range(1, len(tails) + 1))  # none lost, none reordered
    items = [item for t in tails for item in t["items"]]
    text = "".join(item["t"] for item in items if item["k"] == "text")
    assert text == "".join(f"chunk {i} " for i in range(6))
    images = [item for item in items if item["k"] == "img"]
    assert [i["src"] for i in images] == ["data:image/png;base64," + PNG]
    assert _first(items, lambda i: i["k"] == "img") > _first(items, lambda i: i["k"] == "text")
    assert final["resultNote"].startswith("the 7 streamed chunk(s)")  # the aggregate is not shown twice


def test_no_gpu_and_crash_loop_are_diagnosed_in_the_views(run):
    nb, tap = run[0], run[1]
    assert "no-gpu-capacity" in json.loads(_printed(nb.cells[-1], "NOGPU")[0])
    assert "crash-loop" in json.loads(_printed(nb.cells[-1], "CRASHY")[0])
    nogpu = _endpoint_states(tap, "nogpu")
    finding = next(f for s in nogpu for f in s["findings"] if f["code"] == "no-gpu-capacity")
    assert "AMPERE_80" in finding["message"] and finding["fix"]
    assert any(s["workers"]["throttled"] for s in nogpu)
    crashing = _endpoint_states(tap, "crashing")
    finding = next(f for s in crashing for f in s["findings"] if f["code"] == "crash-loop")
    assert finding["level"] == "error" and "exit code 1" in finding["message"]
    assert any(s["workers"]["unhealthy"] for s in crashing)


def test_saved_notebook_is_readable_without_a_kernel_and_keyless(run):
    nb, _, saved, local_key = run
    assert MARKER not in saved and local_key and local_key not in saved
    job_outputs = _displayed(nb.cells[3])
    assert len(job_outputs) == 1
    final = job_outputs[0]
    assert "application/vnd.jupyter.widget-view+json" not in final  # final: static only
    assert "COMPLETED" in final["text/plain"] and "chunk 5" in final["text/plain"]
    assert "chunk 0 chunk 1" in final["text/html"] and f"data:image/png;base64,{PNG}" in final["text/html"]
    assert "<script" not in final["text/html"]
    endpoint = _displayed(nb.cells[1])[0]
    assert {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"} <= set(endpoint)
    assert "endpoint 'streamer'" in endpoint["text/plain"] and "completed" in endpoint["text/plain"]
    crashing = _displayed(nb.cells[8])[0]
    assert "crash loop" in crashing["text/plain"] and "crash loop" in crashing["text/html"]
    batch = _displayed(nb.cells[4])[0]
    assert "application/vnd.jupyter.widget-view+json" not in batch
    assert "3/3 done (3 COMPLETED)" in batch["text/plain"] and "3/3 done" in batch["text/html"]
    assert "Traceback" not in saved
