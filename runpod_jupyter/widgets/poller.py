"""One background poller per endpoint per kernel, shared by every view of that endpoint.

Each tick asks every subscribed view to read what it needs; what the views share (the
endpoint's health, settings, account, REST v2's workers and releases, and the diagnosis of all
that) is read once per tick through :func:`runpod_jupyter.diagnose.gather`; GPU stock, which moves
slowly, at most every :data:`STOCK_EVERY` seconds. The interval adapts: fast while any
view reports work in flight, slow when all is idle, and the thread ends when no view wants
updates any more (closed, final, or no longer on any page). A new subscription starts it again.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..api.models import Health
    from ..api.observed import Releases
    from ..diagnose import EndpointState
    from ..findings import Finding
    from .subjects import ShownEndpoint

    #: ``(EndpointState or None, findings, error message)``: one read of an endpoint.
    EndpointRead = tuple[EndpointState | None, list[Finding], str | None]

log = logging.getLogger(__name__)

#: Seconds between ticks while jobs are in flight / when idle, per backend.
FAST = {"local": 0.5, "cloud": 1.0}
SLOW = {"local": 3.0, "cloud": 10.0}
#: Seconds a full read of the endpoint is reused while its health is unchanged (active / idle).
FULL_EVERY_ACTIVE = 2.0
FULL_EVERY_IDLE = 30.0
#: Seconds GPU stock is reused: it moves slowly and is one catalog request for every pool.
STOCK_EVERY = 60.0
#: After failures the interval doubles up to this many seconds.
BACKOFF_MAX = 30.0
#: A poller stops after this long (views show "paused"; reopening or re-displaying resumes).
MAX_LIFETIME = 8 * 3600.0


class Subscriber(Protocol):
    def wants_updates(self) -> bool: ...

    def on_tick(self, tick: Tick) -> bool: ...

    def on_paused(self) -> None: ...


class _Known:
    """The last full read of an endpoint, reused while its health stays the same."""

    def __init__(self) -> None:
        self.at = float("-inf")
        self.health: Health | None = None
        self.result: EndpointRead | None = None
        self.releases: Releases | None = None


class Tick:
    """What one round of polling learned about the endpoint, read lazily and at most once.

    A full read (``gather``: worker list and health, plus settings when the endpoint's version
    changed and the balance once a minute) costs two requests or a few; between full reads, when
    the endpoint's health is unchanged, the last one is reused, so an idle endpoint costs one
    health request per tick.
    """

    def __init__(self, deployment: ShownEndpoint, known: _Known | None = None, full_every: float = 0.0) -> None:
        self.deployment = deployment
        self._known = known
        self._full_every = full_every
        self._endpoint: EndpointRead | None = None
        self.failed = False

    def endpoint(self) -> EndpointRead:
        """``(EndpointState, findings, error message)`` for the endpoint."""
        if self._endpoint is None:
            self._endpoint = self._reuse() or self._read()
        return self._endpoint

    def _reuse(self) -> EndpointRead | None:
        known = self._known
        if known is None or known.result is None or known.health is None:
            return None
        if time.monotonic() - known.at >= self._full_every:
            return None
        from ..errors import RunpodError

        try:
            health = self.deployment.health()
        except RunpodError:
            return None
        return known.result if health == known.health else None

    def _read(self) -> EndpointRead:
        from ..diagnose import diagnose, gather
        from ..errors import RunpodError

        try:
            earlier = self._known.result[0] if self._known is not None and self._known.result is not None else None
            gathered = gather(self.deployment.client, self.deployment.endpoint_id, previous=earlier)
            self._releases(gathered)
            self._stock(gathered)
            result: EndpointRead = (gathered, diagnose(gathered), None)
            if gathered.health is None and not gathered.rest_not_found:
                self.failed = True
                result = (gathered, result[1], "RunPod did not answer the health check.")
        except RunpodError as exc:
            self.failed = True
            result = (None, [], exc.message)
        except Exception as exc:  # shown in the view rather than killing the poller
            log.exception("runpod-jupyter: reading the endpoint failed")
            self.failed = True
            result = (None, [], f"{type(exc).__name__}: {exc}")
        if self._known is not None:
            self._known.at = time.monotonic()
            self._known.health = result[0].health if result[0] is not None and not self.failed else None
            self._known.result = result
        return result


    def _releases(self, gathered: EndpointState) -> None:
        """Release history, read again only when the worker list names a new endpoint version;
        the rollout is recounted from the worker list on every read."""
        from ..diagnose import releases_for
        from ..errors import RunpodError

        observed, known = gathered.observed, self._known
        if observed is None:
            return
        try:
            gathered.releases = releases_for(self.deployment.client, self.deployment.endpoint_id, observed,
                                             known.releases if known is not None else None)
        except RunpodError:
            return
        if known is not None:
            known.releases = gathered.releases

    def _stock(self, gathered: EndpointState) -> None:
        """Stock per pool for the view, read at most every :data:`STOCK_EVERY` seconds per backend
        and shared by every endpoint there (the diagnosis reads it itself, fresh, when jobs wait
        without workers)."""
        from ..errors import RunpodError

        key = self.deployment.settings.manage_base
        if gathered.stock is not None:
            _stock_seen[key] = (time.monotonic(), gathered.stock)
            return
        if gathered.observed is None:  # REST v2 did not answer for this endpoint: neither will its catalog
            return
        seen = _stock_seen.get(key)
        if seen is not None and time.monotonic() - seen[0] < STOCK_EVERY:
            gathered.stock = seen[1]
            return
        try:
            gathered.stock = dict(self.deployment.client.gpu_stock())
        except RunpodError:
            gathered.stock = seen[1] if seen is not None else None
        _stock_seen[key] = (time.monotonic(), gathered.stock)


#: GPU stock per backend (its management root): when it was read, and what it said.
_stock_seen: dict[str, tuple[float, dict[str, str] | None]] = {}


class EndpointPoller:
    """Polls one endpoint for the views that subscribed to it (held weakly)."""

    def __init__(self, deployment: ShownEndpoint) -> None:
        self.deployment = deployment
        self.backend = "local" if deployment.backend == "local" else "cloud"
        self._subscribers: list[weakref.ref[Subscriber]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.interval: float | None = None
        self._known = _Known()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def subscribe(self, view: Subscriber) -> None:
        """Poll for ``view`` (again); starts the thread if it had stopped."""
        with self._lock:
            if not any(ref() is view for ref in self._subscribers):
                self._subscribers.append(weakref.ref(view))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"runpod-poll-{self.deployment.endpoint_id[:8]}", daemon=True
                )
                self._thread.start()
        self.wake()

    def wake(self, *, fresh: bool = False) -> None:
        """Tick now instead of at the end of the current interval; ``fresh``: with a full read
        (after an action changed the endpoint)."""
        if fresh:
            self._known.at = float("-inf")
        self._wake.set()

    def _wanted(self) -> list[Subscriber]:
        alive = [(ref, ref()) for ref in self._subscribers]
        self._subscribers = [ref for ref, view in alive if view is not None]
        return [view for _, view in alive if view is not None and view.wants_updates()]

    def _run(self) -> None:
        started = time.monotonic()
        failures = 0
        max_ticks = int(MAX_LIFETIME / FAST[self.backend]) + 1
        paused: list[Subscriber] = []
        active = True
        for _ in range(max_ticks):
            with self._lock:
                views = self._wanted()
                if not views or time.monotonic() - started > MAX_LIFETIME:
                    self._thread = None
                    paused = views
                    break
            active, failed = self._tick(views, active)
            views = []  # no strong references to views while waiting
            self.ticks += 1
            failures = failures + 1 if failed else 0
            interval = FAST[self.backend] if active else SLOW[self.backend]
            if failures:
                interval = min(BACKOFF_MAX, interval * 2 ** min(failures, 6))
            self.interval = interval
            self._wake.wait(interval)
            self._wake.clear()
        else:
            with self._lock:
                self._thread = None
                paused = self._wanted()
        for view in paused:
            view.on_paused()


    def _tick(self, views: list[Subscriber], was_active: bool) -> tuple[bool, bool]:
        """One round for every view; returns (anything in flight, reading failed)."""
        tick = Tick(self.deployment, self._known, FULL_EVERY_ACTIVE if was_active else FULL_EVERY_IDLE)
        active = False
        for view in views:
            try:
                active = bool(view.on_tick(tick)) or active
            except Exception:  # one view's bug must not stop the others
                log.exception("runpod-jupyter: a widget failed to update")
        return active, tick.failed


_pollers: dict[tuple[str, str], EndpointPoller] = {}
_pollers_lock = threading.Lock()


def poller_for(deployment: ShownEndpoint) -> EndpointPoller:
    """The kernel's one poller for this endpoint (keyed by where it lives and its id)."""
    key = (deployment.settings.rest_base, deployment.endpoint_id)
    with _pollers_lock:
        poller = _pollers.get(key)
        if poller is None:
            poller = _pollers[key] = EndpointPoller(deployment)
        return poller
