"""The endpoint view: workers by state, jobs, GPU pools and scaling, cost, the diagnosis, and
the actions purge / scale / delete. Shown by ``%%runpod_deploy`` and by displaying a Deployment.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from . import snapshot
from . import state as views
from .base import LiveView, view_module
from .poller import Tick
from .readers import EndpointReader

if TYPE_CHECKING:
    from .subjects import ShownEndpoint

#: The saved snapshot of a live endpoint is refreshed when it goes idle after activity, at most
#: this often (each refresh re-renders the view in the browser; drafts survive it).
SNAPSHOT_EVERY = 30.0


class EndpointView(LiveView):
    """Live view of one endpoint."""

    _esm = view_module("endpoint")

    def __init__(self, deployment: ShownEndpoint) -> None:
        super().__init__(deployment, deployment)
        self.reader = EndpointReader(deployment)
        self._latest: dict[str, Any] | None = None
        self._latest_at: float | None = None
        self._snapshot_text: str | None = None
        self._snapshot_at = float("-inf")
        self._settling = False

    # -- polling ----------------------------------------------------------------------------
    def on_tick(self, tick: Tick) -> bool:
        current = self.reader.read(tick)
        active = views.endpoint_active(current)
        with self._lock:
            self._latest, self._latest_at = current, time.time()
        self.push(current, live="active" if active else "idle")
        if current["deleted"]:
            self.finish()
            return False
        if active:
            self._settling = True
        elif self._settling:
            self._maybe_snapshot()
        return active

    def _maybe_snapshot(self) -> None:
        """After activity, once idle again: refresh the saved snapshot (throttled)."""
        if time.monotonic() - self._snapshot_at < SNAPSHOT_EVERY:
            return
        self._settling = False
        text = self.static_text(stamp=False)
        if text != self._snapshot_text:
            self._snapshot_text, self._snapshot_at = text, time.monotonic()
            self.flush()
            self.publish_snapshot()

    # -- snapshot ---------------------------------------------------------------------------
    def _current(self) -> dict[str, Any]:
        if self._latest is not None:
            return self._latest
        dep = self.deployment
        return views.endpoint_state(name=dep.name, endpoint_id=dep.endpoint_id, backend=dep.backend,
                                    gathered=None, findings=[], error="not read yet", advice=dep.findings)

    def static_text(self, stamp: bool = True) -> str:
        return snapshot.endpoint_text(self._current(), self._latest_at if stamp else None)

    def static_html(self) -> str:
        return snapshot.endpoint_html(self._current(), self._latest_at)

    # -- actions ----------------------------------------------------------------------------
    def on_action(self, name: str, content: dict[str, Any]) -> None:
        dep = self.deployment
        if name == "purge":
            self.act("purge", lambda: f"Removed {dep.purge_queue()} queued job(s); running jobs continue.")
        elif name == "scale":
            low, high = _count(content.get("min")), _count(content.get("max"))
            self.act("scale", lambda: self._scale(low, high))
        elif name == "delete":
            confirmed = content.get("confirm") == dep.name
            self.act("delete", lambda: self._delete(confirmed))

    def _scale(self, low: int | None, high: int | None) -> str:
        if low is None or high is None:
            raise ConfigError("Scale needs whole numbers for min and max workers (0 or more).")
        spec = self.deployment.scale(min=low, max=high)
        return f"Workers now {spec.workers_min}-{spec.workers_max} (a new release; workers roll over)."

    def _delete(self, confirmed: bool) -> str:
        if not confirmed:
            raise ConfigError("Not deleted: the confirmation did not name this endpoint.")
        done = self.deployment.delete()
        return "Deleted: " + "; ".join(done) + "."


def _count(value: object) -> int | None:
    """A worker count from the browser: a whole number, 0 or more; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and value >= 0 else None
