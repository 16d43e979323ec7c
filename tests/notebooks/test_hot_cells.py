"""``%%runpod_run`` and ``runpod_jupyter.remote`` in a real kernel (nbclient) against a test
embedded RunPod that the kernel finds: a cell runs on the runner's warm worker with a value from an
earlier cell, its prints, HTML and a matplotlib image arrive as they happen, its names come back;
an edited re-run lands on the same worker with no new release; a failure shows the remote
traceback and binds nothing; ``.remote()`` and ``.map()``; an interrupt cancels the job. The kernel
holds an API key: neither the packed payload nor the worker's environment carries it. With the
worker quota full, the runner says which endpoints hold it and how to free it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from support import FAST, LOCAL_KEY, local_get

from runpod_jupyter import embedded

pytestmark = pytest.mark.slow  # starts a kernel and workers

MARKER = "rpa_HOTCELLMARK00042"

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "hot_cells.ipynb"
#: After the user's notebook: what only a test looks at (the key, the kernel's pid, an interrupt).
TEST_CELLS = {
    "key-in-payload": """import json, os
from runpod_jupyter import runner
key = os.environ["RUNPOD_API_KEY"]
payload = runner.pack_cell("import os\\nprint(os.getcwd(), scale)", get_ipython().user_ns)
print('KEY_IN_PAYLOAD', key in json.dumps(payload))""",
    "worker-env": """%%runpod_run --local --out worker_env
import os
worker_env = dict(os.environ)
unused = 1""",
    "final-output": "from runpod_jupyter import hot\nfinal = hot.last_job().refresh()\n"
    "print('FINAL_OUTPUT', final.status.value, final.output)",
    "key-in-worker-env": "print('KEY_IN_WORKER_ENV', any(key in v for v in worker_env.values()), "
    f"any({LOCAL_KEY!r} in v for v in worker_env.values()), 'unused' in globals())",
    "unshippable": "import threading\nlock = threading.Lock()",
    "refused": "%%runpod_run --local\nprint(lock)",
    "timed-out": "%%runpod_run --local --timeout 1\nimport time\nprint('STARTED', flush=True)\ntime.sleep(60)",
    "timed-out-status": "from runpod_jupyter import hot\nprint('TIMED_OUT_JOB', hot.last_job().refresh().status.value)",
    "pid": "print('PID', os.getpid())",
    "interrupted": """%%runpod_run --local
import time
print("REMOTE_SLEEPING", flush=True)
for _ in range(300):
    time.sleep(0.1)""",
    "cancelled": "from runpod_jupyter import hot\nprint('CANCELLED', hot.last_job().refresh().status.value)",
}


def _cell(nb, cell_id: str):
    return next(cell for cell in nb.cells if cell.get("id") == cell_id)





def _streams(cell, name: str = "stdout") -> list[str]:
    return [o["text"] for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o["name"] == name]


def _printed(cell, prefix: str) -> str:
    for text in _streams(cell):
        for line in text.splitlines():
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1:]
    raise AssertionError(f"{prefix!r} not printed; outputs: {cell.get('outputs')}")


def _runner(instance) -> dict:
    (found,) = [e for e in local_get(instance, "/v2/serverless")["endpoints"] if e["name"].startswith("runner-")]
    return found


def _releases(instance) -> tuple:
    endpoint = _runner(instance)
    history = local_get(instance, f"/v2/serverless/{endpoint['id']}/releases")
    return history.get("endpointVersion"), len(history.get("releases") or []), endpoint.get("templateId")


def _interrupt_when_sleeping(cell, pid: int, stop: threading.Event) -> None:
    """Interrupt the kernel (SIGINT, as Jupyter's button does) once the remote cell says it sleeps."""
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        if any("REMOTE_SLEEPING" in text for text in _streams(cell)):
            os.kill(pid, signal.SIGINT)
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run the user's notebook, then the test cells, once against a fresh embedded RunPod; yield
    (notebook, the runner's releases before and after the edited cell ran, a quota refusal's words)."""
    root = tmp_path_factory.mktemp("hot-cells")
    saved_key = os.environ.get("RUNPOD_API_KEY")
    os.environ["RUNPOD_API_KEY"] = MARKER  # the kernel has a key; --local runs must not ship it
    embedded.stop()  # a shared instance another test left has other settings
    instance = embedded.start(data_dir=root / "data", api_key=LOCAL_KEY, tuning=FAST)  # the kernel finds it
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell_id, source in TEST_CELLS.items():
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = cell_id
        nb.cells.append(cell)
    client = NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(root)}})
    around_edit: list[tuple] = []
    stop = threading.Event()
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                watcher = None
                if cell.id == "edited-cell":
                    around_edit.append(_releases(instance))
                if cell.id == "interrupted":
                    pid = int(_printed(_cell(nb, "pid"), "PID"))
                    watcher = threading.Thread(target=_interrupt_when_sleeping, args=(cell, pid, stop), daemon=True)
                    watcher.start()
                client.execute_cell(cell, index)
                if watcher is not None:
                    stop.set()
                    watcher.join(5)
                if cell.id == "edited-cell":
                    around_edit.append(_releases(instance))
        quota = _quota_refusal()
    finally:
        stop.set()
        embedded.stop()
        if saved_key is None:
            os.environ.pop("RUNPOD_API_KEY", None)
        else:
            os.environ["RUNPOD_API_KEY"] = saved_key
    yield nb, around_edit, quota


def _quota_refusal() -> str:
    """Fill the account's worker quota with another endpoint, then ask the runner for one more
    worker: the refusal's words (this process looks the runner up as a new kernel would)."""
    from runpod_jupyter import deploy, hot
    from runpod_jupyter.errors import DeployError

    hot.forget_runners()
    hog = deploy("def handler(job):\n    return 1\n", "hog", backend="local", gpu="ADA_24",
                 workers_max=FAST["worker_limit"] - 1, wait=False)
    try:
        hot.ensure_runner(hot.RunnerOptions(backend="local", workers_max=2))
    except DeployError as exc:
        return f"{exc.message}\n{exc.hint}"
    finally:
        hog.delete()
        hot.forget_runners()
    return "(not refused)"


def test_the_result_does_not_repeat_what_the_stream_carried(executed):
    """The runner's chunks travel once, through /stream: its job's final result is empty, so a
    large output does not count twice against RunPod's result size limit."""
    assert _printed(_cell(executed[0], "final-output"), "FINAL_OUTPUT") == "COMPLETED []"


def test_a_remote_cell_streams_displays_and_binds(executed):
    nb = executed[0]
    cell = _cell(nb, "remote-cell")
    printed = _streams(cell)
    assert "".join(printed).startswith("".join(f"step {i}\n" for i in range(4))), printed
    steps = [text for text in printed if "step " in text]
    assert len(steps) >= 3, printed  # arrived as the worker printed them, not at the end in one piece
    kinds = [sorted(o.get("data", {})) for o in cell.outputs]
    html = next(i for i, mimes in enumerate(kinds) if "text/html" in mimes)
    png = next(i for i, mimes in enumerate(kinds) if "image/png" in mimes)
    last_step = max(i for i, o in enumerate(cell.outputs) if "step 3" in o.get("text", ""))
    assert last_step < html < png  # in the order they happened
    assert "<b>remote html</b>" in cell.outputs[html]["data"]["text/html"]
    assert len(cell.outputs[png]["data"]["image/png"]) > 100
    result = [o for o in cell.outputs if o["output_type"] == "execute_result"]
    assert result and result[-1]["data"]["text/plain"] == "18"  # the last expression, as Out
    assert _printed(_cell(nb, "uses-result"), "total:") == "18 twice: 36"


def test_an_edited_rerun_uses_the_same_warm_worker_and_no_new_release(executed):
    nb, around_edit, _ = executed
    assert _printed(_cell(nb, "same-worker"), "same worker:") == "True 118"
    before, after = around_edit
    assert before == after  # same endpoint version, release count and template: nothing deployed
    said = "".join(_streams(_cell(nb, "edited-cell"), "stderr"))
    assert "creating runner" not in said and "updating runner" not in said
    listed = "".join(str(o.get("data", {}).get("text/plain", "")) for o in _cell(nb, "endpoints").outputs)
    assert "runner-" in listed


def test_a_failing_cell_shows_the_remote_traceback_and_binds_nothing(executed):
    nb = executed[0]
    (error,) = [o for o in _cell(nb, "failing-cell").outputs if o["output_type"] == "error"]
    shown = "\n".join(error["traceback"])
    assert "ValueError" in shown and "remote boom" in shown
    assert "line 4" in shown  # the cell's own line (line 1 is the magic)
    assert "hot.py" not in shown and "deployment.py" not in shown  # no local traceback wall
    assert _printed(_cell(nb, "not-bound"), "bound after the failure:") == "False"


def test_the_api_key_travels_nowhere(executed):
    nb = executed[0]
    assert _printed(_cell(nb, "key-in-payload"), "KEY_IN_PAYLOAD") == "False"
    # --out worker_env: only that name came back
    assert _printed(_cell(nb, "key-in-worker-env"), "KEY_IN_WORKER_ENV") == "False False False"
    shown = nbformat.writes(nb)
    assert MARKER not in shown and LOCAL_KEY not in shown.replace(repr(LOCAL_KEY), "")


def test_remote_decorator_call_and_map(executed):
    nb = executed[0]
    cell = _cell(nb, "decorator")
    assert _printed(cell, "local:") == "9"
    assert _printed(cell, "remote:") == "16"
    assert _printed(cell, "map:") == "[1, 4, 9]"
    printed = "".join(_streams(cell))
    assert printed.index("squaring 4") < printed.index("remote: 16")  # the remote print streamed to the cell
    assert [line for line in printed.splitlines() if line.startswith("squaring")] == [
        "squaring 3", "squaring 4", "squaring 1", "squaring 2", "squaring 3"]


def test_a_value_that_cannot_travel_is_refused_by_name_before_sending(executed):
    nb = executed[0]
    (error,) = [o for o in _cell(nb, "refused").outputs if o["output_type"] == "error"]
    shown = "\n".join(error["traceback"])
    assert error["ename"] == "ShippingError" and "lock" in shown, shown


def test_a_run_past_its_timeout_is_cancelled_with_a_clear_error(executed):
    nb = executed[0]
    (error,) = [o for o in _cell(nb, "timed-out").outputs if o["output_type"] == "error"]
    shown = "\n".join(error["traceback"])
    assert error["ename"] == "JobTimedOutError" and "timeout (1 s)" in shown and "--timeout" in shown, shown
    assert _printed(_cell(nb, "timed-out-status"), "TIMED_OUT_JOB") == "CANCELLED"


def test_an_interrupt_cancels_the_remote_job(executed):
    nb = executed[0]
    errors = [o for o in _cell(nb, "interrupted").outputs if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "KeyboardInterrupt"
    assert _printed(_cell(nb, "cancelled"), "CANCELLED") == "CANCELLED"


def test_a_full_worker_quota_is_named_with_how_to_free_it(executed):
    """No room left in the account's worker quota: the runner is not changed, and the message
    names the endpoints holding workers and how to free them."""
    said = executed[2]
    assert "worker quota is full" in said, said
    assert f"hog (workersMax {FAST['worker_limit'] - 1})" in said and "runner-" in said
    assert "%runpod_delete" in said and ".scale(max=0)" in said
