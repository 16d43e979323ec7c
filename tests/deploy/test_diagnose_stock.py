"""Diagnosis tells "no capacity" from "a worker is starting / your code may be stuck" by the GPU
stock of the endpoint's pools, when it is known."""

from __future__ import annotations

import pytest
from support import local_post, wait_for

from runpod_jupyter.api import EndpointSpec
from runpod_jupyter.api.models import Health, JobCounts, WorkerCounts
from runpod_jupyter.diagnose import EndpointState, diagnose, gather


def _state(workers: WorkerCounts, stock: dict | None, gpu_ids=("AMPERE_80",)) -> EndpointState:
    return EndpointState(
        endpoint_id="ep", backend="cloud",
        endpoint=EndpointSpec(id="ep", name="x", template_id="t", gpu_ids=gpu_ids, workers_max=2),
        listed=True, health=Health(jobs=JobCounts(in_queue=3), workers=workers), stock=stock,
    )


STOCK = {"AMPERE_80": "NONE", "ADA_80_PRO": "NONE", "AMPERE_16": "HIGH", "AMPERE_48": "LOW", "HOPPER_141": "MEDIUM"}


@pytest.mark.parametrize("workers", [WorkerCounts(throttled=1), WorkerCounts()])
def test_no_stock_in_every_pool_says_no_capacity_and_names_pools_with_stock(workers):
    [finding] = [f for f in diagnose(_state(workers, STOCK, ("AMPERE_80", "ADA_80_PRO"))) if f.level == "error"]
    assert finding.code == "no-gpu-capacity"
    assert "no capacity in AMPERE_80, ADA_80_PRO" in finding.message
    fix = finding.fix
    assert fix.index("AMPERE_16") < fix.index("AMPERE_48") < fix.index("HOPPER_141")  # cheapest first


def test_stock_present_or_unknown_keeps_todays_wording():
    for stock in (None, {"AMPERE_80": "HIGH"}):
        codes = {f.code: f for f in diagnose(_state(WorkerCounts(), stock))}
        assert "a worker is starting" in codes["queued-no-workers"].message
        assert "no-gpu-capacity" not in codes
    throttled = next(f for f in diagnose(_state(WorkerCounts(throttled=1), None)) if f.code == "no-gpu-capacity")
    assert "RunPod has no free GPU in AMPERE_80" in throttled.message


def test_gather_reads_stock_when_jobs_wait(local_runpod, client, tmp_path):
    local_post(local_runpod, "/local/gpus", {"ADA_80_PRO": 0})
    spec = client.save_endpoint(EndpointSpec(name="nostock", image=f"local:{tmp_path}", gpu_ids=("ADA_80_PRO",),
                                             workers_max=1))
    try:
        client.endpoint(spec.id).run({"x": 1})
        state = wait_for(lambda: (lambda s: s if s.health and s.health.workers.throttled else None)(
            gather(client, spec.id)), what="a throttled worker")
        assert state.stock is not None and state.stock["ADA_80_PRO"] == "NONE"
        [finding] = [f for f in diagnose(state) if f.code == "no-gpu-capacity"]
        assert "no capacity in ADA_80_PRO" in finding.message and "AMPERE_16" in finding.fix
    finally:
        client.delete_endpoint(spec.id)
