"""What the sidebar can ask for besides the overview: one job, GPU types, logs, a diagnosis,
and the actions (purge, cancel, scale, delete, start the embedded RunPod).

Every function here is blocking (the handlers run it in the executor), validates its input and
raises :class:`~runpod_jupyter.server.errors.SidebarError` with the status the browser should see.
"""

from __future__ import annotations

from typing import Any

from ..api import local_routes as routes
from ..api.models import EndpointSpec
from ..diagnose import diagnose, gather
from ..errors import RunpodError, SidebarError
from . import views
from .backends import Backends, check_backend
from .errors import bad_request, conflict, from_runpod, not_found, translated

LOG_LIMIT = 500


def _spec(backends: Backends, backend: str, endpoint_id: str) -> EndpointSpec:
    with translated():
        spec = backends.client(backend).get_endpoint(endpoint_id)
    if spec is None:
        raise not_found(
            f"The {backend} backend has no endpoint {endpoint_id!r}.", hint="It may have been deleted; refresh the panel."
        )
    return spec


def purge_queue(backends: Backends, backend: str, endpoint_id: str) -> dict[str, Any]:
    """Drop the queued (not running) jobs of an endpoint; says how many went."""
    _spec(backends, backend, endpoint_id)
    with translated():
        removed = backends.client(backend).endpoint(endpoint_id).purge_queue()
    return {"endpointId": endpoint_id, "backend": backend, "removed": removed}


def _count(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise bad_request(f"{key} must be a whole number from 0 to 1000, not {value!r}.")
    return value


def scale(backends: Backends, backend: str, endpoint_id: str, body: Any) -> dict[str, Any]:
    """Change workersMin/workersMax (a new release on RunPod: its workers are rolled)."""
    if not isinstance(body, dict):
        raise bad_request('Send a JSON object: {"workersMin": N, "workersMax": M}.')
    low, high = _count(body, "workersMin"), _count(body, "workersMax")
    if low is None and high is None:
        raise bad_request('Send workersMin and/or workersMax, e.g. {"workersMin": 0, "workersMax": 2}.')
    spec = _spec(backends, backend, endpoint_id)
    low = spec.workers_min if low is None else low
    high = spec.workers_max if high is None else high
    if low > high:
        raise bad_request(f"workersMin ({low}) cannot be above workersMax ({high}).")
    with translated():
        saved = backends.client(backend).save_endpoint(spec.with_changes(workers_min=low, workers_max=high))
    return {"endpoint": {**views.spec_view(saved), "backend": backend}}


def delete_endpoint(backends: Backends, backend: str, endpoint_id: str) -> dict[str, Any]:
    """Scale to zero, delete the endpoint, then its template (RunPod's required order)."""
    from ..endpoints import remove_endpoint

    _spec(backends, backend, endpoint_id)  # 404 for an unknown endpoint
    with translated():
        removal = remove_endpoint(backends.client(backend), endpoint_id)
    return {
        "deleted": endpoint_id, "backend": backend, "template": removal.template,
        "templateDeleted": bool(removal.template) and removal.template_error is None,
        "templateError": removal.template_error,
    }


def _journal_entry(job_id: str) -> Any:
    from .. import journal

    return journal.shared().get(job_id)


def _where(job_id: str, backend: str | None, endpoint_id: str | None) -> tuple[Any, str, str]:
    """A job's backend and endpoint: from the journal, or given by the caller."""
    entry = _journal_entry(job_id)
    backend = backend or (entry.backend if entry else None)
    endpoint_id = endpoint_id or (entry.endpoint_id if entry else None)
    if not backend or not endpoint_id:
        raise not_found(
            f"Job {job_id!r} is not in the job journal.",
            hint="Pass backend and endpoint_id to look up a job submitted elsewhere.",
        )
    return entry, check_backend(backend), endpoint_id


def _record(job: Any) -> None:
    from .. import journal

    journal.shared().record_status(
        job.id, job.status.value, reason=job.reason, delay_ms=job.delay_time_ms,
        execution_ms=job.execution_time_ms, worker_id=job.worker_id,
    )


def job_detail(backends: Backends, job_id: str, backend: str | None, endpoint_id: str | None) -> dict[str, Any]:
    """Status from the API, the journal's record and, on the embedded RunPod, the timeline."""
    entry, backend, endpoint_id = _where(job_id, backend, endpoint_id)
    out: dict[str, Any] = {
        "id": job_id, "backend": backend, "endpointId": endpoint_id,
        "journal": entry.to_json() if entry else None, "job": None, "jobError": None, "timeline": None,
    }
    try:
        job = backends.client(backend).endpoint(endpoint_id).status(job_id)
    except RunpodError as exc:  # not translated(): a job the journal knows is still shown
        if entry is None:
            raise from_runpod(exc) from None
        out["jobError"] = exc.message
    else:
        out["job"] = views.job_view(job)
        if entry is not None:
            _record(job)
            out["journal"] = _journal_entry(job_id).to_json()
    if backend == "local":
        detail = routes.job_detail(backends.require_local().settings(), job_id)
        out["timeline"] = views.timeline_view(detail) if detail else None
    return out


def cancel_job(backends: Backends, job_id: str, body: Any) -> dict[str, Any]:
    """Cancel a job that has not ended; the journal records the new state."""
    body = body if isinstance(body, dict) else {}
    entry, backend, endpoint_id = _where(job_id, body.get("backend"), body.get("endpointId"))
    if entry is not None and entry.final:
        raise conflict(f"Job {job_id} already ended ({entry.status}); there is nothing to cancel.")
    with translated():
        job = backends.client(backend).endpoint(endpoint_id).cancel(job_id)
    if entry is not None:
        _record(job)
    return {"job": views.job_view(job)}


def gpu_types(backends: Backends, backend: str | None) -> dict[str, Any]:
    """GPU types of a backend (the running local one by default) and the serverless pools."""
    if backend is None:
        backend = "local" if backends.local_instance() is not None else "cloud"
    check_backend(backend)
    with translated():
        types = backends.client(backend).gpu_types()
    from ..api.models import GPU_POOLS

    return {
        "backend": backend, "gpuTypes": [views.gpu_type_view(t) for t in types],
        "pools": [views.pool_view(p) for p in GPU_POOLS],
    }


def _number(params: dict[str, str], key: str, kind: type, default: Any) -> Any:
    raw = params.get(key)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError:
        raise bad_request(f"{key} must be a number, not {raw!r}.") from None


def logs(backends: Backends, params: dict[str, str]) -> dict[str, Any]:
    """Worker log lines of the embedded RunPod, by endpoint, worker and/or job."""
    backend = params.get("backend") or "local"
    if backend == "cloud":
        raise bad_request(
            "Worker logs are available for the local backend only.",
            hint="For a cloud endpoint, read its logs in the RunPod console (Serverless → endpoint → Logs).",
        )
    check_backend(backend)
    chosen = {k: params[k] for k in ("endpoint_id", "worker_id", "job_id") if params.get(k)}
    if not chosen:
        raise bad_request("Say whose logs: endpoint_id, worker_id and/or job_id.")
    since = _number(params, "since", float, 0.0)
    limit = _number(params, "limit", int, LOG_LIMIT)
    if not 1 <= limit <= 5000:
        raise bad_request(f"limit must be from 1 to 5000, not {limit}.")
    settings = backends.require_local().settings()
    if "endpoint_id" in chosen and routes.workers(settings, chosen["endpoint_id"]) is None:
        raise not_found(f"The local backend has no endpoint {chosen['endpoint_id']!r}.")
    lines = routes.logs(settings, since=since, limit=limit, **chosen)
    if lines is None:
        raise SidebarError(502, "The embedded RunPod did not answer the log request.", reason="upstream")
    return {"backend": "local", **chosen, "lines": lines}


def diagnosis(backends: Backends, backend: str, endpoint_id: str) -> dict[str, Any]:
    """What is wrong with an endpoint, as findings with fixes."""
    state = gather(backends.client(backend), endpoint_id)
    if state.listed is False:
        raise not_found(f"The {backend} backend has no endpoint {endpoint_id!r}.")
    return {"endpointId": endpoint_id, "backend": backend, "findings": [f.to_json() for f in diagnose(state)]}


def start_local(backends: Backends) -> dict[str, Any]:
    """Start the shared embedded RunPod (the sidebar's button); says whether it was already up."""
    with translated():
        _, started = backends.start_local()
    return {"running": True, "started": started}
