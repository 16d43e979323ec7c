"""The embedded RunPod's job bookkeeping, driven directly on its engine and sqlite store (no HTTP,
no workers): queue order, result retention at scale, and what a restart rebuilds.

These pin the indexes that keep the clock and ``/health`` independent of how many finished jobs
are retained: a long batch leaves hundreds of thousands of them for 30 minutes.
"""

from __future__ import annotations

import time

import pytest
from support import add_endpoint, add_worker, deploy, engine_on_disk, local_get

ECHO = """
import runpod
runpod.serverless.start({"handler": lambda job: job["input"]})
"""


def run_next(engine, ep, worker, output: object = "ok") -> str:
    """What a worker's job-take and job-done do, without the HTTP in between."""
    job = engine.worker_api.assign(ep, worker)
    engine.worker_api.job_done(worker.id, job.id, {"output": output})
    return job.id


def test_low_priority_jobs_wait_behind_normal_ones(tmp_path):
    engine = engine_on_disk(tmp_path)
    ep = add_endpoint(engine, "ep-queue")
    low = [engine.queue.submit(ep, {"input": i, "policy": {"lowPriority": True}}, "run").id for i in range(3)]
    normal = [engine.queue.submit(ep, {"input": i}, "run").id for i in range(2)]
    late_low = engine.queue.submit(ep, {"input": 9, "policy": {"lowPriority": True}}, "run").id
    late_normal = engine.queue.submit(ep, {"input": 10}, "run").id
    assert list(ep.queue) == [*normal, late_normal, *low, late_low]


@pytest.mark.slow
def test_finished_jobs_expire_in_order_and_health_counts_only_open_ones(tmp_path):
    engine = engine_on_disk(tmp_path, retention_run=100.0, retention_sync=10.0)
    ep = add_endpoint(engine, "ep-queue")
    worker = add_worker(engine, ep, "w-1")
    runs = [engine.queue.submit(ep, {"input": i}, "run").id for i in range(2000)]
    syncs = [engine.queue.submit(ep, {"input": i}, "sync").id for i in range(50)]
    running = engine.queue.submit(ep, {"input": "still running"}, "run")
    done = [run_next(engine, ep, worker) for _ in range(len(runs) + len(syncs))]
    assert done == runs + syncs
    engine.worker_api.assign(ep, worker)
    assert engine.health(ep)["jobs"] == {
        "completed": 2050, "failed": 0, "inProgress": 1, "inQueue": 0, "retried": 0,
    }

    now = time.time()
    engine.queue.expire(now + 50)  # past the /runsync retention only
    assert not any(j in engine.jobs for j in syncs)
    assert all(j in engine.jobs for j in runs) and running.id in engine.jobs
    engine.queue.expire(now + 500)  # past both; the open job stays
    assert set(engine.jobs) == {running.id}
    assert engine.store._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1


def test_a_restart_rebuilds_the_queue_and_still_expires_old_results(tmp_path):
    engine = engine_on_disk(tmp_path, retention_run=100.0)
    ep = add_endpoint(engine, "ep-queue")
    worker = add_worker(engine, ep, "w-1")
    finished = [engine.queue.submit(ep, {"input": i}, "run").id for i in range(3)]
    for _ in finished:
        run_next(engine, ep, worker)
    interrupted = engine.queue.submit(ep, {"input": "interrupted"}, "run").id
    engine.worker_api.assign(ep, worker)
    queued = engine.queue.submit(ep, {"input": "queued"}, "run").id
    engine.store.close()

    again = engine_on_disk(tmp_path, retention_run=100.0)
    ep = again.endpoints["ep-queue"]
    assert list(ep.queue) == [interrupted, queued]  # the interrupted job runs again, first
    assert again.health(ep)["jobs"]["retried"] == 1 and again.jobs[interrupted].retries == 1
    again.queue.expire(time.time() + 500)
    assert set(again.jobs) == {interrupted, queued}


@pytest.fixture(scope="module")
def queued_jobs(local_runpod, tmp_path_factory):
    """An endpoint with no workers and 120 jobs waiting on it, oldest first."""
    from runpod_jupyter.api import Client

    with Client(local_runpod.settings()) as client:
        spec, api = deploy(client, tmp_path_factory.mktemp("listed"), ECHO, wait_idle=False, workers_max=0)
        return spec.id, [api.run({"i": i}).id for i in range(120)]


@pytest.mark.slow
@pytest.mark.parametrize("limit, expected", [(None, 100), (5, 5), (0, 0)])
def test_local_job_list_is_newest_first_and_bounded(local_runpod, queued_jobs, limit, expected):
    endpoint_id, ids = queued_jobs
    params = {"endpoint_id": endpoint_id} if limit is None else {"endpoint_id": endpoint_id, "limit": limit}
    listed = [job["id"] for job in local_get(local_runpod, "/local/jobs", **params)["jobs"]]
    assert listed == list(reversed(ids))[:expected]


def test_a_retried_job_starts_its_heartbeat_count_afresh(tmp_path):
    """The SDK may send one heartbeat before it records a job it just took. A miss counted on the
    job's first run must not add to its retry's: one early heartbeat must not fail the retried job."""
    engine = engine_on_disk(tmp_path)
    ep = add_endpoint(engine, "ep-retry")
    worker = add_worker(engine, ep, "w-1")
    job = engine.queue.submit(ep, {"input": 1}, "run")
    engine.worker_api.assign(ep, worker)
    engine.worker_api.ping(worker.id, {})  # sent before the worker recorded the job
    engine.worker_api.job_done(worker.id, job.id, {"error": "first attempt fails"})
    assert job.status == "FAILED"

    engine.queue.retry(ep, job)  # at once: no heartbeat in between
    engine.worker_api.assign(ep, worker)
    engine.worker_api.ping(worker.id, {})  # again one early heartbeat
    assert job.status == "IN_PROGRESS" and job.worker_id == worker.id
    engine.worker_api.ping(worker.id, {"job_id": job.id})
    engine.worker_api.job_done(worker.id, job.id, {"output": {"again": 1}})
    assert job.status == "COMPLETED" and job.output == {"again": 1}
