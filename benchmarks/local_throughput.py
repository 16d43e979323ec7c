"""1,000 trivial jobs over 4 warm workers of the embedded RunPod: our ``AsyncClient`` against the
SDK's ``runpod.AsyncioEndpoint``, same endpoint, same run. Target: ours at least 3x the SDK
client's throughput.

Each client is used the way its documentation shows: ours with ``/runsync?wait=``, which RunPod
holds until the job is done; the SDK's with ``run()`` then ``output(timeout=...)``, which polls
``/status`` once a second. Per-job latency runs from submitting to holding the result. Both get
the same number of jobs in flight, in three modes: at most 16, at most 50 (a semaphore), and all
1,000 at once (``asyncio.gather``, the obvious way to batch). Every HTTP status each client
received is counted, so rate limiting (429) shows in the figures instead of being hidden: the SDK
client has no 429 handling, and a refused request surfaces as an exception in the caller. The
``best_`` figures compare the most each client delivered in any mode without losing a job.

The handler is async with a ``concurrency_modifier`` of 50: without one, the SDK worker runs one
job at a time and pauses 1 s after taking each, which caps 4 workers near 4 jobs/s whatever the
client does. Even so, the SDK worker counts a job twice while it waits in the worker's own queue
(``jobs_queue`` and ``JobsProgress``), so a worker that takes half its concurrency in one batch
believes itself full and pauses 1 s: that is the tail of the 50-in-flight latencies.

Our client runs on its default transport (aiohttp's pool under httpx), with a counter added.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    create_endpoint,
    embedded_runpod,
    load1,
    ms,
    note,
    percentile,
    result,
    scratch,
    wait_idle,
    worker_project,
)

JOBS = 1000
WORKERS = 4
#: (mode, most jobs in flight at once); None: all of them.
IN_FLIGHT: list[tuple[str, int | None]] = [("in16", 16), ("in50", 50), ("all", None)]
WARMUP = 40
OUTPUT_TIMEOUT = 120
PASS_BUDGET = 300.0  # seconds for one client's 1,000 jobs, whatever happens
WINDOW = 10.5  # RunPod's rate-limit window, plus a margin, between passes

ASYNC_HANDLER = """
import runpod

async def handler(job):
    return {"echo": job["input"]}

runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda current: 50})
"""


class Pass:
    """One client's run: latencies, failures by kind, and HTTP statuses seen."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.failures: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.elapsed = 0.0

    @property
    def throughput(self) -> float:
        """Jobs delivered per second of the whole pass (failed jobs do not count)."""
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def summary(self) -> str:
        return (f"{self.name}: {len(self.latencies)} ok, {sum(self.failures.values())} failed "
                f"{dict(self.failures)}, {self.throughput:.1f} jobs/s, statuses {dict(self.statuses)}")


async def drive(run_one: Any, jobs: int, bound: int | None, record: Pass) -> None:
    """Submit ``jobs`` jobs through ``run_one(i)`` with at most ``bound`` in flight."""
    gate = asyncio.Semaphore(bound or jobs)

    async def one(i: int) -> None:
        async with gate:
            start = time.perf_counter()
            try:
                output = await run_one(i)
            except Exception as exc:  # counted, not hidden: the figure says how many failed
                record.failures[type(exc).__name__] += 1
                return
            if output != {"echo": {"i": i}}:
                record.failures["wrong_output"] += 1
                return
            record.latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    tasks = [asyncio.ensure_future(one(i)) for i in range(jobs)]
    done, pending = await asyncio.wait(tasks, timeout=PASS_BUDGET)
    for task in pending:
        task.cancel()
        record.failures["over_budget"] += 1
    await asyncio.gather(*pending, return_exceptions=True)
    record.elapsed = time.perf_counter() - began


async def ours(instance: Any, endpoint_id: str, jobs: int, bound: int | None) -> Pass:
    import httpx

    from runpod_jupyter.api import AsyncClient
    from runpod_jupyter.api._aiohttp import AiohttpTransport

    record = Pass("ours")

    class Counting(AiohttpTransport):
        """The client's own default transport, counting the statuses it receives."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            record.statuses[response.status_code] += 1
            return response

    async with AsyncClient(instance.settings(), transport=Counting()) as client:
        api = client.endpoint(endpoint_id)

        async def run_one(i: int) -> Any:
            job = await api.runsync({"i": i}, wait_ms=OUTPUT_TIMEOUT * 1000)
            if job.status.value != "COMPLETED":
                raise RuntimeError(f"job ended {job.status.value}")
            return job.output

        await drive(run_one, jobs, bound, record)
    return record


async def sdk(instance: Any, endpoint_id: str, jobs: int, bound: int | None) -> Pass:
    import aiohttp
    import runpod

    runpod.endpoint_url_base = instance.rest_base
    runpod.api_key = instance.api_key.reveal()
    record = Pass("sdk")
    trace = aiohttp.TraceConfig()

    async def on_end(session: Any, context: Any, params: aiohttp.TraceRequestEndParams) -> None:
        record.statuses[params.response.status] += 1

    trace.on_request_end.append(on_end)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        endpoint = runpod.AsyncioEndpoint(endpoint_id, session)

        async def run_one(i: int) -> Any:
            job = await endpoint.run({"i": i})
            return await job.output(timeout=OUTPUT_TIMEOUT)

        await drive(run_one, jobs, bound, record)
    return record


async def main_async(instance: Any, endpoint_id: str) -> dict[str, tuple[Pass, Pass]]:
    await ours(instance, endpoint_id, WARMUP, IN_FLIGHT[0][1])
    await sdk(instance, endpoint_id, WARMUP // 4, IN_FLIGHT[0][1])
    passes = {}
    for mode, bound in IN_FLIGHT:
        await asyncio.sleep(WINDOW)
        mine = await ours(instance, endpoint_id, JOBS, bound)
        note(f"{mode} {mine.summary()}")
        await asyncio.sleep(WINDOW)
        theirs = await sdk(instance, endpoint_id, JOBS, bound)
        note(f"{mode} {theirs.summary()}")
        passes[mode] = (mine, theirs)
    return passes


def main() -> None:
    import logging

    from runpod_jupyter.api import Client

    load_at_start = load1()
    # `import runpod` sets the root logger to INFO (runpod.serverless.utils.rp_upload calls
    # logging.basicConfig), which would make httpx log every request of our client.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with scratch("throughput") as root, embedded_runpod(root) as instance:
        with Client(instance.settings()) as client:
            project = worker_project(root, ASYNC_HANDLER)
            spec = create_endpoint(client, project, workers_min=WORKERS, workers_max=WORKERS)
            wait_idle(client.endpoint(spec.id), WORKERS, timeout=90)
        passes = asyncio.run(main_async(instance, spec.id))

    def lat(record: Pass, q: float) -> str:
        return ms(percentile(record.latencies, q), 0) if record.latencies else "n/a"

    figures: dict[str, Any] = {}
    met = []
    for mode, (mine, theirs) in passes.items():
        lost = sum(theirs.failures.values())
        if lost or not theirs.throughput:
            # A client that dropped jobs did not finish the batch: no fair ratio to give.
            ratio_text = f"n/a(sdk_lost_{lost})"
            met.append(f"{mode}:sdk_failed" if not mine.failures else f"{mode}:both_failed")
        else:
            ratio = mine.throughput / theirs.throughput
            ratio_text = f"{ratio:.1f}x"
            met.append(f"{mode}:{'yes' if ratio >= 3 and not mine.failures else 'no'}")
        figures.update({
            f"{mode}_ours_jobs_per_s": f"{mine.throughput:.1f}",
            f"{mode}_sdk_jobs_per_s": f"{theirs.throughput:.1f}",
            f"{mode}_ratio": ratio_text,
            f"{mode}_ours_p50_p99_ms": f"{lat(mine, 50)}/{lat(mine, 99)}",
            f"{mode}_sdk_p50_p99_ms": f"{lat(theirs, 50)}/{lat(theirs, 99)}",
            f"{mode}_ours_failed": sum(mine.failures.values()),
            f"{mode}_sdk_failed": sum(theirs.failures.values()),
            f"{mode}_ours_429": mine.statuses[429],
            f"{mode}_sdk_429": theirs.statuses[429],
        })
    # The most each client delivered in any mode without losing a job: the SDK client cannot go
    # much past 50 in flight anyway (three /status reads per job per second meet RunPod's limit).
    best_ours = max((m.throughput for m, _ in passes.values() if not m.failures), default=0.0)
    best_sdk = max((t.throughput for _, t in passes.values() if not t.failures), default=0.0)
    best = best_ours / best_sdk if best_sdk else float("inf")
    met.append(f"best:{'yes' if best >= 3 else 'no'}")
    result(
        "local_throughput",
        best_ours_jobs_per_s=f"{best_ours:.1f}",
        best_sdk_jobs_per_s=f"{best_sdk:.1f}",
        best_ratio=f"{best:.1f}x",
        **figures,
        jobs=JOBS, workers=WORKERS, cpus=os.cpu_count(),
        load1_at_start=load_at_start,
        target="ratio>=3x",
        met=",".join(met),
    )


if __name__ == "__main__":
    main()
