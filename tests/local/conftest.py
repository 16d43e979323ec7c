"""Fixtures shared by the embedded RunPod's tests."""

from __future__ import annotations

import pytest
from support import LOCAL_KEY


@pytest.fixture()
def sdk(local_runpod, monkeypatch):
    """The unmodified runpod SDK (the installed release) in this process: its job clients and its
    GraphQL helpers pointed at the embedded RunPod."""
    runpod = pytest.importorskip("runpod")
    monkeypatch.setenv("RUNPOD_API_BASE_URL", local_runpod.url)
    monkeypatch.setattr(runpod, "api_key", LOCAL_KEY)
    monkeypatch.setattr(runpod, "endpoint_url_base", local_runpod.rest_base)
    return runpod
