"""GPU stock per serverless pool, read from GraphQL ``gpuTypes { lowestPrice { stockStatus } }``.

RunPod reports stock per GPU type (``High``/``Medium``/``Low``, null when there is none); a pool
places workers on any of its GPU types, so a pool's level is the best among them. Levels use REST
v2's words: ``HIGH``/``MEDIUM``/``LOW``/``NONE``. Pure functions: the preflight and the diagnosis
read a mapping they are given, the client fetches it (:meth:`Client.gpu_stock`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .models import GPU_POOLS, POOL_OF_GPU_TYPE

#: Worst to best.
LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")


def level_of(stock_status: Any) -> str:
    """GraphQL's ``stockStatus`` (any case, or null) → a level; anything unknown reads NONE."""
    text = str(stock_status or "").upper()
    return text if text in LEVELS else "NONE"


def pool_levels(gpu_types: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """GraphQL ``gpuTypes`` rows (``id``, ``lowestPrice.stockStatus``) → the level per pool. Pools
    none of whose GPU types were listed are left out (unknown, not NONE)."""
    return _best_per_pool(
        (POOL_OF_GPU_TYPE.get(str(row.get("id") or "")), (row.get("lowestPrice") or {}).get("stockStatus"))
        for row in gpu_types
    )


def catalog_levels(gpus: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """REST v2 ``GET /v2/catalog/gpus?include=AVAILABILITY&product=SERVERLESS`` rows (``pool``,
    ``availability``) → the level per pool, the best of its GPU types."""
    return _best_per_pool((row.get("pool"), row.get("availability")) for row in gpus)


def _best_per_pool(rows: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    """``(pool, level as the API spells it)`` per GPU type → the best level per pool (a pool places
    workers on any of its types); rows without a pool are left out."""
    out: dict[str, str] = {}
    for pool, stock_status in rows:
        if not pool:
            continue
        level = level_of(stock_status)
        if pool not in out or LEVELS.index(level) > LEVELS.index(out[pool]):
            out[str(pool)] = level
    return out


def at_least(level: str | None, floor: str) -> bool:
    """Whether ``level`` is ``floor`` or better (an unknown level is not)."""
    return level in LEVELS and LEVELS.index(level) >= LEVELS.index(floor)


def pools_with_stock(stock: Mapping[str, str], *, floor: str = "LOW", exclude: Iterable[str] = ()) -> list[str]:
    """Pools reading ``floor`` or better, cheapest first, leaving out ``exclude``."""
    skip = set(exclude)
    found = [p for p, level in stock.items() if p not in skip and p in GPU_POOLS and at_least(level, floor)]
    return sorted(found, key=lambda p: (GPU_POOLS[p].price_per_second, GPU_POOLS[p].memory_gb))


def describe(stock: Mapping[str, str], pools: Iterable[str]) -> str:
    """``"ADA_24 (LOW), AMPERE_24 (MEDIUM)"``: pools with their levels, for messages."""
    return ", ".join(f"{p} ({stock.get(p, 'unknown')})" for p in pools)
