"""The scaling rules as a pure decision (no processes): state in, plan out."""

from __future__ import annotations

from collections import deque

from runpod_jupyter.local.model import EndpointRuntime
from runpod_jupyter.local.scaler import plan
from runpod_jupyter.local.workers import WorkerRecord

NOW = 1_000.0


def _endpoint(queue: int = 0, release: int = 1, prewarm: bool = False, **data) -> EndpointRuntime:
    settings = {"id": "ep", "workersMin": 0, "workersMax": 3, "idleTimeout": 5, "scalerType": "QUEUE_DELAY",
                "scalerValue": 4, **data}
    ep = EndpointRuntime(data=settings, template={"imageName": "local:/x"}, release=release, prewarm=prewarm)
    ep.queue = deque(f"job{i}" for i in range(queue))
    return ep


def _worker(state: str, release: int = 1, idle_since: float | None = None) -> WorkerRecord:
    return WorkerRecord(
        id=f"w-{state}-{release}-{idle_since}", endpoint_id="ep", release=release, state=state, idle_since=idle_since
    )


def test_a_cold_endpoint_starts_a_worker_at_once():
    assert plan(_endpoint(queue=1), [], now=NOW, oldest_queued=NOW, room=5).start == 1
    assert plan(_endpoint(queue=0), [], now=NOW, oldest_queued=None, room=5).start == 0
    assert plan(_endpoint(prewarm=True), [], now=NOW, oldest_queued=None, room=5).start == 1


def test_queue_delay_adds_one_worker_only_when_jobs_are_late():
    busy = [_worker("running")]
    assert plan(_endpoint(queue=2), busy, now=NOW, oldest_queued=NOW - 1, room=5).start == 0
    assert plan(_endpoint(queue=2), busy, now=NOW, oldest_queued=NOW - 4, room=5).start == 1


def test_request_count_keeps_one_worker_per_n_jobs_capped_by_max_and_quota():
    ep = _endpoint(queue=5, scalerType="REQUEST_COUNT", scalerValue=1, workersMax=4)
    assert plan(ep, [], now=NOW, oldest_queued=NOW, room=10).start == 4
    assert plan(ep, [], now=NOW, oldest_queued=NOW, room=2).start == 2


def test_idle_workers_above_the_floor_stop_after_idle_timeout():
    workers = [_worker("idle", idle_since=NOW - 10), _worker("idle", idle_since=NOW - 1)]
    decision = plan(_endpoint(), workers, now=NOW, oldest_queued=None, room=5)
    assert [w for w, _ in decision.drain] == [workers[0]]
    kept = plan(_endpoint(workersMin=2), workers, now=NOW, oldest_queued=None, room=5)
    assert kept.drain == []


def test_a_release_replaces_outdated_workers_a_few_at_a_time_never_a_running_one():
    old = [_worker("idle", release=1, idle_since=NOW), _worker("idle", release=1, idle_since=NOW), _worker("running", release=1)]
    decision = plan(_endpoint(release=2, workersMax=3), old, now=NOW, oldest_queued=None, room=10)
    assert decision.start == 3  # replacements for all three
    drained = [w for w, _ in decision.drain]
    assert len(drained) == 1 and drained[0].state == "idle"  # 10 % of workersMax, at least one
    assert all("outdated" in why for _, why in decision.drain)


def test_worker_phases_extend_the_states_runpod_reports():
    from runpod_jupyter.api.models import OUTDATED, WORKER_STATES, WorkerState
    from runpod_jupyter.local.workers import WorkerPhase

    assert {s.value for s in WorkerState} | {OUTDATED} <= {p.value for p in WorkerPhase}
    assert WORKER_STATES == ("initializing", "idle", "running", "throttled", "outdated", "unhealthy")
    assert _worker("idle").state is WorkerPhase.IDLE  # records hold members, whatever they were given
