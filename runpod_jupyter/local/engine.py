"""The embedded RunPod's control plane, put together: templates and endpoints (:mod:`.catalog`), the
job queue (:mod:`.queue`), the worker fleet (:mod:`.fleet`), what workers call (:mod:`.worker_api`)
and billing (:mod:`.billing`), driven by one clock.

It follows the platform's documented behaviour (seeds 000/001/003/004, notes/runpod-sdk-protocol.md);
each module says which part of it is its own. The HTTP layer (:mod:`.server`) and the GraphQL layer
(:mod:`.graphql_api`) only translate, calling these parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .billing import Billing
from .catalog import Catalog
from .fleet import Fleet
from .model import EndpointRuntime, Options, Shared
from .queue import JobQueue
from .store import Store
from .worker_api import WorkerAPI


class Engine:
    """The parts of the control plane, wired to each other, and the clock that drives them: job
    timeouts and retention, worker watch, scaling and always-on billing, once a second or when
    something changes."""

    def __init__(self, options: Options, store: Store) -> None:
        self.options = options
        self.store = store
        self.shared = Shared(options, store)
        self.endpoints = self.shared.endpoints
        self.workers = self.shared.workers
        self.billing = Billing(self.shared, on_overdrawn=self._disable_all)
        self.queue = JobQueue(self.shared)
        self.jobs = self.queue.jobs
        self.fleet = Fleet(self.shared, self.queue, self.billing)
        self.worker_api = WorkerAPI(self.shared, self.queue, self.fleet)
        self.catalog = Catalog(self.shared, self.queue, self.fleet)
        self._stopping = False
        self._failing: dict[str, str] = {}  # part of the tick -> its last failure, logged once

    def load(self) -> None:
        """Rebuild state after a restart: queued jobs stay queued, running ones are retried,
        finished ones stay readable until their retention ends; orphaned workers are killed."""
        self.catalog.load()
        self.queue.load()
        self.fleet.kill_orphans()

    def endpoint(self, endpoint_id: str) -> EndpointRuntime | None:
        """The endpoint as the REST API sees it: None when unknown or disabled ("Not Found")."""
        ep = self.endpoints.get(endpoint_id)
        return None if ep is None or ep.disabled else ep

    def health(self, ep: EndpointRuntime) -> dict[str, Any]:
        """/health: the endpoint's job counters and its workers by state."""
        workers = self.fleet.counts(ep)
        return {
            "jobs": {
                "completed": ep.completed, "failed": ep.failed, "inProgress": self.queue.in_progress(ep.id),
                "inQueue": len(ep.queue), "retried": ep.retried,
            },
            "workers": workers,
        }

    def _disable_all(self, why: str) -> None:
        """A negative balance: every endpoint is disabled and its workers drain."""
        for ep in self.endpoints.values():
            if not ep.disabled:
                ep.disabled = True
                self.shared.save_endpoint(ep)
                for worker in self.shared.workers_of(ep.id):
                    self.fleet.drain(worker, why)

    def start(self) -> None:
        """Start the clock and the fork server (on the running event loop)."""
        self.fleet.prepare()
        self.shared.spawn(self.run())

    async def run(self) -> None:
        """The clock: a tick every ``options.tick`` seconds, or at once when woken."""
        while not self._stopping:
            try:
                self.tick()
            except Exception as exc:  # never let one bad tick stop the control plane
                print(f"runpod-jupyter local: tick failed: {type(exc).__name__}: {exc}", flush=True)
            await self.shared.wake.wait(self.options.tick)

    def tick(self) -> None:
        """One turn of the clock. Each part runs on its own, and per endpoint: one that fails is
        logged and the others still run (timeouts, worker watch, scaling, billing)."""
        now = time.time()
        self._part("job timeouts", self.queue.expire, now)
        self._part("worker watch", self.fleet.check, now)
        for ep in list(self.endpoints.values()):
            self._part(f"scaling of endpoint {ep.id}", self.fleet.scale, ep, now)
            self._part(f"always-on billing of endpoint {ep.id}", self.billing.bill_always_on, ep, now)
        self._part("pruning exited workers", self.fleet.prune_exited)

    def _part(self, what: str, step: Callable[..., object], *args: Any) -> None:
        """Run one part of the tick; a failure is logged once while it lasts, not every tick."""
        try:
            step(*args)
        except Exception as exc:  # noqa: BLE001 - one part failing must not stop the others
            message = f"{type(exc).__name__}: {exc}"
            if self._failing.get(what) != message:
                print(f"runpod-jupyter local: {what} failed: {message}", flush=True)
            self._failing[what] = message
        else:
            self._failing.pop(what, None)

    async def shutdown(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after a grace) and the background tasks."""
        self._stopping = True
        self.shared.wake.notify()
        await self.fleet.stop_all()
        self.shared.cancel_tasks()
        await self.queue.close()
        self.fleet.forget_process_groups()
