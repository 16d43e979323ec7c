"""Jobs in the embedded RunPod: their record, their cloud-shaped views, and change signals."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..api.models import JobStatus


class Signal:
    """Wake everyone waiting: a broadcast that long-polls wait on, with a timeout."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    def notify(self) -> None:
        """Wake every current waiter; later waiters wait for the next notify."""
        if self._future is not None and not self._future.done():
            self._future.set_result(None)
        self._future = None

    async def wait(self, timeout: float) -> None:
        """Return on the next notify, or after ``timeout`` seconds, whichever comes first."""
        if timeout <= 0:
            return
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._future), timeout)


#: An input or output larger than this (as JSON) is not kept in memory once stored: it is read back
#: from the store when a worker takes the job or a client reads it (RunPod takes 10 MB per /run).
INLINE_LIMIT = 64 * 1024
PAYLOADS = ("input", "output")


class Stored:
    """Stands in for a job's input or output that lives only in the store (``size`` bytes of JSON)."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __repr__(self) -> str:
        return f"<stored: {self.size} bytes>"


def new_job_id(kind: str) -> str:
    """A RunPod-shaped job id; /runsync ids start with ``sync-`` as on the platform."""
    return f"{'sync-' if kind == 'sync' else ''}{uuid.uuid4()}-u1"


@dataclass
class JobRecord:
    """One job as the control plane keeps it, from submission until its result's retention ends."""

    id: str
    endpoint_id: str
    input: Any
    kind: str = "run"  # "run" or "sync": decides result retention
    status: JobStatus = JobStatus.IN_QUEUE
    output: Any = None
    error: Any = None
    progress: Any = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    worker_id: str | None = None
    webhook: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    s3_config: dict[str, Any] | None = None
    retries: int = 0
    reason: str | None = None
    events: list[list[Any]] = field(default_factory=list)
    # Not persisted: live only.
    stream_pending: list[Any] = field(default_factory=list, repr=False)
    stream_count: int = 0
    progress_log: list[list[Any]] = field(default_factory=list, repr=False)
    changed: Signal = field(default_factory=Signal, repr=False)
    stop_sent: float | None = None  # monotonic time of the last stop signal
    #: Reads a :class:`Stored` input or output back: (job id, "input" or "output") -> value.
    read_stored: Callable[[str, str], Any] | None = field(default=None, repr=False)

    _PERSISTED = (
        "id", "endpoint_id", "input", "kind", "status", "output", "error", "progress", "created",
        "started", "finished", "worker_id", "webhook", "policy", "s3_config", "retries", "reason", "events",
    )

    def __post_init__(self) -> None:
        self.status = JobStatus(self.status)  # rows read back from the store hold the plain string

    @property
    def final(self) -> bool:
        return self.status.is_final

    def event(self, kind: str, detail: str = "") -> None:
        """Add to the job's timeline (the widgets and the sidebar show it) and wake its waiters."""
        self.events.append([round(time.time(), 3), kind, detail])
        self.changed.notify()

    def payload(self, part: str) -> Any:
        """The job's ``"input"`` or ``"output"``, read back from the store when only kept there."""
        value = getattr(self, part)
        if isinstance(value, Stored):
            return self.read_stored(self.id, part) if self.read_stored is not None else None
        return value

    def delay_ms(self) -> int:
        """Time in the queue so far, as RunPod's ``delayTime``."""
        end = self.started or self.finished or time.time()
        return max(0, int((end - self.created) * 1000))

    def execution_ms(self) -> int | None:
        """Time running so far, as RunPod's ``executionTime``; None before a worker took it."""
        if self.started is None:
            return None
        return max(0, int(((self.finished or time.time()) - self.started) * 1000))

    # -- the cloud's JSON shapes ---------------------------------------------------------------
    def status_view(self) -> dict[str, Any]:
        """The job as /status, /runsync and /cancel answer it on RunPod."""
        view: dict[str, Any] = {"id": self.id, "status": self.status, "delayTime": self.delay_ms()}
        if self.started is not None:
            view["executionTime"] = self.execution_ms()
        if self.worker_id:
            view["workerId"] = self.worker_id
        if self.status == JobStatus.IN_PROGRESS and self.progress is not None:
            view["output"] = self.progress
        elif self.final and self.output is not None:
            view["output"] = self.payload("output")
        if self.error is not None:
            view["error"] = self.error
        if self.retries:
            view["retries"] = self.retries
        return view

    def worker_payload(self) -> dict[str, Any]:
        """What job-take hands the worker: the SDK passes the whole dict to the handler."""
        payload: dict[str, Any] = {"id": self.id, "input": self.payload("input")}
        if self.s3_config is not None:
            payload["s3Config"] = self.s3_config
        if self.webhook:
            payload["webhook"] = self.webhook
        return payload

    def webhook_body(self) -> dict[str, Any]:
        """What RunPod POSTs to the job's webhook when it ends."""
        body = {**self.status_view(), "input": self.payload("input"), "webhook": self.webhook}
        body.setdefault("output", None)
        return body

    def detail_view(self) -> dict[str, Any]:
        """Local-only: everything the widgets and the sidebar show about one job."""
        return {
            **self.status_view(),
            "endpointId": self.endpoint_id,
            "kind": self.kind,
            "createdAt": self.created,
            "startedAt": self.started,
            "finishedAt": self.finished,
            "reason": self.reason,
            "events": self.events,
            "progressLog": self.progress_log,
            "streamCount": self.stream_count,
            "policy": self.policy,
        }

    # -- persistence ---------------------------------------------------------------------------
    def to_row(self) -> dict[str, Any]:
        """The fields kept across a restart (the status as its plain string, being a str enum); a
        :class:`Stored` input or output is kept as its size under ``stored``."""
        row = {name: getattr(self, name) for name in self._PERSISTED}
        stored = {part: row[part].size for part in PAYLOADS if isinstance(row[part], Stored)}
        if stored:
            row.update({part: None for part in stored}, stored=stored)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobRecord:
        """A job read back from the store; fields it does not know are ignored."""
        job = cls(**{k: v for k, v in row.items() if k in cls._PERSISTED})
        for part, size in (row.get("stored") or {}).items():
            if part in PAYLOADS:
                setattr(job, part, Stored(int(size)))
        return job
