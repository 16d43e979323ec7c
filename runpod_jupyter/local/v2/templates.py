"""``/v2/templates``: RunPod's REST v2 templates, over the same catalog GraphQL uses; deleted by
id, and refused while an endpoint uses one, as on RunPod."""

from __future__ import annotations

from aiohttp import web

from ..engine import Engine
from . import schema, shapes
from .http import json_response, problem, read_body


class Templates:
    """The handlers of ``/v2/templates`` and ``/v2/templates/{id}``."""

    def __init__(self, engine: Engine) -> None:
        self.catalog = engine.catalog

    async def collection(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return json_response({"templates": [shapes.template_view(t) for t in self.catalog.templates.values()]})
        if request.method == "POST":
            body = schema.check("CreateTemplateRequest", await read_body(request))
            return json_response(shapes.template_view(self.catalog.save_template(shapes.template_fields(body))), 201)
        raise problem(405, f"{request.method} is not allowed on {request.path}.", hint="Use GET, POST.")

    async def item(self, request: web.Request) -> web.Response:
        template_id = request.match_info["id"]
        template = self.catalog.templates.get(template_id)
        if template is None:
            raise problem(404, f"Template {template_id} does not exist.", hint="List templates with GET /v2/templates.")
        if request.method == "GET":
            return json_response(shapes.template_view(template))
        if request.method == "PATCH":
            body = schema.check("UpdateTemplateRequest", await read_body(request))
            saved = self.catalog.save_template({**shapes.template_fields(body), "id": template_id})
            return json_response(shapes.template_view(saved))
        if request.method == "DELETE":
            self.catalog.delete_template_by_id(template_id)
            return web.Response(status=204)
        raise problem(405, f"{request.method} is not allowed on {request.path}.", hint="Use GET, PATCH, DELETE.")


async def pods(request: web.Request) -> web.Response:
    """Every ``/v2/pods...`` route: pods exist only on RunPod's cloud."""
    raise problem(
        501, "Pods do not exist in the embedded RunPod: it runs serverless endpoints only.",
        hint="Use /v2/serverless here, or manage pods on RunPod's cloud (https://api.runpod.io/v2/pods).",
    )
