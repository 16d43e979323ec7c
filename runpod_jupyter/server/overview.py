"""The sidebar's one JSON overview: account, endpoints with their live state, recent jobs.

:func:`collect` is blocking (it runs in the server's executor) and never fails as a whole: a
backend that errors is reported as ``state: "error"`` with the reason, next to the other one.
:class:`OverviewCache` makes several open tabs share one collection per ``ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._version import __version__
from ..api import local_routes as routes
from ..api.models import Account, EndpointSpec
from ..api.observed import Releases, Workers
from ..config import Settings
from ..diagnose import EndpointState, diagnose, releases_for, with_worker_list
from ..errors import EndpointNotFoundError, RunpodError, SidebarError
from ..secret import redact
from . import views
from .backends import BACKENDS, Backends

log = logging.getLogger(__name__)

#: Unfinished journal entries whose status the overview asks RunPod for, per collection.
REFRESH_UNFINISHED = 10
#: Seconds GPU stock is reused per backend: it moves slowly, and the panel refreshes every few seconds.
STOCK_EVERY = 60.0

_stock_seen: dict[str, tuple[float, dict[str, str]]] = {}
#: Release history per endpoint, read again only when its version changes.
_releases_seen: dict[tuple[str, str], Releases] = {}


def collect(backends: Backends, fanout: ThreadPoolExecutor, *, recent_jobs: int = 30) -> dict[str, Any]:
    """Everything the panel shows, for both backends."""
    views_by_backend = {name: _guarded(backends, fanout, name) for name in BACKENDS}
    jobs = _recent_jobs(backends, recent_jobs, {n for n, v in views_by_backend.items() if v["state"] == "ok"})
    return {
        "version": __version__,
        "generatedAt": time.time(),
        "backends": [views_by_backend[name] for name in BACKENDS],
        "jobs": jobs,
    }


def _guarded(backends: Backends, fanout: ThreadPoolExecutor, name: str) -> dict[str, Any]:
    """One backend's view; a bug or surprise in one backend must not blank the whole panel."""
    try:
        return _backend(backends, fanout, name)
    except Exception as exc:  # noqa: BLE001 - reported to the user, per backend
        log.exception("runpod-jupyter: collecting the %s backend failed", name)
        return {
            "name": name, "state": "error", "message": redact(f"Unexpected {type(exc).__name__}: {exc}"),
            "hint": "See the Jupyter server log.", "canStart": False, "account": None, "endpoints": [],
        }


def _backend(backends: Backends, fanout: ThreadPoolExecutor, name: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": name, "state": "off", "message": None, "hint": None, "canStart": False,
        "account": None, "endpoints": [],
    }
    local_settings = None
    if name == "local":
        instance = backends.local_instance()
        if instance is None:
            view.update(message="The embedded RunPod is not running.", canStart=True,
                        hint="Start it to deploy and run endpoints locally, with no RunPod account.")
            return view
        local_settings = instance.settings()
    elif not backends.cloud_configured():
        view.update(message="No RunPod API key is configured.",
                    hint="Set RUNPOD_API_KEY (or ~/.runpod/config.toml) where Jupyter runs, then restart it.")
        return view
    try:
        client = backends.client(name, local_settings)
        account = client.account()
        specs = client.list_endpoints()
    except (RunpodError, SidebarError) as exc:
        view.update(state="error", message=getattr(exc, "message", str(exc)), hint=getattr(exc, "hint", None))
        return view
    view.update(state="ok", account=views.account_view(account))
    stock = _stock(client) if specs else None
    rows = fanout.map(lambda spec: _endpoint(client, name, spec, account, local_settings, stock), specs)
    view["endpoints"] = sorted(rows, key=lambda e: (e["name"], e["id"] or ""))
    return view


def _stock(client: Any) -> dict[str, str] | None:
    """GPU stock per pool on this client's backend, reused for :data:`STOCK_EVERY` seconds."""
    key = client.settings.manage_base
    seen = _stock_seen.get(key)
    if seen is not None and time.monotonic() - seen[0] < STOCK_EVERY:
        return seen[1]
    try:
        stock = dict(client.gpu_stock())
    except RunpodError:
        return seen[1] if seen is not None else None
    _stock_seen[key] = (time.monotonic(), stock)
    return stock


def _releases(client: Any, endpoint_id: str, observed: Workers) -> Releases:
    """The endpoint's releases with the rollout counted from ``observed`` (history kept per endpoint)."""
    key = (client.settings.manage_base, endpoint_id)
    _releases_seen[key] = releases_for(client, endpoint_id, observed, _releases_seen.get(key))
    return _releases_seen[key]


def _endpoint(client: Any, backend: str, spec: EndpointSpec, account: Account, local: Settings | None,
              stock: dict[str, str] | None = None) -> dict[str, Any]:
    """One endpoint: its settings, health, workers, rollout, its pools' stock and the diagnosis."""
    endpoint_id = spec.id or ""  # listed endpoints always have one
    row = {**views.spec_view(spec), "backend": backend, "health": None, "workers": None, "findings": [], "error": None,
           "rollout": None, "stale": None,
           "stock": {g: stock.get(g, "unknown") for g in spec.gpu_ids} if stock is not None else None}
    state = EndpointState(endpoint_id=endpoint_id, backend=backend, endpoint=spec, listed=True, account=account)
    try:
        state.health = client.endpoint(endpoint_id).health()
        if not state.health.registered:
            client.endpoint(endpoint_id).status("runpod-jupyter-probe")  # "no worker yet" or disabled?
    except EndpointNotFoundError:
        state.rest_not_found = True
    except RunpodError as exc:
        row["error"] = exc.message
    try:  # REST v2, both backends: worker states /health cannot tell, staleness, rollout
        state.observed = client.workers(endpoint_id)
        state.releases = _releases(client, endpoint_id, state.observed)
    except RunpodError:
        pass
    if state.observed is not None:
        row["stale"] = len(state.observed.stale)
    if state.releases is not None and state.releases.endpoint_version is not None:
        row["rollout"] = views.rollout_view(state.releases)
    if local is not None:
        found = routes.workers(local, endpoint_id) or {}
        state.workers, state.problem = found.get("workers"), found.get("problem")
        stale = {w.id for w in state.observed.stale} if state.observed is not None else set()
        row["workers"] = [{**views.worker_view(w), "stale": w.get("id") in stale}
                          for w in state.workers or [] if w.get("state") != "exited"]
        state.oldest_queued_s = _oldest_queued(local, found.get("queue") or [])
        if state.health is not None:
            state.health = with_worker_list(state.health, found)
    if state.health is not None:
        row["health"] = views.health_view(state.health, state.counts)
    row["findings"] = [f.to_json() for f in diagnose(state)]
    return row


def _oldest_queued(local: Settings, queue: list[str]) -> float | None:
    """How long the head of the queue has waited (the "waited N s with zero workers" finding)."""
    if not queue:
        return None
    detail = routes.job_detail(local, queue[0])
    created = (detail or {}).get("createdAt")
    return max(0.0, time.time() - created) if isinstance(created, (int, float)) else None


def _recent_jobs(backends: Backends, limit: int, available: set[str]) -> list[dict[str, Any]]:
    """The journal's latest jobs; unfinished ones are brought up to date first."""
    from .. import journal

    book = journal.shared()
    for entry in book.jobs(unfinished=True, limit=REFRESH_UNFINISHED):
        if entry.backend not in available:
            continue
        try:
            job = backends.client(entry.backend).endpoint(entry.endpoint_id).status(entry.id)
        except (RunpodError, SidebarError):
            continue
        book.record_status(
            entry.id, job.status.value, reason=job.reason, delay_ms=job.delay_time_ms,
            execution_ms=job.execution_time_ms, worker_id=job.worker_id,
        )
    return [entry.to_json() for entry in book.jobs(limit=limit)]


class OverviewCache:
    """One collection at a time, reused for ``ttl`` seconds; concurrent callers share it."""

    def __init__(self, produce: Callable[[], Awaitable[dict[str, Any]]], ttl: float) -> None:
        self._produce = produce
        self.ttl = ttl
        self._value: dict[str, Any] | None = None
        self._at = 0.0
        self._pending: asyncio.Future[dict[str, Any]] | None = None

    def invalidate(self) -> None:
        self._value = None

    async def get(self, *, fresh: bool = False) -> dict[str, Any]:
        if not fresh and self._value is not None and time.monotonic() - self._at < self.ttl:
            return self._value
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._pending)

    async def _refresh(self) -> dict[str, Any]:
        try:
            value = await self._produce()
            self._value, self._at = value, time.monotonic()
            return value
        finally:
            self._pending = None
