"""Finding an endpoint by name and removing one with everything a deploy made for it.

Shared by deploys (to update in place, and to undo), :class:`~runpod_jupyter.deployment.Deployment`
and the sidebar, so an endpoint is found and removed the same way everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .api import Client, EndpointSpec
from .errors import RunpodError


def find_endpoint(client: Client, name: str) -> EndpointSpec | None:
    """The endpoint with this name (RunPod may add " -fb" for FlashBoot)."""
    for endpoint in client.list_endpoints():
        if endpoint.name in (name, f"{name} -fb"):
            return endpoint
    return None


@dataclass(frozen=True)
class Removal:
    """What :func:`remove_endpoint` did, for callers that show it as words or as JSON."""

    endpoint_id: str
    name: str | None  # None: there was no such endpoint
    scaled_down: bool = False
    template: str | None = None
    template_error: str | None = None

    @property
    def steps(self) -> list[str]:
        if self.name is None:
            return [f"endpoint {self.endpoint_id} did not exist"]
        done = ["scaled to 0 workers"] if self.scaled_down else []
        done.append(f"deleted endpoint {self.name} ({self.endpoint_id})")
        if self.template and self.template_error is None:
            done.append(f"deleted template {self.template}")
        elif self.template:
            done.append(f"kept template {self.template} ({self.template_error})")
        return done


def remove_endpoint(client: Client, endpoint_id: str, *, with_template: bool = True) -> Removal:
    """Scale to zero, delete the endpoint, then any template an earlier version of this package
    made for it (named ``<endpoint>-<content hash>``; a template that cannot be deleted is kept and
    said so). Endpoints now carry their own image, so new deploys make no templates."""
    spec = client.get_endpoint(endpoint_id)
    if spec is None:
        return Removal(endpoint_id, None)
    scaled = bool(spec.workers_min or spec.workers_max)
    if scaled:
        client.save_endpoint(replace(spec, workers_min=0, workers_max=0))
    client.delete_endpoint(endpoint_id)
    if not with_template:
        return Removal(endpoint_id, spec.name, scaled)
    removed, error = retire_templates(client, spec.name)
    return Removal(endpoint_id, spec.name, scaled, ", ".join(removed) or None, error)


#: The templates this package made per deploy before endpoints carried their own image.
_OUR_TEMPLATE = re.compile(r"^(?P<endpoint>.+)-[0-9a-f]{10}$")


def retire_templates(client: Client, endpoint_name: str) -> tuple[list[str], str | None]:
    """Delete the templates earlier deploys of ``endpoint_name`` made (ours only, by their name);
    one still in use is kept. Returns the names deleted and the first error met."""
    removed: list[str] = []
    error = None
    try:
        templates = client.list_templates()
    except RunpodError as exc:
        return removed, exc.message
    for template in templates:
        matched = _OUR_TEMPLATE.match(template.name)
        if not matched or matched["endpoint"] != endpoint_name or not template.id:
            continue
        try:
            client.delete_template(template.id)
            removed.append(template.name)
        except RunpodError as exc:
            error = error or exc.message
    return removed, error


def delete_endpoint(client: Client, endpoint_id: str) -> list[str]:
    """:func:`remove_endpoint` with its template, told in words."""
    return remove_endpoint(client, endpoint_id).steps
