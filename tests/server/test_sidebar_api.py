"""The sidebar's REST API: authentication, every route's answer and refusals, key hygiene."""

from __future__ import annotations

import pytest
from support import deploy, final, local_get, wait_for

from runpod_jupyter import journal
from runpod_jupyter.api import Client, JobStatus

ECHO = """
import runpod
def handler(job):
    print("handling", job["id"], job["input"], flush=True)
    return {"echo": job["input"]}
runpod.serverless.start({"handler": handler})
"""

ROUTES = [
    ("GET", "overview"), ("GET", "jobs/abc"), ("POST", "jobs/abc/cancel"), ("GET", "gpu-types"),
    ("GET", "logs"), ("DELETE", "endpoints/local/abc"), ("POST", "endpoints/local/abc/purge-queue"),
    ("POST", "endpoints/local/abc/scale"), ("GET", "endpoints/local/abc/diagnosis"), ("POST", "local/start"),
    ("GET", "no/such/route"),
]


@pytest.fixture(scope="module")
def local_client(local_runpod):
    with Client(local_runpod.settings()) as api:
        yield api


@pytest.fixture(scope="module")
def echo(local_client, tmp_path_factory):
    """A local endpoint with one idle worker that echoes its input."""
    spec, _ = deploy(local_client, tmp_path_factory.mktemp("echo"), ECHO, workers_max=1, idle_timeout=300)
    return spec


@pytest.fixture()
def parked(local_client, tmp_path):
    """A local endpoint that cannot start workers (workersMax 0): its jobs stay queued."""
    spec, _ = deploy(local_client, tmp_path, ECHO, wait_idle=False, workers_max=0)
    return spec


def run_journaled(client, spec, payload, *, backend="local"):
    """Submit a job the way a notebook does: through the API, recorded in the journal."""
    job = client.endpoint(spec.id).run(payload)
    journal.shared().record_submit(job.id, endpoint_id=spec.id, endpoint_name=spec.name, backend=backend, payload=payload)
    return job


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_refuses_requests_without_a_token(api, method, path):
    code, body = await api.call(method, path, headers={"Authorization": ""}, body=b"{}" if method == "POST" else None)
    assert code == 403


async def test_unknown_route_is_a_json_404(api):
    code, body = await api.get("no/such/route")
    assert code == 404 and "No such runpod-jupyter route" in body["message"]


@pytest.mark.slow
async def test_snapshot_shows_local_endpoint_workers_account_and_journal(api, echo, local_client):
    job = run_journaled(local_client, echo, {"n": 1})
    final(local_client.endpoint(echo.id), job.id)
    code, view = await api.get("overview")
    assert code == 200
    local, cloud = view["backends"]
    assert local["name"] == "local" and local["state"] == "ok"
    assert local["account"]["balance"] > 0 and local["account"]["spendPerHour"] >= 0
    row = next(e for e in local["endpoints"] if e["id"] == echo.id)
    assert row["backend"] == "local" and row["name"] == echo.name
    assert row["health"]["workers"]["idle"] == 1 and row["health"]["jobs"]["completed"] >= 1
    assert [w["state"] for w in row["workers"]] == ["idle"]
    assert row["gpuPools"][0]["id"] == "ADA_24" and row["gpuPools"][0]["pricePerHour"] > 0
    assert row["findings"] == []
    assert cloud == {**cloud, "name": "cloud", "state": "off", "endpoints": []}
    assert "RUNPOD_API_KEY" in cloud["hint"]
    entry = next(j for j in view["jobs"] if j["id"] == job.id)
    # The journal had the job IN_QUEUE; the overview brought it up to date.
    assert entry["status"] == "COMPLETED" and entry["endpointId"] == echo.id


@pytest.mark.slow
async def test_snapshot_shows_cloud_backend_through_the_sdk_variables(api, cloud_env, echo, tmp_path):
    with Client(backend="cloud") as cloud:
        spec, _ = deploy(cloud, tmp_path, ECHO, wait_idle=False, workers_max=0)
        queued = cloud.endpoint(spec.id).run({"x": 1})
    code, view = await api.get("overview")
    assert code == 200
    local, cloud_view = view["backends"]
    assert local["state"] == "ok" and cloud_view["state"] == "ok"
    row = next(e for e in cloud_view["endpoints"] if e["id"] == spec.id)
    assert row["backend"] == "cloud" and row["workers"] is None
    # No worker ever registered: health answers "Not Found", as on RunPod, so the queue is unknown.
    assert row["health"]["registered"] is False and row["health"]["jobs"]["inQueue"] == 0
    assert [f["code"] for f in row["findings"]] == ["no-worker-yet"] and "workersMax is 0" in row["findings"][0]["fix"]
    assert "max=1" in row["findings"][0]["fix"]
    assert queued.status is JobStatus.IN_QUEUE


async def test_one_backend_failing_does_not_fail_the_snapshot(api, monkeypatch, echo):
    monkeypatch.setenv("RUNPOD_API_KEY", "some-key-that-goes-nowhere")
    monkeypatch.setenv("RUNPOD_API_BASE_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", "http://127.0.0.1:9/v2")
    code, view = await api.get("overview")
    local, cloud = view["backends"]
    assert code == 200 and local["state"] == "ok" and any(e["id"] == echo.id for e in local["endpoints"])
    assert cloud["state"] == "error" and cloud["message"]
    assert "some-key-that-goes-nowhere" not in str(view)


@pytest.fixture()
def long_ttl(sidebar_options):
    sidebar_options["overview_ttl"] = 60.0


async def test_open_tabs_share_one_snapshot_until_an_action(long_ttl, api, parked):
    import asyncio

    answers = await asyncio.gather(*(api.get("overview") for _ in range(4)))
    stamps = {view["generatedAt"] for _, view in answers}
    assert len(stamps) == 1  # four tabs at once: one collection
    _, again = await api.get("overview")
    assert again["generatedAt"] in stamps  # reused within the TTL
    _, fresh = await api.get("overview", fresh="1")
    assert fresh["generatedAt"] not in stamps
    await api.post(f"endpoints/local/{parked.id}/purge-queue")
    _, after = await api.get("overview")
    assert after["generatedAt"] > fresh["generatedAt"]  # an action invalidates it


async def test_local_off_offers_start(local_off, api):
    code, view = await api.get("overview")
    assert code == 200
    local = view["backends"][0]
    assert local["state"] == "off" and local["canStart"] is True and local["endpoints"] == []


@pytest.mark.slow
async def test_local_start_starts_the_embedded_runpod_once(local_off, api):
    from runpod_jupyter import embedded

    state_file = local_off
    try:
        code, body = await api.post("local/start")
        assert (code, body) == (200, {"running": True, "started": True})
        assert embedded.find(state_file) is not None
        code, body = await api.post("local/start")
        assert (code, body) == (200, {"running": True, "started": False})
        code, view = await api.get("overview")
        assert view["backends"][0]["state"] == "ok"
    finally:
        embedded.stop(state_file=state_file)


async def test_job_detail_has_status_journal_and_timeline(api, echo, local_client):
    job = run_journaled(local_client, echo, {"hello": "world"})
    final(local_client.endpoint(echo.id), job.id)
    code, detail = await api.get(f"jobs/{job.id}")
    assert code == 200
    assert detail["backend"] == "local" and detail["endpointId"] == echo.id
    assert detail["job"]["status"] == "COMPLETED" and detail["job"]["output"] == {"echo": {"hello": "world"}}
    assert detail["journal"]["status"] == "COMPLETED" and detail["journal"]["executionMs"] is not None
    assert [event[1] for event in detail["timeline"]["events"]] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert detail["timeline"]["finishedAt"] >= detail["timeline"]["createdAt"]


async def test_job_detail_refusals(api, echo):
    code, body = await api.get("jobs/not-a-journaled-job")
    assert code == 404 and "journal" in body["message"]
    code, body = await api.get("jobs/x", backend="mars", endpoint_id=echo.id)
    assert code == 400 and "Unknown backend" in body["message"]
    code, body = await api.get("jobs/x", backend="cloud", endpoint_id=echo.id)
    assert code == 409 and "cloud" in body["message"]
    code, body = await api.get("jobs/unknown-job", backend="local", endpoint_id=echo.id)
    assert code == 200 and body["job"]["status"] == "GONE" and body["timeline"] is None


async def test_cancel_a_queued_job_and_refuse_a_finished_one(api, parked, echo, local_client):
    queued = run_journaled(local_client, parked, {"wait": True})
    code, body = await api.post(f"jobs/{queued.id}/cancel")
    assert code == 200 and body["job"]["status"] == "CANCELLED"
    assert journal.shared().get(queued.id).status == "CANCELLED"
    code, body = await api.post(f"jobs/{queued.id}/cancel")
    assert code == 409 and "already ended" in body["message"]
    code, body = await api.post("jobs/nobody-knows/cancel")
    assert code == 404
    code, body = await api.post("jobs/nobody-knows/cancel", "{not json")
    assert code == 400 and "not valid JSON" in body["message"]


async def test_gpu_types(api):
    code, body = await api.get("gpu-types")
    assert code == 200 and body["backend"] == "local"
    assert body["gpuTypes"] and {"id", "displayName", "memoryGb"} <= set(body["gpuTypes"][0])
    assert "ADA_24" in [p["id"] for p in body["pools"]]
    code, body = await api.get("gpu-types", backend="venus")
    assert code == 400
    code, body = await api.get("gpu-types", backend="cloud")
    assert code == 409 and "API key" in body["message"]


async def test_purge_queue(api, parked, local_client):
    for _ in range(3):
        run_journaled(local_client, parked, {})
    code, body = await api.post(f"endpoints/local/{parked.id}/purge-queue")
    assert code == 200 and body["removed"] == 3
    assert local_client.endpoint(parked.id).health().jobs.in_queue == 0
    code, body = await api.post("endpoints/local/no-such-endpoint/purge-queue")
    assert code == 404
    code, body = await api.post(f"endpoints/pluto/{parked.id}/purge-queue")
    assert code == 400
    code, body = await api.get(f"endpoints/local/{parked.id}/purge-queue")
    assert code == 405


@pytest.mark.slow
async def test_scale(api, parked, local_client):
    code, body = await api.post(f"endpoints/local/{parked.id}/scale", {"workersMin": 0, "workersMax": 1})
    assert code == 200 and (body["endpoint"]["workersMin"], body["endpoint"]["workersMax"]) == (0, 1)
    wait_for(lambda: local_client.endpoint(parked.id).health().workers.idle == 1, what="a worker after scaling up")
    code, body = await api.post(f"endpoints/local/{parked.id}/scale", {"workersMax": 0})
    assert code == 200 and body["endpoint"]["workersMax"] == 0
    assert local_client.get_endpoint(parked.id).workers_max == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{oops", "not valid JSON"),
        ({}, "workersMin and/or workersMax"),
        ([1, 2], "JSON object"),
        ({"workersMax": -1}, "whole number"),
        ({"workersMax": "2"}, "whole number"),
        ({"workersMax": True}, "whole number"),
        ({"workersMin": 3, "workersMax": 1}, "cannot be above"),
    ],
)
async def test_scale_refuses_bad_input(api, parked, body, words):
    code, answer = await api.post(f"endpoints/local/{parked.id}/scale", body)
    assert code == 400 and words in answer["message"]


async def test_scale_refusals_from_runpod(api, parked):
    code, body = await api.post("endpoints/local/no-such-endpoint/scale", {"workersMax": 1})
    assert code == 404
    code, body = await api.post(f"endpoints/local/{parked.id}/scale", {"workersMax": 999})
    assert code == 409 and "quota" in body["message"]


@pytest.mark.slow
async def test_delete_endpoint(api, tmp_path, local_client):
    spec, _ = deploy(local_client, tmp_path, ECHO, workers_max=1)  # carries its own image: no template
    code, body = await api.delete(f"endpoints/local/{spec.id}")
    assert code == 200 and body == {
        "deleted": spec.id, "backend": "local", "template": None, "templateDeleted": False, "templateError": None,
    }
    assert local_client.get_endpoint(spec.id) is None
    code, body = await api.delete(f"endpoints/local/{spec.id}")
    assert code == 404


async def test_logs(api, echo, local_client):
    job = run_journaled(local_client, echo, {"log": 1})
    final(local_client.endpoint(echo.id), job.id)
    code, body = await api.get("logs", endpoint_id=echo.id)
    assert code == 200 and any(f"handling {job.id}" in line["message"] for line in body["lines"])
    code, body = await api.get("logs", job_id=job.id)
    assert code == 200 and body["lines"] and all(line["job"] == job.id for line in body["lines"])
    code, body = await api.get("logs", endpoint_id=echo.id, limit=1)
    assert code == 200 and len(body["lines"]) == 1


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({}, 400, "whose logs"),
        ({"backend": "cloud", "endpoint_id": "x"}, 400, "local backend only"),
        ({"backend": "moon", "endpoint_id": "x"}, 400, "Unknown backend"),
        ({"endpoint_id": "x", "limit": "lots"}, 400, "must be a number"),
        ({"endpoint_id": "x", "limit": "0"}, 400, "from 1 to 5000"),
        ({"endpoint_id": "x", "since": "yesterday"}, 400, "must be a number"),
        ({"endpoint_id": "no-such-endpoint"}, 404, "no endpoint"),
    ],
)
async def test_logs_refusals(api, params, status, words):
    code, body = await api.get("logs", **params)
    assert code == status and words in body["message"]


async def test_logs_when_local_is_off(local_off, api):
    code, body = await api.get("logs", endpoint_id="x")
    assert code == 409 and "not running" in body["message"] and body["hint"]


async def test_diagnosis(api, parked, echo, local_client):
    run_journaled(local_client, parked, {})
    code, body = await api.get(f"endpoints/local/{parked.id}/diagnosis")
    assert code == 200 and [f["code"] for f in body["findings"]] == ["workers-max-zero"]
    assert body["findings"][0]["fix"]
    code, body = await api.get(f"endpoints/local/{echo.id}/diagnosis")
    assert code == 200 and body["findings"] == []
    code, body = await api.get("endpoints/local/no-such-endpoint/diagnosis")
    assert code == 404
    code, body = await api.post(f"endpoints/local/{echo.id}/diagnosis")
    assert code == 405


@pytest.mark.slow
async def test_keys_never_reach_the_browser(api, cloud_env, echo, local_runpod, local_client, marker_key):
    """Even when a job's input, output and logs carry the keys, the answers do not."""
    local_key = local_runpod.api_key.reveal()
    job = run_journaled(local_client, echo, {"cloud": marker_key, "local": local_key})
    final(local_client.endpoint(echo.id), job.id)
    upstream = str(local_get(local_runpod, "/local/logs", job_id=job.id)) + str(local_client.endpoint(echo.id).status(job.id))
    assert marker_key in upstream and local_key in upstream  # the keys are there to leak
    answers = [
        await api.get("overview"),
        await api.get(f"jobs/{job.id}"),
        await api.get("logs", job_id=job.id),
        await api.get("logs", endpoint_id=echo.id),
        await api.get(f"endpoints/local/{echo.id}/diagnosis"),
        await api.get("gpu-types", backend="cloud"),
        await api.get("gpu-types", backend="local"),
    ]
    assert all(code == 200 for code, _ in answers)  # `api` checked each body for both keys
    detail = answers[1][1]
    assert detail["job"]["output"] == {"echo": {"cloud": "****", "local": "****"}}
