"""Large job inputs and outputs in the embedded RunPod: kept in its store, not in its memory, read
back when a worker takes the job or a client reads it, and gone from the store (which shrinks)
once their retention ends. Driven on the engine and its sqlite store directly."""

from __future__ import annotations

import time

from support import add_endpoint, add_worker, engine_on_disk

MB = 1_000_000


def _store_size(root) -> int:
    return sum(p.stat().st_size for p in root.glob("local.sqlite*"))


def test_large_payloads_live_in_the_store_and_leave_it_when_they_expire(tmp_path):
    engine = engine_on_disk(tmp_path, retention_run=100.0)
    ep = add_endpoint(engine, "ep-big")
    worker = add_worker(engine, ep, "w-big")
    big_in = [{"i": i, "data": f"{i}" + "x" * MB} for i in range(8)]
    ids = [engine.queue.submit(ep, {"input": payload}, "run").id for payload in big_in]
    for job_id, payload in zip(ids, big_in, strict=True):
        job = engine.jobs[job_id]
        assert job.input != payload  # not held by the job record once stored
        taken = engine.worker_api.assign(ep, worker)
        assert taken.id == job_id and taken.worker_payload()["input"] == payload  # read back for the worker
        engine.worker_api.job_done(worker.id, job_id, {"output": {"echo": payload}})
        assert job.output != {"echo": payload}
        assert job.status_view()["output"] == {"echo": payload}  # read back for /status
    small = engine.queue.submit(ep, {"input": {"n": 1}}, "run")
    assert small.input == {"n": 1}  # small ones stay in memory: nothing to read back
    engine.store.close()

    engine = engine_on_disk(tmp_path, retention_run=100.0)  # a restart keeps them readable
    ep = engine.endpoints["ep-big"]
    assert engine.jobs[ids[3]].status_view()["output"] == {"echo": big_in[3]}
    assert engine.jobs[small.id].worker_payload()["input"] == {"n": 1}
    full = _store_size(tmp_path)
    assert full > 16 * MB

    engine.queue.expire(time.time() + 1000)  # every result past its retention
    engine.tick()
    assert not any(job_id in engine.jobs for job_id in ids)
    assert _store_size(tmp_path) < 2 * MB, f"the store kept {_store_size(tmp_path)} of {full} bytes"
    engine.store.close()
