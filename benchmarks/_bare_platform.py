"""The smallest control plane that can drive the real SDK worker: one queue, held job-take, a
future per job. No auth, no store, no scaling, no states.

It is a peer for ``local_roundtrip``: with the same SDK worker behind both, the difference between
the embedded RunPod and this is what our control plane costs, separate from the worker loop's own
pacing (which no control plane can change).

Run as ``python _bare_platform.py PORT``; it serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import time

from aiohttp import web

HOLD = 20.0  # seconds a job-take or job-stop poll is held open


def make_app() -> web.Application:
    queue: asyncio.Queue[dict] = asyncio.Queue()
    waiting: dict[str, asyncio.Future] = {}
    taken: dict[str, float] = {}
    ids = itertools.count(1)

    async def job_take(request: web.Request) -> web.StreamResponse:
        try:
            job = await asyncio.wait_for(queue.get(), HOLD)
        except asyncio.TimeoutError:
            return web.Response(status=204)
        taken[job["id"]] = time.monotonic()
        return web.json_response(job)

    async def job_stop(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(HOLD)
        return web.Response(status=204)

    async def job_done(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        future = waiting.pop(request.match_info["job"], None)
        if future is not None and not future.done():
            future.set_result(body)
        return web.Response()

    async def accept(request: web.Request) -> web.StreamResponse:
        return web.Response()

    async def runsync(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        job_id = f"bare-{next(ids)}"
        future = asyncio.get_running_loop().create_future()
        waiting[job_id] = future
        await queue.put({"id": job_id, "input": body.get("input")})
        done = await asyncio.wait_for(future, 60)
        execution_ms = int((time.monotonic() - taken.pop(job_id)) * 1000)  # whole ms, as RunPod reports it
        status = "FAILED" if "error" in done else "COMPLETED"
        return web.json_response(
            {"id": job_id, "status": status, "output": done.get("output"), "executionTime": execution_ms}
        )

    app = web.Application()
    app.router.add_get("/job-take/{worker}", job_take)
    app.router.add_get("/job-stop/{worker}", job_stop)
    app.router.add_post("/job-done/{worker}/{job}", job_done)
    app.router.add_post("/job-stream/{worker}/{job}", accept)
    app.router.add_get("/ping/{worker}", accept)
    app.router.add_post("/runsync", runsync)
    return app


def worker_env(base: str, worker_id: str) -> dict[str, str]:
    """The variables that point an SDK worker at this control plane (same shape as RunPod's)."""
    return {
        "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID?w=1",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID/$ID?w=1",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID/$ID?w=1",
        "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID?w=1",
        "RUNPOD_POD_ID": worker_id,
        "RUNPOD_AI_API_KEY": "bare-platform",
        "RUNPOD_ENDPOINT_ID": "bare",
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
        "RUNPOD_SKIP_GPU_CHECK": "true",
        "RUNPOD_PING_INTERVAL": "10000",
        "RUNPOD_LOG_LEVEL": "INFO",  # as the embedded RunPod runs its workers
        "PYTHONUNBUFFERED": "1",
    }


def main() -> None:
    port = int(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
