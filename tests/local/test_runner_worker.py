"""The runner's worker handler deployed on the embedded RunPod (a real SDK worker): a packed cell
runs through Deployment.run, its output streams as printed, displays and bound values come back,
a failure shows the cell's own line numbers, and the worker process (with its module-level state)
serves the next cell."""

from __future__ import annotations

import builtins
import uuid
from pathlib import Path

import pytest

from runpod_jupyter import deploy, embedded, runner
from runpod_jupyter.runner import Display, Done, Failed, Output, read_event

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runner_endpoint():
    dep = deploy(Path(runner.HANDLER_FILE), f"runner-{uuid.uuid4().hex[:6]}", backend="local",
                 requirements=list(runner.RUNNER_REQUIREMENTS), workers_max=1, idle_timeout=600)
    try:
        yield dep
    finally:
        dep.delete()
        embedded.stop()


def notebook(**values) -> dict:
    ns: dict = {"__name__": "__main__", "__builtins__": builtins}
    ns.update(values)
    return ns


def run_cell(dep, code: str, ns: dict, *, on_event=None, **options) -> list:
    job = dep.run(runner.pack_cell(code, ns, **options))
    events = []
    for chunk in job.stream(timeout=120):
        event = read_event(chunk, user_ns=ns)
        events.append(event)
        if on_event is not None:
            on_event(event)
    return events


def test_a_cell_streams_as_it_prints_displays_and_binds(runner_endpoint, tmp_path):
    signal = tmp_path / "go"
    ns = notebook(SIGNAL=str(signal), base=21)
    code = """\
import os, time
print("first")
deadline = time.monotonic() + 60
while not os.path.exists(SIGNAL) and time.monotonic() < deadline:
    time.sleep(0.05)
print("saw the signal:", os.path.exists(SIGNAL))
from IPython.display import HTML, display
display(HTML("<b>bold</b>"))
import matplotlib.pyplot as plt
plt.plot([1, 2, 3])
plt.show()
result = base * 2
result + 1
"""

    def release(event):  # the cell waits for this: it only comes if "first" streamed while it ran
        if isinstance(event, Output) and "first" in event.text:
            signal.touch()

    events = run_cell(runner_endpoint, code, ns, on_event=release)
    text = "".join(e.text for e in events if isinstance(e, Output))
    assert text == "first\nsaw the signal: True\n"
    displays = [e.data for e in events if isinstance(e, Display)]
    assert displays[0]["text/html"] == "<b>bold</b>"
    assert "image/png" in displays[1] and displays[1]["text/plain"].startswith("<Figure")
    done = events[-1]
    assert isinstance(done, Done)
    assert done.values["result"] == 42 and "base" not in done.values  # read, not bound: stays here
    assert done.result == {"text/plain": "43"} and done.value == 43
    assert done.worker_id


def test_a_failing_cell_shows_its_own_line_numbers(runner_endpoint):
    events = run_cell(runner_endpoint, "values = [1, 2]\nratio = values[0] / (values[1] - 2)\n", notebook(),
                      filename="<cell In[4]>", first_line=3)
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.error_type == "ZeroDivisionError"
    assert 'File "<cell In[4]>", line 4, in <module>' in failed.traceback
    assert "ratio = values[0] / (values[1] - 2)" in failed.traceback
    assert "worker_handler" not in failed.traceback and "handler.py" not in failed.traceback
    assert not any(isinstance(e, Done) for e in events)


def test_the_worker_process_and_its_module_state_serve_the_next_cell(runner_endpoint):
    code = "import logging\nlogging._runner_probe = getattr(logging, '_runner_probe', 0) + 1\ncount = logging._runner_probe\n"
    first = run_cell(runner_endpoint, code, notebook())[-1]
    second = run_cell(runner_endpoint, code, notebook())[-1]
    assert isinstance(first, Done) and isinstance(second, Done)
    assert second.worker_id == first.worker_id
    assert second.values["count"] == first.values["count"] + 1
    assert "_runner_probe" not in dir(__import__("logging"))  # it ran there, not here


def test_a_call_runs_a_notebook_function(runner_endpoint):
    ns = notebook(FACTOR=3)
    exec("def scale(v):\n    print('scaling', v)\n    return v * FACTOR\n", ns)
    job = runner_endpoint.run(runner.pack_call(ns["scale"], (5,), {}))
    events = [read_event(chunk) for chunk in job.stream(timeout=120)]
    assert "".join(e.text for e in events if isinstance(e, Output)) == "scaling 5\n"
    assert isinstance(events[-1], Done) and events[-1].value == 15


def test_a_worker_with_other_versions_runs_nothing(runner_endpoint, tmp_path):
    marker = tmp_path / "ran"
    payload = runner.pack_cell(f"open({str(marker)!r}, 'w').close()\n", notebook())
    # Stand-in for a kernel on another Python than the worker's (there is one interpreter here).
    payload["versions"] = {**payload["versions"], "python": "3.0"}
    events = [read_event(chunk) for chunk in runner_endpoint.run(payload).stream(timeout=120)]
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert events[0].error_type == "VersionMismatch" and "Python 3.0 in the kernel" in events[0].message
    assert not marker.exists()


def test_cancelling_the_job_interrupts_the_cell_and_the_worker_goes_on(runner_endpoint):
    code = """\
import logging, time
logging._runner_interrupted = False
print("looping")
try:
    while True:
        time.sleep(0.05)
except KeyboardInterrupt:
    logging._runner_interrupted = True
    raise
"""
    job = runner_endpoint.run(runner.pack_cell(code, notebook()))
    for chunk in job.stream(timeout=120):
        event = read_event(chunk)
        if isinstance(event, Output) and "looping" in event.text:
            job.cancel()
    after = run_cell(runner_endpoint, "import logging\nstopped = logging._runner_interrupted\n", notebook())[-1]
    assert isinstance(after, Done) and after.values["stopped"] is True
