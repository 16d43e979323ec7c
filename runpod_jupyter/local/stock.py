"""GPU stock per serverless pool, from the embedded RunPod's simulated capacity, in RunPod's words:
``HIGH``/``MEDIUM``/``LOW``/``NONE`` (REST v2 ``availability``), ``High``/``Medium``/``Low``/null
(GraphQL ``stockStatus``). It is what tells "no capacity" from "your code is stuck".

A pool with no limit set (``--gpus`` did not name it) reads HIGH. Otherwise, with ``free`` GPUs
(capacity less those held by workers: starting, serving or draining):

- NONE   nothing free (capacity 0, or all taken);
- HIGH   4 or more free and at least half of the capacity free;
- MEDIUM 2 or more free and at least a quarter free;
- LOW    otherwise (one free, or under a quarter of the pool).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..api.models import GPU_POOLS
from .workers import HOLDS_GPU, WorkerRecord

HIGH_FREE, HIGH_SHARE = 4, 0.5
MEDIUM_FREE, MEDIUM_SHARE = 2, 0.25


def availability(capacity: int | None, in_use: int) -> str:
    """The level of a pool with ``capacity`` GPUs (None: no limit) of which ``in_use`` are held."""
    if capacity is None:
        return "HIGH"
    free = capacity - in_use
    if free <= 0:
        return "NONE"
    share = free / capacity
    if free >= HIGH_FREE and share >= HIGH_SHARE:
        return "HIGH"
    if free >= MEDIUM_FREE and share >= MEDIUM_SHARE:
        return "MEDIUM"
    return "LOW"


def in_use(workers: Iterable[WorkerRecord], pool: str) -> int:
    """GPUs of ``pool`` held by workers now."""
    return sum(1 for w in workers if w.pool == pool and w.state in HOLDS_GPU)


def pool_stock(capacity: Mapping[str, int], workers: Iterable[WorkerRecord]) -> dict[str, dict[str, Any]]:
    """Every pool (RunPod's, and any other the capacity names): ``{capacity, inUse, free,
    availability}``; ``capacity`` and ``free`` are None for a pool with no limit."""
    held = list(workers)
    out: dict[str, dict[str, Any]] = {}
    for pool in [*GPU_POOLS, *(p for p in capacity if p not in GPU_POOLS)]:
        limit = capacity.get(pool)
        used = in_use(held, pool)
        out[pool] = {
            "capacity": limit, "inUse": used,
            "free": None if limit is None else max(0, limit - used),
            "availability": availability(limit, used),
        }
    return out


def stock_status(level: str) -> str | None:
    """GraphQL's spelling of a level: ``High``/``Medium``/``Low``, and null when there is none."""
    return None if level == "NONE" else level.capitalize()
