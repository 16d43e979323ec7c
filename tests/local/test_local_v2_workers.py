"""REST v2's workers, releases and live worker logs on the embedded RunPod: real SDK workers,
every answer checked against RunPod's OpenAPI document."""

from __future__ import annotations

import contextlib
import json
import time
import uuid

import httpx
import pytest
from support import embedded_runpod, wait_for, worker_project
from v2_contract import call, spec

from runpod_jupyter.api import Client, EndpointSpec, TemplateSpec

PRINTER = """
    import time
    import runpod

    def handler(job):
        data = job["input"]
        for i in range(data.get("lines", 0)):
            print(f"{data['tag']} line {i}", flush=True)
        time.sleep(data.get("sleep", 0))
        return "ok"

    runpod.serverless.start({"handler": handler})
"""


def _ok(response: httpx.Response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json()


def _deploy(instance, root, **settings):
    """A template and endpoint of the printing handler, through GraphQL; (client, endpoint id)."""
    project = worker_project(root, PRINTER)
    name = f"w-{uuid.uuid4().hex[:8]}"
    client = Client(instance.settings())
    template = client.save_template(TemplateSpec(name=name, image_name=f"local:{project}"))
    ep = client.save_endpoint(EndpointSpec(name=name, template_id=template.id, gpu_ids=("ADA_24",), **settings))
    return client, ep.id, template.id


def _workers(instance, ep_id):
    return _ok(call(instance, "GET", f"/v2/serverless/{ep_id}/workers"))


def _events(instance, path: str, *, until, headers=None, timeout: float = 30.0) -> list[dict]:
    """Read SSE events from ``path`` until ``until(events)`` is true or the stream ends; the answer
    is checked against the document."""
    from openapi_core.testing import MockRequest, MockResponse

    sent = {"Authorization": f"Bearer {instance.api_key.reveal()}", **(headers or {})}
    events: list[dict] = []
    raw = b""
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", f"{instance.url}{path}", headers=sent, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers.get("x-request-id") and response.headers.get("RateLimit")
        headers_seen = dict(response.headers)
        buffer = ""
        with contextlib.suppress(httpx.ReadTimeout):  # nothing more within the timeout
            for chunk in response.iter_text():
                raw += chunk.encode()
                buffer += chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
                    if "data" in fields:
                        events.append({"id": fields.get("id"), **json.loads(fields["data"])})
                if until(events) or time.monotonic() > deadline:
                    break
    request = MockRequest("https://api.runpod.io", "get", path.partition("?")[0], headers=sent,
                          args=dict(httpx.URL(path).params))
    if raw:  # (an empty body is no event stream to check)
        spec().validate_response(request, MockResponse(raw.decode(), status_code=200, headers=headers_seen,
                                                       content_type=headers_seen["content-type"]))
    return events


def _seq(event_id: str) -> int:
    ts, _, seq = event_id.partition("/")
    assert ts.endswith("Z") and len(seq) == 12
    return int(seq)


# -- releases (no workers: the endpoints keep workersMax 0) ---------------------------------------
def test_releases_record_graphql_and_v2_changes_and_survive_a_restart(tmp_path):
    with embedded_runpod(tmp_path) as instance:
        client, ep_id, template_id = _deploy(instance, tmp_path, workers_max=0)
        with client:  # GraphQL saveEndpoint with an id: a release
            client.save_endpoint(EndpointSpec(id=ep_id, name=f"renamed-{ep_id}", template_id=template_id,
                                              gpu_ids=("ADA_24", "AMPERE_24"), workers_max=0))
        _ok(call(instance, "PATCH", f"/v2/serverless/{ep_id}", {"env": {"MODE": "live"}, "workers": {"idleTimeout": 9}}))
        first = _ok(call(instance, "GET", f"/v2/serverless/{ep_id}/releases"))
    assert first["endpointVersion"] == 3
    assert [r["version"] for r in first["releases"]] == [3, 2, 1]
    assert first["rollout"] == {"inProgress": False, "workersOnLatest": 0, "workersTotal": 0, "percentOnLatest": 0}
    newest, middle, oldest = first["releases"]
    assert {d["field"]: (d["old"], d["new"]) for d in newest["diff"]} == {
        "env": ({}, {"MODE": "live"}), "workers.idleTimeout": (5, 9),
    }
    assert {d["field"] for d in middle["diff"]} == {"name", "gpu.pools"}
    assert [d for d in middle["diff"] if d["field"] == "gpu.pools"][0]["new"] == ["ADA_24", "AMPERE_24"]
    assert oldest["diff"] == [] and all(r["source"] == "MANUAL" and r["workerCount"] == 0 for r in first["releases"])
    assert len({r["id"] for r in first["releases"]}) == 3
    with embedded_runpod(tmp_path) as instance:  # the same data dir: the history is kept
        again = _ok(call(instance, "GET", f"/v2/serverless/{ep_id}/releases"))
        assert again == first
        missing = call(instance, "GET", "/v2/serverless/nope/releases")
        assert missing.status_code == 404


def test_unknown_worker_or_endpoint_is_a_404_problem(local_runpod, tmp_path):
    client, ep_id, _ = _deploy(local_runpod, tmp_path, workers_max=0)
    client.close()
    for path in (f"/v2/serverless/{ep_id}/workers/nope/logs", "/v2/serverless/nope/workers/x/logs",
                 "/v2/serverless/nope/workers"):
        refused = call(local_runpod, "GET", path)
        assert refused.status_code == 404 and refused.headers["content-type"].startswith("application/problem+json")
    bad = call(local_runpod, "GET", f"/v2/serverless/{ep_id}/workers/nope/logs?tail=9000", check_request=False)
    assert bad.status_code == 400 and "tail" in bad.json()["detail"]
    assert _workers(local_runpod, ep_id) == {
        "workers": [], "endpointVersion": 1,
        "summary": {"running": 0, "idle": 0, "initializing": 0, "throttled": 0, "unhealthy": 0, "total": 0},
    }


# -- real workers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def printer(local_runpod, tmp_path_factory):
    """An endpoint of the printing handler with one always-on worker, idle: (client, endpoint id, worker id)."""
    client, ep_id, _ = _deploy(local_runpod, tmp_path_factory.mktemp("printer"), workers_min=1, workers_max=1)
    listed = wait_for(lambda: [w for w in _workers(local_runpod, ep_id)["workers"] if w["status"] == "IDLE"],
                      timeout=90, what="an idle worker")
    yield client, ep_id, listed[0]["id"]
    client.close()


@pytest.mark.slow  # starts workers
def test_workers_list_a_real_worker(local_runpod, printer):
    _, ep_id, worker_id = printer
    answer = _workers(local_runpod, ep_id)
    (worker,) = answer["workers"]
    assert answer["endpointVersion"] == 1 and worker["id"] == worker_id
    assert worker["status"] == "IDLE" and worker["isStale"] is False and worker["version"] == 1
    assert worker["gpuCount"] == 1 and worker["gpuTypeId"] == "ADA_24" and worker["image"].startswith("local:")
    assert worker["uptimeSeconds"] >= 0 and worker["startedAt"].endswith("Z")
    assert answer["summary"] == {"running": 0, "idle": 1, "initializing": 0, "throttled": 0, "unhealthy": 0, "total": 1}


@pytest.mark.slow  # starts workers
def test_logs_stream_a_handler_print_with_distinct_increasing_ids(local_runpod, printer):
    client, ep_id, worker_id = printer
    tag = uuid.uuid4().hex[:8]
    client.endpoint(ep_id).run({"tag": tag, "lines": 40})
    path = f"/v2/serverless/{ep_id}/workers/{worker_id}/logs?tail=5000"
    events = _events(local_runpod, path, until=lambda ev: any(f"{tag} line 39" in e["line"] for e in ev))
    mine = [e for e in events if tag in e["line"]]
    assert [e["line"] for e in mine] == [f"{tag} line {i}" for i in range(40)]
    assert all(e["source"] == "container" and e["id"].startswith(e["ts"] + "/") for e in mine)
    seqs = [_seq(e["id"]) for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len({e["ts"] for e in mine}) < len(mine)  # several lines in one second, ids still distinct

    # Resuming after the 10th line gives exactly the lines after it, none lost or repeated.
    cut = mine[9]["id"]
    resumed = _events(local_runpod, f"/v2/serverless/{ep_id}/workers/{worker_id}/logs",
                      headers={"Last-Event-ID": cut}, until=lambda ev: any(f"{tag} line 39" in e["line"] for e in ev))
    assert [e["line"] for e in resumed if tag in e["line"]] == [f"{tag} line {i}" for i in range(10, 40)]
    assert _seq(resumed[0]["id"]) == _seq(cut) + 1

    # tail backfills that many lines; a live line arrives after it.
    tail = _events(local_runpod, f"/v2/serverless/{ep_id}/workers/{worker_id}/logs?tail=3&source=container",
                   until=lambda ev: len(ev) >= 3, timeout=10)
    seqs = [_seq(e["id"]) for e in tail]
    assert len(tail) == 3 and all(e["source"] == "container" for e in tail) and seqs == sorted(seqs)
    assert seqs[-1] >= _seq(mine[-1]["id"])  # the newest lines, not the oldest
    live_tag = uuid.uuid4().hex[:8]
    client.endpoint(ep_id).run({"tag": live_tag, "lines": 1})
    live = _events(local_runpod, f"/v2/serverless/{ep_id}/workers/{worker_id}/logs?tail=0",
                   until=lambda ev: any(live_tag in e["line"] for e in ev))
    assert all(tag not in e["line"] for e in live) and any(live_tag in e["line"] for e in live)

    # source=system: only the embedded RunPod's own lines (the start); since: from a time on.
    system = _events(local_runpod, f"/v2/serverless/{ep_id}/workers/{worker_id}/logs?source=system",
                     until=lambda ev: len(ev) >= 1, timeout=5)
    assert system and all(e["source"] == "system" for e in system) and "started" in system[0]["line"]
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert _events(local_runpod, f"/v2/serverless/{ep_id}/workers/{worker_id}/logs?since={future}",
                   until=lambda ev: False, timeout=2) == []
    since = _events(local_runpod, f"/v2/serverless/{ep_id}/workers/{worker_id}/logs?since=2000-01-01T00:00:00Z",
                    until=lambda ev: any(live_tag in e["line"] for e in ev))
    assert since[0]["source"] == "system" and any(f"{tag} line 0" == e["line"] for e in since)


@pytest.mark.slow  # starts workers
def test_stale_worker_and_rollout_after_a_patch_then_its_stream_ends(local_runpod, printer):
    client, ep_id, worker_id = printer
    tag = uuid.uuid4().hex[:8]
    client.endpoint(ep_id).run({"tag": tag, "lines": 1, "sleep": 6})
    wait_for(lambda: [w for w in _workers(local_runpod, ep_id)["workers"] if w["status"] == "RUNNING"],
             timeout=30, what="the worker running the job")
    _ok(call(local_runpod, "PATCH", f"/v2/serverless/{ep_id}", {"env": {"MODE": "v2"}}))
    answer = _workers(local_runpod, ep_id)
    old = [w for w in answer["workers"] if w["id"] == worker_id]
    assert answer["endpointVersion"] == 2
    assert old and old[0]["isStale"] is True and old[0]["version"] == 1 and old[0]["status"] == "RUNNING"
    releases = _ok(call(local_runpod, "GET", f"/v2/serverless/{ep_id}/releases"))
    rollout = releases["rollout"]
    on_latest = sum(1 for w in answer["workers"] if not w["isStale"])
    assert rollout["inProgress"] is True and rollout["workersTotal"] >= 1
    assert rollout["percentOnLatest"] == round(100 * rollout["workersOnLatest"] / rollout["workersTotal"])
    assert rollout["workersOnLatest"] in (on_latest, on_latest + 1)
    assert releases["releases"][0]["diff"] == [{"field": "env", "old": {}, "new": {"MODE": "v2"}}]
    # The old worker finishes its job and leaves: its stream ends on its own, with its exit.
    response = call(local_runpod, "GET", f"/v2/serverless/{ep_id}/workers/{worker_id}/logs?source=system")
    assert response.status_code == 200
    lines = [json.loads(line[6:])["line"] for line in response.text.splitlines() if line.startswith("data: ")]
    assert any("exited" in line for line in lines)
    assert worker_id not in [w["id"] for w in _workers(local_runpod, ep_id)["workers"]]
