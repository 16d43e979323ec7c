"""Fixtures for in-process view tests: widget comms that record instead of sending."""

from __future__ import annotations

import pytest


@pytest.fixture()
def comms(monkeypatch):
    """Every widget made in the test gets a :class:`fakes.RecordingComm`; closed afterwards."""
    import comm
    from fakes import RecordingComm

    made: list[RecordingComm] = []

    def create(*args, **kwargs):
        made.append(RecordingComm(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(comm, "create_comm", create)
    yield made
    from runpod_jupyter.widgets.base import registry

    for view in list(registry):
        view.close()


@pytest.fixture()
def fast_polls(monkeypatch):
    """Short poll intervals, so lifecycle tests take milliseconds."""
    from runpod_jupyter.widgets import poller

    monkeypatch.setitem(poller.FAST, "cloud", 0.01)
    monkeypatch.setitem(poller.SLOW, "cloud", 0.03)
    monkeypatch.setitem(poller.FAST, "local", 0.01)
    monkeypatch.setitem(poller.SLOW, "local", 0.03)
