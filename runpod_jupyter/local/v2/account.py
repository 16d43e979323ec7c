"""``/v2/account/ssh-keys``: the account's SSH public keys, replaced whole by a PUT. The embedded
RunPod runs no pods to put them in, but keeps them as account state, as RunPod does, and GraphQL's
``myself.pubKey`` shows the same keys (one per line), so either API sees what the other wrote.

Also the answer for the parts of RunPod's v2 document the embedded RunPod does not serve (clusters,
CPU catalog, pod billing ...): a 501 problem that says so, rather than a bare 404."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..engine import Engine
from ..store import Store
from . import schema
from .http import json_response, problem, read_body

#: The store's key for the keys (a JSON list of authorized_keys lines).
SSH_KEYS = "account_ssh_keys"


def ssh_keys(store: Store) -> list[str]:
    """The account's SSH public keys, oldest first."""
    keys = store.get_value(SSH_KEYS, [])
    return [str(k) for k in keys] if isinstance(keys, list) else []


class Account:
    """The handler of ``/v2/account/ssh-keys``."""

    def __init__(self, engine: Engine) -> None:
        self.store = engine.store

    async def keys(self, request: web.Request) -> web.Response:
        if request.method == "PUT":
            body = schema.check("UpdateSshKeysRequest", await read_body(request))
            # Whitespace around a line is not part of the key; the same key twice is one key.
            keys = list(dict.fromkeys(k.strip() for k in body["keys"]))
            self.store.set_value(SSH_KEYS, keys)
            return json_response({"keys": keys})
        if request.method != "GET":
            raise problem(405, f"{request.method} is not allowed on {request.path}.", hint="Use GET, PUT.")
        return json_response({"keys": ssh_keys(self.store)})


#: Parts of RunPod's v2 document not served here, and what to use instead.
UNSERVED: dict[str, str] = {
    "/v2/clusters": "Instant clusters exist only on RunPod's cloud.",
    "/v2/catalog/cpus": "The embedded RunPod runs GPU endpoints only: it has no CPU catalog.",
    "/v2/catalog/templates": "The embedded RunPod has no public template catalog: list your own with GET /v2/templates.",
    "/v2/billing": "The embedded RunPod bills serverless endpoints only: use GET /v2/billing/serverless.",
    "/v2/registries/delegations": "Registry delegations exist only on RunPod's cloud.",
    "/v2/account": "The embedded RunPod serves only /v2/account/ssh-keys of the account routes.",
}


def unserved(prefix: str) -> Any:
    """A handler answering every method on ``prefix`` (and below) with a 501 problem."""
    why = UNSERVED[prefix]

    async def handler(request: web.Request) -> web.Response:
        raise problem(501, f"{request.path} is not served by the embedded RunPod. {why}",
                      hint="Use RunPod's cloud (https://api.runpod.io) for it.")

    return handler
