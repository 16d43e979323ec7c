"""JSON shapes the sidebar receives, built from the API models in one place.

The browser gets what it shows and nothing more: no template env (it may hold secrets), no
keys, outputs capped in size. ``js/src/types.ts`` mirrors these shapes.
"""

from __future__ import annotations

import json
from typing import Any

from ..api.models import GPU_POOLS, WORKER_STATES, Account, EndpointSpec, GpuType, Health, JobState, WorkerCounts
from ..api.observed import Releases

#: Bigger outputs are sent as a truncated text preview: the panel is not a data viewer.
OUTPUT_LIMIT = 20_000


def account_view(account: Account) -> dict[str, float]:
    return {"balance": account.client_balance, "spendPerHour": account.current_spend_per_hr}


def pool_view(pool_id: str) -> dict[str, Any]:
    pool = GPU_POOLS.get(pool_id)
    if pool is None:
        return {"id": pool_id, "memoryGb": None, "examples": "", "pricePerHour": None}
    return {
        "id": pool.id, "memoryGb": pool.memory_gb, "examples": pool.examples,
        "pricePerHour": round(pool.price_per_second * 3600, 4),
    }


def health_view(health: Health, counts: WorkerCounts | None = None) -> dict[str, Any]:
    """Job counts from ``/health``; worker counts from ``counts`` (REST v2's list) when given."""
    jobs, workers = health.jobs, counts or health.workers
    return {
        "registered": health.registered,
        "jobs": {
            "completed": jobs.completed, "failed": jobs.failed, "inProgress": jobs.in_progress,
            "inQueue": jobs.in_queue, "retried": jobs.retried,
        },
        "workers": {state: getattr(workers, state) for state in WORKER_STATES},
    }


def worker_view(worker: dict[str, Any]) -> dict[str, Any]:
    """One worker of the embedded RunPod, as its local-only route reports it (no pid, no env)."""
    keys = ("id", "state", "gpu", "jobs", "release", "exitCode", "reason", "crashes", "readyAt", "lastSeen")
    return {key: worker.get(key) for key in keys}


def rollout_view(releases: Releases) -> dict[str, Any]:
    """The newest release and how far it has reached. Changed field names only (values may be secrets)."""
    r, latest = releases.rollout, releases.latest
    return {
        "version": releases.endpoint_version, "summary": releases.summary(), "inProgress": r.in_progress,
        "workersOnLatest": r.workers_on_latest, "workersTotal": r.workers_total,
        "percentOnLatest": r.percent_on_latest, "changed": list(latest.fields) if latest is not None else [],
    }


def spec_view(spec: EndpointSpec) -> dict[str, Any]:
    template = spec.template
    return {
        "id": spec.id, "name": spec.name,
        "templateName": template.name if template else None,
        "image": spec.image or (template.image_name if template else None),
        "gpuIds": list(spec.gpu_ids), "gpuPools": [pool_view(g) for g in spec.gpu_ids],
        "workersMin": spec.workers_min, "workersMax": spec.workers_max, "idleTimeout": spec.idle_timeout,
        "scalerType": spec.scaler_type, "scalerValue": spec.scaler_value,
    }


def gpu_type_view(gpu: GpuType) -> dict[str, Any]:
    return {
        "id": gpu.id, "displayName": gpu.display_name, "memoryGb": gpu.memory_in_gb,
        "securePrice": gpu.secure_price, "communityPrice": gpu.community_price,
    }


def capped(value: Any) -> tuple[Any, bool]:
    """The value itself when it is small, else a text preview; and whether it was cut."""
    if value is None:
        return None, False
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) <= OUTPUT_LIMIT:
        return value, False
    return text[:OUTPUT_LIMIT] + "…", True


def job_view(job: JobState) -> dict[str, Any]:
    output, cut = capped(job.output)
    error, _ = capped(job.error)
    return {
        "id": job.id, "status": job.status.value, "output": output, "outputTruncated": cut,
        "error": error, "reason": job.reason, "delayMs": job.delay_time_ms,
        "executionMs": job.execution_time_ms, "workerId": job.worker_id,
    }


def timeline_view(detail: dict[str, Any]) -> dict[str, Any]:
    """The embedded RunPod's record of one job: what happened when (output is in ``job_view``)."""
    keys = ("createdAt", "startedAt", "finishedAt", "events", "progressLog", "streamCount", "retries", "reason")
    return {key: detail.get(key) for key in keys}
