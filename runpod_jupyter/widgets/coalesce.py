"""Rate-limited flushing: a view marks itself changed from any thread, as often as its source
produces (a stream may yield thousands of chunks a second), and its ``flush`` runs at most
``rate`` times a second, so the browser gets one message per flush whatever the source rate.

One daemon thread serves every view in the process; it exits after a quiet minute and comes
back on the next change.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Flushes per second, per view, at most.
DEFAULT_RATE = 20.0
#: The flush thread leaves after this many seconds with nothing to do.
IDLE_EXIT = 60.0


class Coalescer:
    """Calls ``flush`` soon after :meth:`poke`, and never twice within ``1/rate`` seconds."""

    def __init__(self, flush: Callable[[], None], rate: float = DEFAULT_RATE) -> None:
        self._flush = flush
        self.interval = 1.0 / rate
        self._running = threading.Lock()  # one flush at a time
        self._lock = threading.Lock()  # guards the schedule below; never held during a flush
        self._scheduled = False
        self._last = float("-inf")
        self.flushes = 0

    def poke(self) -> None:
        """Something changed: flush at the next allowed moment (a no-op if one is pending)."""
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
            due = max(time.monotonic(), self._last + self.interval)
        _scheduler.add(self, due)

    def flush_now(self) -> None:
        """Flush at once, in the calling thread (final states); later pokes keep the rate."""
        with self._lock:
            self._last = time.monotonic()
        self._run()

    def _due(self) -> None:
        """Called by the scheduler thread when a poke's time has come."""
        with self._lock:
            now = time.monotonic()
            if now < self._last + self.interval:  # flushed directly in the meantime
                again = self._last + self.interval
            else:
                again = None
                self._scheduled = False
                self._last = now
        if again is not None:
            _scheduler.add(self, again)
        else:
            self._run()

    def _run(self) -> None:
        with self._running:
            self.flushes += 1
            try:
                self._flush()
            except Exception:  # a view's bug must not stop the other views' updates
                log.exception("runpod-jupyter: a widget update failed")


class _Scheduler:
    """A heap of (due time, coalescer), drained by one thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Coalescer]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, coalescer: Coalescer, due: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._order), coalescer))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="runpod-widget-flush", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        quiet_since = time.monotonic()
        while True:
            with self._cond:
                now = time.monotonic()
                if not self._heap:
                    if now - quiet_since >= IDLE_EXIT:
                        self._thread = None
                        return
                    self._cond.wait(IDLE_EXIT - (now - quiet_since))
                    continue
                due, _, coalescer = self._heap[0]
                if due > now:
                    self._cond.wait(due - now)
                    continue
                heapq.heappop(self._heap)
            coalescer._due()
            quiet_since = time.monotonic()


_scheduler = _Scheduler()
