"""A deploy reads GPU stock for its backend before anything is built, and preflight warns when
every chosen pool has little or none: on the embedded RunPod (its simulated capacity) and on the
cloud code path (here pointed at an embedded RunPod). Stock that cannot be read says nothing."""

from __future__ import annotations

import pytest
from support import local_post

from runpod_jupyter import deploy, embedded

HANDLER = "import runpod\ndef handler(job):\n    return job['input']\n"


@pytest.fixture(scope="module")
def shared_runpod():
    """The shared embedded RunPod the local backend finds, with AMPERE_80 out of stock."""
    instance = embedded.start()
    local_post(instance, "/local/gpus", {"AMPERE_80": 0, "ADA_80_PRO": 1})
    yield instance
    embedded.stop()


def _stock_findings(dry):
    return [f for f in dry.findings if f.code == "gpu-no-stock"]


def test_local_dry_run_warns_when_the_pool_has_no_capacity(shared_runpod):
    [finding] = _stock_findings(deploy(HANDLER, "nostock", backend="local", gpu="AMPERE_80", dry_run=True))
    assert finding.level == "warning"
    assert "AMPERE_80 (NONE)" in finding.message and "embedded RunPod" in finding.message
    assert "AMPERE_16 (16 GB, HIGH)" in finding.fix  # the cheapest pool with stock comes first
    assert "ADA_80_PRO" not in finding.fix  # LOW: no better than the pool chosen
    assert _stock_findings(deploy(HANDLER, "stocked", backend="local", gpu="AMPERE_80,ADA_24", dry_run=True)) == []


def test_cloud_dry_run_reads_stock_through_graphql(shared_runpod, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", shared_runpod.api_key.reveal())
    monkeypatch.setenv("RUNPOD_API_BASE_URL", shared_runpod.url)
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", shared_runpod.rest_base)
    [finding] = _stock_findings(deploy(HANDLER, "nostock", backend="cloud", gpu="AMPERE_80,ADA_80_PRO", dry_run=True))
    assert "RunPod reports" in finding.message
    assert "AMPERE_80 (NONE)" in finding.message and "ADA_80_PRO (LOW)" in finding.message


def test_unreadable_stock_is_no_finding_and_no_error(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_" + "K" * 40)
    monkeypatch.setenv("RUNPOD_API_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", "http://127.0.0.1:9/v2")
    dry = deploy(HANDLER, "nostock", backend="cloud", gpu="AMPERE_80", dry_run=True)
    assert _stock_findings(dry) == []
