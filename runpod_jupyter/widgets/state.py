"""The JSON state each view shows, built from what the handles, ``diagnose`` and the embedded
RunPod's routes report. Pure (no I/O, no Jupyter): the live widgets sync these dicts to the
browser, and :mod:`.snapshot` turns the same dicts into the notebook's saved HTML and text, so
the live view and the saved snapshot can never disagree.

Nothing here may hold a secret: only ids, names, counts, prices, findings and job data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..api.models import GPU_POOLS, WORKER_STATES, JobStatus, hourly_cost_range, per_second
from ..findings import Finding
from ..secret import redact
from . import render

if TYPE_CHECKING:
    from ..api.models import EndpointSpec, JobState
    from ..api.observed import Releases, Workers
    from ..diagnose import EndpointState
    from .subjects import ShownJob

#: Worker states in the order the bar shows them.
JOB_COUNTS = (("inQueue", "in_queue"), ("inProgress", "in_progress"), ("completed", "completed"),
              ("failed", "failed"), ("retried", "retried"))
#: Workers listed one by one (embedded RunPod); more are summarised.
MAX_WORKERS_LISTED = 12
MAX_FAILURES_LISTED = 50
PROGRESS_HISTORY = 8


def _per_hour(pool: str | None, *, always_on: bool = False) -> float | None:
    rate = per_second(pool, always_on=always_on)
    return None if rate is None else rate * 3600


def endpoint_state(
    *,
    name: str,
    endpoint_id: str,
    backend: str,
    gathered: EndpointState | None,
    findings: list[Finding],
    error: str | None = None,
    advice: Sequence[Finding] = (),
) -> dict[str, Any]:
    """One endpoint: workers, jobs, settings, cost and findings. ``gathered`` is None when the
    endpoint could not be read. ``advice`` is what preflight said when this endpoint was deployed
    from here (warnings and notes): shown after the live diagnosis, which it never repeats."""
    health = gathered.health if gathered is not None else None
    spec = gathered.endpoint if gathered is not None else None
    workers = {state: 0 for state in WORKER_STATES}
    jobs = {key: 0 for key, _ in JOB_COUNTS}
    counts = gathered.counts if gathered is not None else None
    if counts is not None:
        workers.update({state: getattr(counts, state) for state in WORKER_STATES})
    if health is not None:
        jobs.update({key: getattr(health.jobs, attr) for key, attr in JOB_COUNTS})
    per_worker = gathered.workers if gathered is not None else None
    listed = [w for w in (per_worker or []) if w.get("state") != "exited"]
    observed = gathered.observed if gathered is not None else None
    rows = _worker_list(listed, observed)
    out: dict[str, Any] = {
        "kind": "endpoint",
        "name": name,
        "endpointId": endpoint_id,
        "backend": backend,
        "registered": bool(health.registered) if health is not None else None,
        "workers": workers,
        "workersTotal": sum(workers.values()),
        "workerList": rows[:MAX_WORKERS_LISTED],
        "workersNotListed": max(0, len(rows) - MAX_WORKERS_LISTED),
        "stale": len(observed.stale) if observed is not None else None,
        "rollout": _rollout(gathered.releases if gathered is not None else None),
        "stock": _stock(spec, gathered.stock if gathered is not None else None),
        "jobs": jobs,
        "settings": _settings(spec),
        "cost": _cost(backend, gathered, listed, spec),
        "findings": [f.to_json() for f in _with_advice(findings, advice)],
        "deleted": gathered is not None and gathered.listed is False,
        "error": redact(error) if error else None,
    }
    return out


def _worker_list(listed: list[dict[str, Any]], observed: Workers | None) -> list[dict[str, Any]]:
    """One row per worker of the embedded RunPod's own list (it knows exit codes, reasons and
    spend), each marked ``stale`` when REST v2 says it runs an earlier release."""
    stale = {w.id for w in observed.stale} if observed is not None else set()
    return [{"id": w.get("id", ""), "state": w.get("state", ""), "gpu": w.get("gpu") or "",
             "reason": redact(w.get("reason") or ""), "stale": w.get("id", "") in stale}
            for w in listed]


def _rollout(releases: Releases | None) -> dict[str, Any] | None:
    """The newest release and how far it has reached, e.g. "2 of 3 workers on release 5"."""
    if releases is None or releases.endpoint_version is None:
        return None
    r, latest = releases.rollout, releases.latest
    return {
        "version": releases.endpoint_version,
        "summary": releases.summary(),
        "inProgress": r.in_progress,
        "workersOnLatest": r.workers_on_latest,
        "workersTotal": r.workers_total,
        "percentOnLatest": r.percent_on_latest,
        "changed": list(latest.fields) if latest is not None else [],  # names only: values may be secrets
        "createdAt": latest.created_at if latest is not None else None,
    }


def _stock(spec: EndpointSpec | None, stock: dict[str, str] | None) -> dict[str, str] | None:
    """GPU stock of the endpoint's own pools (``HIGH``/``MEDIUM``/``LOW``/``NONE``)."""
    if spec is None or stock is None:
        return None
    return {g: stock.get(g, "unknown") for g in spec.gpu_ids}


def _with_advice(findings: Sequence[Finding], advice: Sequence[Finding]) -> list[Finding]:
    seen = {f.code for f in findings}
    return [*findings, *(f for f in advice if f.level != "error" and f.code not in seen)]


def _settings(spec: EndpointSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {
        "gpus": [
            {"id": g, "memoryGb": GPU_POOLS[g].memory_gb if g in GPU_POOLS else None,
             "examples": GPU_POOLS[g].examples if g in GPU_POOLS else "", "perHour": _per_hour(g)}
            for g in spec.gpu_ids
        ],
        "workersMin": spec.workers_min,
        "workersMax": spec.workers_max,
        "idleTimeout": spec.idle_timeout,
        "scaler": spec.scaler_type,
        "scalerValue": spec.scaler_value,
        "flashboot": spec.flashboot,
        "executionTimeoutS": None if spec.execution_timeout_ms is None else spec.execution_timeout_ms / 1000,
        "networkVolume": bool(spec.network_volume_id),
    }


def _cost(backend: str, gathered: EndpointState | None, listed: list[dict[str, Any]],
          spec: EndpointSpec | None) -> dict[str, Any]:
    """Spend so far and $/h now. The embedded RunPod bills each worker and reports it; RunPod
    reports spend per account only, so the cloud shows the account's $/h and an estimate for
    this endpoint from its pools' prices: ``workersMin`` always-on workers while up, others while
    running."""
    account = gathered.account if gathered is not None else None
    out: dict[str, Any] = {
        "spent": gathered.spent if gathered is not None else None,
        "perHour": None,
        "perHourRange": None,
        "estimated": False,
        "accountPerHour": account.current_spend_per_hr if account is not None else None,
        "balance": account.client_balance if account is not None else None,
    }
    health = gathered.health if gathered is not None else None
    if listed:
        out["perHour"] = sum(
            _per_hour(w.get("gpu"), always_on=bool(w.get("alwaysOn"))) or 0.0 for w in listed if w.get("billed")
        )
    elif health is not None:
        always_on = min(spec.workers_min if spec else 0, health.workers.idle + health.workers.running)
        flex = max(0, health.workers.running - always_on)
        span = hourly_cost_range(spec.gpu_ids if spec else (), always_on=always_on, flex=flex)
        if not always_on and not flex:
            out["perHour"] = 0.0
        elif span is not None:
            out["perHourRange"] = list(span)
            out["estimated"] = True
    return out


def endpoint_active(state: dict[str, Any]) -> bool:
    """Whether the endpoint is doing something worth polling fast for."""
    w, j = state["workers"], state["jobs"]
    rolling = bool((state.get("rollout") or {}).get("inProgress"))
    return bool(j["inQueue"] or j["inProgress"] or w["initializing"] or w["running"] or w["unhealthy"] or rolling)


def job_state(
    *,
    job_id: str,
    endpoint: str,
    backend: str,
    snapshot: JobState,
    logs_url: str | None = None,
    detail: dict[str, Any] | None,
    observed: list[list[Any]],
    progress_seen: list[Any],
    stream_count: int,
    chunks: list[Any] | None,
    stream_error: str | None,
    log_count: int,
) -> dict[str, Any]:
    """One job. ``detail`` is the embedded RunPod's job timeline (None on the cloud, where
    ``observed`` — the transitions this kernel saw — stands in for it). ``logs_url``: where the
    worker's log is when it cannot be read here."""
    status = snapshot.status
    events = (detail or {}).get("events") or observed
    logged = [value for _, value in (detail or {}).get("progressLog") or []]
    history = logged if status.is_final and logged else progress_seen
    latest = snapshot.output if status is JobStatus.IN_PROGRESS and snapshot.output is not None else (
        history[-1] if history and not status.is_final else None)
    result: list[dict[str, Any]] = []
    result_note = None
    if status is JobStatus.COMPLETED:
        if chunks and snapshot.output == chunks:
            result_note = f"the {len(chunks)} streamed chunk(s) above, aggregated"
        elif chunks and snapshot.output == []:  # a stream-only endpoint
            result_note = f"the {len(chunks)} streamed chunk(s) above"
        elif snapshot.output is not None:
            result = render.items(snapshot.output)
        else:
            result_note = "no output"
    err = render.error(snapshot.error) if status is not JobStatus.COMPLETED else None
    if err is None and status.is_final and status is not JobStatus.COMPLETED and snapshot.reason:
        err = {"type": "", "message": redact(snapshot.reason), "traceback": ""}
    if err is not None:
        err = {k: redact(v) for k, v in err.items()}
    texts = [render.progress(v) for v in history[-PROGRESS_HISTORY:]]
    return {
        "kind": "job",
        "id": job_id,
        "endpoint": endpoint,
        "backend": backend,
        "status": status.value,
        "final": status.is_final,
        "timeline": [[float(t), str(s), redact(str(d or ""))] for t, s, d in events],
        "delayMs": snapshot.delay_time_ms,
        "executionMs": snapshot.execution_time_ms,
        "worker": snapshot.worker_id,
        "progress": render.progress(latest),
        "progressHistory": [p["text"] for p in texts if p],
        "result": result,
        "resultNote": result_note,
        "error": err,
        "streamCount": stream_count,
        "streamError": redact(stream_error) if stream_error else None,
        "logCount": log_count,
        "logsUrl": logs_url,
    }


def batch_state(*, batch_id: str, endpoint: str, backend: str, jobs: Sequence[ShownJob]) -> dict[str, Any]:
    """Many jobs: how many are done, counts by status, and the failures with their reasons."""
    counts: dict[str, int] = {}
    failures: list[dict[str, Any]] = []
    for index, job in enumerate(jobs):
        snap = job.state
        counts[snap.status.value] = counts.get(snap.status.value, 0) + 1
        if snap.status.is_final and snap.status is not JobStatus.COMPLETED and len(failures) < MAX_FAILURES_LISTED:
            err = render.error(snap.error)
            said = (f"{err['type']}: {err['message']}" if err["type"] else err["message"]) if err else ""
            why = said or snap.reason or ""
            failures.append({"index": index, "id": job.id, "status": snap.status.value, "reason": redact(why[:300])})
    done = sum(n for s, n in counts.items() if JobStatus(s).is_final)
    failed = sum(n for s, n in counts.items() if JobStatus(s).is_final and s != JobStatus.COMPLETED.value)
    return {
        "kind": "batch",
        "id": batch_id,
        "endpoint": endpoint,
        "backend": backend,
        "total": len(jobs),
        "done": done,
        "failed": failed,
        "counts": counts,
        "failures": failures,
        "failuresNotListed": max(0, failed - len(failures)),
        "final": done == len(jobs),
    }
