"""Worker processes of the embedded RunPod: the real ``runpod`` SDK worker loop in a subprocess,
wired to the control plane by environment variables exactly as on the platform.

Rules measured on the SDK (notes/runpod-sdk-protocol.md): ``$ID`` (not ``$RUNPOD_POD_ID``) in the
job-take template; every template ends with a query string; fitness checks skipped (they dial
8.8.8.8 and exit offline); a private ``HOME`` so ``~/.runpod/config.toml`` (a user's real key)
never reaches the worker; the worker's own ping process is killed with it (process group).

The default command (this interpreter running ``handler.py``) is forked from the fork server
(:mod:`.forkserver`), which has the SDK's dependencies loaded already; any other command, or no
fork server, starts a new process. Either way the worker gets the same env, cwd, session and
output pipes, and the fleet sees one :class:`WorkerProcess`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import shlex
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..api.models import OUTDATED as STALE_WORD
from ..api.models import WorkerState
from ..secret import is_secret_reference, redact_values, secret_env_values
from .forkserver import INHERITED_ENV, ForkServer
from .jobs import Signal


class WorkerPhase(str, enum.Enum):
    """Where a worker is in its life inside the embedded RunPod: the states RunPod reports
    (:class:`WorkerState`, same values), and two it never shows: ``DRAINING`` (told to stop, its
    process finishing) and ``EXITED`` (the process is gone; the record stays a while for its logs).
    ``OUTDATED`` is never held: it is what views say of a live worker of an older release."""

    INITIALIZING = WorkerState.INITIALIZING.value
    IDLE = WorkerState.IDLE.value
    RUNNING = WorkerState.RUNNING.value
    THROTTLED = WorkerState.THROTTLED.value
    UNHEALTHY = WorkerState.UNHEALTHY.value
    DRAINING = "draining"
    EXITED = "exited"
    OUTDATED = STALE_WORD

    def __str__(self) -> str:
        return self.value


#: Up and able to take jobs.
SERVING = frozenset({WorkerPhase.IDLE, WorkerPhase.RUNNING})
#: Told to stop, or stopped: no new work, not counted by /health.
LEAVING = frozenset({WorkerPhase.DRAINING, WorkerPhase.EXITED})
#: Holding a GPU of their pool (capacity is counted over these).
HOLDS_GPU = frozenset({WorkerPhase.INITIALIZING, *SERVING, WorkerPhase.DRAINING})
#: Taking one of the endpoint's ``workersMax`` slots.
SLOT_STATES = frozenset({WorkerPhase.INITIALIZING, *SERVING, WorkerPhase.THROTTLED, WorkerPhase.UNHEALTHY})

#: Meaning of a worker's exit code, in the words the field notes use.
EXIT_MEANINGS = {
    0: "exited normally",
    1: "Python exception or missing module (see the worker log)",
    2: "file not found: usually handler.py is missing or the start command points at the wrong path",
    137: "killed (SIGKILL), often out of memory (GPU VRAM or system RAM); if so, use a bigger GPU or smaller batches",
    139: "segmentation fault: on RunPod usually the container disk filled up; raise containerDiskInGb "
    "or write large files to /runpod-volume",
    143: "terminated (SIGTERM)",
}

LOG_LINES_KEPT = 5000


class WorkerProcess(Protocol):
    """A worker's process as the fleet handles it: :class:`asyncio.subprocess.Process`, or
    :class:`.forkserver.ForkedProcess` for a worker forked by the fork server."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stdout(self) -> asyncio.StreamReader | None: ...

    @property
    def stderr(self) -> asyncio.StreamReader | None: ...

    async def wait(self) -> int: ...


def exit_code(returncode: int) -> int:
    """asyncio reports death by signal N as -N; containers report 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(code: int, killed_by: str | None = None) -> str:
    """The exit code with what it usually means, for the worker's and its jobs' reasons. A SIGKILL
    the embedded RunPod sent itself (``killed_by`` says why) is said to be that, not memory."""
    if code == 137 and killed_by:
        return f"exit code 137: killed (SIGKILL) by the embedded RunPod: {killed_by}"
    return f"exit code {code}: {EXIT_MEANINGS.get(code, 'the worker process ended')}"


@dataclass
class WorkerRecord:
    id: str
    endpoint_id: str
    release: int
    pool: str | None = None
    state: WorkerPhase = WorkerPhase.INITIALIZING
    jobs: set[str] = field(default_factory=set)
    created: float = field(default_factory=time.time)
    spawned: float | None = None
    contacted: float | None = None  # first request from the SDK loop (job-take or ping)
    last_seen: float | None = None
    idle_since: float | None = None
    billing_since: float | None = None
    active: bool = False  # one of the endpoint's workersMin: billed while up, jobs or not
    exit_code: int | None = None
    reason: str | None = None
    crashes: int = 0
    retry_at: float | None = None
    stop_after_job: bool = False
    pid: int | None = None
    killed_by: str | None = None  # why the embedded RunPod sent SIGKILL, when it did
    logs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_LINES_KEPT), repr=False)
    #: Secret values its env holds: scrubbed from its log lines and its jobs' errors.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    process: WorkerProcess | None = field(default=None, repr=False)
    forked: bool = False  # started by the fork server, not as a new interpreter
    #: Wakes its job-stop long-poll: one of its jobs ended, or it is draining.
    news: Signal = field(default_factory=Signal, repr=False)
    #: Sequence number of its last log line (REST v2's log event ids carry it).
    log_seq: int = 0
    #: Wakes its log followers: a line was added.
    log_news: Signal = field(default_factory=Signal, repr=False)

    def __post_init__(self) -> None:
        self.state = WorkerPhase(self.state)

    def add_log(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Keep one (already redacted) log line, numbered so a reader can resume right after it."""
        self.log_seq += 1
        entry["seq"] = self.log_seq
        self.logs.append(entry)
        self.log_news.notify()
        return entry

    def system_log(self, message: str) -> None:
        """A line of the embedded RunPod's own about this worker (REST v2's ``system`` source)."""
        self.add_log({"t": round(time.time(), 3), "worker": self.id, "job": None, "level": "INFO",
                      "message": message, "stream": "system"})

    def view(self, current_release: int) -> dict[str, Any]:
        """Local-only: the worker as ``/local/endpoints/{id}/workers`` lists it. ``isStale`` is
        REST v2's flag for a worker of an older release; views count a live one as outdated."""
        stale = self.release < current_release
        state = self.state
        if stale and state not in LEAVING:
            state = WorkerPhase.OUTDATED
        return {
            "id": self.id,
            "endpointId": self.endpoint_id,
            "state": state,
            "isStale": stale,
            "release": self.release,
            "gpu": self.pool,
            "alwaysOn": self.active,
            "billed": self.billing_since is not None,
            "jobs": sorted(self.jobs),
            "pid": self.pid,
            "createdAt": self.created,
            "startedAt": self.spawned,
            "readyAt": self.contacted,
            "lastSeen": self.last_seen,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "crashes": self.crashes,
            "retryAt": self.retry_at,
        }


@dataclass(frozen=True)
class Launch:
    """How to start one worker: command, working dir and the environment it gets."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]


def project_dir(image_name: str) -> Path | None:
    """``local:<absolute dir>`` → that dir; any other image can only run in the cloud."""
    if not image_name.startswith("local:"):
        return None
    return Path(image_name[len("local:"):]).expanduser()


def command(docker_args: str) -> list[str]:
    """The template's dockerArgs is the start command when given; ``python`` means this
    interpreter (the worker runs in the same environment as the embedded RunPod)."""
    argv = shlex.split(docker_args) if docker_args.strip() else ["python", "-u", "handler.py"]
    if argv and Path(argv[0]).name.startswith("python") and "/" not in argv[0]:
        argv[0] = sys.executable
    return argv


def build_launch(
    *,
    worker: WorkerRecord,
    template: dict[str, Any],
    control_url: str,
    worker_key: str,
    ping_interval_ms: int,
    home: Path,
    resolve_secret: Callable[[str], str | None],
) -> Launch:
    """Everything the SDK's worker loop reads from its environment, pointed at this control plane;
    nothing of ours leaks in but a few locale and path variables and the template's env."""
    pool = worker.pool or "SIM"
    base = f"{control_url}/v2/{worker.endpoint_id}"
    query = f"?gpu={pool}"
    env = {
        key: os.environ[key]
        for key in INHERITED_ENV
        if key in os.environ
    }
    template_env = _template_env(template, resolve_secret)
    env.update(template_env)
    referenced = {str(i.get("key", "")) for i in template.get("env") or [] if is_secret_reference(str(i.get("value", "")))}
    worker.secrets = tuple(
        {*secret_env_values(template_env), *(template_env[k] for k in referenced if template_env.get(k)), worker_key}
    )
    env.update(
        {
            "HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID{query}",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID/$ID{query}",
            "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID/$ID{query}",
            "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID{query}",
            "RUNPOD_POD_ID": worker.id,
            "RUNPOD_POD_HOSTNAME": f"{worker.id}-local",
            "RUNPOD_AI_API_KEY": worker_key,
            "RUNPOD_PING_INTERVAL": str(max(1000, ping_interval_ms)),
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
            "RUNPOD_SKIP_GPU_CHECK": "true",
            "RUNPOD_ENDPOINT_ID": worker.endpoint_id,
            "RUNPOD_LOG_LEVEL": env.get("RUNPOD_LOG_LEVEL", "INFO"),
            "RUNPOD_GPU_COUNT": "1",
        }
    )
    directory = project_dir(template.get("imageName", "")) or home
    if not directory.is_dir():
        directory = home  # python then fails to open handler.py: exit 2, as on the platform
    return Launch(argv=command(template.get("dockerArgs") or ""), cwd=directory, env=env)


def _template_env(template: dict[str, Any], resolve_secret: Callable[[str], str | None]) -> dict[str, str]:
    """Template env, with ``{{ RUNPOD_SECRET_name }}`` references resolved like the platform does."""
    out: dict[str, str] = {}
    for item in template.get("env") or []:
        key, value = str(item.get("key", "")), str(item.get("value", ""))
        if not key:
            continue
        stripped = value.strip()
        if stripped.startswith("{{") and stripped.endswith("}}") and "RUNPOD_SECRET_" in stripped:
            name = stripped[2:-2].strip().removeprefix("RUNPOD_SECRET_")
            value = resolve_secret(name) or ""
        out[key] = value
    return out


async def spawn(
    worker: WorkerRecord, launch: Launch, log_file: Path, forks: ForkServer | None = None
) -> WorkerProcess:
    """Start the worker in its own process group, its output captured line by line: forked by
    ``forks`` when it can, else as a new process."""
    Path(launch.env["HOME"]).mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    process: WorkerProcess | None = None
    if forks is not None:
        process = await forks.spawn(launch.argv, launch.cwd, launch.env)
    worker.forked = process is not None
    if process is None:
        process = await asyncio.create_subprocess_exec(
            *launch.argv,
            cwd=str(launch.cwd),
            env=launch.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    worker.process = process
    worker.pid = process.pid
    worker.spawned = time.time()
    return process


async def pump_logs(worker: WorkerRecord, process: WorkerProcess, log_file: Path) -> None:
    """Keep every line the worker prints, tagged with the job it belongs to when known."""
    with log_file.open("a", encoding="utf-8") as sink:
        await asyncio.gather(
            _pump(worker, process.stdout, "stdout", sink),
            _pump(worker, process.stderr, "stderr", sink),
        )


async def _pump(worker: WorkerRecord, stream: asyncio.StreamReader | None, name: str, sink: Any) -> None:
    if stream is None:
        return
    while True:
        try:
            raw = await stream.readline()
        except (ValueError, asyncio.LimitOverrunError):  # a line over the reader's limit
            raw = await stream.read(65536)
        if not raw:
            return
        entry = parse_log_line(raw.decode("utf-8", errors="replace").rstrip("\n"), worker, name)
        entry["message"] = redact_values(entry["message"], worker.secrets)
        if "raw" in entry:
            entry["raw"] = redact_values(entry["raw"], worker.secrets)
        worker.add_log(entry)
        sink.write(json.dumps(entry) + "\n")
        sink.flush()


def parse_log_line(line: str, worker: WorkerRecord, stream: str) -> dict[str, Any]:
    """The SDK logs JSON lines ``{"requestId", "message", "level"}`` when RUNPOD_ENDPOINT_ID is
    set; a handler's own ``print`` is plain text, attributed to the worker's only running job."""
    job_id = None
    level = "INFO" if stream == "stdout" else "STDERR"
    message = line
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if isinstance(data, dict) and "message" in data:
            job_id = data.get("requestId") or None
            level = str(data.get("level") or level)
            message = str(data["message"])
    if job_id is None and len(worker.jobs) == 1:
        job_id = next(iter(worker.jobs))
    entry = {"t": round(time.time(), 3), "worker": worker.id, "job": job_id, "level": level, "message": message, "stream": stream}
    if message != line:  # the line as printed, as RunPod's log stream carries it
        entry["raw"] = line
    return entry


async def wait_exit(worker: WorkerRecord, process: WorkerProcess) -> int:
    """The worker's exit status. ``Process.wait()`` alone would also wait for the output pipes,
    which the heartbeat process the SDK forks keeps open: once the worker itself has exited,
    the rest of its process group is killed so the pipes close."""
    finished = asyncio.ensure_future(process.wait())
    while not finished.done():
        if process.returncode is not None:
            signal_group(worker, signal.SIGKILL)  # the rest of the group; the worker's own exit stands
            break
        await asyncio.wait({finished}, timeout=0.5)
    returncode = await finished
    if worker.pid is not None:  # a forked worker's wait() does not wait for its pipes: same end
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.pid, signal.SIGKILL)
    cause = getattr(process, "killed_by", None)
    if cause:
        worker.killed_by = worker.killed_by or cause
    return returncode


def signal_group(worker: WorkerRecord, sig: int) -> None:
    """Signal the worker and the heartbeat process it forked (same process group)."""
    if worker.pid is None:
        return
    try:
        os.killpg(worker.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(worker.pid, sig)


def terminate(worker: WorkerRecord) -> None:
    """Ask the worker and its heartbeat process to stop; the control plane kills them after a grace."""
    signal_group(worker, signal.SIGTERM)


def kill(worker: WorkerRecord, cause: str = "it did not stop after SIGTERM") -> None:
    """End the worker and its heartbeat process now; ``cause`` is kept so its exit code 137 is not
    taken for running out of memory."""
    if worker.pid is not None and (worker.process is None or worker.process.returncode is None):
        worker.killed_by = worker.killed_by or cause
    signal_group(worker, signal.SIGKILL)
