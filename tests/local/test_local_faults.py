"""Faults in the embedded RunPod: no job is ever lost. Every job ends in a final state with a
reason, or is retried and counted in ``health.jobs.retried``."""

from __future__ import annotations

import os
import signal

import pytest
from support import FAST, LOCAL_KEY, deploy, final, local_get, wait_for

from runpod_jupyter import embedded
from runpod_jupyter.api import Client, JobStatus

SLOW = """
import os, runpod, time
def handler(job):
    time.sleep(job["input"].get("sleep", 0))
    return {"pid": os.getpid()}
runpod.serverless.start({"handler": handler})
"""


def _running_worker(instance, endpoint_id: str) -> dict:
    workers = local_get(instance, f"/local/endpoints/{endpoint_id}/workers")["workers"]
    return next(w for w in workers if w["state"] == "running")


def _workers(instance, endpoint_id: str) -> list[dict]:
    return local_get(instance, f"/local/endpoints/{endpoint_id}/workers")["workers"]


def _unhealthy(instance, endpoint_id: str) -> bool:
    return any(w["state"] == "unhealthy" for w in _workers(instance, endpoint_id))


@pytest.mark.slow
def test_worker_killed_mid_job_is_retried(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, SLOW, workers_max=1)
    job = ep.run({"sleep": 3})
    wait_for(lambda: ep.status(job.id).status is JobStatus.IN_PROGRESS)
    victim = _running_worker(local_runpod, spec.id)
    os.kill(victim["pid"], signal.SIGKILL)
    done = final(ep, job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.output["pid"] != victim["pid"]
    assert ep.health().jobs.retried == 1
    events = local_get(local_runpod, f"/local/jobs/{job.id}")["events"]
    retry = next(e for e in events if e[1] == "RETRY")
    assert "exit code 137" in retry[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("code", "words"),
    [(137, "killed (SIGKILL), often out of memory"), (139, "container disk")],
)
def test_a_job_that_keeps_killing_its_worker_fails_with_the_meaning(client, tmp_path, code, words):
    sig = {137: "SIGKILL", 139: "SIGSEGV"}[code]
    _, ep = deploy(client, tmp_path, f"""
        import os, runpod, signal
        def handler(job):
            os.kill(os.getpid(), signal.{sig})
        runpod.serverless.start({{"handler": handler}})
    """)
    job = ep.run({})
    done = final(ep, job.id)
    assert done.status is JobStatus.FAILED
    assert f"exit code {code}" in done.reason and words in done.reason
    assert ep.health().jobs.retried == 1  # tried once more before failing


@pytest.mark.slow
def test_exception_before_start_is_a_crash_loop(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, """
        import runpod
        raise RuntimeError("model weights missing")
        runpod.serverless.start({"handler": lambda job: 1})
    """, wait_idle=False)
    job = ep.run({})
    # /health answers "Not Found" until a worker registers, which a crashing one never does
    wait_for(lambda: _unhealthy(local_runpod, spec.id), what="an unhealthy worker")
    wait_for(lambda: max(w["crashes"] for w in _workers(local_runpod, spec.id)) >= 2, what="a retried crash")
    worker = max(_workers(local_runpod, spec.id), key=lambda w: w["crashes"])
    assert "exit code 1" in worker["reason"] and "model weights missing" in worker["reason"]
    assert ep.status(job.id).status is JobStatus.IN_QUEUE  # not lost: waits for a healthy worker
    logs = local_get(local_runpod, "/local/logs", worker_id=worker["id"])["lines"]
    assert any("model weights missing" in line["message"] for line in logs)


@pytest.mark.slow
def test_missing_handler_file_is_exit_code_2(client, tmp_path, local_runpod):
    from runpod_jupyter.api import EndpointSpec, TemplateSpec

    empty = tmp_path / "empty-project"
    empty.mkdir()
    template = client.save_template(TemplateSpec(name="no-handler", image_name=f"local:{empty}"))
    spec = client.save_endpoint(EndpointSpec(name="no-handler", template_id=template.id, gpu_ids=("ADA_24",), workers_max=1))
    ep = client.endpoint(spec.id)
    wait_for(lambda: _unhealthy(local_runpod, spec.id), what="an unhealthy worker")
    reason = next(w["reason"] for w in _workers(local_runpod, spec.id) if w["state"] == "unhealthy")
    assert "exit code 2" in reason and "handler.py" in reason
    assert ep.health().registered is False  # no worker ever registered


@pytest.mark.slow
def test_slow_start_beyond_the_init_timeout(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, """
        import time, runpod
        time.sleep(60)
        runpod.serverless.start({"handler": lambda job: 1})
    """, wait_idle=False, template_env={"RUNPOD_INIT_TIMEOUT": "2"})
    wait_for(lambda: _unhealthy(local_runpod, spec.id), what="the init timeout")
    reason = next(w["reason"] for w in _workers(local_runpod, spec.id) if w["state"] == "unhealthy")
    assert "init timeout" in reason and "RUNPOD_INIT_TIMEOUT" in reason
    # The embedded RunPod sent that SIGKILL itself: the reason says so, not "out of memory".
    assert "exit code 137: killed (SIGKILL) by the embedded RunPod" in reason and "memory" not in reason


@pytest.mark.slow
def test_lost_heartbeat_retries_the_job(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, SLOW, workers_max=1)
    job = ep.run({"sleep": 2})
    wait_for(lambda: ep.status(job.id).status is JobStatus.IN_PROGRESS)
    frozen = _running_worker(local_runpod, spec.id)
    os.killpg(frozen["pid"], signal.SIGSTOP)  # the worker and its heartbeat process go silent
    done = final(ep, job.id, timeout=90)
    assert done.status is JobStatus.COMPLETED and done.output["pid"] != frozen["pid"]
    events = local_get(local_runpod, f"/local/jobs/{job.id}")["events"]
    assert any(e[1] == "RETRY" and "lost heartbeat" in e[2] for e in events)


@pytest.mark.slow
def test_restart_keeps_queued_and_finished_jobs(tmp_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("restart")
    kwargs = dict(data_dir=root / "data", state_file=root / "state.json", api_key=LOCAL_KEY, tuning=FAST)
    instance = embedded.start(**kwargs)
    try:
        with Client(instance.settings()) as api:
            _, busy = deploy(api, tmp_path, SLOW)
            done = busy.runsync({}, wait_ms=60_000)
            assert done.status is JobStatus.COMPLETED
            _, parked = deploy(api, tmp_path, SLOW, wait_idle=False, workers_max=0)
            queued = parked.run({"waiting": True})
        embedded.stop(state_file=instance.state_file)
        instance = embedded.start(**kwargs)
        with Client(instance.settings()) as api:
            assert api.endpoint(busy.id).status(done.id).output == done.output
            assert api.endpoint(parked.id).status(queued.id).status is JobStatus.IN_QUEUE
            assert len(api.list_endpoints()) == 2
    finally:
        embedded.stop(state_file=instance.state_file)
