"""GPU stock per pool on the embedded RunPod: levels from the simulated capacity, as
``GET /local/gpus`` and GraphQL's ``lowestPrice { stockStatus }`` report them, moving as workers
take and release GPUs; and the wire's per-pool reading of it."""

from __future__ import annotations

import httpx
import pytest
from support import deploy, local_get, local_post, wait_for

from runpod_jupyter.api.models import GPU_POOLS
from runpod_jupyter.local.stock import availability

STOCK = {
    "query": "query Stock($n: Int) { gpuTypes { id lowestPrice(input: {gpuCount: $n}) { stockStatus } } }",
    "variables": {"n": 1},
}


@pytest.mark.parametrize(("capacity", "in_use", "level"), [
    (None, 0, "HIGH"), (None, 50, "HIGH"),  # no limit set
    (0, 0, "NONE"), (2, 2, "NONE"), (1, 3, "NONE"),  # nothing free
    (1, 0, "LOW"), (10, 8, "LOW"), (100, 81, "LOW"),  # one free, or under a quarter free
    (2, 0, "MEDIUM"), (8, 5, "MEDIUM"), (3, 1, "MEDIUM"),  # 2+ free and a quarter or more
    (4, 0, "HIGH"), (8, 4, "HIGH"), (100, 50, "HIGH"),  # 4+ free and half or more
])
def test_levels_from_capacity(capacity, in_use, level):
    assert availability(capacity, in_use) == level


def _gpus(local_runpod) -> dict:
    return local_get(local_runpod, "/local/gpus")["gpus"]


def _graphql_status(local_runpod) -> dict:
    reply = httpx.post(f"{local_runpod.url}/graphql", json=STOCK,
                       headers={"Authorization": f"Bearer {local_runpod.api_key.reveal()}"})
    reply.raise_for_status()
    return {g["id"]: g["lowestPrice"]["stockStatus"] for g in reply.json()["data"]["gpuTypes"]}


def _gpu_type_of(pool: str) -> str:
    return GPU_POOLS[pool].gpu_types[0]


def test_get_local_gpus_reports_every_pool(local_runpod):
    local_post(local_runpod, "/local/gpus", {"AMPERE_48": 0, "ADA_48_PRO": 2, "AMPERE_80": 10})
    gpus = _gpus(local_runpod)
    assert set(GPU_POOLS) <= set(gpus)
    assert gpus["AMPERE_48"] == {"capacity": 0, "inUse": 0, "free": 0, "availability": "NONE"}
    assert gpus["ADA_48_PRO"] == {"capacity": 2, "inUse": 0, "free": 2, "availability": "MEDIUM"}
    assert gpus["AMPERE_80"]["availability"] == "HIGH"
    assert gpus["HOPPER_141"] == {"capacity": None, "inUse": 0, "free": None, "availability": "HIGH"}
    status = _graphql_status(local_runpod)
    assert status[_gpu_type_of("AMPERE_48")] is None  # RunPod sends null when there is no stock
    assert status[_gpu_type_of("ADA_48_PRO")] == "Medium"
    assert status[_gpu_type_of("HOPPER_141")] == "High"


def test_wire_reads_stock_per_pool(local_runpod, client):
    local_post(local_runpod, "/local/gpus", {"AMPERE_48": 0, "ADA_48_PRO": 1})
    stock = client.gpu_stock()
    assert stock["AMPERE_48"] == "NONE"
    assert stock["ADA_48_PRO"] == "LOW"
    assert stock["HOPPER_141"] == "HIGH"
    assert set(stock) == set(GPU_POOLS)


@pytest.mark.slow
def test_level_follows_workers(local_runpod, client, tmp_path):
    local_post(local_runpod, "/local/gpus", {"AMPERE_16": 1})
    assert _gpus(local_runpod)["AMPERE_16"]["availability"] == "LOW"
    spec, _ = deploy(client, tmp_path, """
        import runpod
        def handler(job):
            return job["input"]
        runpod.serverless.start({"handler": handler})
    """, gpu_ids=("AMPERE_16",), workers_min=1, workers_max=1)
    taken = _gpus(local_runpod)["AMPERE_16"]
    assert taken == {"capacity": 1, "inUse": 1, "free": 0, "availability": "NONE"}
    assert _graphql_status(local_runpod)[_gpu_type_of("AMPERE_16")] is None
    assert client.gpu_stock()["AMPERE_16"] == "NONE"
    client.delete_endpoint(spec.id)
    wait_for(lambda: _gpus(local_runpod)["AMPERE_16"]["availability"] == "LOW", timeout=60,
             what="the worker to give its GPU back")
    assert _graphql_status(local_runpod)[_gpu_type_of("AMPERE_16")] == "Low"
