"""``/v2/serverless``: RunPod's REST v2 endpoints, over the same catalog GraphQL uses.

An endpoint created here carries its container settings itself: the catalog keeps them in a
template bound to it (``boundTo``), which a PATCH updates and a DELETE removes with it. With
``templateId`` the template's settings are copied once, as RunPod resolves it once.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...api.models import GPU_POOLS
from ..engine import Engine
from ..model import EndpointRuntime, random_id
from . import schema, shapes
from .http import json_response, problem, read_body

CONTAINER_KEYS = ("image", "args", "disk", "ports", "env", "registry")
#: The catalog's template fields that make a container.
TEMPLATE_CONTAINER = (
    "imageName", "dockerArgs", "containerDiskInGb", "ports", "env", "containerRegistryAuthId",
    "volumeInGb", "volumeMountPath",
)
#: RunPod's defaults on create (CreateEndpointRequest).
DEFAULTS = {"workersMin": 0, "workersMax": 3, "idleTimeout": 10, "executionTimeoutMs": 300000,
            "gpuCount": 1, "flashBootType": "OFF"}


class Serverless:
    """The handlers of ``/v2/serverless`` and ``/v2/serverless/{id}``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.catalog = engine.catalog

    async def collection(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return json_response({"endpoints": [self.view(ep) for ep in self.engine.endpoints.values()]})
        if request.method == "POST":
            return json_response(self.create(await read_body(request)), 201)
        raise _not_allowed(request, "GET, POST")

    async def item(self, request: web.Request) -> web.Response:
        ep = self.engine.endpoints.get(request.match_info["id"])
        if ep is None:
            raise problem(404, f"Endpoint {request.match_info['id']} does not exist.",
                          hint="List your endpoints with GET /v2/serverless.")
        if request.method == "GET":
            return json_response(self.view(ep))
        if request.method == "PATCH":
            return json_response(self.update(ep, await read_body(request)))
        if request.method == "DELETE":
            bound = self._bound(ep)
            self.catalog.delete_endpoint(ep.id)
            if bound is not None and not any(e.data.get("templateId") == bound["id"] for e in self.engine.endpoints.values()):
                self.catalog.delete_template_by_id(bound["id"])
            return web.Response(status=204)
        raise _not_allowed(request, "GET, PATCH, DELETE")

    # -- what they do ----------------------------------------------------------------------------
    def view(self, ep: EndpointRuntime) -> dict[str, Any]:
        template = self.catalog.templates.get(ep.data.get("templateId") or "") or ep.template
        options = self.engine.options
        return shapes.endpoint_view(ep, template, options.control_url, options.execution_timeout)

    def create(self, given: Any) -> dict[str, Any]:
        body = schema.check("CreateEndpointRequest", given)
        _compute(body)
        if body["type"] == "LOAD_BALANCER":
            raise problem(400, "Load-balancer endpoints are not supported by the embedded RunPod yet.",
                          hint='Create a queue endpoint ("type": "QUEUE"), or deploy to RunPod\'s cloud.')
        _one_volume(body)
        _exclusions(body)
        container = self._source(body.get("templateId"))
        container.update(shapes.template_fields({k: v for k, v in body.items() if k in CONTAINER_KEYS}))
        template = self.catalog.save_template(
            {**container, "name": f"{body['name']}-{random_id(8)}", "isServerless": True, "boundTo": ""}
        )
        try:
            saved = self.catalog.save_endpoint({**DEFAULTS, **shapes.endpoint_fields(body), "templateId": template["id"]})
        except BaseException:
            self.catalog.delete_template_by_id(template["id"])
            raise
        self.catalog.save_template({"id": template["id"], "boundTo": saved["id"]})
        return self.view(self.engine.endpoints[saved["id"]])

    def update(self, ep: EndpointRuntime, given: Any) -> dict[str, Any]:
        body = schema.check("UpdateEndpointRequest", given)
        if "cpu" in body:
            raise problem(400, "This is a GPU endpoint: its compute family cannot change to CPU.",
                          hint="Send gpu to change its GPUs, or create a CPU endpoint on RunPod's cloud.")
        _one_volume(body)
        _exclusions(body)
        fields = shapes.endpoint_fields(body)
        changes = shapes.template_fields({k: v for k, v in body.items() if k in CONTAINER_KEYS})
        bound, restore = self._bound(ep), None
        if changes or "templateId" in body:
            current = self.catalog.templates.get(ep.data.get("templateId") or "") or ep.template
            source = self._source(body["templateId"]) if body.get("templateId") else _container(current)
            container = {**source, **changes}
            if bound is not None:
                restore = dict(bound)
                self.catalog.save_template({**container, "id": bound["id"]})
            else:
                made = self.catalog.save_template(
                    {**container, "name": f"{ep.data.get('name')}-{random_id(8)}", "isServerless": True, "boundTo": ep.id}
                )
                fields["templateId"] = made["id"]
        try:
            self.catalog.save_endpoint({**fields, "id": ep.id})  # a new release; workers roll
        except BaseException:
            if restore is not None:
                self.catalog.templates[restore["id"]] = restore
                self.engine.store.put("templates", restore["id"], restore)
            elif "templateId" in fields:
                self.catalog.delete_template_by_id(fields["templateId"])
            raise
        return self.view(ep)

    def _bound(self, ep: EndpointRuntime) -> dict[str, Any] | None:
        """The template that holds this endpoint's own container settings, if it has one."""
        template = self.catalog.templates.get(ep.data.get("templateId") or "")
        return template if template is not None and template.get("boundTo") == ep.id else None

    def _source(self, template_id: str | None) -> dict[str, Any]:
        """The container settings of template ``template_id`` (none without one)."""
        if not template_id:
            return {}
        template = self.catalog.templates.get(template_id)
        if template is None:
            # RunPod's document: an unknown or inaccessible templateId is a 404.
            raise problem(404, f"Template {template_id} does not exist.", hint="List templates with GET /v2/templates.")
        return _container(template)


def _container(template: dict[str, Any]) -> dict[str, Any]:
    return {k: template[k] for k in TEMPLATE_CONTAINER if k in template}


def _compute(body: dict[str, Any]) -> None:
    """Exactly one of ``gpu`` and ``cpu`` (RunPod's prose rule); CPU endpoints are cloud-only here."""
    if ("gpu" in body) == ("cpu" in body):
        raise problem(400, "Send exactly one of gpu or cpu: "
                      + ("both were sent." if "gpu" in body else "neither was sent."),
                      hint='E.g. "gpu": {"pools": ["ADA_24"], "count": 1}.')
    if "cpu" in body:
        raise problem(400, "CPU endpoints are not supported by the embedded RunPod.",
                      hint='Send "gpu": {"pools": ["ADA_24"]} instead, or deploy to RunPod\'s cloud.')


def _one_volume(body: dict[str, Any]) -> None:
    if len(body.get("networkVolumes") or []) > 1:
        raise problem(400, "The embedded RunPod attaches at most one network volume to an endpoint.",
                      hint="Send one id in networkVolumes.")


def _exclusions(body: dict[str, Any]) -> None:
    """``gpu.excludedTypes`` names GPU types of the listed pools and leaves at least one (RunPod's
    prose rules: a typo would otherwise be a filter that does nothing)."""
    gpu = body.get("gpu") or {}
    excluded = {e.strip() for e in gpu.get("excludedTypes") or []}
    if not excluded:
        return
    types = [t for pool in gpu.get("pools") or [] for t in (GPU_POOLS[pool].gpu_types if pool in GPU_POOLS else ())]
    stray = sorted(excluded.difference(types))
    if stray:
        raise problem(400, f"excludedTypes names GPU types that are in none of the pools: {', '.join(stray)}.",
                      hint="Use the id of a GPU type whose pool (GET /v2/catalog/gpus) is in gpu.pools.")
    if excluded.issuperset(types):
        raise problem(400, "excludedTypes leaves no GPU type in the selected pools.",
                      hint="Keep at least one type, or list another pool in gpu.pools.")


def _not_allowed(request: web.Request, allowed: str) -> Exception:
    return problem(405, f"{request.method} is not allowed on {request.path}.", hint=f"Use {allowed}.")
