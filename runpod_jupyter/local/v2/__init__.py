"""RunPod's management REST API v2 (``/v2/serverless``, ``/v2/templates``, ``/v2/catalog``,
``/v2/billing/serverless``, ``/v2/registries``, ``/v2/network-volumes``, ``/v2/account/ssh-keys``;
``/v2/pods`` and the document's other parts only to say they are not served here), served by the
embedded RunPod over the same catalog as GraphQL. Shapes and request checks (bodies and query
parameters) come from RunPod's published OpenAPI document (see :mod:`.schema`)."""

from __future__ import annotations

from aiohttp import web

from ..engine import Engine
from . import schema
from .account import Account, unserved
from .billing import BillingHistory
from .gpus import Gpus
from .http import Conventions, problem
from .logs import Logs
from .serverless import Serverless
from .storage import Storage
from .templates import Templates, pods
from .workers import Workers


def routes(engine: Engine) -> list[web.RouteDef]:
    """The v2 routes; register them before the job API's ``/v2/{endpoint_id}/...`` ones."""
    v2 = Conventions(lambda: engine.options.api_key, check_query=schema.check_query)
    serverless, templates = Serverless(engine), Templates(engine)
    gpus, storage, billing = Gpus(engine), Storage(engine), BillingHistory(engine)
    return [
        web.route("*", "/v2/serverless", v2(serverless.collection)),
        web.route("*", "/v2/serverless/{id}", v2(serverless.item)),
        web.route("*", "/v2/serverless/{id}/workers", v2(Workers(engine).workers)),
        web.route("*", "/v2/serverless/{id}/releases", v2(Workers(engine).releases)),
        web.route("*", "/v2/serverless/{id}/workers/{workerId}/logs", v2(Logs(engine).stream)),
        web.route("*", r"/v2/serverless/{id}/{rest:.+}", v2(_no_such_route)),
        web.route("*", "/v2/templates", v2(templates.collection)),
        web.route("*", "/v2/templates/{id}", v2(templates.item)),
        web.route("*", "/v2/catalog/gpus", v2(gpus.gpus)),
        web.route("*", "/v2/catalog/gpus/{id}", v2(gpus.gpu)),
        web.route("*", "/v2/catalog/datacenters", v2(gpus.datacenters)),
        web.route("*", "/v2/catalog/datacenters/{id}", v2(gpus.datacenter)),
        web.route("*", "/v2/billing/serverless", v2(billing.serverless)),
        web.route("*", "/v2/billing", v2(unserved("/v2/billing"))),
        web.route("*", r"/v2/billing/{rest:.+}", v2(unserved("/v2/billing"))),
        web.route("*", "/v2/registries", v2(storage.registries)),
        web.route("*", "/v2/registries/delegations", v2(unserved("/v2/registries/delegations"))),
        web.route("*", r"/v2/registries/delegations/{rest:.+}", v2(unserved("/v2/registries/delegations"))),
        web.route("*", "/v2/registries/{id}", v2(storage.registry)),
        web.route("*", "/v2/network-volumes", v2(storage.volumes)),
        web.route("*", "/v2/network-volumes/{id}", v2(storage.volume)),
        web.route("*", "/v2/pods", v2(pods)),
        web.route("*", r"/v2/pods/{rest:.+}", v2(pods)),
        web.route("*", "/v2/account/ssh-keys", v2(Account(engine).keys)),
        *(route for prefix in ("/v2/clusters", "/v2/catalog/cpus", "/v2/catalog/templates", "/v2/account")
          for route in (web.route("*", prefix, v2(unserved(prefix))),
                        web.route("*", prefix + r"/{rest:.+}", v2(unserved(prefix))))),
    ]


async def _no_such_route(request: web.Request) -> web.Response:
    raise problem(404, f"{request.path} is not a route of RunPod's REST API v2.",
                  hint="An endpoint has /workers, /workers/{workerId}/logs and /releases below it.")
