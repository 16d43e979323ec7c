"""Worker states, scaling, GPU capacity, releases and billing in the embedded RunPod."""

from __future__ import annotations

import math
import time

import pytest
from support import deploy, final, local_get, local_post, wait_for, worker_project

from runpod_jupyter.api import ApiError, EndpointSpec, JobStatus
from runpod_jupyter.api.models import GPU_POOLS

SLEEPER = """
import runpod, time
VERSION = "{version}"
def handler(job):
    time.sleep(job["input"].get("sleep", 0))
    return {{"version": VERSION}}
runpod.serverless.start({{"handler": handler}})
"""


def _states(instance, endpoint_id: str) -> list[str]:
    return [w["state"] for w in local_get(instance, f"/local/endpoints/{endpoint_id}/workers")["workers"]]


@pytest.mark.slow
def test_initializing_idle_running(client, tmp_path, local_runpod):
    # A start that takes a second, so Initializing is seen however fast the worker process starts.
    slow_start = SLEEPER.format(version="1").replace("import runpod, time\n", "import runpod, time\ntime.sleep(1)\n")
    spec, ep = deploy(client, tmp_path, slow_start, wait_idle=False)
    seen = []

    def record():
        states = _states(local_runpod, spec.id)
        seen.extend(s for s in states if not seen or seen[-1] != s)
        return "idle" in states

    wait_for(record, interval=0.05, what="an idle worker")
    job = ep.run({"sleep": 1.5})
    wait_for(lambda: ep.health().workers.running == 1, interval=0.05, what="a running worker")
    seen.append("running")
    assert seen[0] == "initializing" and "idle" in seen and seen[-1] == "running"
    assert final(ep, job.id).status is JobStatus.COMPLETED


@pytest.mark.slow
def test_idle_timeout_scales_down_to_workers_min(client, tmp_path):
    _, ep = deploy(client, tmp_path, SLEEPER.format(version="1"), idle_timeout=1, workers_min=0)
    wait_for(lambda: ep.health().workers.total == 0, what="scale to zero after idleTimeout")
    # A job on a cold endpoint starts a worker at once (a cold start), then it scales back down.
    assert ep.runsync({}, wait_ms=60_000).output == {"version": "1"}
    wait_for(lambda: ep.health().workers.total == 0, what="scale to zero again")


@pytest.mark.slow
def test_workers_min_stay_up(client, tmp_path):
    spec, ep = deploy(client, tmp_path, SLEEPER.format(version="1"), idle_timeout=1, workers_min=2, workers_max=2)
    wait_for(lambda: ep.health().workers.idle == 2, what="two idle workers")
    time.sleep(2.0)  # longer than idleTimeout: workersMin are kept
    assert ep.health().workers.idle == 2
    client.delete_endpoint(spec.id)  # always-on workers bill the account until they go


@pytest.mark.slow
def test_request_count_scaler(client, tmp_path):
    _, ep = deploy(
        client, tmp_path, SLEEPER.format(version="1"), wait_idle=False, idle_timeout=30,
        scaler_type="REQUEST_COUNT", scaler_value=1, workers_max=3,
    )
    jobs = [ep.run({"sleep": 3}) for _ in range(3)]
    wait_for(lambda: ep.health().workers.running == 3, timeout=40, what="three running workers")
    assert all(final(ep, job.id).status is JobStatus.COMPLETED for job in jobs)


@pytest.mark.slow
def test_queue_delay_scaler_adds_a_worker_when_jobs_wait(client, tmp_path):
    _, ep = deploy(client, tmp_path, SLEEPER.format(version="1"), scaler_value=1, workers_max=2, idle_timeout=30)
    assert ep.health().workers.total == 1
    first = ep.run({"sleep": 4})
    wait_for(lambda: ep.status(first.id).status is JobStatus.IN_PROGRESS)
    second = ep.run({"sleep": 0})
    wait_for(lambda: ep.health().workers.total == 2, what="a second worker after the queue delay")
    assert final(ep, second.id).status is JobStatus.COMPLETED


def test_account_worker_quota(client, tmp_path, local_runpod):
    with pytest.raises(ApiError) as caught:
        client.save_endpoint(EndpointSpec(name="quota", image=f"local:{tmp_path}", gpu_ids=("ADA_24",), workers_max=99))
    assert "quota" in str(caught.value)
    assert not any(e.name == "quota" for e in client.list_endpoints())  # nothing half-made


@pytest.mark.slow
def test_no_capacity_throttles_until_a_gpu_frees(client, tmp_path, local_runpod):
    local_post(local_runpod, "/local/gpus", {"AMPERE_80": 0})
    spec, ep = deploy(client, tmp_path, SLEEPER.format(version="1"), wait_idle=False, gpu_ids=("AMPERE_80",))
    job = ep.run({})
    # No worker has registered yet, so /health answers "Not Found": the worker list shows the state.
    workers = f"/local/endpoints/{spec.id}/workers"
    wait_for(lambda: any(w["state"] == "throttled" for w in local_get(local_runpod, workers)["workers"]),
             what="a throttled worker")
    assert ep.status(job.id).status is JobStatus.IN_QUEUE and not ep.health().registered
    local_post(local_runpod, "/local/gpus", {"AMPERE_80": 1})
    assert final(ep, job.id).status is JobStatus.COMPLETED
    workers = local_get(local_runpod, f"/local/endpoints/{spec.id}/workers")["workers"]
    assert {w["gpu"] for w in workers if w["state"] != "exited"} <= {"AMPERE_80"}


@pytest.mark.slow
def test_wider_gpu_list_finds_capacity(client, tmp_path, local_runpod):
    local_post(local_runpod, "/local/gpus", {"HOPPER_141": 0})
    spec, ep = deploy(client, tmp_path, SLEEPER.format(version="1"), gpu_ids=("HOPPER_141", "AMPERE_48"))
    workers = local_get(local_runpod, f"/local/endpoints/{spec.id}/workers")["workers"]
    assert [w["gpu"] for w in workers if w["state"] == "idle"] == ["AMPERE_48"]


@pytest.mark.slow
def test_new_release_rolls_workers_and_the_new_code_answers(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, SLEEPER.format(version="1"), workers_min=1, workers_max=2, idle_timeout=30)
    long_job = ep.run({"sleep": 4})
    wait_for(lambda: ep.status(long_job.id).status is JobStatus.IN_PROGRESS)
    v2 = worker_project(tmp_path, SLEEPER.format(version="2"))
    client.save_endpoint(client.get_endpoint(spec.id).with_changes(image=f"local:{v2}"))  # a PATCH: a new release
    health = ep.health()
    assert health.workers.outdated == 1 and health.workers.running == 0  # the busy worker is Outdated
    finished = final(ep, long_job.id)
    assert finished.status is JobStatus.COMPLETED
    assert finished.output == {"version": "1"}  # it finished its job on the old code
    assert ep.runsync({}, wait_ms=60_000).output == {"version": "2"}
    wait_for(lambda: ep.health().workers.outdated == 0, what="outdated workers replaced")
    client.delete_endpoint(spec.id)


def _spent(instance, endpoint_id: str) -> float:
    return local_get(instance, f"/local/endpoints/{endpoint_id}/workers")["spent"]


@pytest.mark.slow
def test_running_workers_are_billed_per_second_rounded_up(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, SLEEPER.format(version="1"), gpu_ids=("AMPERE_16",), idle_timeout=30)
    rate_before = client.account().current_spend_per_hr  # other endpoints' always-on workers
    job = ep.run({"sleep": 2.2})
    wait_for(lambda: ep.health().workers.running == 1)
    rate = client.account().current_spend_per_hr - rate_before
    assert rate == pytest.approx(GPU_POOLS["AMPERE_16"].price_per_second * 3600)
    done = final(ep, job.id)
    wait_for(lambda: ep.health().workers.running == 0)
    cost = _spent(local_runpod, spec.id)
    price = GPU_POOLS["AMPERE_16"].price_per_second
    seconds = math.ceil(done.execution_time_ms / 1000)
    assert cost / price == pytest.approx(seconds, abs=1.01)  # whole seconds only
    assert round(cost / price, 6) == round(cost / price)


@pytest.mark.slow
def test_always_on_workers_are_billed_while_idle_at_a_discount(client, tmp_path, local_runpod):
    from runpod_jupyter.api.models import ACTIVE_DISCOUNT
    from runpod_jupyter.diagnose import diagnose, gather

    price = GPU_POOLS["AMPERE_16"].price_per_second
    rate_before = client.account().current_spend_per_hr
    spec, ep = deploy(client, tmp_path, SLEEPER.format(version="1"), gpu_ids=("AMPERE_16",), workers_min=1, workers_max=2)
    always_on = price * (1 - ACTIVE_DISCOUNT) * 3600
    wait_for(lambda: client.account().current_spend_per_hr - rate_before == pytest.approx(always_on),
             what="the idle always-on worker to be billed")
    assert ep.health().workers.running == 0  # billed with no job at all
    finding = next(f for f in diagnose(gather(client, spec.id)) if f.code == "always-on-workers")
    assert f"${always_on:.2f}/h" in finding.message and "scale(min=0)" in finding.fix
    # a job on it changes nothing: it is billed already
    assert ep.runsync({}, wait_ms=60_000).status is JobStatus.COMPLETED
    assert client.account().current_spend_per_hr - rate_before == pytest.approx(always_on)
    # scaling to zero ends the always-on charge, rounded up to whole seconds
    client.save_endpoint(client.get_endpoint(spec.id).with_changes(workers_min=0))
    wait_for(lambda: client.account().current_spend_per_hr - rate_before == pytest.approx(0, abs=1e-9),
             what="the always-on charge to stop")
    billed = _spent(local_runpod, spec.id) / (price * (1 - ACTIVE_DISCOUNT))
    assert round(billed) >= 1 and billed == pytest.approx(round(billed), abs=1e-3)  # whole seconds, discounted
    client.delete_endpoint(spec.id)
