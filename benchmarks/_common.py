"""Pieces every benchmark needs: statistics, CPU time from /proc, an embedded RunPod in a
throw-away dir, worker projects, and the SDK's own dev server (``--rp_serve_api``) as a peer.

Everything started here is stopped by its PID, and every wait has a deadline, so a failing run
ends instead of hanging or leaving processes behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH_KEY = "bench-local-key-5d2e7a"
#: Environment that must not leak from the caller into what the benchmarks start.
SCRUBBED = (
    "RUNPOD_API_KEY", "RUNPOD_JUPYTER_BACKEND", "RUNPOD_ENDPOINT_BASE_URL", "RUNPOD_API_BASE_URL",
    "RUNPOD_WEBHOOK_GET_JOB", "RUNPOD_WEBHOOK_POST_OUTPUT", "RUNPOD_WEBHOOK_POST_STREAM",
    "RUNPOD_WEBHOOK_PING", "RUNPOD_POD_ID", "RUNPOD_AI_API_KEY", "RUNPOD_ENDPOINT_ID",
)

#: A plain handler, the smallest job a worker can do.
ECHO_HANDLER = """
import runpod

def handler(job):
    return {"echo": job["input"]}

runpod.serverless.start({"handler": handler})
"""


# -- statistics ----------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float, digits: int = 1) -> str:
    """Seconds as milliseconds, for RESULT figures (their keys say ``_ms``) and notes."""
    return f"{seconds * 1000:.{digits}f}"


def result(name: str, **figures: Any) -> None:
    """The one line a benchmark ends with: ``RESULT <name> key=value ...``."""
    parts = " ".join(f"{key}={value}" for key, value in figures.items())
    print(f"RESULT {name} {parts}", flush=True)


def load1() -> str:
    """The 1-minute load average: other work on the machine skews every figure, so say how much."""
    return Path("/proc/loadavg").read_text().split()[0]


def note(message: str) -> None:
    """Progress for a human watching; stderr, so stdout ends with the RESULT line."""
    print(message, file=sys.stderr, flush=True)


# -- processes -----------------------------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its own threads, not its children) from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def group_pids(pgid: int) -> list[int]:
    """Live processes in a process group (a worker and the heartbeat process it forks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(extra)
    return env


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


def stop_pid(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group we started, SIGKILL it if it lingers, and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def time_in_fresh_interpreter(code: str, home: Path, timeout: float = 60.0) -> float:
    """Run ``code`` in a new interpreter; it prints seconds as its last line, which are returned."""
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=clean_env(HOME=str(home), IPYTHONDIR=str(home / ".ipython")),
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return float(done.stdout.strip().splitlines()[-1])


#: Times ``import {module}`` from inside the interpreter, so interpreter start is left out.
IMPORT_PROBE = """
import time
t = time.perf_counter()
import {module}
print(time.perf_counter() - t)
"""


# -- scratch space, worker projects --------------------------------------------------------------
@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix=f"rpj-bench-{prefix}-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def worker_project(root: Path, source: str) -> Path:
    """A worker project dir holding ``handler.py``."""
    directory = root / f"project-{uuid.uuid4().hex[:8]}"
    directory.mkdir(parents=True)
    (directory / "handler.py").write_text(textwrap.dedent(source).lstrip())
    return directory


# -- the embedded RunPod -------------------------------------------------------------------------
@contextlib.contextmanager
def embedded_runpod(root: Path, tuning: dict[str, Any] | None = None) -> Iterator[Any]:
    """An embedded RunPod with its own data dir and state file (production timings unless
    ``tuning`` says otherwise), stopped with its workers on the way out."""
    from runpod_jupyter import embedded

    os.environ["RUNPOD_JUPYTER_DATA_DIR"] = str(root / "user-data")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(root / "runtime")
    for key in SCRUBBED:
        os.environ.pop(key, None)
    state = root / "state.json"
    instance = embedded.start(data_dir=root / "data", state_file=state, api_key=BENCH_KEY, tuning=tuning)
    try:
        yield instance
    finally:
        embedded.stop(state_file=state)


def create_endpoint(client: Any, project: Path, **fields: Any) -> Any:
    """saveTemplate + saveEndpoint for a worker project; returns the EndpointSpec."""
    from runpod_jupyter.api import EndpointSpec, TemplateSpec

    name = f"bench-{uuid.uuid4().hex[:8]}"
    template = client.save_template(TemplateSpec(name=name, image_name=f"local:{project}"))
    settings = {"gpu_ids": ("ADA_24",), "workers_max": 1, **fields}
    return client.save_endpoint(EndpointSpec(name=name, template_id=template.id, **settings))


def local_workers(instance: Any, endpoint_id: str) -> list[dict[str, Any]]:
    """The embedded RunPod's local-only worker list (states, pids)."""
    request = urllib.request.Request(
        f"{instance.url}/local/endpoints/{endpoint_id}/workers",
        headers={"Authorization": f"Bearer {instance.api_key.reveal()}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["workers"]


def wait_idle(api: Any, count: int, timeout: float = 60.0) -> None:
    wait_until(lambda: api.health().workers.idle >= count, timeout, 0.1, f"{count} idle worker(s)")


# -- the SDK's own dev server --------------------------------------------------------------------
@contextlib.contextmanager
def sdk_dev_server(project: Path, home: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python handler.py --rp_serve_api`` on a free port; yields (process, base URL)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    with open(project / "serve_api.log", "ab") as log:  # Popen keeps its own copy of the descriptor
        process = subprocess.Popen(
            [PYTHON, "handler.py", "--rp_serve_api", "--rp_api_port", str(port), "--rp_api_host", "127.0.0.1",
             "--rp_log_level", "ERROR"],
            cwd=project, env=clean_env(HOME=str(home)), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/docs") or process.poll() is not None, 60, 0.05, "the SDK dev server")
        if process.poll() is not None:
            raise RuntimeError(f"the SDK dev server exited ({process.returncode}); see {project / 'serve_api.log'}")
        yield process, base
    finally:
        stop_pid(process)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


# -- the smallest control plane, same SDK worker -------------------------------------------------
@contextlib.contextmanager
def bare_platform(project: Path, home: Path) -> Iterator[str]:
    """``_bare_platform.py`` and one SDK worker running ``project``; yields the base URL once the
    worker has answered a first job."""
    from _bare_platform import worker_env

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    home.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [PYTHON, str(Path(__file__).with_name("_bare_platform.py")), str(port)],
        env=clean_env(), stdin=subprocess.DEVNULL, start_new_session=True,
    )
    with open(project / "bare_worker.log", "ab") as log:  # Popen keeps its own copy of the descriptor
        worker = subprocess.Popen(
            [PYTHON, "handler.py"], cwd=project, env=clean_env(HOME=str(home), **worker_env(base, "bare-worker-1")),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_until(lambda: _answers(f"{base}/ping/probe") or server.poll() is not None, 30, 0.05, "the bare control plane")
        request = urllib.request.Request(
            f"{base}/runsync", data=json.dumps({"input": {"warm": True}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=90) as reply:
            reply.read()
        yield base
    finally:
        stop_pid(worker)
        stop_pid(server)
