"""``/v2/catalog/gpus`` and ``/v2/catalog/datacenters``: RunPod's GPU types with their serverless
pool, memory and list prices, and (``include=AVAILABILITY``, which needs ``product``) the stock
level the embedded RunPod's simulated capacity gives the type's pool right now.

The embedded RunPod has one data center, this machine (``LOCAL``): it claims no region, no
compliance and no global network, and holds STANDARD network volumes only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...api.models import GPU_POOLS
from ..engine import Engine
from .http import json_response, problem

DATA_CENTER: dict[str, Any] = {
    "id": "LOCAL", "name": "Embedded RunPod (this machine)", "region": "UNKNOWN",
    "globalNetwork": False, "networkVolumeTypes": ["STANDARD"], "compliance": [],
}
PRODUCTS = ("POD", "CLUSTER", "SERVERLESS")
#: Query parameters that only mean something with include=AVAILABILITY (400 otherwise).
WITH_AVAILABILITY_ONLY = ("product", "count", "cloud", "countryCodes", "cudaVersions", "minCudaVersion")
SECURE_SHARE, COMMUNITY_SHARE = 0.8, 0.6  # pod prices: a share of the serverless rate (none are pods here)


def _listed(request: web.Request, name: str) -> list[str]:
    return [v.strip() for v in request.query.get(name, "").split(",") if v.strip()]


def _wants_availability(request: web.Request) -> bool:
    """Whether ``include=AVAILABILITY`` was asked for, refusing what the document says is a 400."""
    include = _listed(request, "include")
    unknown = [v for v in include if v != "AVAILABILITY"]
    if unknown:
        raise problem(400, f"Unknown include value(s): {', '.join(unknown)}.", hint="The only include is AVAILABILITY.")
    if not include:
        alone = [p for p in WITH_AVAILABILITY_ONLY if p in request.query]
        if alone:
            raise problem(400, f"{', '.join(alone)} is valid only with include=AVAILABILITY.",
                          hint="Add include=AVAILABILITY&product=SERVERLESS, or drop those parameters.")
        return False
    products = _listed(request, "product")
    if not products:
        raise problem(400, "include=AVAILABILITY requires product: stock differs by product.",
                      hint="Add product=SERVERLESS (or POD, CLUSTER).")
    wrong = [p for p in products if p not in PRODUCTS]
    if wrong:
        raise problem(400, f"Unknown product(s): {', '.join(wrong)}.", hint=f"Use {', '.join(PRODUCTS)}.")
    if "cudaVersions" in request.query and "minCudaVersion" in request.query:
        raise problem(400, "cudaVersions and minCudaVersion exclude each other.", hint="Send one of them.")
    if request.query.get("countryCodes"):  # the one data center here is in no country
        raise problem(400, "The embedded RunPod's one data center (LOCAL) is in no country.",
                      hint="Drop countryCodes: every GPU type here is in data center LOCAL.")
    return True


class Gpus:
    """The handlers of ``/v2/catalog/gpus[/{id}]`` and ``/v2/catalog/datacenters[/{id}]``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _view(self, gpu_id: str, pool_id: str, availability: bool, levels: dict[str, Any]) -> dict[str, Any]:
        pool = GPU_POOLS[pool_id]
        hourly = pool.price_per_second * 3600
        out: dict[str, Any] = {
            "id": gpu_id, "name": gpu_id.replace("NVIDIA ", "").replace("GeForce ", ""), "pool": pool_id,
            "manufacturer": "NVIDIA", "memory": pool.memory_gb, "secure": True, "community": True,
            "price": {"secure": round(hourly * SECURE_SHARE, 2), "community": round(hourly * COMMUNITY_SHARE, 2),
                      "serverless": round(hourly, 2)},
            "maxCount": {"secure": 8, "community": 8},
        }
        if availability:
            level = levels.get(pool_id, {}).get("availability", "HIGH")
            out["availability"] = level
            if level != "NONE":
                out["dataCenters"] = [{"id": DATA_CENTER["id"], "name": DATA_CENTER["name"], "availability": level}]
        return out

    async def gpus(self, request: web.Request) -> web.Response:
        _only_get(request)
        availability = _wants_availability(request)
        levels = self.engine.fleet.stock()
        return json_response({"gpus": [self._view(g, p.id, availability, levels)
                                       for p in GPU_POOLS.values() for g in p.gpu_types]})

    async def gpu(self, request: web.Request) -> web.Response:
        _only_get(request)
        gpu_id = request.match_info["id"]
        pool = next((p.id for p in GPU_POOLS.values() if gpu_id in p.gpu_types), None)
        if pool is None:
            raise problem(404, f"GPU type {gpu_id!r} does not exist.", hint="List GPU types with GET /v2/catalog/gpus.")
        availability = _wants_availability(request)
        return json_response(self._view(gpu_id, pool, availability, self.engine.fleet.stock()))

    def _data_center(self, request: web.Request) -> dict[str, Any]:
        """The data center, with ``gpuAvailability`` if asked for (it offers no CPU flavors)."""
        include = _listed(request, "include")
        unknown = [v for v in include if v not in ("GPU_AVAILABILITY", "CPU_AVAILABILITY")]
        if unknown:
            raise problem(400, f"Unknown include value(s): {', '.join(unknown)}.",
                          hint="Use GPU_AVAILABILITY or CPU_AVAILABILITY.")
        if "GPU_AVAILABILITY" not in include:
            return DATA_CENTER
        levels = self.engine.fleet.stock()
        return {**DATA_CENTER, "gpuAvailability": [
            {"id": g, "name": self._view(g, p.id, False, levels)["name"],
             "availability": levels.get(p.id, {}).get("availability", "HIGH")}
            for p in GPU_POOLS.values() for g in p.gpu_types
        ]}

    async def datacenters(self, request: web.Request) -> web.Response:
        _only_get(request)
        found = self._data_center(request)
        keep = (
            found["region"] in (_listed(request, "regions") or [found["region"]])  # OR within regions
            and all(t in found["networkVolumeTypes"] for t in _listed(request, "networkVolumeTypes"))
            and all(c in found["compliance"] for c in _listed(request, "compliance"))
            and request.query.get("globalNetwork", str(found["globalNetwork"]).lower()) == str(found["globalNetwork"]).lower()
        )
        return json_response({"dataCenters": [found] if keep else []})

    async def datacenter(self, request: web.Request) -> web.Response:
        _only_get(request)
        if request.match_info["id"] != DATA_CENTER["id"]:
            raise problem(404, f"Data center {request.match_info['id']!r} does not exist.",
                          hint="The embedded RunPod has one data center, LOCAL.")
        return json_response(self._data_center(request))


def _only_get(request: web.Request) -> None:
    if request.method != "GET":
        raise problem(405, f"{request.method} is not allowed on {request.path}.", hint="Use GET.")
