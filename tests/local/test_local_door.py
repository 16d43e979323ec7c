"""The embedded RunPod's front door: bad input is refused with a 400 (401 for a bad key) that
says what is wrong, never a 500, and nothing one request sends can stop the clock that times out,
scales and bills every other endpoint's jobs."""

from __future__ import annotations

import time

import httpx
import pytest
from support import add_endpoint, add_worker, deploy, embedded_runpod, engine_on_disk, final, local_get, wait_for

from runpod_jupyter.api import JobStatus

ECHO = """
import runpod
runpod.serverless.start({"handler": lambda job: job["input"]})
"""

IDLE = """
import runpod
runpod.serverless.start({"handler": lambda job: None})
"""


def _headers(instance) -> dict[str, str]:
    return {"Authorization": f"Bearer {instance.api_key.reveal()}"}


def _post(instance, path: str, content: bytes | str) -> httpx.Response:
    body = content.encode() if isinstance(content, str) else content
    return httpx.post(f"{instance.url}{path}", content=body, headers=_headers(instance), timeout=30)


def _clock_runs(instance, endpoint_id: str) -> None:
    """The clock still times out a job on ``endpoint_id`` (which has no workers)."""
    submitted = _post(instance, f"/v2/{endpoint_id}/run", '{"input": {}, "policy": {"ttl": 300}}')
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["id"]

    def status() -> str | None:
        found = httpx.get(f"{instance.rest_base}/{endpoint_id}/status/{job_id}", headers=_headers(instance))
        return found.json()["status"] if found.json()["status"] == "TIMED_OUT" else None

    wait_for(status, timeout=20, what="a job with a 300 ms ttl to time out")


@pytest.fixture(scope="module")
def queues(local_runpod, tmp_path_factory):
    """Two endpoints without workers: one for bad input, one to watch the clock on."""
    from runpod_jupyter.api import Client

    root = tmp_path_factory.mktemp("door")
    with Client(local_runpod.settings()) as client:
        bad, _ = deploy(client, root, IDLE, wait_idle=False, workers_max=0)
        watched, _ = deploy(client, root, IDLE, wait_idle=False, workers_max=0)
    return bad.id, watched.id


BAD_POLICIES = [
    '{"ttl": -1e400}', '{"ttl": "abc"}', '{"ttl": []}', '{"ttl": {}}', '{"ttl": -5}', '{"ttl": true}',
    '{"executionTimeout": "abc"}', '{"executionTimeout": []}', '{"executionTimeout": {}}',
    '{"executionTimeout": 1e400}', '{"executionTimeout": -1}', '{"lowPriority": "yes"}', '[1]',
]


def test_bad_policies_are_refused_and_the_clock_keeps_running(local_runpod, queues):
    bad, watched = queues
    for policy in BAD_POLICIES:
        answer = _post(local_runpod, f"/v2/{bad}/run", f'{{"input": {{}}, "policy": {policy}}}')
        assert answer.status_code == 400, (policy, answer.text)
        error = answer.json()["error"]
        assert "policy" in error.lower() or "json" in error.lower(), error
    _clock_runs(local_runpod, watched)


@pytest.mark.parametrize("policy, kept", [
    ('{"ttl": 60000, "executionTimeout": 5000, "lowPriority": true}',
     {"ttl": 60000, "executionTimeout": 5000, "lowPriority": True}),
    ('{"ttl": 60000.5, "executionTimeout": 0}', {"ttl": 60000.5, "executionTimeout": 0}),
    ('{"ttl": "60000", "executionTimeout": null, "lowPriority": false}',
     {"ttl": 60000, "executionTimeout": None, "lowPriority": False}),
    ("null", {}),
    ("{}", {}),
])
def test_every_valid_policy_form_is_still_accepted(local_runpod, queues, policy, kept):
    bad, _ = queues
    answer = _post(local_runpod, f"/v2/{bad}/run", f'{{"input": {{}}, "policy": {policy}}}')
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["id"]
    assert local_get(local_runpod, f"/local/jobs/{job_id}")["policy"] == kept
    httpx.post(f"{local_runpod.rest_base}/{bad}/cancel/{job_id}", headers=_headers(local_runpod))


def test_a_job_whose_policy_cannot_be_applied_does_not_stop_the_others(tmp_path):
    engine = engine_on_disk(tmp_path)
    broken, other = add_endpoint(engine, "ep-broken"), add_endpoint(engine, "ep-other")
    bad = engine.queue.submit(broken, {"input": {}}, "run")
    bad.policy["ttl"] = "abc"  # what a store written before policies were checked may hold
    good = engine.queue.submit(other, {"input": {}, "policy": {"ttl": 0}}, "run")
    time.sleep(0.01)
    engine.tick()
    assert good.status is JobStatus.TIMED_OUT
    assert bad.status is JobStatus.FAILED and "policy" in bad.reason


def test_a_store_holding_a_bad_policy_loads_and_its_clock_runs(tmp_path):
    engine = engine_on_disk(tmp_path / "data")
    broken = add_endpoint(engine, "ep-broken")
    add_endpoint(engine, "ep-other")
    kept = engine.queue.submit(broken, {"input": {}, "policy": {"ttl": float("-inf"), "lowPriority": True}}, "run")
    engine.queue.submit(broken, {"input": {}, "policy": {"executionTimeout": "abc"}}, "run")
    engine.store.close()

    with embedded_runpod(tmp_path) as instance:
        _clock_runs(instance, "ep-other")
        job = local_get(instance, f"/local/jobs/{kept.id}")
        assert job["status"] == "IN_QUEUE" and job["policy"] == {"lowPriority": True}
        assert any("ttl" in str(event) for event in job["events"])


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_bad_bodies_and_parameters_are_4xx_never_500(local_runpod, queues):
    bad, watched = queues
    deep = f'{{"input": {_deep(5000)}}}'
    for route in (f"/v2/{bad}/run", f"/v2/{bad}/runsync"):
        answer = _post(local_runpod, route, deep)
        assert answer.status_code == 400 and "nested" in answer.json()["error"], answer.text
    graphql = _post(local_runpod, "/graphql", f'{{"query": "{{ myself {{ id }} }}", "variables": {_deep(5000)}}}')
    assert graphql.status_code == 400 and "nested" in graphql.json()["errors"][0]["message"]
    listed = _post(local_runpod, "/graphql", '{"query": "{ myself { id } }", "variables": [1]}')
    assert listed.status_code == 400 and "variables" in listed.json()["errors"][0]["message"]

    for constant in ("NaN", "Infinity", "-Infinity", "1e400"):
        answer = _post(local_runpod, f"/v2/{bad}/run", f'{{"input": {{"x": {constant}}}}}')
        assert answer.status_code == 400 and "JSON" in answer.json()["error"], (constant, answer.text)

    for route in ("/local/account", "/local/gpus"):
        answer = _post(local_runpod, route, b"this is not json")
        assert answer.status_code == 400 and "error" in answer.json(), (route, answer.text)
    assert _post(local_runpod, "/local/account", '{"balance": 1' + "0" * 400 + "}").status_code == 400

    huge = httpx.get(f"{local_runpod.url}/local/jobs", params={"limit": "9" * 30}, headers=_headers(local_runpod))
    assert huge.status_code == 200, huge.text
    for value in ("9" * 5000, "abc"):
        answer = httpx.get(f"{local_runpod.url}/local/jobs", params={"limit": value}, headers=_headers(local_runpod))
        assert answer.status_code == 400 and "limit" in answer.json()["error"], answer.text
        logs = httpx.get(f"{local_runpod.url}/local/logs", params={"limit": value}, headers=_headers(local_runpod))
        assert logs.status_code == 400, logs.text

    for key in (b"Bearer \xff\xfe\xfd", b"\xc3\x28"):
        answer = httpx.get(f"{local_runpod.rest_base}/{bad}/health", headers={"Authorization": key})
        assert answer.status_code == 401, answer.text
    _clock_runs(local_runpod, watched)


def test_save_endpoint_refuses_a_negative_execution_timeout(client, queues):
    bad, _ = queues
    mutation = "mutation($input: EndpointInput) { saveEndpoint(input: $input) { id executionTimeoutMs } }"
    answer = httpx.post(
        client.settings.graphql_url, headers={"Authorization": f"Bearer {client.settings.api_key.reveal()}"},
        json={"query": mutation, "variables": {"input": {"id": bad, "executionTimeoutMs": -1}}},
    )
    assert answer.status_code == 200
    errors = answer.json()["errors"]
    assert "executionTimeoutMs" in errors[0]["message"]
    accepted = httpx.post(
        client.settings.graphql_url, headers={"Authorization": f"Bearer {client.settings.api_key.reveal()}"},
        json={"query": mutation, "variables": {"input": {"id": bad, "executionTimeoutMs": 600000}}},
    )
    assert accepted.json()["data"]["saveEndpoint"]["executionTimeoutMs"] == 600000


# -- what a worker is given, and what it cannot give back ------------------------------------------

SURROGATE_OUT = """
import runpod
runpod.serverless.start({"handler": lambda job: {"text": "bad \\ud800 text"}})
"""

BROKEN_POST = """
import os, time, urllib.request, runpod
def handler(job):
    url = os.environ["RUNPOD_WEBHOOK_POST_OUTPUT"].replace("$RUNPOD_POD_ID", os.environ["RUNPOD_POD_ID"])
    url = url.replace("$ID", job["id"])
    request = urllib.request.Request(url, data=b'{"output": NaN}', method="POST",
                                     headers={"Authorization": os.environ["RUNPOD_AI_API_KEY"]})
    try:
        urllib.request.urlopen(request, timeout=10)
    except Exception as exc:
        print("refused:", exc)
    time.sleep(30)
    return "too late"
runpod.serverless.start({"handler": handler})
"""


def test_a_job_its_worker_let_go_of_fails_after_two_heartbeats_whatever_other_workers_say(tmp_path):
    engine = engine_on_disk(tmp_path)
    ep = add_endpoint(engine, "ep-held")
    first, second = add_worker(engine, ep, "w-first"), add_worker(engine, ep, "w-second")
    kept = engine.queue.submit(ep, {"input": 1}, "run")
    engine.worker_api.assign(ep, first)
    dropped = engine.queue.submit(ep, {"input": 2}, "run")
    engine.worker_api.assign(ep, second)
    engine.worker_api.ping(first.id, {"job_id": kept.id})
    engine.worker_api.ping(second.id, {})  # one heartbeat may leave out a job the worker just took
    engine.worker_api.ping(first.id, {"job_id": kept.id})
    assert dropped.status is JobStatus.IN_PROGRESS
    engine.worker_api.ping(second.id, {})
    assert dropped.status is JobStatus.FAILED and "result" in dropped.reason
    assert kept.status is JobStatus.IN_PROGRESS and dropped.id not in second.jobs


@pytest.mark.slow
def test_a_lone_surrogate_in_the_input_reaches_the_worker_as_a_replacement_character(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, ECHO, workers_max=1)
    answer = _post(local_runpod, f"/v2/{spec.id}/run", b'{"input": {"text": "a \\ud800 b", "\\udc00": 1}}')
    assert answer.status_code == 200, answer.text
    done = final(ep, answer.json()["id"], timeout=60)
    assert done.status is JobStatus.COMPLETED
    assert done.output == {"text": "a \ufffd b", "\ufffd": 1}


@pytest.mark.slow
def test_a_result_the_worker_cannot_post_fails_the_job_promptly(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, SURROGATE_OUT, workers_max=1)
    started = time.monotonic()
    job = ep.run({})
    done = final(ep, job.id, timeout=40)
    assert done.status is JobStatus.FAILED
    assert time.monotonic() - started < 30
    reason = local_get(local_runpod, f"/local/jobs/{job.id}")["reason"]
    assert "result" in reason, reason
    # The worker is free again: the next job runs (and fails the same way, promptly).
    assert final(ep, ep.run({}).id, timeout=40).status is JobStatus.FAILED


@pytest.mark.slow
def test_a_result_that_is_not_json_fails_the_job_with_the_reason(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, BROKEN_POST, workers_max=1)
    job = ep.run({})
    done = final(ep, job.id, timeout=25)
    assert done.status is JobStatus.FAILED
    detail = local_get(local_runpod, f"/local/jobs/{job.id}")
    assert "could not be read" in detail["reason"], detail["reason"]
