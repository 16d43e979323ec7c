"""Reading what a view shows, through the handles, ``diagnose`` and the embedded RunPod's
routes (never the wire directly), and keeping what must accumulate between reads: a job's
stream items, its log lines, the transitions seen. No Jupyter imports: the static snapshot
(terminal, ``_repr_mimebundle_``) uses these readers without any widget.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import worker_logs
from ..api.models import JobStatus
from ..errors import RunpodError
from ..secret import redact
from . import render
from . import state as views
from .poller import Tick

if TYPE_CHECKING:
    from .subjects import ShownBatch, ShownEndpoint, ShownFeed, ShownJob

#: Log lines kept per job view.
MAX_LOG_LINES = 2000
#: Seconds a job's log follower waits on a quiet stream before asking again (each ask is a
#: request; lines that come while it waits arrive at once). RunPod counts requests per minute.
LOG_IDLE = {"local": 1.0, "cloud": 10.0}
#: Seconds after a job ended that its follower still takes lines (those written as it ended).
LOG_GRACE = 3.0


class EndpointReader:
    """An endpoint's state, from the tick's shared ``gather`` + ``diagnose``."""

    def __init__(self, deployment: ShownEndpoint) -> None:
        self.deployment = deployment

    def read(self, tick: Tick) -> dict[str, Any]:
        gathered, findings, error = tick.endpoint()
        dep = self.deployment
        return views.endpoint_state(
            name=dep.name, endpoint_id=dep.endpoint_id, backend=dep.backend,
            gathered=gathered, findings=findings, error=error, advice=dep.findings,
        )


class JobReader:
    """A job's state plus its accumulated stream items and worker log lines.

    With ``stream=True`` it follows the job's :class:`~runpod_jupyter.deployment.ChunkFeed` (the
    one /stream reader in the process); :meth:`take_items` turns the chunks that arrived since
    the last call into display items.
    """

    def __init__(self, job: ShownJob, *, stream: bool) -> None:
        self.job = job
        # Without ``stream``, only a reader already running is followed: reading /stream again
        # would take chunks RunPod hands out once.
        self.feed: ShownFeed | None = job.feed() if stream else getattr(job, "_feed", None)
        self.items: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self._cursor = 0
        self._detail: dict[str, Any] | None = None
        self._detail_status: str | None = None
        # Worker log lines: followed live (a live view) or read once the job has a worker.
        self._live_logs = stream
        self._follower: worker_logs.Follower | None = None
        self._pending_logs: list[dict[str, Any]] = []
        self._read_once = False
        self._final_at: float | None = None
        #: Called (on the follower's thread) when a log line of this job arrives: must be cheap.
        self.on_log: Callable[[], None] | None = None
        self._observed: list[list[Any]] = [[time.time(), job.state.status.value, ""]]
        self._progress: list[Any] = []
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def local(self) -> bool:
        return self.job.deployment.settings.local_url is not None

    @property
    def chunk_count(self) -> int:
        return len(self.feed.chunks) if self.feed is not None else 0

    @property
    def stream_done(self) -> bool:
        return self.feed is None or self.feed.done

    def take_items(self) -> list[dict[str, Any]]:
        """Display items for the chunks received since the last call (merged text runs)."""
        if self.feed is None:
            return []
        with self._lock:
            end = len(self.feed.chunks)
            if end <= self._cursor:
                return []
            batch: list[dict[str, Any]] = []
            for chunk in self.feed.chunks[self._cursor:end]:
                batch.extend(render.items(chunk))
            self._cursor = end
            fresh = render.merge(batch)
            self.items[-1:] = render.merge(self.items[-1:] + fresh[:1])
            self.items.extend(fresh[1:])
            return fresh

    def refresh(self) -> list[dict[str, Any]]:
        """Ask for the job's state (and, on the embedded RunPod, its timeline and new log lines).
        Returns the new log lines."""
        job = self.job
        try:
            snap = job.refresh()
            self.error = None
        except RunpodError as exc:
            self.error = redact(exc.message)
            snap = job.state
        if snap.status.value != self._observed[-1][1]:
            self._observed.append([time.time(), snap.status.value, snap.worker_id or snap.reason or ""])
        if snap.status is JobStatus.IN_PROGRESS and snap.output is not None and (
                not self._progress or self._progress[-1] != snap.output):
            self._progress.append(snap.output)
        if self.local:
            from ..api import local_routes as routes

            settings = job.deployment.settings
            if snap.status.value != self._detail_status:  # the timeline changes with the status
                detail = routes.job_detail(settings, job.id)
                if detail is not None:
                    self._detail, self._detail_status = detail, snap.status.value
        self._watch_logs(snap)
        return self.take_logs()

    # -- worker log lines -----------------------------------------------------------------------
    def _watch_logs(self, snap: Any) -> None:
        """Follow the worker the job runs on (a live view), or read its lines once (a snapshot)."""
        if snap.status.is_final and self._final_at is None:
            self._final_at = time.monotonic()
        if not snap.worker_id:
            return
        job = self.job
        if not self._live_logs:
            if not self._read_once:
                self._read_once = True
                with contextlib.suppress(RunpodError):
                    self._add_logs(worker_logs.read(job.deployment.client, job.deployment.endpoint_id,
                                                    job=job.id, tail=MAX_LOG_LINES))
            return
        if self._follower is None:
            self._follower = worker_logs.Follower(
                job.deployment.client, job.deployment.endpoint_id, self._on_line,
                tail=worker_logs.MAX_TAIL, idle=LOG_IDLE.get(job.deployment.backend, 10.0),
            )
        self._follower.add_window(
            worker_logs.window_of(job.id, snap, self._detail, ((t, s) for t, s, _ in self._observed)))
        if self._final_at is not None and time.monotonic() - self._final_at > LOG_GRACE:
            self._follower.stop()
        else:
            self._follower.follow(snap.worker_id)  # again after a retry on another worker

    def _on_line(self, entry: dict[str, Any]) -> None:
        if entry["job"] != self.job.id:
            return
        self._add_logs([entry])
        callback = self.on_log
        if callback is not None:
            with contextlib.suppress(Exception):  # the follower must go on whatever happens here
                callback()

    def _add_logs(self, entries: list[dict[str, Any]]) -> None:
        """``entries`` as :mod:`runpod_jupyter.worker_logs` makes them: their messages redacted."""
        shown = [{"t": e["t"], "level": e.get("level", ""), "message": str(e.get("message", ""))} for e in entries]
        with self._lock:
            self._pending_logs.extend(shown)
            del self._pending_logs[:-MAX_LOG_LINES]

    def take_logs(self) -> list[dict[str, Any]]:
        """The job's log lines that arrived since the last call (kept in :attr:`logs` too)."""
        with self._lock:
            fresh, self._pending_logs = self._pending_logs, []
            self.logs.extend(fresh)
            del self.logs[:-MAX_LOG_LINES]
        return fresh

    @property
    def logs_active(self) -> bool:
        """Whether log lines of this job may still arrive."""
        follower = self._follower
        return follower is not None and not follower.stopped and follower.active()

    def close(self) -> None:
        """Stop following the worker's log."""
        if self._follower is not None:
            self._follower.stop()

    def state(self) -> dict[str, Any]:
        job, feed = self.job, self.feed
        return views.job_state(
            job_id=job.id, endpoint=job.deployment.name, backend=job.deployment.backend,
            snapshot=job.state, detail=self._detail, observed=self._observed,
            progress_seen=self._progress, stream_count=self.chunk_count,
            chunks=feed.chunks if feed is not None else None,
            stream_error=_stream_error(feed) or self.error, log_count=len(self.logs),
        )


def _stream_error(feed: ShownFeed | None) -> str | None:
    error = feed.error if feed is not None else None
    if error is None:
        return None
    return getattr(error, "message", None) or f"{type(error).__name__}: {error}"


#: /status requests a second a batch view may spend: half of RunPod's 2,000 per 10 s.
BATCH_STATUS_RATE = 100.0


class BatchReader:
    """A batch's counts. A refresh that made many /status calls waits longer before the next,
    to stay within :data:`BATCH_STATUS_RATE`."""

    def __init__(self, batch: ShownBatch) -> None:
        self.batch = batch
        self._last = 0.0
        self.error: str | None = None

    def refresh(self, *, force: bool = False) -> None:
        pending = len(self.batch.jobs) - self.batch.done
        if not pending:
            return
        if not force and time.monotonic() - self._last < min(10.0, self.batch.last_calls / BATCH_STATUS_RATE):
            return
        self._last = time.monotonic()
        try:
            self.batch.refresh()
            self.error = None
        except RunpodError as exc:
            self.error = redact(exc.message)

    def state(self) -> dict[str, Any]:
        b = self.batch
        out = views.batch_state(batch_id=b.id, endpoint=b.deployment.name, backend=b.deployment.backend, jobs=b.jobs)
        out["error"] = self.error
        return out
