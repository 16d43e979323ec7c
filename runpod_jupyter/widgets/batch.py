"""The batch view for ``Deployment.map``: how many jobs are done, counts by status, failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import snapshot
from .base import LiveView, view_module
from .poller import Tick
from .readers import BatchReader

if TYPE_CHECKING:
    from .subjects import ShownBatch


class BatchView(LiveView):
    """Live view of a batch of jobs."""

    _esm = view_module("batch")

    def __init__(self, batch: ShownBatch) -> None:
        super().__init__(batch, batch.deployment)
        self.batch = batch
        self.reader = BatchReader(batch)

    def on_tick(self, tick: Tick) -> bool:
        self.reader.refresh()
        current = self.reader.state()
        self.push(current, live="active")
        if current["final"]:
            self.finish()
            return False
        return True

    def static_text(self) -> str:
        return snapshot.batch_text(self.reader.state())

    def static_html(self) -> str:
        return snapshot.batch_html(self.reader.state())
