"""Which job a worker log line belongs to, on lines shaped as REST API v2 streams them (the SDK's
JSON lines as printed, a handler's plain prints, times cut to the second)."""

from __future__ import annotations

import json

from runpod_jupyter.api.observed import LogLine
from runpod_jupyter.worker_logs import Attributor, JobWindow, untag

W = "worker-1"


def _sdk(job: str | None, message: str) -> str:
    return json.dumps({"requestId": job, "message": message, "level": "INFO"})


def _lines(*texts: tuple[str, str]) -> list[LogLine]:
    return [LogLine(id=f"{ts}/{i:012d}", ts=ts, source="container", line=text, worker_id=W)
            for i, (ts, text) in enumerate(texts, 1)]


def _jobs(entries) -> list[tuple[str, str | None]]:
    return [(e["message"], e["job"]) for e in entries]


def test_untag_reads_the_sdk_lines_and_leaves_prints_alone():
    assert untag(_sdk("job-1", "Started.")) == (True, "job-1", "INFO", "Started.")
    assert untag(_sdk(None, "Jobs in queue: 1")) == (True, None, "INFO", "Jobs in queue: 1")
    assert untag('{"not": "the sdk"}') == (False, None, "INFO", '{"not": "the sdk"}')
    assert untag("hello") == (False, None, "INFO", "hello")


def test_prints_between_a_jobs_tags_are_that_jobs_two_jobs_in_the_same_second():
    lines = _lines(
        ("2026-06-01T12:00:00Z", _sdk("a", "Started.")), ("2026-06-01T12:00:00Z", "print a"),
        ("2026-06-01T12:00:00Z", _sdk("a", "Finished.")), ("2026-06-01T12:00:00Z", _sdk(None, "Jobs in queue: 1")),
        ("2026-06-01T12:00:00Z", _sdk("b", "Started.")), ("2026-06-01T12:00:00Z", "print b"),
        ("2026-06-01T12:00:00Z", _sdk("b", "Finished.")), ("2026-06-01T12:00:01Z", "idle print"),
    )
    assert _jobs(Attributor().entries(lines)) == [
        ("Started.", "a"), ("print a", "a"), ("Finished.", "a"), ("Jobs in queue: 1", None),
        ("Started.", "b"), ("print b", "b"), ("Finished.", "b"), ("idle print", None),
    ]


def test_a_generator_job_without_a_start_tag_gets_the_prints_before_its_finish():
    lines = _lines(
        ("2026-06-01T12:00:00Z", _sdk("a", "Finished.")),
        ("2026-06-01T12:00:05Z", "working on 0"), ("2026-06-01T12:00:05Z", "working on 1"),
        ("2026-06-01T12:00:06Z", _sdk("g", "Finished running generator.")), ("2026-06-01T12:00:06Z", _sdk("g", "Finished.")),
    )
    assert [job for _, job in _jobs(Attributor().entries(lines))] == ["a", "g", "g", "g", "g"]


def test_live_lines_without_tags_go_by_the_jobs_window_and_a_finished_job_takes_no_more():
    start = LogLine(id="", ts="2026-06-01T12:00:10Z", source="container", line="x", worker_id=W).time
    attributor = Attributor([JobWindow("c", W, start=start + 0.6, end=None)])
    before, during = _lines(("2026-06-01T12:00:08Z", "earlier"), ("2026-06-01T12:00:10Z", "during"))
    assert attributor.entry(before)["job"] is None
    assert attributor.entry(during)["job"] == "c"  # stamped 12:00:10, logged before 12:00:11
    assert attributor.entry(_lines(("2026-06-01T12:00:12Z", _sdk("c", "Finished.")))[0])["job"] == "c"
    assert attributor.entry(_lines(("2026-06-01T12:00:12Z", "after"))[0])["job"] is None
    other = LogLine(id="", ts="2026-06-01T12:00:10Z", source="container", line="elsewhere", worker_id="worker-2")
    assert attributor.entry(other)["job"] is None


def test_secrets_are_scrubbed_from_messages():
    entry = Attributor(secrets=["hunter2-password"]).entry(_lines(("2026-06-01T12:00:00Z", "pw hunter2-password"))[0])
    assert entry["message"] == "pw ****"


def test_a_print_a_start_tag_placed_stays_and_one_only_a_window_placed_goes_to_the_next_tagged_job():
    """Read at once: "print b" follows b's start tag, so it stays b's though c's tag comes next
    (b's finish was cut off); "stray print" had only job z's open window, and g's tag comes next."""
    start = LogLine(id="", ts="2026-06-01T12:00:00Z", source="container", line="x", worker_id=W).time
    lines = _lines(
        ("2026-06-01T12:00:01Z", _sdk("b", "Started.")), ("2026-06-01T12:00:01Z", "print b"),
        ("2026-06-01T12:00:02Z", _sdk("c", "Finished.")),
        ("2026-06-01T12:00:03Z", "stray print"), ("2026-06-01T12:00:04Z", _sdk("g", "Finished.")),
    )
    attributor = Attributor([JobWindow("z", W, start=start, end=None)])
    assert _jobs(attributor.entries(lines)) == [
        ("Started.", "b"), ("print b", "b"), ("Finished.", "c"), ("stray print", "g"), ("Finished.", "g"),
    ]
