"""GraphQL programs (api.runpod.io/graphql), for what REST v2 lacks: the live balance and spend
rate, and updating a registry login. Reading an endpoint and GPU stock the GraphQL way stay
for comparison (``benchmarks/cloud_refresh.py`` measures what v2 saves).

Every value travels as a GraphQL *variable*, never pasted into the query text, so names with
quotes, backslashes or newlines round-trip untouched. Only fields that exist on RunPod are asked
for (the field notes list tempting ones that do not: ``myself.serverlessWorkers``,
``endpoint.workers``, ``endpoint.jobs``, ``myself.serverlessTemplates``).
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ._wire import Program, Request, RetryPolicy, check_status, encode_json, send
from .models import (
    Account,
    EndpointSpec,
    RegistryAuth,
)
from .stock import pool_levels

TEMPLATE_FIELDS = (
    "id name imageName dockerArgs containerDiskInGb volumeInGb volumeMountPath "
    "env { key value } isServerless containerRegistryAuthId ports readme"
)
ENDPOINT_FIELDS = (
    "id name templateId gpuIds workersMin workersMax idleTimeout scalerType scalerValue "
    "networkVolumeId locations gpuCount flashBootType executionTimeoutMs"
)

GET_ENDPOINT = (
    f"query Endpoint($id: String!) {{ myself {{ endpoint(id: $id) {{ {ENDPOINT_FIELDS} "
    f"template {{ {TEMPLATE_FIELDS} }} }} }} }}"
)
GPU_STOCK = (
    "query GpuStock($gpuCount: Int) { gpuTypes { id lowestPrice(input: {gpuCount: $gpuCount}) { stockStatus } } }"
)
ACCOUNT = "query Account { myself { clientBalance currentSpendPerHr } }"
UPDATE_REGISTRY_AUTH = (
    "mutation UpdateRegistryAuth($input: UpdateRegistryAuthInput!) { updateRegistryAuth(input: $input) { id name } }"
)


def execute(
    url: str,
    query: str,
    variables: dict[str, Any] | None,
    retry: RetryPolicy,
    *,
    what: str,
    idempotent: bool = True,
) -> Program:
    """POST one GraphQL document with its variables; return ``data`` or raise GraphQLError."""
    body = encode_json({"query": query, "variables": variables or {}})
    reply = yield from send(Request("POST", url, body, idempotent=idempotent), retry)
    payload = check_status(reply, what=what) if reply.status != 400 else reply.json()
    if not isinstance(payload, dict):
        raise errors.GraphQLError(f"RunPod's management API gave an unreadable answer while trying to {what}.")
    problems = payload.get("errors") or []
    if problems:
        messages = "; ".join(str(p.get("message", p)) for p in problems if isinstance(p, dict)) or str(problems)
        raise errors.GraphQLError(f"RunPod refused to {what}: {messages}", errors=problems)
    return payload.get("data") or {}


def get_endpoint(url: str, endpoint_id: str, retry: RetryPolicy) -> Program:
    """One endpoint with its template, or None when the account has no such endpoint."""
    data = yield from execute(url, GET_ENDPOINT, {"id": endpoint_id}, retry, what="read an endpoint")
    found = (data.get("myself") or {}).get("endpoint")
    return EndpointSpec.from_wire(found) if found else None


def gpu_stock(url: str, retry: RetryPolicy, gpu_count: int = 1) -> Program:
    """Stock per serverless pool (``HIGH``/``MEDIUM``/``LOW``/``NONE``), see :mod:`.stock`."""
    data = yield from execute(url, GPU_STOCK, {"gpuCount": gpu_count}, retry, what="read GPU stock")
    return pool_levels(g for g in data.get("gpuTypes") or [] if isinstance(g, dict))


def account(url: str, retry: RetryPolicy) -> Program:
    data = yield from execute(url, ACCOUNT, None, retry, what="read the account balance")
    me = data.get("myself") or {}
    return Account(
        client_balance=float(me.get("clientBalance") or 0.0),
        current_spend_per_hr=float(me.get("currentSpendPerHr") or 0.0),
    )


def update_registry_auth(url: str, auth_id: str, username: str, password: str, retry: RetryPolicy) -> Program:
    """Replace the credentials of an existing RunPod registry login (a rotated token, say)."""
    given = {"id": auth_id, "username": username, "password": password}
    return (yield from _registry_auth(url, UPDATE_REGISTRY_AUTH, given, retry, "update", idempotent=True))


def _registry_auth(url: str, mutation: str, given: dict[str, str], retry: RetryPolicy, verb: str, *, idempotent: bool) -> Program:
    from ..secret import register_secret

    register_secret(given["password"])  # redacted from every message from here on
    data = yield from execute(
        url, mutation, {"input": given}, retry, what=f"{verb} registry credentials", idempotent=idempotent
    )
    got = data[f"{verb}RegistryAuth"]
    return RegistryAuth(id=got["id"], name=got.get("name") or given.get("name", ""))


