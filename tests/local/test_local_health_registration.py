"""``/health`` of a new endpoint answers "Not Found" until a first worker has registered, as on
RunPod; the job API works meanwhile, and the diagnosis, the deploy wait and the health read still
tell a crash loop from a slow start through the embedded RunPod's worker list."""

from __future__ import annotations

import httpx
import pytest
from support import deploy, local_get, wait_for

from runpod_jupyter.api import EndpointSpec, JobStatus, TemplateSpec
from runpod_jupyter.diagnose import diagnose, gather


def _raw_health(instance, endpoint_id: str) -> httpx.Response:
    return httpx.get(f"{instance.url}/v2/{endpoint_id}/health",
                     headers={"Authorization": f"Bearer {instance.api_key.reveal()}"}, timeout=10)


def test_health_is_not_found_before_any_worker_registers(client, local_runpod, tmp_path):
    # A cloud-only image: no worker can ever start here, so none registers.
    template = client.save_template(TemplateSpec(name="never-registers", image_name="docker.io/someone/worker:1"))
    spec = client.save_endpoint(EndpointSpec(name="never-registers", template_id=template.id, gpu_ids=("ADA_24",)))
    reply = _raw_health(local_runpod, spec.id)
    assert reply.status_code == 404 and reply.json() == {"message": "Not Found"}
    ep = client.endpoint(spec.id)
    assert ep.health().registered is False
    job = ep.run({"x": 1})  # the job API itself answers
    assert ep.status(job.id).status is JobStatus.IN_QUEUE
    codes = {f.code for f in diagnose(gather(client, spec.id))}
    assert "no-worker-yet" in codes and "endpoint-disabled" not in codes
    ep.purge_queue()
    client.delete_endpoint(spec.id)
    client.delete_template("never-registers")


@pytest.mark.slow
def test_health_answers_from_the_first_registered_worker_on(client, local_runpod, tmp_path):
    spec, ep = deploy(client, tmp_path, """
        import runpod
        runpod.serverless.start({"handler": lambda job: job["input"]})
    """, workers_max=1, idle_timeout=1)
    assert _raw_health(local_runpod, spec.id).status_code == 200
    assert ep.runsync({"a": 1}).output == {"a": 1}
    wait_for(lambda: ep.health().workers.total == 0, what="scale to zero")
    health = ep.health()  # no worker now, but one has registered: health keeps answering
    assert health.registered and health.jobs.completed == 1


@pytest.mark.slow
def test_a_crash_loop_is_diagnosed_while_health_is_not_found(client, local_runpod, tmp_path):
    spec, ep = deploy(client, tmp_path, """
        import runpod
        raise RuntimeError("model weights missing")
    """, wait_idle=False, workers_max=1)
    ep.run({})
    wait_for(lambda: any(w["state"] == "unhealthy"
                         for w in local_get(local_runpod, f"/local/endpoints/{spec.id}/workers")["workers"]),
             what="an unhealthy worker")
    assert _raw_health(local_runpod, spec.id).status_code == 404  # never registered
    state = gather(client, spec.id)
    assert state.health is not None and not state.health.registered
    assert state.health.workers.unhealthy == 1 and state.health.jobs.in_queue == 1  # from the worker list
    crash = next(f for f in diagnose(state) if f.code == "crash-loop")
    assert "model weights missing" in crash.message
    ep.purge_queue()
