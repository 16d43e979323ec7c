"""Cold deploy on the embedded RunPod: saveTemplate + saveEndpoint (GraphQL) until /health shows
the first Idle worker. Target: median under 2.5 s.

The time is split, from the embedded RunPod's own worker timestamps, into the two GraphQL calls,
the wait before the worker process is spawned, the worker's start (Python + ``import runpod`` +
``serverless.start`` up to its first job-take), and the health poll noticing it. The worker's
start is then attributed: ``import runpod`` alone, and within it the CPU probe (py-cpuinfo) that
``runpod.serverless.utils.rp_debugger`` runs at import, each timed in a fresh interpreter. The
peer, in the same run, is the SDK's own dev server (``python handler.py --rp_serve_api``) from
spawn to its first answer: the same interpreter and SDK start, without any control plane.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ECHO_HANDLER,
    IMPORT_PROBE,
    create_endpoint,
    embedded_runpod,
    load1,
    local_workers,
    median,
    ms,
    note,
    result,
    scratch,
    sdk_dev_server,
    time_in_fresh_interpreter,
    wait_until,
    worker_project,
)

if TYPE_CHECKING:
    from runpod_jupyter.api import Endpoint

# What ``import runpod`` spends in runpod.serverless.utils.rp_debugger: a CPU probe run at import.
CPUINFO_PROBE = """
import time
import cpuinfo
t = time.perf_counter()
cpuinfo.get_cpu_info()
print(time.perf_counter() - t)
"""

REPEATS = 5
POLL = 0.02
DEPLOY_TIMEOUT = 60.0


def main() -> None:
    load_at_start = load1()
    from runpod_jupyter.api import Client

    totals, graphql, spawn_wait, worker_start, noticed, peer, imports, probes = [], [], [], [], [], [], [], []
    with scratch("cold") as root, embedded_runpod(root) as instance, Client(instance.settings()) as client:
        project = worker_project(root, ECHO_HANDLER)
        client.gpu_types()  # the connection is open before the clock starts
        for i in range(REPEATS):
            begin = time.time()
            spec = create_endpoint(client, project, workers_min=0, workers_max=1)
            created = time.time()
            api = client.endpoint(spec.id)
            wait_until(functools.partial(_has_idle_worker, api), DEPLOY_TIMEOUT, POLL, "the first idle worker")
            seen = time.time()
            worker = next(w for w in local_workers(instance, spec.id) if w["readyAt"])
            totals.append(seen - begin)
            graphql.append(created - begin)
            spawn_wait.append(worker["startedAt"] - created)
            worker_start.append(worker["readyAt"] - worker["startedAt"])
            noticed.append(seen - worker["readyAt"])
            note(f"deploy {i + 1}/{REPEATS}: {ms(totals[-1], 0)} ms "
                 f"(graphql {ms(graphql[-1], 0)}, spawn wait {ms(spawn_wait[-1], 0)}, "
                 f"worker start {ms(worker_start[-1], 0)}, noticed {ms(noticed[-1], 0)})")
            client.delete_endpoint(spec.id)
            client.delete_template(spec.name)
            # The next endpoint must not share the CPU with this one's worker still shutting down.
            pid = worker["pid"]
            wait_until(functools.partial(_exited, pid), 30, 0.05, "the worker to exit")

        for i in range(REPEATS):
            start = time.time()
            with sdk_dev_server(project, root / "sdk-home"):
                peer.append(time.time() - start)
            note(f"sdk dev server {i + 1}/{REPEATS}: {ms(peer[-1], 0)} ms")
        for _ in range(REPEATS):
            imports.append(time_in_fresh_interpreter(IMPORT_PROBE.format(module="runpod"), root / "sdk-home"))
            probes.append(time_in_fresh_interpreter(CPUINFO_PROBE, root / "sdk-home"))

    parts = {"graphql": graphql, "spawn_wait": spawn_wait, "worker_start": worker_start, "health_noticed": noticed}
    dominant = max(parts, key=lambda k: median(parts[k]))
    share = median(parts[dominant]) / median(totals)
    result(
        "local_cold_deploy",
        deploy_to_idle_p50_ms=ms(median(totals), 0),
        graphql_p50_ms=ms(median(graphql), 0),
        spawn_wait_p50_ms=ms(median(spawn_wait), 0),
        worker_start_p50_ms=ms(median(worker_start), 0),
        health_noticed_p50_ms=ms(median(noticed), 0),
        sdk_dev_server_start_p50_ms=ms(median(peer), 0),
        dominated_by=f"{dominant}({share:.0%})",
        import_runpod_p50_ms=ms(median(imports), 0),
        of_which_cpuinfo_probe_p50_ms=ms(median(probes), 0),
        n=REPEATS,
        load1_at_start=load_at_start,
        target="<2500ms",
        met=str(median(totals) < 2.5).lower(),
    )


def _has_idle_worker(api: Endpoint) -> bool:
    return api.health().workers.idle >= 1


def _exited(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


if __name__ == "__main__":
    main()
