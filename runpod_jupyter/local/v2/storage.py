"""``/v2/registries`` and ``/v2/network-volumes``, over the same records GraphQL keeps
(``saveRegistryAuth``, ``createNetworkVolume``): what one creates, the other lists. A registry's
password is kept as GraphQL keeps it, a salted scrypt digest, and no answer carries the username
or password (they are write-only on RunPod too)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...errors import ProblemError
from ..engine import Engine
from . import schema
from .gpus import DATA_CENTER
from .http import json_response, problem, read_body


def registry_view(auth: dict[str, Any]) -> dict[str, Any]:
    return {"id": auth["id"], "name": auth["name"]}


def volume_view(volume: dict[str, Any]) -> dict[str, Any]:
    """A volume as v2 shows it (GraphQL keeps ``dataCenterId`` and no type: STANDARD)."""
    return {"id": volume["id"], "name": volume["name"], "size": int(volume["size"]),
            "dataCenter": volume.get("dataCenterId") or "", "type": volume.get("type") or "STANDARD"}


def _not_allowed(request: web.Request, allowed: str) -> ProblemError:
    return problem(405, f"{request.method} is not allowed on {request.path}.", hint=f"Use {allowed}.")


class Storage:
    """The handlers of ``/v2/registries[/{id}]`` and ``/v2/network-volumes[/{id}]``."""

    def __init__(self, engine: Engine) -> None:
        self.catalog = engine.catalog
        self.store = engine.store

    async def registries(self, request: web.Request) -> web.Response:
        auths = self.catalog.registry_auths
        if request.method == "GET":
            return json_response({"registries": [registry_view(a) for a in auths.values()]})
        if request.method != "POST":
            raise _not_allowed(request, "GET, POST")
        body = schema.check("CreateRegistryRequest", await read_body(request))
        auth = self.catalog.add_registry_auth(body["name"], body["username"], body["password"])
        return json_response(registry_view(auth), 201)

    async def registry(self, request: web.Request) -> web.Response:
        auth_id = request.match_info["id"]
        auth = self.catalog.registry_auths.get(auth_id)
        if auth is None:
            raise problem(404, f"Registry {auth_id} does not exist.", hint="List them with GET /v2/registries.")
        if request.method == "GET":
            return json_response(registry_view(auth))
        if request.method != "DELETE":
            raise _not_allowed(request, "GET, DELETE")
        self.catalog.remove_registry_auth(auth_id)
        for template in self.catalog.templates.values():  # as on RunPod: they lose the reference
            if template.get("containerRegistryAuthId") == auth_id:
                template["containerRegistryAuthId"] = None
                self.store.put("templates", template["id"], template)
        return web.Response(status=204)

    async def volumes(self, request: web.Request) -> web.Response:
        volumes = self.catalog.volumes
        if request.method == "GET":
            return json_response({"networkVolumes": [volume_view(v) for v in volumes.values()]})
        if request.method != "POST":
            raise _not_allowed(request, "GET, POST")
        body = schema.check("CreateNetworkVolumeRequest", await read_body(request))
        kind = body.get("type") or "STANDARD"
        if body["dataCenter"] != DATA_CENTER["id"] or kind not in DATA_CENTER["networkVolumeTypes"]:
            raise problem(400, f"Data center {body['dataCenter']!r} offers no {kind} network volumes.",
                          hint="The embedded RunPod's one data center is LOCAL, with STANDARD volumes.")
        volume = self.catalog.add_volume(
            {"name": body["name"], "size": body["size"], "dataCenterId": body["dataCenter"], "type": kind}
        )
        return json_response(volume_view(volume), 201)

    async def volume(self, request: web.Request) -> web.Response:
        volume_id = request.match_info["id"]
        volume = self.catalog.volumes.get(volume_id)
        if volume is None:
            raise problem(404, f"Network volume {volume_id} does not exist.",
                          hint="List them with GET /v2/network-volumes.")
        if request.method == "GET":
            return json_response(volume_view(volume))
        if request.method == "PATCH":
            body = schema.check("UpdateNetworkVolumeRequest", await read_body(request))
            if body.get("size", volume["size"]) < int(volume["size"]):
                raise problem(400, f"A network volume cannot shrink ({volume['size']} GB to {body['size']} GB).",
                              hint=f"Send a size of at least {volume['size']}.")
            volume.update(body)
            self.catalog.save_volume(volume)
            return json_response(volume_view(volume))
        if request.method != "DELETE":
            raise _not_allowed(request, "GET, PATCH, DELETE")
        users = [ep.data.get("name") for ep in self.catalog.shared.endpoints.values()
                 if ep.data.get("networkVolumeId") == volume_id]
        if users:
            raise problem(400, f"Network volume {volume_id} is attached to endpoint(s) {', '.join(map(str, users))}.",
                          hint="Detach it from those endpoints (or delete them) first.")
        self.catalog.remove_volume(volume_id)
        return web.Response(status=204)
