"""The shared poller's lifecycle and the coalescer's rate limit, in-process with fake views."""

from __future__ import annotations

import gc
import math
import threading
import time
import weakref

import pytest
from fakes import FakeDeployment
from support import wait_for

from runpod_jupyter.api.models import Health, JobCounts, WorkerCounts
from runpod_jupyter.diagnose import EndpointState
from runpod_jupyter.widgets import poller as poller_module
from runpod_jupyter.widgets.coalesce import Coalescer
from runpod_jupyter.widgets.poller import Tick, _Known, poller_for


class View:
    """Just what the poller needs of a view."""

    def __init__(self, active: bool = False) -> None:
        self.wanted = True
        self.active = active
        self.ticks = 0
        self.paused = False

    def wants_updates(self) -> bool:
        return self.wanted

    def on_tick(self, tick: Tick) -> bool:
        self.ticks += 1
        return self.active

    def on_paused(self) -> None:
        self.paused = True


class Broken(View):
    def on_tick(self, tick: Tick) -> bool:
        raise RuntimeError("a bug in one view")


def test_one_poller_per_endpoint():
    first, again, other = FakeDeployment("ep-a"), FakeDeployment("ep-a"), FakeDeployment("ep-b")
    assert poller_for(first) is poller_for(again)
    assert poller_for(first) is not poller_for(other)


def test_polls_while_a_view_wants_it_then_stops_and_restarts(fast_polls):
    poller = poller_for(FakeDeployment("ep-life"))
    view = View()
    poller.subscribe(view)
    wait_for(lambda: view.ticks >= 3, timeout=10, interval=0.01, what="three ticks")
    view.wanted = False  # final, closed, or no longer on any page
    wait_for(lambda: not poller.running, timeout=10, interval=0.01, what="the poller thread to end")
    ticks = view.ticks
    view.wanted = True
    poller.subscribe(view)  # shown again (e.g. the notebook reopened)
    wait_for(lambda: view.ticks > ticks, timeout=10, interval=0.01, what="ticks after resubscribing")
    assert poller.running
    view.wanted = False
    wait_for(lambda: not poller.running, timeout=10, interval=0.01, what="the poller thread to end")


def _wait_for_a_tick(ref: weakref.ref[View]) -> None:
    """Wait until the view behind ``ref`` has had a tick, holding it only while checking."""

    def ticked() -> bool:
        view = ref()
        return view is not None and view.ticks >= 1

    wait_for(ticked, timeout=10, interval=0.01, what="a tick")


def test_a_view_that_is_gone_is_not_kept_alive(fast_polls):
    poller = poller_for(FakeDeployment("ep-weak"))
    view = View()
    poller.subscribe(view)
    _wait_for_a_tick(weakref.ref(view))
    del view
    gc.collect()
    wait_for(lambda: not poller.running, timeout=10, interval=0.01, what="the poller to notice")


def test_interval_adapts_and_all_views_share_each_tick(fast_polls):
    poller = poller_for(FakeDeployment("ep-adapt"))
    idle, busy, broken = View(), View(active=True), Broken()
    for view in (idle, busy, broken):
        poller.subscribe(view)
    # The poller may tick for ``idle`` alone before the others subscribe, so compare how the two
    # counts move from here on (busy read first: a round ticks idle, then busy).
    wait_for(lambda: busy.ticks >= 1, timeout=10, interval=0.01, what="a tick for every view")
    offset = -busy.ticks + idle.ticks
    start = idle.ticks
    wait_for(lambda: idle.ticks >= start + 3, timeout=10, interval=0.01, what="ticks")
    assert poller.interval == poller_module.FAST["cloud"]  # a job in flight: fast
    assert abs((-busy.ticks + idle.ticks) - offset) <= 1  # one round serves every view, despite the broken one
    busy.active = False
    wait_for(lambda: poller.interval == poller_module.SLOW["cloud"], timeout=10, interval=0.01, what="the slow interval")
    for view in (idle, busy, broken):
        view.wanted = False
    wait_for(lambda: not poller.running, timeout=10, interval=0.01, what="the poller to stop")


def test_poller_pauses_after_its_lifetime(fast_polls, monkeypatch):
    monkeypatch.setattr(poller_module, "MAX_LIFETIME", 0.05)
    poller = poller_for(FakeDeployment("ep-lifetime"))
    view = View(active=True)
    poller.subscribe(view)
    wait_for(lambda: view.paused, timeout=10, interval=0.01, what="the pause")
    assert not poller.running


def test_full_reads_are_reused_while_health_is_unchanged(monkeypatch):
    dep = FakeDeployment("ep-reuse")
    reads = []
    earlier = []

    def gather(client, endpoint_id, *, previous=None):
        reads.append(endpoint_id)
        earlier.append(previous)
        return EndpointState(endpoint_id=endpoint_id, backend="cloud", endpoint=dep.spec, listed=True, health=dep.health())

    monkeypatch.setattr("runpod_jupyter.diagnose.gather", gather)
    known = _Known()
    first = Tick(dep, known, full_every=60).endpoint()
    assert Tick(dep, known, full_every=60).endpoint() is first and len(reads) == 1
    dep.health_value = Health(jobs=JobCounts(in_queue=1), workers=WorkerCounts(idle=1))
    changed = Tick(dep, known, full_every=60).endpoint()
    assert changed is not first and changed[0].health.jobs.in_queue == 1 and len(reads) == 2
    Tick(dep, known, full_every=0).endpoint()  # due for a full read anyway
    assert len(reads) == 3
    # each full read hands gather the one before, so what cannot have changed is not asked again
    assert earlier[0] is None and earlier[1] is first[0] and earlier[2] is changed[0]


def test_coalescer_keeps_its_rate_and_loses_no_change():
    seen: list[int] = []
    latest = [0]
    coalescer = Coalescer(lambda: seen.append(latest[0]), rate=20.0)
    started = time.monotonic()

    def produce(offset: int) -> None:
        for i in range(2000):
            latest[0] = max(latest[0], offset + i)
            coalescer.poke()

    threads = [threading.Thread(target=produce, args=(n * 2000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: seen and seen[-1] == latest[0], timeout=10, interval=0.01, what="the last change flushed")
    elapsed = time.monotonic() - started
    assert len(seen) <= math.floor(elapsed / coalescer.interval) + 1  # never faster than the rate
    assert len(seen) < 8000


def test_a_failing_flush_does_not_stop_later_ones(caplog):
    calls = []

    def flush():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    coalescer = Coalescer(flush, rate=100.0)
    coalescer.poke()
    wait_for(lambda: len(calls) == 1, timeout=10, interval=0.01, what="the failing flush")
    coalescer.poke()
    wait_for(lambda: len(calls) == 2, timeout=10, interval=0.01, what="a later flush")
    assert "a widget update failed" in caplog.text


@pytest.fixture(autouse=True)
def _fresh_pollers(monkeypatch):
    monkeypatch.setattr(poller_module, "_pollers", {})
