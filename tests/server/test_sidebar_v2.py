"""The sidebar's overview carries what REST v2 tells per endpoint: the rollout summary, the count
of stale workers, and the stock of the endpoint's own pools (real embedded RunPod, real workers)."""

from __future__ import annotations

import uuid

import pytest
from support import local_post, wait_for, worker_project

from runpod_jupyter.api import Client, EndpointSpec, TemplateSpec

SLEEPER = """
import time
import runpod

def handler(job):
    time.sleep(job["input"].get("sleep", 0))
    return "ok"

runpod.serverless.start({"handler": handler})
"""


@pytest.fixture(scope="module")
def local_client(local_runpod):
    local_post(local_runpod, "/local/gpus", {"ADA_80_PRO": 0})  # before the overview first reads stock
    with Client(local_runpod.settings()) as api:
        yield api


def _endpoint(client, root, **fields):
    name = f"sb-{uuid.uuid4().hex[:8]}"
    template = client.save_template(TemplateSpec(name=name, image_name=f"local:{worker_project(root, SLEEPER)}"))
    return client.save_endpoint(EndpointSpec(name=name, template_id=template.id, **fields))


def _row(view, endpoint_id):
    local = view["backends"][0]
    return next(e for e in local["endpoints"] if e["id"] == endpoint_id)


async def test_overview_shows_stock_none_for_a_pool_without_capacity(api, local_client, tmp_path):
    spec = _endpoint(local_client, tmp_path, gpu_ids=("ADA_80_PRO",), workers_max=0)
    try:
        code, view = await api.get("overview", fresh="1")
        row = _row(view, spec.id)
        assert code == 200 and row["stock"] == {"ADA_80_PRO": "NONE"}
        assert row["rollout"]["version"] == 1 and row["rollout"]["summary"] == "" and row["stale"] == 0
    finally:
        local_client.delete_endpoint(spec.id)


@pytest.mark.slow  # starts workers
async def test_overview_shows_rollout_and_stale_workers_after_an_update(api, local_client, tmp_path):
    spec = _endpoint(local_client, tmp_path, gpu_ids=("ADA_24",), workers_min=1, workers_max=1, idle_timeout=60)
    try:
        api_ep = local_client.endpoint(spec.id)
        wait_for(lambda: api_ep.health().workers.idle == 1, timeout=90, what="an idle worker")
        api_ep.run({"sleep": 6})
        wait_for(lambda: local_client.workers(spec.id).counts().running == 1, timeout=30, what="the job running")
        local_client.save_endpoint(local_client.get_endpoint(spec.id).with_changes(env={"MODE": "v2"}))
        code, view = await api.get("overview", fresh="1")
        row = _row(view, spec.id)
        assert code == 200 and row["stale"] >= 1
        rollout = row["rollout"]
        assert rollout["version"] == 2 and rollout["inProgress"] is True and rollout["changed"] == ["env"]
        assert rollout["summary"].endswith("workers on release 2")
        assert any(w["stale"] for w in row["workers"]) and row["stock"]["ADA_24"] in ("HIGH", "MEDIUM", "LOW")
        assert "rolling-update" in [f["code"] for f in row["findings"]]
    finally:
        local_client.delete_endpoint(spec.id)
