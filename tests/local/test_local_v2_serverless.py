"""RunPod's REST v2 endpoints and templates on the embedded RunPod, over the one store GraphQL
uses; every request and answer is checked against RunPod's OpenAPI document."""

from __future__ import annotations

import uuid

import httpx
import pytest
from support import wait_for, worker_project
from v2_contract import call

from runpod_jupyter.api import EndpointSpec, TemplateSpec

GPU = {"pools": ["ADA_24"], "count": 1}
SCALING = {"type": "QUEUE_DELAY", "queueDelay": 4}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _ok(response: httpx.Response, status: int = 200):
    assert response.status_code == status, response.text
    assert response.headers.get("x-request-id") and response.headers.get("RateLimit")
    return response.json() if response.content else None


def test_endpoint_round_trip(local_runpod):
    name = _name("crud")
    body = {
        "name": name, "type": "QUEUE", "image": "local:/srv/project", "gpu": GPU, "scaling": SCALING,
        "workers": {"min": 0, "max": 2, "idleTimeout": 7}, "env": {"MODE": "test"}, "disk": 15,
        "timeout": 120000, "dataCenterIds": ["EU-RO-1"],
    }
    created = _ok(call(local_runpod, "POST", "/v2/serverless", body), 201)
    ep_id = created["id"]
    assert created["type"] == "QUEUE" and created["image"] == "local:/srv/project"
    assert created["workers"] == {"min": 0, "max": 2, "idleTimeout": 7}
    assert created["gpu"]["pools"] == ["ADA_24"] and created["scaling"] == SCALING
    assert created["env"] == {"MODE": "test"} and created["disk"] == 15 and created["timeout"] == 120000
    assert created["dataCenterIds"] == ["EU-RO-1"]
    assert created["requestUrls"]["run"] == f"{local_runpod.url}/v2/{ep_id}/run"
    assert created["requestUrls"]["retry"] == f"{local_runpod.url}/v2/{ep_id}/retry/{{job_id}}"
    assert _ok(call(local_runpod, "GET", f"/v2/serverless/{ep_id}")) == created
    assert ep_id in [e["id"] for e in _ok(call(local_runpod, "GET", "/v2/serverless"))["endpoints"]]

    patch = {"workers": {"max": 3}, "scaling": {"type": "REQUEST_COUNT", "requestCount": 2}, "env": {"MODE": "live"}}
    updated = _ok(call(local_runpod, "PATCH", f"/v2/serverless/{ep_id}", patch))
    assert updated["workers"]["max"] == 3 and updated["workers"]["min"] == 0
    assert updated["scaling"] == {"type": "REQUEST_COUNT", "requestCount": 2}
    assert updated["env"] == {"MODE": "live"} and updated["image"] == "local:/srv/project"
    release = httpx.get(f"{local_runpod.url}/local/endpoints/{ep_id}/workers",
                        headers={"Authorization": f"Bearer {local_runpod.api_key.reveal()}"}).json()["release"]
    assert release == 2  # the PATCH made a new release

    bound = [t for t in _ok(call(local_runpod, "GET", "/v2/templates"))["templates"] if t["image"] == "local:/srv/project"]
    assert len(bound) == 1  # the endpoint's own container settings live in one template
    assert _ok(call(local_runpod, "DELETE", f"/v2/serverless/{ep_id}"), 204) is None
    assert call(local_runpod, "GET", f"/v2/serverless/{ep_id}").status_code == 404
    assert call(local_runpod, "GET", f"/v2/templates/{bound[0]['id']}").status_code == 404  # deleted with it


def test_template_round_trip_and_delete_in_use(local_runpod):
    name = _name("tpl")
    body = {"name": name, "image": "local:/srv/t", "env": {"A": "1"}, "ports": ["8000/http"], "serverless": True}
    created = _ok(call(local_runpod, "POST", "/v2/templates", body), 201)
    assert created["name"] == name and created["env"] == {"A": "1"} and created["ports"] == ["8000/http"]
    assert created["serverless"] is True
    assert _ok(call(local_runpod, "GET", f"/v2/templates/{created['id']}")) == created
    updated = _ok(call(local_runpod, "PATCH", f"/v2/templates/{created['id']}", {"args": "python -u handler.py"}))
    assert updated["args"] == "python -u handler.py" and updated["image"] == "local:/srv/t"

    # An endpoint that uses it through GraphQL (which links, where v2 copies) keeps it from being
    # deleted, by name in the answer.
    import httpx

    user = _name("user")
    saved = httpx.post(local_runpod.graphql_url, headers={"Authorization": f"Bearer {local_runpod.api_key.reveal()}"}, json={
        "query": "mutation S($input: EndpointInput!) { saveEndpoint(input: $input) { id name } }",
        "variables": {"input": {"name": user, "templateId": created["id"], "gpuIds": "ADA_24", "workersMax": 0}},
    }).json()["data"]["saveEndpoint"]
    refused = call(local_runpod, "DELETE", f"/v2/templates/{created['id']}")
    assert refused.status_code == 400 and refused.headers["content-type"].startswith("application/problem+json")
    assert user in refused.json()["detail"]
    _ok(call(local_runpod, "DELETE", f"/v2/serverless/{saved['id']}"), 204)
    assert _ok(call(local_runpod, "DELETE", f"/v2/templates/{created['id']}"), 204) is None
    assert call(local_runpod, "GET", f"/v2/templates/{created['id']}").status_code == 404


def test_create_with_template_id_copies_it_once(local_runpod):
    template = _ok(call(local_runpod, "POST", "/v2/templates",
                        {"name": _name("src"), "image": "local:/srv/src", "env": {"FROM": "template"}}), 201)
    body = {"name": _name("from-tpl"), "type": "QUEUE", "templateId": template["id"], "gpu": GPU,
            "scaling": SCALING, "env": {"FROM": "body"}}
    created = _ok(call(local_runpod, "POST", "/v2/serverless", body), 201)
    assert created["image"] == "local:/srv/src" and created["env"] == {"FROM": "body"}
    _ok(call(local_runpod, "PATCH", f"/v2/templates/{template['id']}", {"image": "local:/srv/changed"}))
    assert _ok(call(local_runpod, "GET", f"/v2/serverless/{created['id']}"))["image"] == "local:/srv/src"
    _ok(call(local_runpod, "DELETE", f"/v2/templates/{template['id']}"), 204)  # not linked: free to go
    _ok(call(local_runpod, "DELETE", f"/v2/serverless/{created['id']}"), 204)


def test_graphql_and_v2_share_one_store(local_runpod, client):
    template = client.save_template(TemplateSpec(name=_name("gql"), image_name="local:/srv/gql", env={"K": "v"}))
    made = client.save_endpoint(EndpointSpec(name=_name("gql"), template_id=template.id, gpu_ids=("ADA_24",),
                                             workers_max=2))
    listed = {e["id"]: e for e in _ok(call(local_runpod, "GET", "/v2/serverless"))["endpoints"]}
    assert listed[made.id]["image"] == "local:/srv/gql" and listed[made.id]["env"] == {"K": "v"}
    assert listed[made.id]["workers"]["max"] == 2
    assert template.id in [t["id"] for t in _ok(call(local_runpod, "GET", "/v2/templates"))["templates"]]

    v2 = _ok(call(local_runpod, "POST", "/v2/serverless", {
        "name": _name("v2"), "type": "QUEUE", "image": "local:/srv/v2", "gpu": GPU, "scaling": SCALING,
    }), 201)
    seen = {e.id: e for e in client.list_endpoints()}
    assert v2["id"] in seen and seen[v2["id"]].name == v2["name"]
    client.delete_endpoint(made.id)
    client.delete_template(template.name)
    _ok(call(local_runpod, "DELETE", f"/v2/serverless/{v2['id']}"), 204)


def test_patch_of_a_graphql_endpoint_leaves_its_shared_template_alone(local_runpod, client):
    template = client.save_template(TemplateSpec(name=_name("shared"), image_name="local:/srv/shared", env={"K": "v"}))
    made = client.save_endpoint(EndpointSpec(name=_name("gql"), template_id=template.id, gpu_ids=("ADA_24",)))
    patched = _ok(call(local_runpod, "PATCH", f"/v2/serverless/{made.id}", {"env": {"K": "patched"}}))
    assert patched["env"] == {"K": "patched"} and patched["image"] == "local:/srv/shared"
    assert _ok(call(local_runpod, "GET", f"/v2/templates/{template.id}"))["env"] == {"K": "v"}
    _ok(call(local_runpod, "DELETE", f"/v2/serverless/{made.id}"), 204)
    _ok(call(local_runpod, "DELETE", f"/v2/templates/{template.id}"), 204)  # no longer used


@pytest.mark.slow  # starts workers
def test_local_image_runs_a_real_job(local_runpod, client, tmp_path):
    project = worker_project(tmp_path, """
        import runpod
        def handler(job):
            return {"double": job["input"]["n"] * 2}
        runpod.serverless.start({"handler": handler})
    """)
    created = _ok(call(local_runpod, "POST", "/v2/serverless", {
        "name": _name("run"), "type": "QUEUE", "image": f"local:{project}", "gpu": GPU, "scaling": SCALING,
        "workers": {"min": 0, "max": 1},
    }), 201)
    headers = {"Authorization": f"Bearer {local_runpod.api_key.reveal()}"}
    job = httpx.post(created["requestUrls"]["runSync"] + "?wait=120000", json={"input": {"n": 21}},
                     headers=headers, timeout=150).json()
    if job["status"] != "COMPLETED":
        url = created["requestUrls"]["status"].replace("{job_id}", job["id"])
        job = wait_for(lambda: (lambda s: s if s["status"] == "COMPLETED" else None)(
            httpx.get(url, headers=headers).json()), timeout=120, what="the job to complete")
    assert job["output"] == {"double": 42}
    _ok(call(local_runpod, "DELETE", f"/v2/serverless/{created['id']}"), 204)


@pytest.mark.slow  # starts workers
def test_retry_of_a_failed_job_runs_it_again(local_runpod, tmp_path):
    marker = tmp_path / "second-time"
    project = worker_project(tmp_path, f"""
        import os, runpod
        def handler(job):
            if not os.path.exists({str(marker)!r}):
                open({str(marker)!r}, "w").close()
                raise RuntimeError("first attempt fails")
            return {{"again": job["input"]["n"]}}
        runpod.serverless.start({{"handler": handler}})
    """)
    created = _ok(call(local_runpod, "POST", "/v2/serverless", {
        "name": _name("retry"), "type": "QUEUE", "image": f"local:{project}", "gpu": GPU, "scaling": SCALING,
        "workers": {"min": 0, "max": 1},
    }), 201)
    urls, headers = created["requestUrls"], {"Authorization": f"Bearer {local_runpod.api_key.reveal()}"}
    job_id = httpx.post(urls["run"], json={"input": {"n": 7}}, headers=headers).json()["id"]

    def status() -> dict:
        return httpx.get(urls["status"].replace("{job_id}", job_id), headers=headers).json()

    wait_for(lambda: status()["status"] == "FAILED", timeout=120, what="the job to fail")
    retried = httpx.post(urls["retry"].replace("{job_id}", job_id), headers=headers)
    assert retried.status_code == 200 and retried.json() == {"id": job_id, "status": "IN_QUEUE"}
    done = wait_for(lambda: (lambda s: s if s["status"] == "COMPLETED" else None)(status()), timeout=120,
                    what="the retried job to complete")
    assert done["output"] == {"again": 7}
    again = httpx.post(urls["retry"].replace("{job_id}", job_id), headers=headers)
    assert again.status_code == 400 and "COMPLETED" in again.json()["error"]  # only FAILED or TIMED_OUT
    _ok(call(local_runpod, "DELETE", f"/v2/serverless/{created['id']}"), 204)
