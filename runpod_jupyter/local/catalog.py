"""What the management API (GraphQL) manages in the embedded RunPod: templates, endpoints and their
releases, network volumes and registry credentials, checked as the platform checks them.

Saving an endpoint makes a new release: it takes a snapshot of its template (saving the template
alone changes no worker), and the fleet replaces workers of older releases a few at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from ..api.models import GPU_POOLS, JobStatus
from ..errors import ControlPlaneError
from .fleet import Fleet
from .model import EndpointRuntime, Shared, iso_now, random_id
from .queue import JobQueue
from .releases import Releases


class Catalog:
    """Templates, volumes and registry credentials, and endpoint settings (the endpoints
    themselves live in :class:`Shared`, since every part reads them)."""

    def __init__(self, shared: Shared, queue: JobQueue, fleet: Fleet) -> None:
        self.shared = shared
        self.queue = queue
        self.fleet = fleet
        self.templates: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.registry_auths: dict[str, dict[str, Any]] = {}
        self.releases = Releases(shared.store)

    def load(self) -> None:
        """Read back templates, volumes, credentials and endpoints after a restart."""
        store = self.shared.store
        for row in store.rows("templates"):
            self.templates[row["id"]] = row
        for row in store.rows("volumes"):
            self.volumes[row["id"]] = row
        for row in store.rows("registry_auths"):
            self.registry_auths[row["id"]] = row
        for row in store.rows("endpoints"):
            ep = EndpointRuntime(**row)
            self.shared.endpoints[ep.id] = ep
        self.releases.load()

    def save_template(self, given: dict[str, Any]) -> dict[str, Any]:
        """saveTemplate: create one (name and imageName required), or update the one with ``id``."""
        template_id = given.get("id")
        if template_id:
            current = self.templates.get(template_id)
            if current is None:
                raise ControlPlaneError(f"Template {template_id} does not exist.")
            template = {**current, **{k: v for k, v in given.items() if v is not None}}
        else:
            name = given.get("name") or ""
            if not name.strip():
                raise ControlPlaneError("Template name is required.")
            if not given.get("imageName"):
                raise ControlPlaneError("imageName is required.")
            template = {
                "containerDiskInGb": 10, "volumeInGb": 0, "env": [], "isServerless": False,
                "ports": "", "readme": "", "volumeMountPath": "/workspace",
                **{k: v for k, v in given.items() if v is not None}, "id": random_id(10),
            }
        clash = [t for t in self.templates.values() if t["name"] == template["name"] and t["id"] != template["id"]]
        if clash:
            raise ControlPlaneError(f"Template name must be unique: {template['name']!r} is taken.")
        _check_env(template.get("env") or [])
        self.templates[template["id"]] = template
        self.shared.store.put("templates", template["id"], template)
        return template

    def delete_template(self, name: str) -> None:
        """deleteTemplate: refused while an endpoint uses it, as on the platform."""
        found = [t for t in self.templates.values() if t["name"] == name]
        if not found:
            raise ControlPlaneError(f"Template {name!r} does not exist.")
        self.delete_template_by_id(found[0]["id"])

    def delete_template_by_id(self, template_id: str) -> None:
        """Delete a template by id (REST v2's way); refused while an endpoint uses it."""
        template = self.templates.get(template_id)
        if template is None:
            raise ControlPlaneError(f"Template {template_id} does not exist.")
        endpoints = self.shared.endpoints.values()
        users = [ep.data["name"] for ep in endpoints if ep.data.get("templateId") == template_id]
        if users:
            raise ControlPlaneError(
                f"Template {template['name']!r} is in use by endpoint(s) {', '.join(users)}; delete those first."
            )
        del self.templates[template_id]
        self.shared.store.delete("templates", template_id)

    def add_volume(self, volume: dict[str, Any]) -> dict[str, Any]:
        """Keep a new network volume (GraphQL's createNetworkVolume, v2's POST); gives it an id."""
        volume = {"id": random_id(10), **volume}
        self.save_volume(volume)
        return volume

    def save_volume(self, volume: dict[str, Any]) -> None:
        self.volumes[volume["id"]] = volume
        self.shared.store.put("volumes", volume["id"], volume)

    def remove_volume(self, volume_id: str) -> None:
        self.volumes.pop(volume_id, None)
        self.shared.store.delete("volumes", volume_id)

    def add_registry_auth(self, name: str, username: str, password: str) -> dict[str, Any]:
        """Keep a registry login under a unique name; of its password, only a digest."""
        if any(a["name"] == name for a in self.registry_auths.values()):
            raise ControlPlaneError(f"Registry auth name must be unique: {name!r} is taken.",
                                    hint="Pick another name, or delete the old login first.")
        auth = {"id": random_id(10), "name": name, "username": username, "password": password_check(password)}
        self._save_registry_auth(auth)
        return auth

    def update_registry_auth(self, auth_id: str, username: str, password: str) -> dict[str, Any]:
        auth = self.registry_auths.get(auth_id)
        if auth is None:
            raise ControlPlaneError(f"Registry auth {auth_id} does not exist.")
        auth["username"], auth["password"] = username, password_check(password)
        self._save_registry_auth(auth)
        return auth

    def remove_registry_auth(self, auth_id: str) -> None:
        if self.registry_auths.pop(auth_id, None) is None:
            raise ControlPlaneError(f"Registry auth {auth_id} does not exist.")
        self.shared.store.delete("registry_auths", auth_id)

    def _save_registry_auth(self, auth: dict[str, Any]) -> None:
        self.registry_auths[auth["id"]] = auth
        self.shared.store.put("registry_auths", auth["id"], auth)

    def save_endpoint(self, given: dict[str, Any]) -> dict[str, Any]:
        """saveEndpoint: create one, or update the one with ``id``; either way a new release."""
        given = {k: v for k, v in given.items() if v is not None}
        endpoints = self.shared.endpoints
        endpoint_id = given.get("id")
        if endpoint_id:
            found = endpoints.get(endpoint_id)
            if found is None:
                raise ControlPlaneError(f"Endpoint {endpoint_id} does not exist.")
            data = {**found.data, **given}
        else:
            missing = [k for k in ("name", "templateId", "gpuIds") if not given.get(k)]
            if missing:
                raise ControlPlaneError(f"{', '.join(missing)} required to create an endpoint.")
            data = {
                "idleTimeout": 5, "scalerType": "QUEUE_DELAY", "scalerValue": 4, "workersMin": 0,
                "workersMax": 3, "gpuCount": 1, "networkVolumeId": "", "locations": "",
                **given, "id": random_id(), "userId": "user_local", "createdAt": iso_now(),
            }
        template = self.templates.get(data.get("templateId") or "")
        if template is None:
            raise ControlPlaneError(f"Template {data.get('templateId')!r} does not exist.")
        self._validate_endpoint(data)
        data["version"] = (endpoints[endpoint_id].release + 1) if endpoint_id else 1
        if endpoint_id:
            ep = endpoints[endpoint_id]
            ep.data, ep.template = data, dict(template)
            ep.release += 1
            ep.prewarm = True
            ep.crash_streak = 0
        else:
            ep = EndpointRuntime(data=data, template=dict(template))
            endpoints[ep.id] = ep
        self.shared.save_endpoint(ep)
        self.releases.record(ep)
        ep.work.notify()
        self.shared.wake.notify()
        return self.endpoint_view(ep)

    def _validate_endpoint(self, data: dict[str, Any]) -> None:
        options = self.shared.options
        pools = [g.strip() for g in str(data.get("gpuIds") or "").split(",") if g.strip()]
        unknown = [g for g in pools if g not in GPU_POOLS and g not in options.gpus]
        if not pools or unknown:
            valid = ", ".join(sorted(set(GPU_POOLS) | set(options.gpus)))
            raise ControlPlaneError(f"Unknown GPU id(s) {', '.join(unknown) or '(none)'}; valid ids: {valid}.")
        low, high = int(data.get("workersMin") or 0), int(data.get("workersMax") or 0)
        if low < 0 or high < 0 or low > high:
            raise ControlPlaneError(f"workersMin ({low}) must be between 0 and workersMax ({high}).")
        others = sum(int(e.data.get("workersMax") or 0) for e in self.shared.endpoints.values() if e.id != data["id"])
        if others + high > options.worker_limit:
            raise ControlPlaneError(
                f"Max workers across all endpoints must not exceed your account's worker quota of "
                f"{options.worker_limit} (other endpoints already use {others}). Lower workersMax "
                "(--workers-max), or delete endpoints you no longer need (%runpod_delete NAME). "
                "This quota is the embedded RunPod's own: raise it by restarting it with "
                "`runpod-jupyter local serve --worker-quota N` (from Python: "
                "runpod_jupyter.embedded.stop(), then runpod_jupyter.embedded.start(worker_quota=N))."
            )
        if int(data.get("idleTimeout") or 0) < 0 or int(data.get("scalerValue") or 1) < 1:
            raise ControlPlaneError("idleTimeout must be >= 0 and scalerValue >= 1.")
        if str(data.get("scalerType")) not in ("QUEUE_DELAY", "REQUEST_COUNT"):
            raise ControlPlaneError("scalerType must be QUEUE_DELAY or REQUEST_COUNT.")
        if int(data.get("executionTimeoutMs") or 0) < 0:
            raise ControlPlaneError(
                "executionTimeoutMs must be >= 0 milliseconds (0 or unset: the default timeout), "
                f"not {data.get('executionTimeoutMs')}."
            )

    def delete_endpoint(self, endpoint_id: str) -> None:
        """deleteEndpoint: its workers drain, its open jobs are cancelled, all its jobs forgotten."""
        ep = self.shared.endpoints.pop(endpoint_id, None)
        if ep is None:
            raise ControlPlaneError(f"Endpoint {endpoint_id} does not exist.")
        for worker in self.shared.workers_of(endpoint_id):
            self.fleet.drain(worker, "endpoint deleted")
        for job in [j for j in self.queue.jobs.values() if j.endpoint_id == endpoint_id]:
            if not job.final:
                self.queue.finish(job, ep, JobStatus.CANCELLED, reason="the endpoint was deleted")
            self.queue.forget(job)
        self.shared.store.delete("endpoints", endpoint_id)
        self.releases.forget(endpoint_id)
        ep.work.notify()

    def endpoint_view(self, ep: EndpointRuntime) -> dict[str, Any]:
        """The endpoint as GraphQL returns it, with its template as it is now."""
        template = self.templates.get(ep.data.get("templateId") or "") or ep.template
        return {**ep.data, "template": template, "workersStandby": ep.setting("workersMin", 0)}


def _check_env(env: list[dict[str, Any]]) -> None:
    """Refuse env entries no process can be started with (a key holding ``=``, a NUL byte in a
    key or value): saved, they would stop every worker of the template at spawn."""
    for item in env:
        key, value = str(item.get("key") or ""), str(item.get("value") or "")
        if "=" in key or "\x00" in key:
            raise ControlPlaneError(
                f"Template env key {key!r} is not a valid environment variable name: "
                "a key may not contain '=' or a NUL byte."
            )
        if "\x00" in value:
            raise ControlPlaneError(f"Template env value of {key!r} contains a NUL byte, which no process can be given.")


def password_check(password: str, salt: bytes | None = None) -> dict[str, str]:
    """What the embedded RunPod keeps of a registry password. RunPod keeps the password itself, to
    pull with; nothing here pulls, so a salted scrypt digest is enough to tell which credentials a
    login holds, and useless to anyone who reads the store. No query returns it."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return {"salt": salt.hex(), "scrypt": digest.hex()}


def password_matches(check: dict[str, str], password: str) -> bool:
    again = password_check(password, bytes.fromhex(check["salt"]))
    return hmac.compare_digest(again["scrypt"], check["scrypt"])
