"""How long a worker's ``print`` takes to reach the job view's state, against the job's own
/stream in the same run.

The embedded RunPod with a real SDK worker; the handler prints a line holding its own
``time.time()`` and yields a chunk with the same time, LINES times, PAUSE seconds apart. In this
process a job view (the real one, its comm recording instead of sending) follows the job: a log
line's latency is from the handler's time to the view's ``tail`` trait carrying it (REST v2's
worker-log stream, the view's follower, its coalesced flush); the peer is the same chunk's
latency to the job's stream reader (/stream, as the view receives chunks). Both read the same
clock, on one machine.

RESULT log_latency lines=… p50_ms=… p90_ms=… peer_p50_ms=… ratio=… (ratio = p50 / peer p50).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "widgets"))

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
    wait_until,
    worker_project,
)

LINES = 40
PAUSE = 0.1
#: Seconds the handler waits before its first line, so the view is following by then.
SETTLE = 2.0

HANDLER = f"""
import time
import runpod

def handler(job):
    time.sleep({SETTLE})
    for i in range({LINES}):
        now = time.time()
        print(f"LOGMARK {{i}} {{now:.6f}}", flush=True)
        yield {{"i": i, "t": now}}
        time.sleep({PAUSE})

runpod.serverless.start({{"handler": handler, "return_aggregate_stream": False}})
"""


def main() -> None:
    import comm
    from fakes import RecordingComm

    from runpod_jupyter.api import Client
    from runpod_jupyter.deployment import Deployment
    from runpod_jupyter.widgets import make_view

    comm.create_comm = lambda *args, **kwargs: RecordingComm(*args, **kwargs)  # record, send nowhere
    logged: dict[int, float] = {}
    chunked: dict[int, float] = {}
    lock = threading.Lock()

    def on_tail(change: dict[str, Any]) -> None:
        now = time.time()
        with lock:
            for line in change["new"].get("logs") or []:
                parts = str(line.get("message", "")).split()
                if len(parts) == 3 and parts[0] == "LOGMARK":
                    logged.setdefault(int(parts[1]), now - float(parts[2]))

    def on_chunk(chunk: Any) -> None:
        now = time.time()
        if isinstance(chunk, dict) and "t" in chunk:
            with lock:
                chunked.setdefault(int(chunk["i"]), now - float(chunk["t"]))

    with scratch("log-latency") as root, embedded_runpod(root) as instance, Client(instance.settings()) as client:
        spec = create_endpoint(client, worker_project(root, HANDLER), workers_max=1, idle_timeout=600)
        wait_idle(client.endpoint(spec.id), 1, timeout=90)
        dep = Deployment(name=spec.name, endpoint_id=spec.id, backend="local", settings=instance.settings())
        job = dep.run({})
        view = make_view(job)
        view.observe(on_tail, names="tail")
        view.reader.feed.listeners.insert(0, on_chunk)
        view.start()
        wait_until(lambda: view.final, timeout=120, what="the job view's final state")
        view.close()
        dep.close()
    if len(logged) < LINES or len(chunked) < LINES:
        raise SystemExit(f"saw {len(logged)} log lines and {len(chunked)} chunks of {LINES}")
    lines = [logged[i] for i in sorted(logged)]
    chunks = [chunked[i] for i in sorted(chunked)]
    p50, peer = percentile(lines, 50), percentile(chunks, 50)
    note(f"log line → view state p50 {ms(p50)} ms, p90 {ms(percentile(lines, 90))} ms, max {ms(max(lines))} ms; "
         f"chunk → stream reader p50 {ms(peer)} ms (load {load1()})")
    result("log_latency", lines=len(lines), p50_ms=ms(p50), p90_ms=ms(percentile(lines, 90)), peer_p50_ms=ms(peer),
           ratio=f"{p50 / peer:.2f}" if peer > 0 else "inf")


if __name__ == "__main__":
    main()
