"""How many workers an endpoint should have right now, decided from its state alone.

The platform's rules (seeds 000/001): ``workersMin`` are always kept; a new endpoint or release
starts a worker at once; QUEUE_DELAY adds a worker while the oldest queued job has waited longer
than ``scalerValue`` seconds (a cold endpoint starts one immediately); REQUEST_COUNT keeps one
worker per ``scalerValue`` jobs; ``workersMax`` and the account's worker quota cap everything; a new
release replaces Outdated workers about 10 % of ``workersMax`` at a time, never interrupting a
running one; idle workers above the floor stop after ``idleTimeout``. The control plane applies
the :class:`Plan`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .model import EndpointRuntime
from .workers import SLOT_STATES, WorkerPhase, WorkerRecord


@dataclass
class Plan:
    """What to change now: workers to start, to drain (with why), and throttled ones to drop."""

    start: int = 0
    drain: list[tuple[WorkerRecord, str]] = field(default_factory=list)
    #: Throttled workers no longer wanted: they hold no GPU and no process, so they just end.
    retire: list[WorkerRecord] = field(default_factory=list)


def plan(
    ep: EndpointRuntime,
    workers: list[WorkerRecord],
    *,
    now: float,
    oldest_queued: float | None,
    room: int,
) -> Plan:
    """``workers`` are the endpoint's; ``room`` is how many more the account quota allows."""
    decision = Plan()
    mine = [w for w in workers if w.state in SLOT_STATES]
    current = [w for w in mine if w.release == ep.release]
    outdated = [w for w in mine if w.release < ep.release]
    low, high = ep.setting("workersMin", 0), ep.setting("workersMax", 3)
    floor = max(low, 1 if ep.prewarm else 0)
    want = floor
    if ep.queue:
        ready = [w for w in current if w.state in (WorkerPhase.IDLE, WorkerPhase.INITIALIZING)]
        if ep.data.get("scalerType") == "REQUEST_COUNT":
            busy = sum(1 for w in current if w.state == WorkerPhase.RUNNING)
            want = max(want, math.ceil((len(ep.queue) + busy) / max(1, ep.setting("scalerValue", 4))))
        elif not current:
            want = max(want, 1)  # a cold endpoint starts a worker at once
        elif len(ready) < len(ep.queue):
            waited = now - (oldest_queued if oldest_queued is not None else now)
            if waited >= ep.setting("scalerValue", 4):
                want = max(want, len(current) + 1)  # QUEUE_DELAY: one more per tick while late
    if outdated:
        want = max(want, min(high, len(current) + len(outdated)))  # replace what is rolling out
        step = max(1, math.ceil(0.1 * high))
        replaceable = [w for w in outdated if w.state != WorkerPhase.RUNNING]
        decision.drain += [(w, "outdated: replaced by the new release") for w in replaceable][:step]
    decision.start = max(0, min(min(want, high) - len(current), room))
    idle_timeout = ep.setting("idleTimeout", 5)
    surplus = len(current) + decision.start - floor
    for worker in sorted(current, key=lambda w: w.idle_since or 0):
        if surplus <= 0 or ep.queue:
            break
        if worker.state == WorkerPhase.IDLE and worker.idle_since and now - worker.idle_since >= idle_timeout:
            decision.drain.append((worker, f"idle for {idle_timeout} s (idleTimeout)"))
            surplus -= 1
        elif worker.state == WorkerPhase.THROTTLED:
            decision.retire.append(worker)
            surplus -= 1
    return decision
