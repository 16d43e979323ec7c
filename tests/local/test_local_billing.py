"""Billing in the embedded RunPod, on its engine with a fixed clock (no HTTP, no workers):
flex workers pay while Running, always-on (``workersMin``) workers while up, both per second."""

from __future__ import annotations

import pytest
from support import add_endpoint, add_worker, engine_on_disk

from runpod_jupyter.api.models import ACTIVE_DISCOUNT, GPU_POOLS
from runpod_jupyter.local.billing import SETTLE_EVERY

FLEX = GPU_POOLS["ADA_24"].price_per_second
ACTIVE = FLEX * (1 - ACTIVE_DISCOUNT)
T0 = 1_000_000.0


@pytest.fixture()
def engine(tmp_path):
    return engine_on_disk(tmp_path, balance=100.0)


def endpoint(engine, workers_min: int):
    return add_endpoint(engine, "ep-bill", workersMin=workers_min, workersMax=3)


def ready_worker(engine, ep, worker_id: str, state: str = "idle"):
    return add_worker(engine, ep, worker_id, state=state, pool="ADA_24")


def test_an_idle_always_on_worker_is_billed_and_settled_every_minute(engine):
    ep = endpoint(engine, workers_min=1)
    worker = ready_worker(engine, ep, "w-active")
    engine.billing.bill_always_on(ep, T0)
    assert worker.active and engine.billing.spend_per_hour() == pytest.approx(ACTIVE * 3600)
    engine.billing.bill_always_on(ep, T0 + SETTLE_EVERY + 0.5)  # whole seconds billed, the half carried
    assert ep.spent == pytest.approx((SETTLE_EVERY) * ACTIVE)
    assert worker.billing_since == T0 + SETTLE_EVERY
    ep.data["workersMin"] = 0  # scaled to zero: the rest is billed, rounded up
    engine.billing.bill_always_on(ep, T0 + SETTLE_EVERY + 10.2)
    assert not worker.active and worker.billing_since is None
    assert ep.spent == pytest.approx((SETTLE_EVERY + 11) * ACTIVE)
    assert engine.billing.balance == pytest.approx(100.0 - ep.spent)


def test_only_workers_min_are_always_on_and_a_running_one_pays_its_flex_time_first(engine):
    ep = endpoint(engine, workers_min=1)
    busy = ready_worker(engine, ep, "w-busy", state="running")
    busy.billing_since = T0 - 2.5  # a flex run under way
    spare = ready_worker(engine, ep, "w-spare")
    engine.billing.bill_always_on(ep, T0)
    assert busy.active and not spare.active
    assert ep.spent == pytest.approx(3 * FLEX)  # 2.5 s of flex time, rounded up
    assert engine.billing.spend_per_hour() == pytest.approx(ACTIVE * 3600)  # the idle spare costs nothing
