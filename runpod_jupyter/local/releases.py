"""Release history of the embedded RunPod's endpoints: every saveEndpoint (GraphQL, or REST v2's
create and PATCH) makes a release, and each one keeps a snapshot of the endpoint's settings and
of the template it runs, so its diff against the one before can be told later and a restart
keeps it (the ``releases`` table; a store from before it simply starts the history there)."""

from __future__ import annotations

from typing import Any

from .model import EndpointRuntime, iso_now, random_id
from .store import Store

#: Releases kept per endpoint (the oldest are dropped past it).
KEPT = 100


class Releases:
    """The releases of every endpoint, oldest first per endpoint."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.by_endpoint: dict[str, list[dict[str, Any]]] = {}

    def load(self) -> None:
        for row in self.store.rows("releases"):
            self.by_endpoint.setdefault(row["endpointId"], []).append(row)
        for history in self.by_endpoint.values():
            history.sort(key=lambda r: r["version"])

    def record(self, ep: EndpointRuntime) -> dict[str, Any]:
        """Keep the endpoint's current release: its version, settings and template as they are now."""
        release: dict[str, Any] = {
            "id": random_id(10), "endpointId": ep.id, "version": ep.release, "createdAt": iso_now(),
            "data": dict(ep.data), "template": dict(ep.template),
        }
        history = self.by_endpoint.setdefault(ep.id, [])
        history.append(release)
        self.store.put("releases", release["id"], release, endpoint_id=ep.id)
        while len(history) > KEPT:
            self.store.delete("releases", history.pop(0)["id"])
        return release

    def of(self, endpoint_id: str) -> list[dict[str, Any]]:
        """The endpoint's releases, oldest first."""
        return list(self.by_endpoint.get(endpoint_id, []))

    def forget(self, endpoint_id: str) -> None:
        """The endpoint is deleted: so is its history."""
        for release in self.by_endpoint.pop(endpoint_id, []):
            self.store.delete("releases", release["id"])
