"""The same views against a real embedded RunPod, once as the ``local`` backend and once as
the ``cloud`` backend (the embedded RunPod speaks the cloud's wire): the same widgets and the
same data, plus what only the embedded RunPod can tell (worker list, spend, log lines)."""

from __future__ import annotations

import pytest
from support import deploy, deployed, deployment_on, wait_for

from runpod_jupyter.endpoints import delete_endpoint
from runpod_jupyter.widgets import make_view
from runpod_jupyter.widgets import poller as poller_module

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers

STREAMING = """
import time
import runpod

def handler(job):
    for i in range(5):
        runpod.serverless.progress_update(job, f"{i + 1}/5")
        print(f"working on {i}", flush=True)
        time.sleep(0.1)
        yield {"i": i}

runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
"""


@pytest.fixture(scope="module")
def endpoint(local_runpod, tmp_path_factory):
    with deployed(local_runpod.settings(), tmp_path_factory.mktemp("both"), STREAMING, workers_max=1,
                  idle_timeout=60) as spec:
        yield spec


@pytest.mark.parametrize("backend", ["local", "cloud"])
def test_endpoint_and_job_views_on_either_backend(backend, local_runpod, endpoint, comms, fast_polls, monkeypatch):
    monkeypatch.setattr(poller_module, "_pollers", {})
    dep = deployment_on(local_runpod.settings(), endpoint, backend)
    view = make_view(dep)
    state = view.state
    assert state["backend"] == backend and state["workers"]["idle"] == 1 and state["findings"] == []
    assert state["settings"]["gpus"][0]["id"] == "ADA_24"
    assert isinstance(state["cost"]["accountPerHour"], float)
    if backend == "local":
        assert [w["state"] for w in state["workerList"]] == ["idle"] and state["cost"]["spent"] is not None
    else:  # RunPod lists no workers and reports spend per account only
        assert state["workerList"] == [] and state["cost"]["spent"] is None
    assert state["cost"]["perHour"] == 0.0  # nothing running

    job = dep.run({})
    job_view = make_view(job)
    job_view.start()
    wait_for(lambda: job_view.final, timeout=60, interval=0.05, what="the job view's final state")
    final = job_view.state
    assert final["status"] == "COMPLETED" and final["executionMs"] is not None
    assert [t[1] for t in final["timeline"]][-1] == "COMPLETED"
    assert final["resultNote"] == "the 5 streamed chunk(s) above, aggregated"
    assert [item["t"] for item in job_view.reader.items] == [f'{{\n  "i": {i}\n}}' for i in range(5)]
    text = job_view.static_text()
    # Worker log lines come through REST API v2 on both backends.
    assert final["logsUrl"] is None and any("working on 4" in line["message"] for line in job_view.reader.logs)
    assert "working on 4" in text
    view.close()
    job_view.close()


@pytest.mark.parametrize("backend", ["local", "cloud"])
def test_always_on_workers_show_in_cost_and_findings(backend, local_runpod, tmp_path, comms, fast_polls, monkeypatch):
    from runpod_jupyter.api import Client
    from runpod_jupyter.api.models import ACTIVE_DISCOUNT, GPU_POOLS

    monkeypatch.setattr(poller_module, "_pollers", {})
    with Client(local_runpod.settings()) as client:
        spec, api = deploy(client, tmp_path, STREAMING, workers_min=1, workers_max=1)
        try:
            always_on = GPU_POOLS["ADA_24"].price_per_second * (1 - ACTIVE_DISCOUNT) * 3600
            dep = deployment_on(local_runpod.settings(), spec, backend)
            if backend == "local":  # billed from the first tick that sees it ready
                wait_for(lambda: make_view(dep).state["cost"]["perHour"], what="the always-on charge")
            state = make_view(dep).state
            cost = state["cost"]
            if backend == "local":
                assert cost["perHour"] == pytest.approx(always_on) and not cost["estimated"]
            else:  # no worker list on RunPod: an estimate from workersMin and the pool's price
                assert cost["perHourRange"] == pytest.approx([always_on, always_on]) and cost["estimated"]
            assert "always-on-workers" in [f["code"] for f in state["findings"]]
        finally:
            delete_endpoint(client, spec.id)
