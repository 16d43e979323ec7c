"""Management programs for RunPod's REST API v2 (``https://api.runpod.io/v2/...``): endpoints,
templates, registries, workers, releases, the GPU catalog and billing.

Shapes come from RunPod's published OpenAPI document; errors are ``application/problem+json``
and every answer names its request (``x-request-id``), which ``_wire.check_status`` puts in the
message. Worker logs are Server-Sent Events: :func:`log_request` builds the request and
:func:`.observed.parse_sse` reads the stream, which the clients hold open themselves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .. import errors
from ._wire import Program, Request, RetryPolicy, check_status, encode_json, send
from .models import EndpointSpec, GpuType, NetworkVolume, RegistryAuth, TemplateSpec
from .observed import Releases, Workers
from .rest import check_id
from .stock import catalog_levels


def _path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


def call(
    base: str,
    method: str,
    path: str,
    retry: RetryPolicy,
    *,
    what: str,
    body: Any = None,
    params: dict[str, str] | None = None,
    idempotent: bool = True,
    missing_ok: bool = False,
) -> Program:
    """One v2 request; the decoded body, or None for a 404 when ``missing_ok``."""
    content = encode_json(body) if body is not None else None
    request = Request(method, f"{base}/{path}", content, params=params or {}, idempotent=idempotent)
    reply = yield from send(request, retry)
    if missing_ok and reply.status == 404:
        return None
    return check_status(reply, what=what)


# -- endpoints ------------------------------------------------------------------------------------
def list_endpoints(base: str, retry: RetryPolicy) -> Program:
    data = yield from call(base, "GET", "serverless", retry, what="list endpoints")
    return [EndpointSpec.from_v2(e) for e in (data or {}).get("endpoints") or [] if isinstance(e, dict)]


def get_endpoint(base: str, endpoint_id: str, retry: RetryPolicy) -> Program:
    """One endpoint, or None when the account has no such endpoint."""
    path = _path("serverless", check_id(endpoint_id, "endpoint"))
    data = yield from call(base, "GET", path, retry, what="read an endpoint", missing_ok=True)
    return EndpointSpec.from_v2(data) if isinstance(data, dict) else None


def create_endpoint(base: str, endpoint: EndpointSpec, retry: RetryPolicy) -> Program:
    """``POST /v2/serverless``: never resent once it may have reached RunPod (no duplicates)."""
    data = yield from call(
        base, "POST", "serverless", retry, what="create an endpoint", body=endpoint.to_v2(create=True), idempotent=False
    )
    return EndpointSpec.from_v2(data)


def update_endpoint(base: str, endpoint: EndpointSpec, retry: RetryPolicy) -> Program:
    """``PATCH /v2/serverless/{id}`` with every setting: a new release, which RunPod rolls out."""
    path = _path("serverless", check_id(endpoint.saved_id, "endpoint"))
    data = yield from call(base, "PATCH", path, retry, what="update the endpoint", body=endpoint.to_v2(create=False))
    return EndpointSpec.from_v2(data)


def delete_endpoint(base: str, endpoint_id: str, retry: RetryPolicy) -> Program:
    path = _path("serverless", check_id(endpoint_id, "endpoint"))
    yield from call(base, "DELETE", path, retry, what="delete the endpoint", missing_ok=True)
    return None


def workers(base: str, endpoint_id: str, retry: RetryPolicy) -> Program:
    """``GET /v2/serverless/{id}/workers``: each worker's status and whether it is stale."""
    path = _path("serverless", check_id(endpoint_id, "endpoint"), "workers")
    data = yield from call(base, "GET", path, retry, what="list the endpoint's workers")
    return Workers.from_wire(data or {})


def releases(base: str, endpoint_id: str, retry: RetryPolicy) -> Program:
    """``GET /v2/serverless/{id}/releases``: history newest first, and the rollout."""
    path = _path("serverless", check_id(endpoint_id, "endpoint"), "releases")
    data = yield from call(base, "GET", path, retry, what="list the endpoint's releases")
    return Releases.from_wire(data or {})


def log_request(
    base: str,
    endpoint_id: str,
    worker_id: str,
    *,
    source: str | None = None,
    tail: int | None = None,
    since: str | None = None,
) -> Request:
    """``GET /v2/serverless/{id}/workers/{workerId}/logs`` (an event stream; see ``parse_sse``)."""
    path = _path("serverless", check_id(endpoint_id, "endpoint"), "workers", check_id(worker_id, "worker"), "logs")
    params: dict[str, str] = {}
    if source:
        params["source"] = source
    if tail is not None:
        params["tail"] = str(max(0, min(int(tail), 5000)))
    if since:
        params["since"] = since
    return Request("GET", f"{base}/{path}", params=params)


# -- templates ------------------------------------------------------------------------------------
def template_body(template: TemplateSpec) -> dict[str, Any]:
    """A ``CreateTemplateRequest``: a serverless template, nothing a pod would start (no SSH, no Jupyter)."""
    body: dict[str, Any] = {
        "name": template.name, "image": template.image_name, "args": template.docker_args,
        "disk": max(1, template.container_disk_in_gb), "env": dict(template.env),
        "serverless": template.is_serverless, "startSsh": False, "startJupyter": False,
    }
    if template.container_registry_auth_id:
        body["registry"] = template.container_registry_auth_id
    return body


def template_from_v2(data: dict[str, Any]) -> TemplateSpec:
    return TemplateSpec(
        id=data.get("id"), name=str(data.get("name") or ""), image_name=str(data.get("image") or ""),
        docker_args=str(data.get("args") or ""), container_disk_in_gb=int(data.get("disk") or 0),
        env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
        is_serverless=bool(data.get("serverless", True)), container_registry_auth_id=data.get("registry") or None,
    )


def list_templates(base: str, retry: RetryPolicy) -> Program:
    data = yield from call(base, "GET", "templates", retry, what="list templates")
    return [template_from_v2(t) for t in (data or {}).get("templates") or [] if isinstance(t, dict)]


def create_template(base: str, template: TemplateSpec, retry: RetryPolicy) -> Program:
    data = yield from call(
        base, "POST", "templates", retry, what="create a template", body=template_body(template), idempotent=False
    )
    return template_from_v2(data)


def delete_template(base: str, template_id: str, retry: RetryPolicy) -> Program:
    """Templates are deleted by id on v2 (GraphQL deleted them by name)."""
    path = _path("templates", check_id(template_id, "template"))
    yield from call(base, "DELETE", path, retry, what="delete the template", missing_ok=True)
    return None


# -- registries -----------------------------------------------------------------------------------
def list_registries(base: str, retry: RetryPolicy) -> Program:
    data = yield from call(base, "GET", "registries", retry, what="list registry logins")
    return [RegistryAuth(id=str(r.get("id")), name=str(r.get("name") or "")) for r in (data or {}).get("registries") or []]


def create_registry(base: str, name: str, username: str, password: str, retry: RetryPolicy) -> Program:
    """The password travels only in the body, never in a URL or a message."""
    from ..secret import register_secret

    register_secret(password)  # redacted from every message from here on
    body = {"name": name, "username": username, "password": password}
    data = yield from call(base, "POST", "registries", retry, what="save a registry login", body=body, idempotent=False)
    return RegistryAuth(id=str(data.get("id")), name=str(data.get("name") or name))


def delete_registry(base: str, registry_id: str, retry: RetryPolicy) -> Program:
    path = _path("registries", check_id(registry_id, "registry"))
    yield from call(base, "DELETE", path, retry, what="delete a registry login", missing_ok=True)
    return None


# -- network volumes ------------------------------------------------------------------------------
def list_network_volumes(base: str, retry: RetryPolicy) -> Program:
    data = yield from call(base, "GET", "network-volumes", retry, what="list network volumes")
    return [NetworkVolume.from_wire(v) for v in (data or {}).get("networkVolumes") or [] if isinstance(v, dict)]


def create_network_volume(base: str, name: str, size_gb: int, data_center_id: str, retry: RetryPolicy) -> Program:
    body = {"name": name, "size": int(size_gb), "dataCenter": data_center_id}
    data = yield from call(base, "POST", "network-volumes", retry, what="create a network volume", body=body,
                           idempotent=False)
    return NetworkVolume.from_wire(data)


# -- catalog and billing ----------------------------------------------------------------------------
def gpu_catalog(base: str, retry: RetryPolicy) -> Program:
    """Serverless GPU types with their pool, memory, prices and live availability."""
    params = {"include": "AVAILABILITY", "product": "SERVERLESS"}
    data = yield from call(base, "GET", "catalog/gpus", retry, what="read the GPU catalog", params=params)
    return [g for g in (data or {}).get("gpus") or [] if isinstance(g, dict)]


def gpu_types(base: str, retry: RetryPolicy) -> Program:
    rows = yield from gpu_catalog(base, retry)
    return [GpuType.from_v2(row) for row in rows]


def gpu_stock(base: str, retry: RetryPolicy) -> Program:
    """Stock per serverless pool (``HIGH``/``MEDIUM``/``LOW``/``NONE``)."""
    rows = yield from gpu_catalog(base, retry)
    return catalog_levels(rows)


def serverless_billing(base: str, retry: RetryPolicy, **query: str) -> Program:
    """Serverless spend records (``GET /v2/billing/serverless``; query names as the document's:
    ``serverlessId``, ``bucketSize``, ``lastN``, ``startTime``, ``endTime``)."""
    data = yield from call(base, "GET", "billing/serverless", retry, what="read serverless billing", params=query)
    return [r for r in (data or {}).get("records") or [] if isinstance(r, dict)]


__all__ = [
    "call", "list_endpoints", "get_endpoint", "create_endpoint", "update_endpoint", "delete_endpoint",
    "workers", "releases", "log_request", "list_templates", "create_template", "delete_template",
    "list_registries", "create_registry", "delete_registry", "list_network_volumes", "create_network_volume",
    "gpu_catalog", "gpu_types", "gpu_stock", "serverless_billing",
    "errors",
]
