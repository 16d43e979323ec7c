"""The job view: status timeline with queue delay and execution time, progress, the streamed
output as it arrives, the result or the worker's error, the worker's log lines, and cancel.

Chunks arrive on the stream reader's thread; the view only notes that something arrived, and
each flush (at most 20 a second) sends everything new as one ``tail`` message: a sequence
number, the new display items and log lines. A browser view that opens later (page reload)
asks for a replay of what came before.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import traitlets

from . import snapshot
from .base import LiveView, view_module
from .poller import Tick
from .readers import JobReader

if TYPE_CHECKING:
    from .subjects import ShownJob

#: What a newly opened browser view is sent of the past.
REPLAY_ITEMS = 1000
REPLAY_TEXT_CHARS = 200_000
REPLAY_LOG_LINES = 500


class JobView(LiveView):
    """Live view of one job."""

    _esm = view_module("job")
    tail = traitlets.Dict().tag(sync=True)

    def __init__(self, job: ShownJob) -> None:
        super().__init__(job, job.deployment)
        self.job = job
        self.reader = JobReader(job, stream=True)
        self._seq = 0
        self._new_logs: list[dict[str, Any]] = []
        self._last_round = False
        self.reader.on_log = lambda: self._on_chunk(None)  # a log line, like a chunk, only asks for a flush
        feed = self.reader.feed
        if feed is not None:  # always: a streaming reader follows the job's feed
            feed.listeners.append(self._on_chunk)

    def _on_chunk(self, _chunk: Any) -> None:
        """Called by the stream reader for every chunk: must be cheap and must not raise."""
        with contextlib.suppress(Exception):  # the stream must go on whatever happens here
            self._coalescer.poke()

    # -- polling ----------------------------------------------------------------------------
    def on_tick(self, tick: Tick) -> bool:
        fresh_logs = self.reader.refresh()
        current = self.reader.state()
        with self._lock:
            self._new_logs.extend(fresh_logs)
        self.push(current, live="final" if self.final else "active")
        if current["final"] and self.reader.stream_done and not self.reader.logs_active:
            if not self._last_round:  # one more round for log lines written as the job ended
                self._last_round = True
                return True
            self.reader.close()
            self.finish()
            return False
        return True

    def _collect(self) -> dict[str, Any]:
        changes = super()._collect()
        items = self.reader.take_items()
        logs, self._new_logs = self._new_logs + self.reader.take_logs(), []
        if items or logs:
            self._seq += 1
            changes["tail"] = {"seq": self._seq, "items": items, "logs": logs, "chunks": self.reader.chunk_count}
        return changes

    def on_view_open(self) -> None:
        with self._lock:  # with the flushes' lock: the replay and later tails stay in order
            items = self.reader.items[-REPLAY_ITEMS:]
            dropped = len(self.reader.items) - len(items)
            items = [_trim(i) for i in items]
            self.send({
                "type": "replay", "seq": self._seq, "items": items, "dropped": dropped,
                "logs": self.reader.logs[-REPLAY_LOG_LINES:], "chunks": self.reader.chunk_count,
            })

    # -- snapshot ---------------------------------------------------------------------------
    def static_text(self) -> str:
        return snapshot.job_text(self.reader.state(), self.reader.items, self.reader.logs)

    def static_html(self) -> str:
        return snapshot.job_html(self.reader.state(), self.reader.items, self.reader.logs)

    # -- actions ----------------------------------------------------------------------------
    def on_action(self, name: str, content: dict[str, Any]) -> None:
        if name == "cancel":
            self.act("cancel", lambda: f"Cancel sent; the job is {self.job.cancel().value}.")


def _trim(item: dict[str, Any]) -> dict[str, Any]:
    if item["k"] == "text" and len(item["t"]) > REPLAY_TEXT_CHARS:
        return {"k": "text", "t": "…" + item["t"][-REPLAY_TEXT_CHARS:]}
    return item


__all__ = ["JobView"]
