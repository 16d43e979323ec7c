"""The views in-process: real handles and widgets over a fake endpoint API, with comms that
record what the browser would be sent."""

from __future__ import annotations

import json
import math
import time

import pytest
from fakes import KEY, FakeDeployment
from support import wait_for

from runpod_jupyter.api.models import JobStatus
from runpod_jupyter.deployment import Batch, Job
from runpod_jupyter.diagnose import EndpointState
from runpod_jupyter.widgets import make_view, views_of
from runpod_jupyter.widgets import poller as poller_module
from runpod_jupyter.widgets.base import WIDGET_MIME

ERROR = json.dumps({"error_type": "<class 'KeyError'>", "error_message": "'prompt'",
                    "error_traceback": "Traceback (most recent call last):\n  File \"handler.py\", line 3\nKeyError: 'prompt'"})


@pytest.fixture(autouse=True)
def _fresh_pollers(monkeypatch):
    monkeypatch.setattr(poller_module, "_pollers", {})


def _job(dep: FakeDeployment, job_id: str = "job-1", status: JobStatus = JobStatus.IN_PROGRESS) -> Job:
    dep.fake.add_job(job_id, status)
    return Job(dep, job_id, state=dep.fake.jobs[job_id])


def _browser(view, event: str) -> None:
    """A message from the page, through the widget's real comm handler."""
    view._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "view", "event": event}}}, "buffers": []})


def _tails(comm) -> list[dict]:
    return [u["tail"] for u in comm.updates() if "tail" in u]


def test_a_fast_stream_is_sent_in_few_ordered_batches(comms, fast_polls):
    dep = FakeDeployment()
    job = _job(dep)
    view = make_view(job)
    view.start()
    comm = view.comm
    started = time.monotonic()
    for i in range(5000):
        dep.fake.emit(job.id, f"t{i} ")
        if i % 1000 == 999:
            dep.fake.emit(job.id, {"step": i})
    dep.fake.set(job.id, status=JobStatus.COMPLETED, output=None, execution_time_ms=1234, delay_time_ms=5)
    dep.fake.end_stream(job.id)
    wait_for(lambda: view.final, timeout=30, interval=0.02, what="the view to reach the final state")
    elapsed = time.monotonic() - started

    tails = _tails(comm)
    assert [t["seq"] for t in tails] == list(range(1, len(tails) + 1))
    items = [item for t in tails for item in t["items"]]
    assert "".join(i["t"] for i in items if i["k"] == "text") == "".join(f"t{i} " for i in range(5000))
    assert [json.loads(i["t"])["step"] for i in items if i["k"] == "json"] == [999, 1999, 2999, 3999, 4999]
    assert tails[-1]["chunks"] == 5005
    updates = comm.updates()
    assert len(updates) <= math.floor(elapsed / view._coalescer.interval) + 2  # the rate holds (+ the final flush)
    assert len(updates) < 5005 / 20
    assert updates[-1]["state"]["status"] == "COMPLETED" and updates[-1]["state"]["live"] == "final"


def test_a_page_that_opens_later_gets_a_replay_then_only_new_batches(comms):
    dep = FakeDeployment()
    job = _job(dep)
    view = make_view(job)
    comm = view.comm
    image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    dep.fake.emit(job.id, "one ", "two ", {"image": image, "seed": 7})
    wait_for(lambda: view.reader.chunk_count == 3, timeout=10, interval=0.01, what="the chunks")
    view.flush()
    _browser(view, "open")
    replay = comm.customs()[-1]
    assert replay["type"] == "replay" and replay["seq"] == _tails(comm)[-1]["seq"]
    assert [i["k"] for i in replay["items"]] == ["text", "json", "img"] and replay["items"][0]["t"] == "one two "
    dep.fake.emit(job.id, "three")
    wait_for(lambda: view.reader.chunk_count == 4, timeout=10, interval=0.01, what="another chunk")
    view.flush()
    assert _tails(comm)[-1] == {"seq": replay["seq"] + 1, "items": [{"k": "text", "t": "three"}], "logs": [], "chunks": 4}
    dep.fake.end_stream(job.id)


def test_polling_follows_whether_a_page_shows_the_view(comms):
    dep = FakeDeployment()
    view = make_view(_job(dep))
    assert view.wants_updates()  # no page yet: a headless run still wants its final state
    _browser(view, "open")
    _browser(view, "open")  # the same output in two places
    _browser(view, "close")
    assert view.wants_updates()
    _browser(view, "close")
    assert not view.wants_updates()  # no page shows it: stop asking RunPod
    _browser(view, "open")
    assert view.wants_updates() and view.poller.running
    view.close()
    assert not view.wants_updates()
    dep.fake.end_stream("job-1")


def test_a_failed_job_ends_static_with_its_traceback_and_no_key(comms, fast_polls):
    dep = FakeDeployment()
    job = _job(dep)
    view = make_view(job)
    view.show()
    view.start()
    dep.fake.set(job.id, status=JobStatus.FAILED, error=ERROR)
    dep.fake.end_stream(job.id)
    wait_for(lambda: view.final, timeout=30, interval=0.02, what="the final state")
    state = view.state
    assert state["error"] == {
        "type": "KeyError", "message": "'prompt'",
        "traceback": "Traceback (most recent call last):\n  File \"handler.py\", line 3\nKeyError: 'prompt'",
    }
    final = view.bundle(live=False)
    assert WIDGET_MIME not in final and "KeyError: &#x27;prompt&#x27;" in final["text/html"]
    assert "<details><summary>Worker traceback</summary>" in final["text/html"]
    assert KEY not in json.dumps([c.sent for c in comms]) and KEY not in json.dumps(final)
    assert views_of(job) == [view]


def test_cancel_from_the_page(comms):
    dep = FakeDeployment()
    job = _job(dep)
    view = make_view(job)
    view._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "action", "name": "cancel"}}}, "buffers": []})
    wait_for(lambda: view._notice, timeout=10, interval=0.01, what="the cancel to finish")
    assert dep.fake.cancelled == [job.id] and "CANCELLED" in view._notice["text"]


def _endpoint(monkeypatch, dep: FakeDeployment):
    def gather(client, endpoint_id, *, previous=None):
        return EndpointState(endpoint_id=endpoint_id, backend="cloud", endpoint=dep.spec, listed=True, health=dep.health())

    monkeypatch.setattr("runpod_jupyter.diagnose.gather", gather)
    return make_view(dep)


def _action(view, **content) -> None:
    before = view._notice
    view._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "action", **content}}}, "buffers": []})
    wait_for(lambda: view._notice is not before and not view._busy, timeout=10, interval=0.01, what="the action")


def test_endpoint_actions_check_their_input(comms, monkeypatch):
    dep = FakeDeployment()
    view = _endpoint(monkeypatch, dep)
    assert view.state["settings"]["workersMax"] == 1 and view.state["cost"]["perHour"] == 0.0
    _action(view, name="scale", min=1, max=3)
    assert dep.calls[-1] == ("scale", (1, 3)) and view._notice["text"].startswith("Workers now 1-3")
    _action(view, name="scale", min=-1, max="many")
    assert view._notice["level"] == "error" and len(dep.calls) == 1
    _action(view, name="delete", confirm="not-the-name")
    assert view._notice["level"] == "error" and len(dep.calls) == 1
    _action(view, name="purge")
    assert dep.calls[-1] == ("purge", None) and "Removed 2" in view._notice["text"]
    _action(view, name="delete", confirm=dep.name)
    assert dep.calls[-1] == ("delete", None) and view._notice["text"].startswith("Deleted")
    assert KEY not in json.dumps([c.sent for c in comms])


def test_batch_view_counts_and_lists_failures(comms, fast_polls):
    dep = FakeDeployment()
    jobs = [_job(dep, f"b{i}", JobStatus.IN_QUEUE) for i in range(4)]
    batch = Batch(dep, jobs, "batch-1")
    view = make_view(batch)
    view.start()
    assert view.state["counts"] == {"IN_QUEUE": 4} and view.state["done"] == 0
    for i in range(3):
        dep.fake.set(f"b{i}", status=JobStatus.COMPLETED)
    dep.fake.set("b3", status=JobStatus.FAILED, error=ERROR)
    wait_for(lambda: view.final, timeout=30, interval=0.02, what="the batch to finish")
    state = view.state
    assert state["counts"] == {"COMPLETED": 3, "FAILED": 1} and state["done"] == 4 and state["failed"] == 1
    assert state["failures"] == [{"index": 3, "id": "b3", "status": "FAILED", "reason": "KeyError: 'prompt'"}]
    for job_id in ("b0", "b1", "b2", "b3"):
        dep.fake.end_stream(job_id)
