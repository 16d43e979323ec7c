"""Job and endpoint ids go into URL paths: one that is not a RunPod id is refused before anything
is sent, so it can never reach another route (``../purge-queue`` would drop the whole queue)."""

from __future__ import annotations

import pytest
from support import deploy, wait_for

from runpod_jupyter.api import AsyncClient
from runpod_jupyter.errors import ConfigError

BLOCK = """
import runpod, time
def handler(job):
    time.sleep(job["input"])
    return "done"
runpod.serverless.start({"handler": handler})
"""
BAD_JOB_IDS = ["../purge-queue", "a/b", "", "job?x=1", "id#frag", "..", "sp ace", "%2e%2e"]


@pytest.mark.slow
def test_a_bad_job_id_is_refused_before_sending(client, tmp_path):
    spec, api = deploy(client, tmp_path, BLOCK, workers_max=1, wait_idle=False)
    running, queued = api.run(60), api.run(0)
    wait_for(lambda: api.status(running.id).status.value == "IN_PROGRESS", timeout=120, what="the first job to run")
    for job_id in BAD_JOB_IDS:
        for call in (api.cancel, api.status, lambda j: list(api.stream(j, timeout=1))):
            with pytest.raises(ConfigError) as caught:
                call(job_id)
            assert "job id" in caught.value.message and caught.value.hint, job_id
    assert api.status(queued.id).status.value == "IN_QUEUE"  # nothing was purged
    api.purge_queue()
    api.cancel(running.id)
    client.delete_endpoint(spec.id)


@pytest.mark.parametrize("endpoint_id", ["../x", "a/b", "", "ep?x", "ep id"])
def test_a_bad_endpoint_id_is_refused_before_sending(client, endpoint_id):
    with pytest.raises(ConfigError) as caught:
        client.endpoint(endpoint_id).health()
    assert "endpoint id" in caught.value.message and caught.value.hint


def test_the_async_client_refuses_them_too(local_runpod):
    import asyncio

    async def main():
        async with AsyncClient(local_runpod.settings()) as client:
            with pytest.raises(ConfigError):
                await client.endpoint("ep").cancel("../purge-queue")

    asyncio.run(main())
