"""CPU the embedded RunPod's server process burns while nothing happens: 3 idle workers held in
their long-polls and heartbeats, production timings, over 30 s. Target: under 2% of one core.

CPU time is utime + stime from /proc/<pid>/stat, read before and after the window. The workers'
own CPU (the SDK worker loop and the heartbeat process it forks) is reported for context. The
peer, measured over the same window, is the SDK's own dev server (``--rp_serve_api``) idling
with the same handler; the target itself is absolute.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ECHO_HANDLER,
    cpu_seconds,
    create_endpoint,
    embedded_runpod,
    group_pids,
    load1,
    local_workers,
    note,
    result,
    scratch,
    sdk_dev_server,
    wait_idle,
    worker_project,
)

WORKERS = 3
WINDOW = 30.0
SETTLE = 5.0  # after the last worker turns Idle, so start-up work is not counted


def group_cpu(pgids: list[int]) -> float:
    """CPU seconds of every live process in these process groups."""
    total = 0.0
    for pgid in pgids:
        for pid in group_pids(pgid):
            try:
                total += cpu_seconds(pid)
            except OSError:  # exited between listing and reading
                continue
    return total


def main() -> None:
    load_at_start = load1()
    from runpod_jupyter.api import Client

    with scratch("idle") as root, embedded_runpod(root) as instance, Client(instance.settings()) as client:
        project = worker_project(root, ECHO_HANDLER)
        spec = create_endpoint(client, project, workers_min=WORKERS, workers_max=WORKERS)
        wait_idle(client.endpoint(spec.id), WORKERS, timeout=90)
        workers = [w["pid"] for w in local_workers(instance, spec.id) if w["state"] == "idle"]
        with sdk_dev_server(project, root / "sdk-home") as (peer, _):
            time.sleep(SETTLE)
            server0, workers0, peer0 = cpu_seconds(instance.pid), group_cpu(workers), group_cpu([peer.pid])
            start = time.monotonic()
            time.sleep(WINDOW)
            elapsed = time.monotonic() - start
            server1, workers1, peer1 = cpu_seconds(instance.pid), group_cpu(workers), group_cpu([peer.pid])
            still_idle = client.endpoint(spec.id).health().workers.idle
    server = (server1 - server0) / elapsed * 100
    worker_total = (workers1 - workers0) / elapsed * 100
    peer_pct = (peer1 - peer0) / elapsed * 100
    note(f"server {server:.2f}% of a core; {len(workers)} workers {worker_total:.2f}% together; "
         f"sdk dev server {peer_pct:.2f}%; idle workers at the end: {still_idle}")
    result(
        "local_idle_cpu",
        server_pct_core=f"{server:.2f}",
        workers_pct_core=f"{worker_total:.2f}",
        per_worker_pct_core=f"{worker_total / max(1, len(workers)):.2f}",
        sdk_dev_server_pct_core=f"{peer_pct:.2f}",
        idle_workers=len(workers),
        window_s=f"{elapsed:.1f}",
        load1_at_start=load_at_start,
        target="server<2%",
        met=str(server < 2.0 and still_idle == WORKERS).lower(),
    )


if __name__ == "__main__":
    main()
