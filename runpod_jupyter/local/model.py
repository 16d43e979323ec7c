"""The embedded RunPod's data model: its options, an endpoint's runtime state, the state all parts
of the control plane share, and the small facts (prices, ids, timeouts) they and the scaler use."""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api.models import per_second
from . import workers as wk
from .jobs import Signal
from .store import Store

DEFAULT_PRICE = 0.0002


@dataclass
class Options:
    """How the embedded RunPod behaves: its keys and limits, and the platform's timings (tests
    shorten them)."""

    api_key: str
    worker_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    data_dir: Path = Path(".")
    control_url: str = ""
    gpus: dict[str, int] = field(default_factory=dict)  # capacity per pool; absent = unlimited
    worker_limit: int = 5
    balance: float = 25.0
    retention_run: float = 30 * 60
    retention_sync: float = 60
    hold: float = 15.0
    stream_hold: float = 5.0
    ping_interval_ms: int = 2000
    heartbeat_timeout: float = 15.0
    init_timeout: float = 420.0
    execution_timeout: float = 600.0
    max_job_retries: int = 1
    crash_backoff_base: float = 1.0
    crash_backoff_max: float = 60.0
    drain_grace: float = 10.0
    stop_grace: float = 1.0  # SIGTERM to SIGKILL for the workers when the server stops
    tick: float = 1.0
    exited_kept: int = 10
    #: Fork workers of the default command from a warm interpreter (:mod:`.forkserver`).
    fork_server: bool = True


@dataclass
class EndpointRuntime:
    """An endpoint: its GraphQL settings, the release its workers should run, its counters and queue."""

    data: dict[str, Any]
    template: dict[str, Any]  # snapshot taken at release time (saveTemplate alone changes nothing)
    release: int = 1
    completed: int = 0
    failed: int = 0
    retried: int = 0
    spent: float = 0.0
    disabled: bool = False
    created: float = field(default_factory=time.time)
    prewarm: bool = True
    crash_streak: int = 0
    registered: bool = False  # a worker has called in once: until then /health answers "Not Found"
    queue: deque[str] = field(default_factory=deque)
    work: Signal = field(default_factory=Signal)

    @property
    def id(self) -> str:
        return self.data["id"]

    def setting(self, key: str, default: int) -> int:
        """An integer setting; ``default`` when unset (GraphQL may store null)."""
        value = self.data.get(key)
        return default if value is None else int(value)

    @property
    def gpu_ids(self) -> list[str]:
        return [g.strip() for g in str(self.data.get("gpuIds") or "").split(",") if g.strip()]

    @property
    def problem(self) -> str | None:
        """Why no worker of this endpoint can start here, if none can (scaling then waits)."""
        image = self.template.get("imageName", "")
        if wk.project_dir(image) is None:
            return (
                f"Image {image!r} can only run in the cloud: the embedded RunPod runs templates whose "
                "imageName is local:<absolute path of a worker project dir>. Deploy with --cloud, "
                "or let %%runpod_deploy --local package the cell."
            )
        return None

    def to_row(self) -> dict[str, Any]:
        """What is kept across a restart (not the queue: the jobs' rows rebuild it)."""
        return {
            "data": self.data, "template": self.template, "release": self.release,
            "completed": self.completed, "failed": self.failed, "retried": self.retried,
            "spent": self.spent, "disabled": self.disabled, "created": self.created,
            "registered": self.registered,
        }


class Shared:
    """What every part of the control plane reads and changes: the options, the store, endpoints
    and workers, the clock's wake-up and the background tasks. Each part holds this one object
    rather than a reference to the part that owns the state."""

    def __init__(self, options: Options, store: Store) -> None:
        self.options = options
        self.store = store
        self.endpoints: dict[str, EndpointRuntime] = {}
        self.workers: dict[str, wk.WorkerRecord] = {}
        self.wake = Signal()  # something changed that the clock (scaling) should act on now
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run in the background, holding the task so it is neither collected nor forgotten at shutdown."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def save_endpoint(self, ep: EndpointRuntime) -> None:
        self.store.put("endpoints", ep.id, ep.to_row())

    def workers_of(self, endpoint_id: str) -> list[wk.WorkerRecord]:
        return [w for w in self.workers.values() if w.endpoint_id == endpoint_id]


def random_id(length: int = 14) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def price(pool: str | None, *, active: bool = False) -> float:
    """USD per second for a worker of ``pool``: the flex price, or the always-on one."""
    return per_second(pool, always_on=active, default=DEFAULT_PRICE) or 0.0


def init_timeout(ep: EndpointRuntime | None, default: float) -> float:
    """How long a worker may take to first ask for work: the template's ``RUNPOD_INIT_TIMEOUT``
    when set, as on the platform."""
    if ep is not None:
        for item in ep.template.get("env") or []:
            if item.get("key") == "RUNPOD_INIT_TIMEOUT":
                try:
                    return float(item.get("value"))
                except (TypeError, ValueError):
                    break
    return default


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
