"""The job view shows its job's worker log lines live, the handler's own prints included, read
through REST API v2 on both backends; the API key never reaches the view's state."""

from __future__ import annotations

import threading
import uuid

import pytest
from support import deployed, wait_for

from runpod_jupyter.config import Settings
from runpod_jupyter.deployment import Deployment
from runpod_jupyter.widgets import make_view
from runpod_jupyter.widgets import poller as poller_module

pytestmark = pytest.mark.slow  # starts workers

WAITS = """
import os, time, runpod

def handler(job):
    given = job["input"]
    print(f"hello from {given['tag']}", flush=True)
    print("key", given["echo"], flush=True)
    for _ in range(600):  # at most a minute
        if os.path.exists(given["wait_for"]):
            break
        time.sleep(0.1)
    print(f"bye from {given['tag']}", flush=True)
    return given["tag"]

runpod.serverless.start({"handler": handler})
"""


@pytest.fixture(scope="module")
def endpoint(local_runpod, tmp_path_factory):
    with deployed(local_runpod.settings(), tmp_path_factory.mktemp("joblogs"), WAITS, workers_max=1,
                  idle_timeout=60) as spec:
        yield spec


@pytest.mark.parametrize("backend", ["local", "cloud"])
def test_job_view_shows_a_print_while_the_job_runs(backend, local_runpod, endpoint, tmp_path, comms, fast_polls,
                                                   monkeypatch):
    monkeypatch.setattr(poller_module, "_pollers", {})
    settings = local_runpod.settings()
    if backend == "cloud":
        settings = Settings(backend="cloud", rest_base=settings.rest_base, graphql_url=settings.graphql_url,
                            api_key=settings.api_key, key_source="test")
    dep = Deployment(name=endpoint.name, endpoint_id=endpoint.id, backend=backend, settings=settings)
    key = settings.api_key.reveal()
    tag, marker = f"t{uuid.uuid4().hex[:8]}", tmp_path / "go"
    job = dep.run({"tag": tag, "echo": key, "wait_for": str(marker)})
    view = make_view(job)
    seen: list[str] = []
    lock = threading.Lock()

    def on_tail(change):  # on the view's flush: no requests here
        with lock:
            seen.extend(line["message"] for line in change["new"].get("logs") or [])

    view.observe(on_tail, names="tail")
    view.start()
    wait_for(lambda: f"hello from {tag}" in seen, timeout=60, interval=0.05, what="the handler's print in the view")
    # The handler waits for the marker: the line reached the view while the job runs.
    assert dep.client.endpoint(dep.endpoint_id).status(job.id).status.value == "IN_PROGRESS"
    marker.touch()
    wait_for(lambda: view.final, timeout=60, interval=0.05, what="the job view's final state")
    messages = list(seen)
    assert f"bye from {tag}" in messages and "key ****" in messages
    assert all(line["message"] in messages for line in view.reader.logs)
    assert key not in repr(view.state) + repr(view.tail) + repr(view.reader.logs) + view.static_text()
    view.close()
