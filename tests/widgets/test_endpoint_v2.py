"""The endpoint view reads REST v2 on either backend: worker states and staleness from
``/workers``, rollout progress from ``/releases``, and GPU stock of the endpoint's own pools from
the catalog. Real embedded RunPod, real SDK workers; the cloud backend is the same server reached
the way RunPod is."""

from __future__ import annotations

import re
import uuid

import pytest
from support import deployment_on, local_post, wait_for, worker_project

from runpod_jupyter.api import Client, EndpointSpec, TemplateSpec
from runpod_jupyter.endpoints import delete_endpoint
from runpod_jupyter.widgets import make_view, static_bundle
from runpod_jupyter.widgets import poller as poller_module
from runpod_jupyter.widgets.poller import Tick

SLEEPER = """
import time
import runpod

def handler(job):
    time.sleep(job["input"].get("sleep", 0))
    return "ok"

runpod.serverless.start({"handler": handler})
"""


@pytest.fixture(autouse=True)
def _fresh_pollers(monkeypatch):
    monkeypatch.setattr(poller_module, "_pollers", {})
    monkeypatch.setattr(poller_module, "_stock_seen", {})


def _endpoint(client, root, **fields):
    project = worker_project(root, SLEEPER)
    name = f"v2-{uuid.uuid4().hex[:8]}"
    template = client.save_template(TemplateSpec(name=name, image_name=f"local:{project}"))
    return client.save_endpoint(EndpointSpec(name=name, template_id=template.id, **fields))


@pytest.mark.parametrize("backend", ["local", "cloud"])
def test_stock_none_is_shown_for_a_pool_with_no_capacity(backend, local_runpod, client, tmp_path, comms):
    local_post(local_runpod, "/local/gpus", {"ADA_80_PRO": 0})
    spec = _endpoint(client, tmp_path, gpu_ids=("ADA_80_PRO", "AMPERE_16"), workers_max=0)
    try:
        view = make_view(deployment_on(local_runpod.settings(), spec, backend))
        state = view.state
        assert state["stock"] == {"ADA_80_PRO": "NONE", "AMPERE_16": "HIGH"}
        assert state["rollout"]["version"] == 1 and state["rollout"]["inProgress"] is False
        assert state["stale"] == 0
        bundle = static_bundle(view.deployment)
        assert "ADA_80_PRO ($" in bundle["text/plain"] and "stock NONE" in bundle["text/plain"]
        assert "stock NONE" in bundle["text/html"]
    finally:
        delete_endpoint(client, spec.id)


@pytest.mark.slow  # starts workers
def test_an_update_shows_a_stale_worker_and_the_rollout_until_it_completes(local_runpod, client, tmp_path, comms):
    spec = _endpoint(client, tmp_path, gpu_ids=("ADA_24",), workers_min=1, workers_max=1, idle_timeout=60)
    dep = deployment_on(local_runpod.settings(), spec, "local")
    try:
        view = make_view(dep)

        def read() -> dict:
            view.on_tick(Tick(dep))
            view.flush()
            return view.state

        first = wait_for(lambda: (lambda s: s if s["workers"]["idle"] == 1 else None)(read()), timeout=90,
                         what="an idle worker")
        assert first["rollout"]["summary"] == "1 of 1 workers on release 1" and first["stale"] == 0
        assert first["stock"]["ADA_24"] in ("HIGH", "MEDIUM", "LOW")

        job = dep.api.run({"sleep": 8})
        wait_for(lambda: read()["workers"]["running"] == 1, timeout=30, what="the worker running the job")
        with Client(local_runpod.settings()) as api:  # a new env: a new release; the busy worker is stale
            api.save_endpoint(api.get_endpoint(spec.id).with_changes(env={"MODE": "v2"}))
        rolling = read()
        rollout = rolling["rollout"]
        assert rollout["version"] == 2 and rollout["inProgress"] is True and rollout["changed"] == ["env"]
        assert rolling["stale"] >= 1 and any(w["stale"] for w in rolling["workerList"])
        assert re.fullmatch(r"\d of \d workers on release 2", rollout["summary"])
        assert "rolling-update" in [f["code"] for f in rolling["findings"]]
        text = view.static_text()
        assert "release: release 2" in text and "rolling out" in text and "stale worker(s)" in text

        done = wait_for(lambda: (lambda s: s if not s["rollout"]["inProgress"] and s["workers"]["idle"] == 1
                                 else None)(read()), timeout=90, what="the rollout to complete")
        assert done["stale"] == 0 and done["rollout"]["summary"] == "1 of 1 workers on release 2"
        assert dep.api.status(job.id).status.value == "COMPLETED"
    finally:
        delete_endpoint(client, spec.id)
