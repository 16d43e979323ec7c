"""A batch from ``Deployment.map`` against the embedded RunPod: results in input order, and
refreshing a mostly queued batch does not spend a /status call per job."""

from __future__ import annotations

import pytest
from support import deploy, wait_for

from runpod_jupyter.deployment import STATUS_GROUP, Deployment, Job

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers

DOUBLER = """
import runpod
def handler(job):
    if job["input"] == "bad":
        raise ValueError("cannot double that")
    return job["input"] * 2
runpod.serverless.start({"handler": handler})
"""


@pytest.fixture()
def status_calls(monkeypatch):
    """Counts the /status requests batches make (the call itself is the real one)."""
    calls: list[str] = []
    real = Job.refresh

    def counted(job):
        calls.append(job.id)
        return real(job)

    monkeypatch.setattr(Job, "refresh", counted)
    return calls


def deployment(local_runpod, client, root, **settings) -> Deployment:
    spec, _ = deploy(client, root, DOUBLER, wait_idle=False, **settings)
    return Deployment(name=spec.name, endpoint_id=spec.id, backend="local", settings=local_runpod.settings())


def test_a_queued_batch_is_refreshed_without_a_call_per_job(local_runpod, client, tmp_path, status_calls):
    dep = deployment(local_runpod, client, tmp_path, workers_max=0)  # nothing will take the jobs
    batch = dep.map(range(200))
    assert batch.refresh() == {"IN_QUEUE": 200}
    assert len(status_calls) == STATUS_GROUP == batch.last_calls  # the first group still queued: the rest are too
    dep.delete()


def test_results_come_back_in_input_order_with_failures_in_place(local_runpod, client, tmp_path, status_calls):
    dep = deployment(local_runpod, client, tmp_path, workers_max=2)
    inputs = [*range(8), "bad", 9]
    batch = dep.map(inputs)
    results = batch.results(timeout=120, return_exceptions=True)
    assert results[:8] == [i * 2 for i in range(8)] and results[9] == 18
    assert "cannot double that" in str(results[8])
    assert batch.counts() == {"COMPLETED": 9, "FAILED": 1}
    assert [i for i, _ in batch.failures()] == [8]
    assert set(status_calls) == {job.id for job in batch.jobs}  # each was looked at until final
    wait_for(lambda: dep.health().jobs.in_progress == 0, what="the workers to settle")
    dep.delete()
