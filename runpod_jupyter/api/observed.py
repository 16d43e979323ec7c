"""What RunPod's REST API v2 tells about a live endpoint, as values: its workers (state and
staleness), its releases and rollout, and worker log lines. Shapes from RunPod's published
OpenAPI document (``Worker``, ``ListEndpointWorkersResponse``, ``Release``, ``RolloutSummary``,
the worker-log event)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .models import OUTDATED, WorkerCounts, WorkerState

#: v2's worker statuses → ours (v2 has no "outdated" status: a stale worker says ``isStale``).
_STATES = {
    "RUNNING": WorkerState.RUNNING, "IDLE": WorkerState.IDLE, "INITIALIZING": WorkerState.INITIALIZING,
    "THROTTLED": WorkerState.THROTTLED, "UNHEALTHY": WorkerState.UNHEALTHY,
}


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as ``GET /v2/serverless/{id}/workers`` reports it."""

    id: str
    status: str
    is_stale: bool = False
    version: int | None = None
    image: str | None = None
    gpu_type: str | None = None
    uptime_s: int | None = None
    started_at: str | None = None

    @property
    def state(self) -> str:
        """The word views use: a stale idle or starting worker is ``outdated`` (it will be replaced;
        a stale worker still running a job counts as running until it finishes)."""
        if self.is_stale and self.status in ("IDLE", "INITIALIZING"):
            return OUTDATED
        return str(_STATES.get(self.status, WorkerState.INITIALIZING))

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WorkerInfo:
        return cls(
            id=str(data.get("id") or ""), status=str(data.get("status") or ""), is_stale=bool(data.get("isStale")),
            version=data.get("version"), image=data.get("image"), gpu_type=data.get("gpuTypeId"),
            uptime_s=data.get("uptimeSeconds"), started_at=data.get("startedAt"),
        )


@dataclass(frozen=True)
class Workers:
    """An endpoint's workers, the endpoint's current version, and counts per state."""

    workers: tuple[WorkerInfo, ...] = ()
    endpoint_version: int | None = None

    @property
    def stale(self) -> tuple[WorkerInfo, ...]:
        return tuple(w for w in self.workers if w.is_stale)

    def counts(self) -> WorkerCounts:
        """The same histogram ``/health`` gives, plus throttled/unhealthy/outdated that it cannot."""
        tally: dict[str, int] = {}
        for worker in self.workers:
            tally[worker.state] = tally.get(worker.state, 0) + 1
        return WorkerCounts(**tally)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Workers:
        items = data.get("workers") or []
        return cls(
            workers=tuple(WorkerInfo.from_wire(w) for w in items if isinstance(w, dict)),
            endpoint_version=data.get("endpointVersion"),
        )


@dataclass(frozen=True)
class Rollout:
    """How far the newest release has reached (``RolloutSummary``)."""

    in_progress: bool = False
    workers_on_latest: int = 0
    workers_total: int = 0
    percent_on_latest: int = 0

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Rollout:
        return cls(
            in_progress=bool(data.get("inProgress")), workers_on_latest=int(data.get("workersOnLatest") or 0),
            workers_total=int(data.get("workersTotal") or 0), percent_on_latest=int(data.get("percentOnLatest") or 0),
        )


@dataclass(frozen=True)
class Release:
    """One configuration version of an endpoint, with what changed (``diff``: field, old, new)."""

    id: str
    version: int | None
    created_at: str
    worker_count: int = 0
    source: str = "MANUAL"
    diff: tuple[tuple[str, Any, Any], ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _old, _new in self.diff)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Release:
        diff = tuple(
            (str(d.get("field")), d.get("old"), d.get("new")) for d in data.get("diff") or [] if isinstance(d, dict)
        )
        return cls(
            id=str(data.get("id") or ""), version=data.get("version"), created_at=str(data.get("createdAt") or ""),
            worker_count=int(data.get("workerCount") or 0), source=str(data.get("source") or "MANUAL"), diff=diff,
        )


@dataclass(frozen=True)
class Releases:
    """Release history, newest first, and the rollout of the newest."""

    endpoint_version: int | None = None
    rollout: Rollout = field(default_factory=Rollout)
    releases: tuple[Release, ...] = ()

    @property
    def latest(self) -> Release | None:
        return self.releases[0] if self.releases else None

    def summary(self) -> str:
        """E.g. "2 of 3 workers on release 5" (or "" when there is nothing to say)."""
        r = self.rollout
        if not r.workers_total or self.endpoint_version is None:
            return ""
        return f"{r.workers_on_latest} of {r.workers_total} workers on release {self.endpoint_version}"

    def rolled(self, workers: Workers) -> Releases:
        """This history with the rollout recounted from a fresher worker list (the history itself
        changes only with a new version, which the worker list names)."""
        listed = workers.workers
        on_latest = sum(1 for w in listed if not w.is_stale)
        rollout = Rollout(
            in_progress=on_latest < len(listed), workers_on_latest=on_latest, workers_total=len(listed),
            percent_on_latest=round(100 * on_latest / len(listed)) if listed else 0,
        )
        return Releases(endpoint_version=self.endpoint_version, rollout=rollout, releases=self.releases)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Releases:
        return cls(
            endpoint_version=data.get("endpointVersion"),
            rollout=Rollout.from_wire(data.get("rollout") or {}),
            releases=tuple(Release.from_wire(r) for r in data.get("releases") or [] if isinstance(r, dict)),
        )


@dataclass(frozen=True)
class LogLine:
    """One worker log event: ``id`` resumes the stream (``Last-Event-ID``); ``source`` is
    ``container`` (what the worker printed) or ``system`` (what RunPod says about it)."""

    id: str
    ts: str
    source: str
    line: str
    worker_id: str = ""

    @property
    def time(self) -> float | None:
        """``ts`` as epoch seconds (None when unreadable)."""
        try:
            return datetime.fromisoformat(self.ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None


def parse_sse(lines: Iterable[str], worker_id: str = "") -> Iterator[LogLine]:
    """Server-Sent Events (``id:``/``data:`` lines, a blank line ends an event) → log lines.
    Comments and events without readable JSON data are skipped."""
    event_id = ""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                parsed = _event(event_id, "\n".join(data), worker_id)
                if parsed is not None:
                    yield parsed
            event_id, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = value
        elif name == "data":
            data.append(value)
    if data:
        parsed = _event(event_id, "\n".join(data), worker_id)
        if parsed is not None:
            yield parsed


def _event(event_id: str, data: str, worker_id: str) -> LogLine | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    ts = str(body.get("ts") or "")
    return LogLine(
        id=event_id or ts, ts=ts, source=str(body.get("source") or "container"),
        line=str(body.get("line") or ""), worker_id=worker_id,
    )
