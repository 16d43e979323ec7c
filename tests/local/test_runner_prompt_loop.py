"""The runner's worker loop: the SDK's own JobScaler (job-take, heartbeat, stop signals, result
posts), except that a job handed over by the job-take starts at once instead of at the SDK 1.x
loop's next 0.1 s look at its queue. Driven in-process on the installed SDK, no server: the jobs
are put in the scaler's queue as its job-take puts them.

"At once" is counted in event-loop turns, not seconds: the job must start within a few turns,
which the stock loop (asleep on its 0.1 s timer) cannot do; the same probe on the stock loop
shows that.
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest
from runpod.serverless.modules import rp_scale

from runpod_jupyter import runner

TURNS = 20  # event-loop turns a queued job may take to start


def load_handler(name: str):
    spec = importlib.util.spec_from_file_location(name, runner.HANDLER_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def stock_scaler(monkeypatch):
    """The SDK's JobScaler, put back whatever a test installs."""
    monkeypatch.setattr(rp_scale, "JobScaler", rp_scale.JobScaler)
    return rp_scale.JobScaler


async def probe(scaler) -> tuple[bool, list[str]]:
    """Queue a job on an idle loop: did it start within TURNS turns? Then stop the worker."""
    started: list[str] = []
    release = asyncio.Event()

    async def jobs_handler(session, config, job):
        started.append(job["id"])
        await release.wait()

    scaler.jobs_handler = jobs_handler
    loop_task = asyncio.create_task(scaler.run_jobs(None))
    await asyncio.sleep(0.15)  # the loop is idle, between two looks at its queue
    job = {"id": "job-1", "input": {}}
    await scaler.jobs_queue.put(job)
    scaler.job_progress.add(job)  # as the SDK's job-take does
    for _ in range(TURNS):
        await asyncio.sleep(0)
    prompt = started == ["job-1"]
    release.set()
    scaler.kill_worker()
    await asyncio.wait_for(loop_task, timeout=5)
    return prompt, started


def test_importing_the_handler_outside_a_worker_leaves_the_sdk_alone(stock_scaler, monkeypatch):
    monkeypatch.delenv("RUNPOD_WEBHOOK_GET_JOB", raising=False)
    load_handler("runner_handler_outside")
    assert rp_scale.JobScaler is stock_scaler


def test_in_a_worker_a_queued_job_starts_at_once(stock_scaler, monkeypatch):
    monkeypatch.setenv("RUNPOD_WEBHOOK_GET_JOB", "http://127.0.0.1:9/v2/ep/job-take/$ID")
    load_handler("runner_handler_in_worker")
    load_handler("runner_handler_again")  # loaded twice: still one layer over the SDK's loop
    prompt_scaler = rp_scale.JobScaler
    assert prompt_scaler is not stock_scaler and prompt_scaler.__mro__[1] is stock_scaler

    prompt, started = asyncio.run(probe(prompt_scaler({"handler": None})))
    assert prompt, f"the job had not started after {TURNS} event-loop turns (started: {started})"
    stock, started = asyncio.run(probe(stock_scaler({"handler": None})))
    assert not stock and started == ["job-1"]  # the stock loop starts it too, only at its next look


def test_a_stopped_job_ends_and_the_loop_takes_the_next(stock_scaler, monkeypatch):
    monkeypatch.setenv("RUNPOD_WEBHOOK_GET_JOB", "http://127.0.0.1:9/v2/ep/job-take/$ID")
    load_handler("runner_handler_stop")
    scaler = rp_scale.JobScaler({"handler": None})
    ran: list[str] = []

    async def jobs_handler(session, config, job):
        ran.append(job["id"])
        if job["id"] == "long":
            await asyncio.sleep(60)

    async def scenario() -> None:
        scaler.jobs_handler = jobs_handler
        loop_task = asyncio.create_task(scaler.run_jobs(None))
        for job_id in ("long", "next"):
            job = {"id": job_id, "input": {}}
            await scaler.jobs_queue.put(job)
            scaler.job_progress.add(job)
            for _ in range(TURNS):
                await asyncio.sleep(0)
            if job_id == "long":
                assert ran == ["long"] and await scaler.stop_job("long")  # the SDK's stop signal
        assert ran == ["long", "next"] and not scaler.jobs_tasks
        scaler.kill_worker()
        await asyncio.wait_for(loop_task, timeout=5)

    asyncio.run(scenario())


def test_the_next_job_take_waits_for_a_free_slot_not_a_second(stock_scaler, monkeypatch):
    """The SDK's job-take loop, with its one slot taken, would sleep a second before asking again
    (a ``map`` ran one item a second); here it asks as soon as the running job ends."""
    monkeypatch.setenv("RUNPOD_WEBHOOK_GET_JOB", "http://127.0.0.1:9/v2/ep/job-take/$ID")
    load_handler("runner_handler_slot")
    scaler = rp_scale.JobScaler({"handler": None})
    release = asyncio.Event()

    async def jobs_handler(session, config, job):
        await release.wait()

    async def scenario() -> None:
        scaler.jobs_handler = jobs_handler
        loop_task = asyncio.create_task(scaler.run_jobs(None))
        job = {"id": "slot-holder", "input": {}}
        await scaler.jobs_queue.put(job)
        scaler.job_progress.add(job)
        ready_for_next = asyncio.create_task(scaler.set_scale())  # what the job-take loop awaits first
        for _ in range(TURNS):
            await asyncio.sleep(0)
        assert not ready_for_next.done()  # the slot is taken: no job-take yet
        release.set()
        for _ in range(TURNS):
            await asyncio.sleep(0)
        assert ready_for_next.done() and scaler.current_occupancy() == 0
        scaler.kill_worker()
        await asyncio.wait_for(loop_task, timeout=5)

    asyncio.run(scenario())
