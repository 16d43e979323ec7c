"""``/v2/serverless/{id}/workers`` and ``/v2/serverless/{id}/releases``: an endpoint's workers as
REST v2 lists them, and its release history with each release's diff and the rollout.

Only workers that hold one of the endpoint's slots are listed (Initializing, Idle, Running,
Throttled, Unhealthy): the document lists "currently active workers" and says "scaled-down workers
are not returned", and its status enum has no word for a draining or exited one, so those are
left out (their logs stay readable by id until the record is pruned)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ...api.models import WorkerState
from ..engine import Engine
from ..model import EndpointRuntime
from ..workers import SLOT_STATES, WorkerRecord
from . import shapes
from .http import json_response, problem

#: Settings a release's diff leaves out: they name the endpoint, they are not its configuration.
NOT_CONFIG = ("id", "createdAt", "requestUrls")
#: Maps kept whole in a diff (one entry for ``env``, not one per variable).
WHOLE = ("env",)


def endpoint_of(engine: Engine, request: web.Request) -> EndpointRuntime:
    """The endpoint named in the path, or a 404 problem."""
    ep = engine.endpoints.get(request.match_info["id"])
    if ep is None:
        raise problem(404, f"Endpoint {request.match_info['id']} does not exist.",
                      hint="List your endpoints with GET /v2/serverless.")
    return ep


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Workers:
    """The handlers of an endpoint's workers and releases."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def listed(self, ep: EndpointRuntime) -> list[WorkerRecord]:
        """The endpoint's active workers, oldest first."""
        found = [w for w in self.engine.shared.workers_of(ep.id) if w.state in SLOT_STATES]
        return sorted(found, key=lambda w: w.created)

    async def workers(self, request: web.Request) -> web.Response:
        ep = endpoint_of(self.engine, request)
        if request.method != "GET":
            raise problem(405, f"{request.method} is not allowed on {request.path}.", hint="Use GET.")
        listed = [self.worker_view(ep, w) for w in self.listed(ep)]
        summary = {state.value: 0 for state in WorkerState}
        for worker in listed:
            summary[worker["status"].lower()] += 1
        return json_response({
            "workers": listed, "endpointVersion": ep.release,
            "summary": {**{k: summary[k] for k in ("running", "idle", "initializing", "throttled", "unhealthy")},
                        "total": len(listed)},
        })

    def worker_view(self, ep: EndpointRuntime, worker: WorkerRecord) -> dict[str, Any]:
        now = time.time()
        release = next((r for r in self.engine.catalog.releases.of(ep.id) if r["version"] == worker.release), None)
        template, data = (release["template"], release["data"]) if release is not None else (ep.template, ep.data)
        started = worker.spawned
        return {
            "id": worker.id,
            "status": WorkerState(worker.state.value).name,
            "isStale": worker.release != ep.release,
            "version": worker.release,
            "gpuCount": int(data.get("gpuCount") or 1),
            "image": template.get("imageName") or None,
            "uptimeSeconds": max(0, int(now - started)) if started else None,
            "gpuTypeId": worker.pool,
            "dataCenterId": None,
            "startedAt": iso(started) if started else None,
        }

    async def releases(self, request: web.Request) -> web.Response:
        ep = endpoint_of(self.engine, request)
        if request.method != "GET":
            raise problem(405, f"{request.method} is not allowed on {request.path}.", hint="Use GET.")
        listed = self.listed(ep)
        on_latest = sum(1 for w in listed if w.release == ep.release)
        history = self.engine.catalog.releases.of(ep.id)
        views, before = [], None
        for release in history:
            now = self.config(release)
            views.append({
                "id": release["id"], "version": release["version"], "source": "MANUAL", "buildId": None,
                "createdByUserId": None, "workerCount": sum(1 for w in listed if w.release == release["version"]),
                "createdAt": release["createdAt"], "diff": diff(before, now) if before is not None else [],
            })
            before = now
        return json_response({
            "endpointVersion": ep.release,
            "rollout": {
                "inProgress": on_latest < len(listed), "workersOnLatest": on_latest, "workersTotal": len(listed),
                "percentOnLatest": round(100 * on_latest / len(listed)) if listed else 0,
            },
            "releases": views[::-1],
        })

    def config(self, release: dict[str, Any]) -> dict[str, Any]:
        """A release's settings in v2's words, flattened to dotted names (``workers.max``)."""
        snapshot = EndpointRuntime(data=release["data"], template=release["template"])
        options = self.engine.options
        view = shapes.endpoint_view(snapshot, release["template"], options.control_url, options.execution_timeout)
        return _flatten({k: v for k, v in view.items() if k not in NOT_CONFIG})


def _flatten(view: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in view.items():
        if isinstance(value, dict) and key not in WHOLE and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed from ``old`` to ``new``: null for a field added or removed."""
    keys = [*new, *(k for k in old if k not in new)]
    return [{"field": k, "old": old.get(k), "new": new.get(k)} for k in keys if old.get(k) != new.get(k)]
