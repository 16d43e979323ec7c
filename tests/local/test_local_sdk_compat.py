"""The unmodified ``runpod`` SDK, pointed at the embedded RunPod by its own base-URL variables,
works for management (GraphQL helpers) and for jobs (``runpod.Endpoint``/``AsyncioEndpoint``)."""

from __future__ import annotations

import asyncio

import pytest
from support import wait_for, worker_project

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers

runpod = pytest.importorskip("runpod")

HANDLER = """
import asyncio, runpod

async def handler(job):
    spec = job["input"]
    if spec.get("sleep"):
        await asyncio.sleep(spec["sleep"])
    for i in range(spec.get("n", 0)):
        yield {"token": i}
        await asyncio.sleep(0.05)
    yield {"done": True}

runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
"""


@pytest.fixture()
def sdk_endpoint(sdk, tmp_path):
    project = worker_project(tmp_path, HANDLER)
    template = sdk.create_template(name=f"sdk-{tmp_path.name}"[:40], image_name=f"local:{project}", is_serverless=True)
    created = sdk.create_endpoint(
        name=f"sdk-{tmp_path.name}"[:40], template_id=template["id"], gpu_ids="ADA_24,AMPERE_24", workers_max=2
    )
    assert created["gpuIds"] == "ADA_24,AMPERE_24" and created["workersMax"] == 2
    endpoint = sdk.Endpoint(created["id"])
    wait_for(lambda: _idle(endpoint), what="an idle worker")
    return endpoint


def _idle(endpoint) -> bool:
    """Health raises HTTPError 404 ("Not Found") until a first worker registers, as on RunPod."""
    import requests

    try:
        return endpoint.health()["workers"]["idle"] >= 1
    except requests.HTTPError as error:
        assert error.response.status_code == 404
        return False


def test_graphql_helpers(sdk_endpoint, sdk):
    listed = {e["id"]: e for e in sdk.get_endpoints()}
    assert sdk_endpoint.endpoint_id in listed
    assert listed[sdk_endpoint.endpoint_id]["workersMax"] == 2
    gpus = sdk.get_gpus()
    assert any(g["id"] == "NVIDIA GeForce RTX 4090" for g in gpus)
    assert sdk.get_gpu("NVIDIA GeForce RTX 4090")["lowestPrice"]["uninterruptablePrice"] > 0


def test_sync_endpoint_jobs(sdk_endpoint):
    assert sdk_endpoint.run_sync({"n": 2}, timeout=60) == [{"token": 0}, {"token": 1}, {"done": True}]

    job = sdk_endpoint.run({"n": 3})
    assert job.status() in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    assert list(job.stream()) == [{"token": 0}, {"token": 1}, {"token": 2}, {"done": True}]
    assert job.output(timeout=30)[-1] == {"done": True}
    assert job.status() == "COMPLETED"

    slow = sdk_endpoint.run({"sleep": 30})
    wait_for(lambda: slow.status() == "IN_PROGRESS")
    assert slow.cancel()["status"] == "CANCELLED"

    health = sdk_endpoint.health()
    assert set(health["workers"]) >= {"idle", "initializing", "ready", "running", "throttled", "unhealthy"}
    assert health["jobs"]["completed"] >= 2
    purged = sdk_endpoint.purge_queue()
    assert purged["status"] == "completed"


def test_asyncio_endpoint_jobs(sdk_endpoint, sdk):
    import aiohttp

    async def main():
        async with aiohttp.ClientSession() as session:
            endpoint = sdk.AsyncioEndpoint(sdk_endpoint.endpoint_id, session)
            job = await endpoint.run({"n": 2})
            streamed = [chunk async for chunk in job.stream()]
            output = await job.output(timeout=30)
            status = await job.status()
            doomed = await endpoint.run({"sleep": 30})
            cancelled = await doomed.cancel()
            health = await endpoint.health()
            purged = await endpoint.purge_queue()
            return streamed, output, status, cancelled, health, purged

    streamed, output, status, cancelled, health, purged = asyncio.run(main())
    assert streamed == [{"token": 0}, {"token": 1}, {"done": True}]
    assert output == streamed
    assert status == "COMPLETED"
    assert cancelled["status"] == "CANCELLED"
    assert "jobs" in health and purged["status"] == "completed"
