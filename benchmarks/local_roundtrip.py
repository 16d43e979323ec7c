"""Round trip of one trivial job (submit → result) through the embedded RunPod and a warm, real
SDK worker, against the SDK's own dev server (``python handler.py --rp_serve_api``, POST
/runsync), same handler, same run. Target: no slower.

The dev server calls the handler inside the HTTP request. The embedded RunPod hands the job to
the SDK's worker loop as the platform does (held job-take, job-done post), so that loop's own
pacing is part of the figure. Two cadences are measured:

* ``idle``: one request at a time, each worker-backed one 1.05-1.35 s after the last call (random,
  so the requests do not lock onto a worker loop's 0.1 s polling phase): a notebook user calling a
  warm endpoint now and then.
* ``b2b``: requests back to back. At concurrency 1 the SDK worker sleeps 1 s after every job it
  takes before it asks for the next, so this cadence shows that pacing.

A third peer separates the two: ``_bare_platform.py``, the smallest control plane that can drive
the SDK worker (one queue, held job-take, no store), with the same handler in the same kind of
worker. Ours against it is what the embedded RunPod costs; both against the dev server is what the
worker loop costs.

The round trip is split with the job's ``executionTime`` (from the worker taking the job to its
result post: the SDK worker loop, the handler, the two hops): what is left is our client, the HTTP
hops and the embedded RunPod's own work.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ECHO_HANDLER,
    bare_platform,
    create_endpoint,
    embedded_runpod,
    load1,
    median,
    ms,
    note,
    percentile,
    result,
    scratch,
    sdk_dev_server,
    wait_idle,
    worker_project,
)

REQUESTS = 40
BACK_TO_BACK = 8
WARMUP = 3
GAP = (1.05, 1.35)
BUDGET = 300.0  # seconds for the measured loops, whatever happens


def main() -> None:
    load_at_start = load1()
    import httpx

    from runpod_jupyter.api import Client

    rng = random.Random(20240601)
    with scratch("roundtrip") as root, embedded_runpod(root) as instance, Client(instance.settings()) as client:
        project = worker_project(root, ECHO_HANDLER)
        spec = create_endpoint(client, project, workers_min=1, workers_max=1)
        api = client.endpoint(spec.id)
        wait_idle(api, 1)
        with (
            sdk_dev_server(project, root / "sdk-home") as (_, base),
            httpx.Client(base_url=base, timeout=30) as peer,
            bare_platform(project, root / "bare-home") as bare_base,
            httpx.Client(base_url=bare_base, timeout=30) as bare_peer,
        ):

            def ours(i: int) -> tuple[float, float]:
                start = time.perf_counter()
                job = api.runsync({"i": i})
                took = time.perf_counter() - start
                if job.status.value != "COMPLETED" or job.output != {"echo": {"i": i}}:
                    raise RuntimeError(f"unexpected job: {job}")
                return took, (job.execution_time_ms or 0) / 1000

            def theirs(i: int) -> float:
                start = time.perf_counter()
                reply = peer.post("/runsync", json={"input": {"i": i}})
                took = time.perf_counter() - start
                body = reply.json()
                if reply.status_code != 200 or body.get("output") != {"echo": {"i": i}}:
                    raise RuntimeError(f"unexpected answer {reply.status_code}: {body}")
                return took

            def bare(i: int) -> tuple[float, float]:
                start = time.perf_counter()
                reply = bare_peer.post("/runsync", json={"input": {"i": i}})
                took = time.perf_counter() - start
                body = reply.json()
                if body.get("output") != {"echo": {"i": i}}:
                    raise RuntimeError(f"unexpected answer from the bare control plane: {reply.text}")
                return took, body["executionTime"] / 1000

            for i in range(WARMUP):
                time.sleep(GAP[1])
                ours(i)
                theirs(i)
                bare(i)

            deadline = time.monotonic() + BUDGET
            ours_idle, ours_exec, theirs_idle, bare_idle, bare_exec = [], [], [], [], []
            for i in range(REQUESTS):
                if time.monotonic() > deadline:
                    break
                # Each worker-backed call gets its own random gap: calling one right after the
                # other would tie the bare worker's polling phase to ours.
                time.sleep(rng.uniform(*GAP))
                took, execution = ours(i)
                ours_idle.append(took)
                ours_exec.append(execution)
                theirs_idle.append(theirs(i))
                time.sleep(rng.uniform(*GAP))
                took, execution = bare(i)
                bare_idle.append(took)
                bare_exec.append(execution)
            note(
                f"idle: ours p50 {ms(median(ours_idle))} ms, sdk dev server p50 {ms(median(theirs_idle))} ms,"
                f" bare control plane p50 {ms(median(bare_idle))} ms"
            )

            time.sleep(GAP[1])
            ours_b2b = [ours(i)[0] for i in range(BACK_TO_BACK) if time.monotonic() < deadline + 30]
            theirs_b2b = [theirs(i) for i in range(BACK_TO_BACK)]
            time.sleep(GAP[1])
            bare_b2b = [bare(i)[0] for i in range(BACK_TO_BACK) if time.monotonic() < deadline + 60]
            note(f"b2b: ours p50 {ms(median(ours_b2b))} ms, sdk dev server p50 {ms(median(theirs_b2b))} ms")

    ratio = median(ours_idle) / median(theirs_idle)
    outside_ours = [t - e for t, e in zip(ours_idle, ours_exec, strict=True)]
    outside_bare = [t - e for t, e in zip(bare_idle, bare_exec, strict=True)]
    result(
        "local_roundtrip",
        idle_ours_p50_ms=ms(median(ours_idle)),
        idle_ours_p95_ms=ms(percentile(ours_idle, 95)),
        idle_sdk_dev_p50_ms=ms(median(theirs_idle)),
        idle_sdk_dev_p95_ms=ms(percentile(theirs_idle, 95)),
        idle_ratio=f"{ratio:.1f}x",
        idle_worker_execution_p50_ms=ms(median(ours_exec)),
        idle_outside_worker_p50_ms=ms(median(outside_ours)),
        b2b_ours_p50_ms=ms(median(ours_b2b), 0),
        b2b_sdk_dev_p50_ms=ms(median(theirs_b2b)),
        idle_bare_p50_ms=ms(median(bare_idle)),
        idle_bare_p95_ms=ms(percentile(bare_idle, 95)),
        idle_bare_outside_worker_p50_ms=ms(median(outside_bare)),
        control_plane_vs_bare=f"{median(outside_ours) / median(outside_bare):.2f}x",
        b2b_bare_p50_ms=ms(median(bare_b2b), 0),
        n=len(ours_idle),
        load1_at_start=load_at_start,
        target="ratio<=1.0x",
        met=str(ratio <= 1.0).lower(),
    )


if __name__ == "__main__":
    main()
