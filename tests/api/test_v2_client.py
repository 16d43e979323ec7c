"""The client's REST v2 half: workers, releases, stock, worker logs and job URLs against the
embedded RunPod; RateLimit pacing and request ids in errors."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from support import deploy, wait_for

from runpod_jupyter.api import Client, EndpointSpec
from runpod_jupyter.api._wire import RatePacer, parse_ratelimit
from runpod_jupyter.api.client import job_base
from runpod_jupyter.api.observed import parse_sse
from runpod_jupyter.config import Settings
from runpod_jupyter.secret import Secret

PRINTING = """
import time

import runpod

def handler(job):
    print("handled", job["input"].get("n"))
    time.sleep(job["input"].get("sleep", 0))
    return {"ok": True}

runpod.serverless.start({"handler": handler})
"""


def test_the_ratelimit_header_is_read_as_runpod_documents_it():
    example = '"minute";r=0;t=12, "hour";r=2800;t=1812, "day";r=49500;t=45012'
    assert parse_ratelimit(example) == [(0, 12.0), (2800, 1812.0), (49500, 45012.0)]
    assert parse_ratelimit('"minute";bogus, "hour";r=x;t=1') == []  # unreadable members are skipped


def test_a_spent_window_makes_the_next_request_wait_until_it_resets():
    pacer = RatePacer()
    url = "https://api.runpod.io/v2/serverless"
    pacer.observe(url, {"ratelimit": '"minute";r=3;t=40'}, now=100.0)
    assert pacer.delay(url, now=100.0) == 0.0  # room left: no wait
    pacer.observe(url, {"ratelimit": '"minute";r=0;t=12, "hour";r=2800;t=1812'}, now=100.0)
    assert pacer.delay(url, now=101.0) == pytest.approx(11.0)
    assert pacer.delay("https://api.runpod.ai/v2/ep/run", now=101.0) == 0.0  # another host
    assert pacer.delay(url, now=113.0) == 0.0  # reset


def test_the_client_waits_instead_of_running_into_a_429(monkeypatch):
    """RunPod's answer with a spent window, replayed (HTTP MOCK: spending a real 600-a-minute
    budget would take the test a minute)."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"request {len(seen)}")
        headers = {"RateLimit": '"minute";r=0;t=9', "x-request-id": "req-1"}
        return httpx.Response(200, json={"endpoints": []}, headers=headers)

    slept: list[float] = []
    monkeypatch.setattr("runpod_jupyter.api.client.time.sleep", lambda s: (slept.append(s), seen.append("slept")))
    settings = Settings(backend="cloud", rest_base="https://api.runpod.ai/v2", graphql_url="https://api.runpod.io/graphql",
                        api_key=Secret("rpa_TESTKEY0123456789abcdef"))
    with Client(settings, transport=httpx.MockTransport(answer)) as client:
        client.list_endpoints()
        client.list_endpoints()
    assert seen == ["request 0", "slept", "request 2"] and slept[0] == pytest.approx(9.0, abs=0.5)


def test_problem_details_and_the_request_id_reach_the_message(client):
    from runpod_jupyter.api import ApiError

    with pytest.raises(ApiError) as caught:
        client.save_endpoint(EndpointSpec(name="", image="local:/nowhere", gpu_ids=("ADA_24",)))
    text = str(caught.value)
    assert caught.value.status == 422 and "name" in text and "request id " in text


def test_job_base_comes_from_request_urls():
    urls = {"run": "https://api.runpod.ai/v2/abc123/run"}
    assert job_base(urls, "abc123") == "https://api.runpod.ai/v2"
    assert job_base({"run": "https://elsewhere/x/run"}, "abc123") is None and job_base({}, "abc123") is None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_v2_tells_workers_releases_stock_logs_and_where_jobs_go(client, local_runpod, tmp_path):
    spec, _api = deploy(client, tmp_path, PRINTING, workers_max=1)
    fetched = client.get_endpoint(spec.id)
    # Jobs go where requestUrls point, even when the configured job base is wrong.
    broken = Settings(backend="local", rest_base=f"http://127.0.0.1:{_closed_port()}/v2",
                      graphql_url=local_runpod.graphql_url, api_key=local_runpod.settings().api_key)
    with Client(broken) as elsewhere:
        state = elsewhere.endpoint(spec.id, request_urls=fetched.request_urls).runsync({"n": 7}, wait_ms=30_000)
    assert state.output == {"ok": True}

    workers = client.workers(spec.id)
    assert workers.endpoint_version is not None and len(workers.workers) == 1
    [worker] = workers.workers
    assert worker.status in ("IDLE", "RUNNING") and not worker.is_stale and workers.counts().total == 1

    # A worker busy with a job when a new release lands stays on the old one until the job ends.
    busy = client.endpoint(spec.id).run({"n": 8, "sleep": 4})
    wait_for(lambda: client.endpoint(spec.id).status(busy.id).status.value == "IN_PROGRESS", what="the job to start")
    client.save_endpoint(fetched.with_changes(env={"MODE": "two"}))
    releases = client.releases(spec.id)
    assert releases.latest is not None and "env" in releases.latest.fields
    assert releases.endpoint_version == releases.latest.version
    rollout = releases.rollout
    assert rollout.in_progress and rollout.workers_on_latest < rollout.workers_total
    assert releases.summary() == (
        f"{rollout.workers_on_latest} of {rollout.workers_total} workers on release {releases.endpoint_version}")
    [stale] = client.workers(spec.id).stale
    assert stale.id == worker.id and stale.state == "running"

    stock = client.gpu_stock()
    assert stock.get("ADA_24") in ("HIGH", "MEDIUM", "LOW", "NONE")

    lines = list(client.worker_logs(spec.id, worker.id, tail=200, idle=0.5))
    assert any(line.line.endswith("handled 7") or "handled 7" in line.line for line in lines)
    assert all(line.worker_id == worker.id and line.id for line in lines)
    assert local_runpod.api_key.reveal() not in json.dumps([line.line for line in lines])
    client.delete_endpoint(spec.id)


def test_event_streams_are_read_as_the_document_shows_them():
    stream = [
        ": keepalive", "",
        "id: 2026-06-01T12:05:04Z/000000000042",
        'data: {"ts":"2026-06-01T12:05:04Z","source":"container","line":"Worker ready."}', "",
        "id: 2026-06-01T12:05:05Z/000000000043", "data: not json", "",
        'data: {"ts":"2026-06-01T12:05:06Z","source":"system","line":"exited"}',
    ]
    events = list(parse_sse(stream, "w1"))
    assert [(e.id, e.source, e.line) for e in events] == [
        ("2026-06-01T12:05:04Z/000000000042", "container", "Worker ready."),
        ("2026-06-01T12:05:06Z", "system", "exited"),
    ]
    assert events[0].time == pytest.approx(1780315504.0)


def test_what_the_client_sends_to_v2_conforms_to_runpods_document(local_runpod, tmp_path):
    """Every management request of a deploy's life (create, read, update, workers, releases,
    catalog, templates, registries, delete) and its answer, checked against the document."""
    from v2_contract import CheckedTransport

    from runpod_jupyter.api import TemplateSpec

    transport = CheckedTransport()
    with Client(local_runpod.settings(), transport=transport) as client:
        template = client.save_template(TemplateSpec(name="contract", image_name=f"local:{tmp_path}", env={"A": "1"}))
        spec = client.save_endpoint(EndpointSpec(name="contract", template_id=template.id, gpu_ids=("ADA_24",),
                                                 workers_max=0, execution_timeout_ms=60_000))
        own = client.save_endpoint(EndpointSpec(name="contract-own", image=f"local:{tmp_path}", env={"B": "2"},
                                                gpu_ids=("ADA_24", "AMPERE_24"), workers_max=0, scaler_type="REQUEST_COUNT",
                                                scaler_value=3, container_disk_gb=25))
        client.save_endpoint(client.get_endpoint(own.saved_id).with_changes(workers_max=1, env={}))
        assert [e.name for e in client.list_endpoints() if e.name.startswith("contract")] == ["contract", "contract-own"]
        client.workers(spec.saved_id), client.releases(spec.saved_id), client.gpu_stock()
        auth = client.save_registry_auth("contract-login", "me", "pw-not-shown-1")
        assert auth in client.list_registry_auths()
        client.delete_registry_auth(auth.id)
        client.serverless_billing(bucketSize="day")
        for endpoint in (spec, own):
            client.delete_endpoint(endpoint.saved_id)
        client.delete_template(template.id)
    methods = {m for m, _ in transport.checked}
    assert methods == {"GET", "POST", "PATCH", "DELETE"} and len(transport.checked) >= 15
