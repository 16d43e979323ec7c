"""Preflight's GPU stock check: it reads the stock it is given, warns when every chosen pool reads
NONE or LOW, and names the pools with stock, cheapest first."""

from __future__ import annotations

import pytest

from runpod_jupyter.packaging import PreflightOptions, preflight
from runpod_jupyter.packaging.preflight import CHECKS
from runpod_jupyter.packaging.stock_check import check_gpu_stock

PLAIN = "def handler(job):\n    return job['input']\n"


@pytest.fixture
def stock_findings(pkg):
    project = pkg(PLAIN)

    def run(gpu_ids, stock, backend="cloud"):
        found = preflight(project, PreflightOptions(backend=backend, gpu_ids=gpu_ids, stock=stock))
        return [f for f in found if f.code == "gpu-no-stock"]

    return run


def test_registered_in_checks():
    assert check_gpu_stock in CHECKS


@pytest.mark.parametrize("backend", ["cloud", "local"])
def test_all_chosen_pools_none_or_low_warn_and_name_stocked_pools_cheapest_first(stock_findings, backend):
    stock = {"ADA_24": "NONE", "AMPERE_24": "LOW", "ADA_80_PRO": "HIGH", "AMPERE_48": "MEDIUM",
             "AMPERE_16": "HIGH", "AMPERE_80": "NONE"}
    [finding] = stock_findings(["ADA_24", "AMPERE_24"], stock, backend)
    assert finding.level == "warning"
    assert "ADA_24 (NONE)" in finding.message and "AMPERE_24 (LOW)" in finding.message
    # cheapest first: AMPERE_16 < AMPERE_48 < ADA_80_PRO; pools without stock are not offered
    fix = finding.fix
    assert fix.index("AMPERE_16 (16 GB, HIGH)") < fix.index("AMPERE_48 (48 GB, MEDIUM)") < fix.index("ADA_80_PRO")
    assert "AMPERE_80" not in fix
    assert "--gpu ADA_24,AMPERE_24,AMPERE_16" in fix


def test_no_pool_anywhere_has_stock(stock_findings):
    [finding] = stock_findings(["ADA_24"], {"ADA_24": "NONE", "AMPERE_24": "LOW"})
    assert "no other pool" in finding.fix.lower()


def test_one_chosen_pool_with_stock_is_enough(stock_findings):
    assert stock_findings(["ADA_24", "AMPERE_24"], {"ADA_24": "NONE", "AMPERE_24": "HIGH"}) == []
    assert stock_findings(["ADA_24"], {"ADA_24": "MEDIUM"}) == []


def test_unknown_stock_says_nothing(stock_findings):
    assert stock_findings(["ADA_24"], None) == []
    assert stock_findings(["ADA_24"], {}) == []  # none of the chosen pools was reported
    assert stock_findings(["ADA_24", "AMPERE_24"], {"ADA_24": "NONE"}) == []  # AMPERE_24 unknown
