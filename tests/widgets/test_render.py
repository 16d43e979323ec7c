"""Chunks, progress values and worker errors turned into display items, and the saved HTML/text
made from them: images recognised (and only real ones), text runs merged, markup escaped."""

from __future__ import annotations

import base64
import json

import pytest

from runpod_jupyter.findings import Finding
from runpod_jupyter.widgets import render, snapshot, state

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 40).decode()


@pytest.mark.parametrize(("value", "expected"), [
    ("data:image/png;base64," + PNG, "data:image/png;base64," + PNG),
    (PNG, "data:image/png;base64," + PNG),
    (JPEG, "data:image/jpeg;base64," + JPEG),
    ("data:image/png;base64,\n" + PNG[:40] + "\n" + PNG[40:], "data:image/png;base64," + PNG),
    ("iVBORw0KGgo but then words, not base64 at all", None),
    ("data:text/html;base64,PHNjcmlwdD4=", None),
    ("data:image/svg+xml;base64,PHN2Zz4=", None),  # SVG can carry script: never an <img> source here
    ("iVBOR", None),
    (42, None),
])
def test_image_sources(value, expected):
    assert render.image_src(value) == expected


def test_items_for_each_kind_of_chunk():
    assert render.items("hello ") == [{"k": "text", "t": "hello "}]
    assert render.items({"a": 1}) == [{"k": "json", "t": '{\n  "a": 1\n}'}]
    assert render.items(3.5) == [{"k": "json", "t": "3.5"}]
    both = render.items({"image": PNG, "caption": "dot"})
    assert [i["k"] for i in both] == ["json", "img"]
    assert json.loads(both[0]["t"])["caption"] == "dot" and PNG not in both[0]["t"]
    assert both[1]["alt"] == "image"
    assert [i["k"] for i in render.items({"image": PNG})] == ["img"]
    assert [i["k"] for i in render.items([PNG, "data:image/png;base64," + PNG])] == ["img", "img"]
    assert render.items(["a", PNG])[0]["k"] == "json"  # a mixed list is data, shown as JSON
    long = render.items({"x": "y" * 50_000})[0]["t"]
    assert len(long) < 21_000 and "more characters not shown" in long


def test_text_runs_merge_and_other_items_do_not():
    merged = render.merge([{"k": "text", "t": "a"}, {"k": "text", "t": "b"}, {"k": "json", "t": "1"}, {"k": "text", "t": "c"}])
    assert merged == [{"k": "text", "t": "ab"}, {"k": "json", "t": "1"}, {"k": "text", "t": "c"}]


@pytest.mark.parametrize(("value", "fraction"), [
    ("3/10", 0.3), ("step 2 of 4", 0.5), ("loading 42%", 0.42), (0.25, 0.25), (40, 0.4), (250, None),
    ({"progress": 0.5, "stage": "x"}, 0.5), ({"percent": 20}, 0.2), ("warming up", None), (True, None),
    ("12/10", 1.0),
])
def test_progress_fraction(value, fraction):
    found = render.progress(value)
    assert found is not None and found["text"]
    assert found["fraction"] == (pytest.approx(fraction) if fraction is not None else None)


def test_worker_error_is_split_into_type_message_and_traceback():
    wire = json.dumps({"error_type": "<class 'ValueError'>", "error_message": "bad input",
                       "error_traceback": "Traceback (most recent call last):\n  File \"handler.py\"\nValueError: bad input",
                       "hostname": "w1"})
    assert render.error(wire) == {
        "type": "ValueError", "message": "bad input",
        "traceback": "Traceback (most recent call last):\n  File \"handler.py\"\nValueError: bad input",
    }
    assert render.error("worker exited with exit code 137") == {
        "type": "", "message": "worker exited with exit code 137", "traceback": "",
    }
    assert render.error(None) is None


def test_saved_html_escapes_everything_it_is_given():
    evil = "<script>alert(1)</script>"
    job = {
        "id": "j1", "endpoint": evil, "backend": "local", "status": "FAILED", "final": True,
        "timeline": [[1.0, "IN_QUEUE", evil]], "delayMs": 5, "executionMs": 7, "worker": "w",
        "progress": None, "progressHistory": [evil], "result": [], "resultNote": None,
        "error": {"type": "ValueError", "message": evil, "traceback": evil}, "streamCount": 1,
        "streamError": None, "logCount": 1,
    }
    page = snapshot.job_html(job, render.items(evil) + render.items({"k": evil}), [{"t": 1.0, "message": evil}])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<details><summary>Worker traceback</summary>" in page
    finding = Finding("error", "crash-loop", evil, evil)
    endpoint = state.endpoint_state(name=evil, endpoint_id="e", backend="cloud", gathered=None, findings=[finding])
    assert "<script>" not in snapshot.endpoint_html(endpoint)
    assert evil in snapshot.endpoint_text(endpoint)  # plain text is not HTML


def test_saved_stream_keeps_the_latest_items_within_bounds():
    big_image = {"k": "img", "src": "data:image/png;base64," + "A" * 3_000_000, "bytes": 3_000_000}
    items = [{"k": "json", "t": str(i)} for i in range(500)] + [big_image, {"k": "text", "t": "end"}]
    kept, dropped = snapshot.kept_items(items)
    assert len(kept) == snapshot.STATIC_ITEMS and dropped == len(items) - snapshot.STATIC_ITEMS
    assert kept[-1] == {"k": "text", "t": "end"}
    assert kept[-2]["k"] == "json" and "not kept in the notebook" in kept[-2]["t"]  # too big to save
    assert kept[0] == {"k": "json", "t": str(500 - snapshot.STATIC_ITEMS + 2)}


@pytest.mark.parametrize(("output", "note"), [
    (["a", "b"], "the 2 streamed chunk(s) above, aggregated"),
    ([], "the 2 streamed chunk(s) above"),  # --stream-only: the result does not repeat them
])
def test_a_streamed_result_is_named_not_shown_again(output, note):
    from runpod_jupyter.api.models import JobState, JobStatus

    shown = state.job_state(
        job_id="j-1", endpoint="ep", backend="local", snapshot=JobState(id="j-1", status=JobStatus.COMPLETED, output=output),
        detail=None, observed=[], progress_seen=[], stream_count=2, chunks=["a", "b"], stream_error=None, log_count=0,
    )
    assert shown["resultNote"] == note and shown["result"] == []
