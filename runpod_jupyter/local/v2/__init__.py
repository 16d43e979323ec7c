"""RunPod's management REST API v2 (``/v2/serverless``, ``/v2/templates``; ``/v2/pods`` only to say
there are none), served by the embedded RunPod over the same catalog as GraphQL. Shapes and
request checks come from RunPod's published OpenAPI document (see :mod:`.schema`)."""

from __future__ import annotations

from aiohttp import web

from ..engine import Engine
from .http import Conventions
from .serverless import Serverless
from .templates import Templates, pods


def routes(engine: Engine) -> list[web.RouteDef]:
    """The v2 routes; register them before the job API's ``/v2/{endpoint_id}/...`` ones."""
    v2 = Conventions(lambda: engine.options.api_key)
    serverless, templates = Serverless(engine), Templates(engine)
    return [
        web.route("*", "/v2/serverless", v2(serverless.collection)),
        web.route("*", "/v2/serverless/{id}", v2(serverless.item)),
        web.route("*", "/v2/templates", v2(templates.collection)),
        web.route("*", "/v2/templates/{id}", v2(templates.item)),
        web.route("*", "/v2/pods", v2(pods)),
        web.route("*", r"/v2/pods/{rest:.+}", v2(pods)),
    ]
