"""What the embedded RunPod charges, as the platform does: per second, rounded up, at the price of
the worker's GPU pool. A flex worker is billed while Running; an endpoint's ``workersMin``
("active") workers for as long as they are up, jobs or not, at a discount. A negative balance
disables every endpoint (their REST API answers "Not Found" while GraphQL still lists them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .model import EndpointRuntime, Shared, price
from .spend import SpendLog
from .workers import SERVING, WorkerPhase, WorkerRecord

SETTLE_EVERY = 60.0  # seconds between charges for a worker billed without a break
OVERDRAWN = "the account balance went negative"


class Billing:
    """The account balance and the charges against it. ``on_overdrawn(why)`` is called when the
    balance goes negative: disabling endpoints is the control plane's business, not billing's."""

    def __init__(self, shared: Shared, on_overdrawn: Callable[[str], None]) -> None:
        self.shared = shared
        self.balance: float = shared.store.get_value("balance", shared.options.balance)
        self.spend = SpendLog(shared.store)  # the history REST v2's billing routes read
        self._on_overdrawn = on_overdrawn

    def charge(self, worker: WorkerRecord, now: float, *, settle: bool = False) -> None:
        """Per-second billing, rounded up, for the time since billing began: a flex worker's time
        Running, an always-on worker's time up. ``settle`` bills the whole seconds so far of a
        worker that goes on being billed (the rest carries over)."""
        if worker.billing_since is None:
            return
        elapsed = max(0.0, now - worker.billing_since)
        seconds = math.floor(elapsed) if settle else math.ceil(elapsed)
        worker.billing_since = worker.billing_since + seconds if settle else None
        cost = seconds * price(worker.pool, active=worker.active)
        if not cost:
            return
        self.balance -= cost
        self.shared.store.set_value("balance", self.balance)
        self.spend.record(worker.endpoint_id, now, cost)
        ep = self.shared.endpoints.get(worker.endpoint_id)
        if ep is not None:
            ep.spent += cost
            self.shared.save_endpoint(ep)
        if self.balance < 0:
            self._on_overdrawn(OVERDRAWN)

    def bill_always_on(self, ep: EndpointRuntime, now: float) -> None:
        """RunPod bills an endpoint's ``workersMin`` workers for as long as they are up, jobs or
        not, at a discount; the rest are billed only while Running. Ready workers of the current
        release are marked active up to ``workersMin``; long-running charges settle every minute
        so the balance (and a negative one) shows while they run."""
        want = 0 if ep.disabled else ep.setting("workersMin", 0)
        workers = self.shared.workers_of(ep.id)
        ready = [w for w in workers if w.state in SERVING and w.release == ep.release]
        active = [w for w in ready if w.active]
        for worker in active[want:]:  # workersMin went down
            self.charge(worker, now)
            worker.active = False
            if worker.state == WorkerPhase.RUNNING:
                worker.billing_since = now  # its job goes on, billed as flex
        for worker in [w for w in ready if not w.active][: max(0, want - len(active))]:
            self.charge(worker, now)  # ends a flex run in progress
            worker.active, worker.billing_since = True, now
        for worker in workers:
            if worker.active and worker.billing_since is not None and now - worker.billing_since >= SETTLE_EVERY:
                self.charge(worker, now, settle=True)

    def set_balance(self, balance: float) -> None:
        """Local-only knob: set the balance (a negative one disables the endpoints at once)."""
        self.balance = float(balance)
        self.shared.store.set_value("balance", self.balance)
        if self.balance < 0:
            self._on_overdrawn(OVERDRAWN)

    def current_balance(self) -> float:
        """The balance less what running workers have used since they were last charged."""
        now = time.time()
        running = sum(
            (now - w.billing_since) * price(w.pool, active=w.active)
            for w in self.shared.workers.values() if w.billing_since is not None
        )
        return self.balance - running

    def spend_per_hour(self) -> float:
        """GraphQL's ``currentSpendPerHr``: what the workers billed right now cost per hour."""
        return sum(
            price(w.pool, active=w.active) * 3600 for w in self.shared.workers.values() if w.billing_since is not None
        )
