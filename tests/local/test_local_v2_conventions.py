"""What every REST v2 route of the embedded RunPod does as RunPod's v2 does: Bearer auth only,
x-request-id everywhere, RateLimit headers, problem+json errors, request bodies checked against
RunPod's OpenAPI document (every answer here is checked against it too)."""

from __future__ import annotations

import httpx
import pytest
from v2_contract import call

from runpod_jupyter.local.v2.http import MinuteBudget

GPU = {"pools": ["ADA_24"], "count": 1}
SCALING = {"type": "QUEUE_DELAY", "queueDelay": 4}


def _body(**extra):
    return {"name": "conv", "type": "QUEUE", "image": "local:/nowhere", "gpu": GPU, "scaling": SCALING, **extra}


def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers.get("x-request-id")
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    return problem


@pytest.mark.parametrize("key", ["", "wrong-key"])
def test_unauthorized_without_or_with_a_wrong_key(local_runpod, key):
    first = _problem(call(local_runpod, "GET", "/v2/serverless", key=key), 401)
    again = call(local_runpod, "GET", "/v2/serverless", key=key)
    other = call(local_runpod, "GET", "/v2/templates", key=key)
    assert first["detail"] and again.headers["x-request-id"] != other.headers["x-request-id"]
    assert "RateLimit" not in again.headers


def test_key_in_the_url_is_refused(local_runpod):
    key = local_runpod.api_key.reveal()
    response = httpx.get(f"{local_runpod.url}/v2/serverless", params={"api_key": key})
    problem = _problem(response, 401)
    assert key not in response.text and "Authorization: Bearer" in problem["detail"]


def test_rate_limit_headers_and_fresh_request_ids(local_runpod):
    seen = set()
    for _ in range(3):
        response = call(local_runpod, "GET", "/v2/serverless")
        assert response.status_code == 200
        assert response.headers["RateLimit-Policy"] == '"minute";q=600;w=60'
        assert response.headers["RateLimit"].startswith('"minute";r=')
        seen.add(response.headers["x-request-id"])
    assert len(seen) == 3
    remaining = [int(call(local_runpod, "GET", "/v2/templates").headers["RateLimit"].split("r=")[1].split(";")[0])
                 for _ in range(2)]
    assert remaining[1] == remaining[0] - 1


def test_budget_spent_answers_429_with_retry_after():
    budget = MinuteBudget(budget=2, window=60)
    assert budget.spend("k")[:2] == (True, 1) and budget.spend("k")[:2] == (True, 0)
    allowed, remaining, reset = budget.spend("k")
    assert (allowed, remaining) == (False, 0) and 1 <= reset <= 60
    assert budget.spend("other")[0]  # counted per key
    assert "k" not in str(budget.hits)  # keys are kept as digests only


def test_spent_budget_is_a_429_problem_over_http():
    """The conventions around a route, served for real with a budget of two a minute."""
    import asyncio

    from aiohttp import web

    from runpod_jupyter.local.v2.http import Conventions, json_response

    async def scenario() -> list[httpx.Response]:
        async def hello(request: web.Request) -> web.Response:
            return json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/v2/hello", Conventions(lambda: "k3y", MinuteBudget(budget=2))(hello))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with httpx.AsyncClient(headers={"Authorization": "Bearer k3y"}) as http:
                return [await http.get(f"http://127.0.0.1:{port}/v2/hello") for _ in range(3)]
        finally:
            await runner.cleanup()

    first, second, third = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["RateLimit"].startswith('"minute";r=1;') and second.headers["RateLimit"].startswith('"minute";r=0;')
    problem = _problem(third, 429)
    assert 1 <= int(third.headers["Retry-After"]) <= 60 and "Retry-After" in problem["detail"]
    assert third.headers["RateLimit-Policy"] == '"minute";q=2;w=60'


def test_unknown_fields_are_named(local_runpod):
    problem = _problem(call(local_runpod, "POST", "/v2/serverless", _body(color="red", workers={"minimum": 1}),
                            check_request=False), 422)
    assert "$.color" in problem["detail"] and "$.workers.minimum" in problem["detail"]
    assert "$.color: unknown field" in problem["errors"]


@pytest.mark.parametrize("missing", ["type", "name", "scaling", "image"])
def test_missing_required_field(local_runpod, missing):
    body = _body()
    del body[missing]
    problem = _problem(call(local_runpod, "POST", "/v2/serverless", body, check_request=False), 422)
    assert any(f"'{missing}' is a required property" in e for e in problem["errors"])


def test_schema_violation_names_the_path(local_runpod):
    problem = _problem(call(local_runpod, "POST", "/v2/serverless", _body(workers={"min": -1}),
                            check_request=False), 422)
    assert any(e.startswith("$.workers.min:") for e in problem["errors"])


@pytest.mark.parametrize("compute", [{}, {"gpu": GPU, "cpu": [{"id": "cpu3c", "vcpuCount": 2}]}])
def test_exactly_one_of_gpu_and_cpu(local_runpod, compute):
    body = {k: v for k, v in _body().items() if k != "gpu"} | compute
    problem = _problem(call(local_runpod, "POST", "/v2/serverless", body), 400)
    assert "exactly one of gpu or cpu" in problem["detail"]


def test_load_balancer_is_refused_clearly(local_runpod):
    body = _body(type="LOAD_BALANCER", scaling={"type": "REQUEST_COUNT", "requestCount": 2})
    problem = _problem(call(local_runpod, "POST", "/v2/serverless", body), 400)
    assert "Load-balancer" in problem["detail"] and "QUEUE" in problem["detail"]


def test_bad_json_and_unknown_ids_are_problems(local_runpod):
    response = httpx.post(f"{local_runpod.url}/v2/serverless", content=b'{"name": NaN}',
                          headers={"Authorization": f"Bearer {local_runpod.api_key.reveal()}"})
    _problem(response, 400)
    _problem(call(local_runpod, "GET", "/v2/serverless/nope"), 404)
    _problem(call(local_runpod, "DELETE", "/v2/templates/nope"), 404)


@pytest.mark.parametrize("method, path", [
    ("GET", "/v2/pods"), ("POST", "/v2/pods"), ("GET", "/v2/pods/abc"), ("DELETE", "/v2/pods/abc"),
    ("GET", "/v2/pods/abc/logs"), ("POST", "/v2/pods/abc/action"),
])
def test_pods_answer_problem_json(local_runpod, method, path):
    problem = _problem(call(local_runpod, method, path, {} if method == "POST" else None, check_request=False), 501)
    assert "serverless endpoints only" in problem["detail"]


def test_a_body_too_large_is_a_problem(local_runpod):
    response = httpx.post(f"{local_runpod.url}/v2/templates", content=b" " * 26_000_001,
                          headers={"Authorization": f"Bearer {local_runpod.api_key.reveal()}"}, timeout=60)
    _problem(response, 413)
