"""Reading the embedded RunPod's local-only routes: per-worker states, logs, job timelines.

These routes do not exist in the cloud (what RunPod does publish, its REST API v2's workers and
worker logs, is read through the client on both backends), so every caller treats ``None`` as
"not available on this backend".
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from ..config import Settings

_http: httpx.Client | None = None
_http_lock = threading.Lock()


def _client() -> httpx.Client:
    """One pooled client for these routes (widgets and the sidebar call them every second)."""
    global _http
    with _http_lock:
        if _http is None:
            _http = httpx.Client(timeout=5)
        return _http


def _auth(settings: Settings) -> dict[str, str]:
    key = settings.api_key
    return {"Authorization": f"Bearer {key.reveal()}"} if key else {}


def _get(settings: Settings, path: str, **params: Any) -> Any:
    base = settings.local_url
    if base is None:
        return None
    try:
        response = _client().get(
            f"{base}{path}", params={k: str(v) for k, v in params.items() if v is not None}, headers=_auth(settings),
        )
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def workers(settings: Settings, endpoint_id: str) -> dict[str, Any] | None:
    """``{"workers": [...], "problem", "spent", "release", "queue"}`` for one endpoint."""
    return _get(settings, f"/local/endpoints/{endpoint_id}/workers")


def logs(
    settings: Settings,
    *,
    endpoint_id: str | None = None,
    worker_id: str | None = None,
    job_id: str | None = None,
    since: float | None = None,
    limit: int = 500,
) -> list[dict[str, Any]] | None:
    """Log lines ``{"t", "worker", "job", "level", "message", "stream"}``, oldest first."""
    found = _get(settings, "/local/logs", endpoint_id=endpoint_id, worker_id=worker_id, job_id=job_id, since=since, limit=limit)
    return None if found is None else found.get("lines", [])


def job_detail(settings: Settings, job_id: str) -> dict[str, Any] | None:
    """A job's timeline, progress history and stream count, while the server retains it."""
    return _get(settings, f"/local/jobs/{job_id}")


def _post(settings: Settings, path: str, body: Any) -> Any:
    from ..errors import ConfigError

    base = settings.local_url
    if base is None:
        raise ConfigError("This only works on the embedded RunPod (the local backend).")
    response = _client().post(f"{base}{path}", json=body, headers=_auth(settings))
    if response.status_code != 200:
        raise ConfigError(f"The embedded RunPod refused {path}: {response.text[:200]}")
    return response.json()


def simulate_gpus(settings: Settings, capacity: dict[str, int]) -> dict[str, int]:
    """Set how many workers each GPU pool can host (0 = none available): throttling on demand."""
    return _post(settings, "/local/gpus", capacity)["gpus"]


def simulate_balance(settings: Settings, balance: float) -> float:
    """Set the simulated account balance (negative disables endpoints, as on RunPod)."""
    return _post(settings, "/local/account", {"balance": balance})["clientBalance"]
