"""RunPod's management REST API v2 (``/v2/serverless``, ``/v2/templates``, ``/v2/catalog``,
``/v2/billing/serverless``, ``/v2/registries``, ``/v2/network-volumes``; ``/v2/pods`` only to say
there are none), served by the embedded RunPod over the same catalog as GraphQL. Shapes and
request checks come from RunPod's published OpenAPI document (see :mod:`.schema`)."""

from __future__ import annotations

from aiohttp import web

from ..engine import Engine
from .billing import BillingHistory
from .gpus import Gpus
from .http import Conventions
from .logs import Logs
from .serverless import Serverless
from .storage import Storage
from .templates import Templates, pods
from .workers import Workers


def routes(engine: Engine) -> list[web.RouteDef]:
    """The v2 routes; register them before the job API's ``/v2/{endpoint_id}/...`` ones."""
    v2 = Conventions(lambda: engine.options.api_key)
    serverless, templates = Serverless(engine), Templates(engine)
    gpus, storage, billing = Gpus(engine), Storage(engine), BillingHistory(engine)
    return [
        web.route("*", "/v2/serverless", v2(serverless.collection)),
        web.route("*", "/v2/serverless/{id}", v2(serverless.item)),
        web.route("*", "/v2/serverless/{id}/workers", v2(Workers(engine).workers)),
        web.route("*", "/v2/serverless/{id}/releases", v2(Workers(engine).releases)),
        web.route("*", "/v2/serverless/{id}/workers/{workerId}/logs", v2(Logs(engine).stream)),
        web.route("*", "/v2/templates", v2(templates.collection)),
        web.route("*", "/v2/templates/{id}", v2(templates.item)),
        web.route("*", "/v2/catalog/gpus", v2(gpus.gpus)),
        web.route("*", "/v2/catalog/gpus/{id}", v2(gpus.gpu)),
        web.route("*", "/v2/catalog/datacenters", v2(gpus.datacenters)),
        web.route("*", "/v2/catalog/datacenters/{id}", v2(gpus.datacenter)),
        web.route("*", "/v2/billing/serverless", v2(billing.serverless)),
        web.route("*", "/v2/registries", v2(storage.registries)),
        web.route("*", "/v2/registries/{id}", v2(storage.registry)),
        web.route("*", "/v2/network-volumes", v2(storage.volumes)),
        web.route("*", "/v2/network-volumes/{id}", v2(storage.volume)),
        web.route("*", "/v2/pods", v2(pods)),
        web.route("*", r"/v2/pods/{rest:.+}", v2(pods)),
    ]
