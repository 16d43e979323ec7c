"""Job policies, webhooks, result retention, payload limits and logs in the embedded RunPod."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from support import FAST, LOCAL_KEY, deploy, final, local_get, wait_for

from runpod_jupyter import embedded
from runpod_jupyter.api import Client, JobStatus, Policy

ASYNC_SLEEPER = """
import asyncio, runpod
async def handler(job):
    await asyncio.sleep(job["input"].get("sleep", 0))
    if job["input"].get("fail"):
        raise ValueError("asked to fail")
    print(f"hello from {job['id']}")
    return {"slept": job["input"].get("sleep", 0)}
runpod.serverless.start({"handler": handler})
"""


@pytest.mark.slow
def test_execution_timeout(client, tmp_path):
    _, ep = deploy(client, tmp_path, ASYNC_SLEEPER)
    job = ep.run({"sleep": 30}, policy=Policy(execution_timeout=1500))
    done = final(ep, job.id)
    assert done.status is JobStatus.TIMED_OUT
    assert ep.health().jobs.failed >= 1
    # The job is stopped on the worker, which is free again.
    wait_for(lambda: ep.health().workers.running == 0, what="the worker to stop the job")


@pytest.mark.slow
def test_ttl_expires_a_queued_job(client, tmp_path, local_runpod):
    _, ep = deploy(client, tmp_path, ASYNC_SLEEPER, wait_idle=False, workers_max=0)
    job = ep.run({}, policy=Policy(ttl=1000))
    done = final(ep, job.id, timeout=20)
    assert done.status is JobStatus.TIMED_OUT
    assert "ttl" in local_get(local_runpod, f"/local/jobs/{job.id}")["reason"]


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", 0))
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture()
def webhook_receiver():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook.received
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_webhooks_on_completion_and_failure(client, tmp_path, webhook_receiver):
    url, received = webhook_receiver
    _, ep = deploy(client, tmp_path, ASYNC_SLEEPER)
    ok = ep.run({"sleep": 0}, webhook=url)
    bad = ep.run({"fail": True}, webhook=url)
    wait_for(lambda: len(received) == 2, what="two webhook calls")
    by_id = {body["id"]: body for body in received}
    assert by_id[ok.id]["status"] == "COMPLETED" and by_id[ok.id]["output"] == {"slept": 0}
    assert by_id[ok.id]["input"] == {"sleep": 0} and by_id[ok.id]["webhook"] == url
    assert {"delayTime", "executionTime"} <= set(by_id[ok.id])
    assert by_id[bad.id]["status"] == "FAILED" and "asked to fail" in by_id[bad.id]["error"]


@pytest.mark.slow
def test_logs_per_worker_and_per_job(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, ASYNC_SLEEPER)
    job = ep.runsync({"sleep": 0}, wait_ms=30_000)
    lines = local_get(local_runpod, "/local/logs", job_id=job.id)["lines"]
    messages = [line["message"] for line in lines]
    assert f"hello from {job.id}" in messages  # the handler's own print, attributed to the job
    assert "Started." in messages and "Finished." in messages  # the SDK's JSON log lines
    assert {line["worker"] for line in lines} == {job.worker_id}
    worker_lines = local_get(local_runpod, "/local/logs", worker_id=job.worker_id)["lines"]
    assert any("Starting Serverless Worker" in line["message"] for line in worker_lines)


def test_server_side_payload_limit_and_bad_bodies(client, tmp_path, local_runpod):
    spec, _ = deploy(client, tmp_path, ASYNC_SLEEPER, wait_idle=False, workers_max=0)
    headers = {"Authorization": f"Bearer {LOCAL_KEY}"}
    big = httpx.post(
        f"{local_runpod.rest_base}/{spec.id}/run", content=b'{"input":"' + b"x" * 10_000_001 + b'"}', headers=headers
    )
    assert big.status_code == 413
    no_input = httpx.post(f"{local_runpod.rest_base}/{spec.id}/run", json={"data": 1}, headers=headers)
    assert no_input.status_code == 400 and "input" in no_input.json()["error"]
    anonymous = httpx.post(f"{local_runpod.rest_base}/{spec.id}/run", json={"input": 1})
    assert anonymous.status_code == 401


@pytest.mark.slow
def test_results_expire_after_retention(tmp_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("retention")
    instance = embedded.start(
        data_dir=root / "data", state_file=root / "state.json", api_key=LOCAL_KEY,
        tuning={**FAST, "retention_run": 1.0, "retention_sync": 0.5},
    )
    try:
        with Client(instance.settings()) as api:
            _, ep = deploy(api, tmp_path, ASYNC_SLEEPER)
            job = ep.run({"sleep": 0})
            assert final(ep, job.id).status is JobStatus.COMPLETED
            time.sleep(1.5)
            gone = ep.status(job.id)
            assert gone.status is JobStatus.GONE and "expired" in gone.reason
    finally:
        embedded.stop(state_file=instance.state_file)
