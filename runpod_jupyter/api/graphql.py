"""Management API programs (GraphQL at api.runpod.io/graphql).

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
    GpuType,
    NetworkVolume,
    RegistryAuth,
    TemplateSpec,
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

LIST_ENDPOINTS = f"query Endpoints {{ myself {{ endpoints {{ {ENDPOINT_FIELDS} template {{ {TEMPLATE_FIELDS} }} }} }} }}"
GET_ENDPOINT = (
    f"query Endpoint($id: String!) {{ myself {{ endpoint(id: $id) {{ {ENDPOINT_FIELDS} "
    f"template {{ {TEMPLATE_FIELDS} }} }} }} }}"
)
LIST_TEMPLATES = f"query Templates {{ myself {{ podTemplates {{ {TEMPLATE_FIELDS} }} }} }}"
SAVE_TEMPLATE = f"mutation SaveTemplate($input: SaveTemplateInput!) {{ saveTemplate(input: $input) {{ {TEMPLATE_FIELDS} }} }}"
SAVE_ENDPOINT = f"mutation SaveEndpoint($input: EndpointInput!) {{ saveEndpoint(input: $input) {{ {ENDPOINT_FIELDS} }} }}"
DELETE_ENDPOINT = "mutation DeleteEndpoint($id: String!) { deleteEndpoint(id: $id) }"
DELETE_TEMPLATE = "mutation DeleteTemplate($templateName: String!) { deleteTemplate(templateName: $templateName) }"
CREATE_NETWORK_VOLUME = (
    "mutation CreateNetworkVolume($input: CreateNetworkVolumeInput!) "
    "{ createNetworkVolume(input: $input) { id name size dataCenterId } }"
)
LIST_NETWORK_VOLUMES = "query NetworkVolumes { myself { networkVolumes { id name size dataCenterId } } }"
GPU_TYPES = (
    "query GpuTypes { gpuTypes { id displayName memoryInGb secureCloud communityCloud "
    "securePrice communityPrice } }"
)
GPU_STOCK = (
    "query GpuStock($gpuCount: Int) { gpuTypes { id lowestPrice(input: {gpuCount: $gpuCount}) { stockStatus } } }"
)
ACCOUNT = "query Account { myself { clientBalance currentSpendPerHr } }"
SAVE_REGISTRY_AUTH = (
    "mutation SaveRegistryAuth($input: SaveRegistryAuthInput!) { saveRegistryAuth(input: $input) { id name } }"
)
UPDATE_REGISTRY_AUTH = (
    "mutation UpdateRegistryAuth($input: UpdateRegistryAuthInput!) { updateRegistryAuth(input: $input) { id name } }"
)
LIST_REGISTRY_AUTHS = "query RegistryAuths { myself { containerRegistryCreds { id name } } }"
DELETE_REGISTRY_AUTH = "mutation DeleteRegistryAuth($id: String!) { deleteRegistryAuth(registryAuthId: $id) }"


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


def list_endpoints(url: str, retry: RetryPolicy) -> Program:
    data = yield from execute(url, LIST_ENDPOINTS, None, retry, what="list endpoints")
    return [EndpointSpec.from_wire(e) for e in (data.get("myself") or {}).get("endpoints") or []]


def get_endpoint(url: str, endpoint_id: str, retry: RetryPolicy) -> Program:
    """One endpoint with its template, or None when the account has no such endpoint."""
    data = yield from execute(url, GET_ENDPOINT, {"id": endpoint_id}, retry, what="read an endpoint")
    found = (data.get("myself") or {}).get("endpoint")
    return EndpointSpec.from_wire(found) if found else None


def list_templates(url: str, retry: RetryPolicy) -> Program:
    data = yield from execute(url, LIST_TEMPLATES, None, retry, what="list templates")
    return [TemplateSpec.from_wire(t) for t in (data.get("myself") or {}).get("podTemplates") or []]


def save_template(url: str, template: TemplateSpec, retry: RetryPolicy) -> Program:
    what = "update the template" if template.id else "create a template"
    data = yield from execute(
        url, SAVE_TEMPLATE, {"input": template.to_input()}, retry, what=what, idempotent=bool(template.id)
    )
    return TemplateSpec.from_wire(data["saveTemplate"])


def save_endpoint(url: str, endpoint: EndpointSpec, retry: RetryPolicy) -> Program:
    """Create, or with ``id`` update (a new release: RunPod rolls the workers)."""
    what = "update the endpoint" if endpoint.id else "create an endpoint"
    data = yield from execute(
        url, SAVE_ENDPOINT, {"input": endpoint.to_input()}, retry, what=what, idempotent=bool(endpoint.id)
    )
    return EndpointSpec.from_wire(data["saveEndpoint"])


def delete_endpoint(url: str, endpoint_id: str, retry: RetryPolicy) -> Program:
    yield from execute(url, DELETE_ENDPOINT, {"id": endpoint_id}, retry, what="delete the endpoint")
    return None


def delete_template(url: str, template_name: str, retry: RetryPolicy) -> Program:
    yield from execute(
        url, DELETE_TEMPLATE, {"templateName": template_name}, retry, what="delete the template"
    )
    return None


def create_network_volume(url: str, name: str, size_gb: int, data_center_id: str, retry: RetryPolicy) -> Program:
    data = yield from execute(
        url,
        CREATE_NETWORK_VOLUME,
        {"input": {"name": name, "size": int(size_gb), "dataCenterId": data_center_id}},
        retry,
        what="create a network volume",
        idempotent=False,
    )
    return NetworkVolume.from_wire(data["createNetworkVolume"])


def list_network_volumes(url: str, retry: RetryPolicy) -> Program:
    data = yield from execute(url, LIST_NETWORK_VOLUMES, None, retry, what="list network volumes")
    return [NetworkVolume.from_wire(v) for v in (data.get("myself") or {}).get("networkVolumes") or []]


def gpu_types(url: str, retry: RetryPolicy) -> Program:
    data = yield from execute(url, GPU_TYPES, None, retry, what="list GPU types")
    return [GpuType.from_wire(g) for g in data.get("gpuTypes") or []]


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


def save_registry_auth(url: str, name: str, username: str, password: str, retry: RetryPolicy) -> Program:
    """Register registry credentials with RunPod so workers can pull a private image."""
    given = {"name": name, "username": username, "password": password}
    return (yield from _registry_auth(url, SAVE_REGISTRY_AUTH, given, retry, "save", idempotent=False))


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


def list_registry_auths(url: str, retry: RetryPolicy) -> Program:
    data = yield from execute(url, LIST_REGISTRY_AUTHS, None, retry, what="list registry credentials")
    creds = (data.get("myself") or {}).get("containerRegistryCreds") or []
    return [RegistryAuth(id=c["id"], name=c.get("name") or "") for c in creds]


def delete_registry_auth(url: str, auth_id: str, retry: RetryPolicy) -> Program:
    yield from execute(url, DELETE_REGISTRY_AUTH, {"id": auth_id}, retry, what="delete registry credentials")
    return None
