"""Cold deploy on the embedded RunPod: saveTemplate + saveEndpoint (GraphQL) until /health shows
the first Idle worker. Target: median under 2.5 s.

The time is split, from the embedded RunPod's own worker timestamps, into the two GraphQL calls,
the wait before the worker process is spawned, the worker's start (Python + ``import runpod`` +
``serverless.start`` up to its first job-take), and the health poll noticing it. The worker's
start is then attributed: ``import runpod`` alone, and within it the CPU probe (py-cpuinfo) that
``runpod.serverless.utils.rp_debugger`` runs at import, each timed in a fresh interpreter. The
peer, in the same run, is the SDK's own dev server (``python handler.py --rp_serve_api``) from
spawn to its first answer: the same interpreter and SDK start, without any control plane.

Workers are forked from the embedded RunPod's fork server, which has the SDK's dependencies
loaded; a second peer is the wall time of ``python -c "import runpod"`` in a fresh interpreter,
and ``first_idle_vs_import`` is the deploy-to-Idle median over that one (target: at most 0.5).
The fork server starts with the embedded RunPod: one untimed deploy first waits for it.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ECHO_HANDLER,
    IMPORT_PROBE,
    PYTHON,
    clean_env,
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
    from runpod_jupyter.api import Client, Endpoint

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
    import_walls: list[float] = []
    with scratch("cold") as root, embedded_runpod(root) as instance, Client(instance.settings()) as client:
        project = worker_project(root, ECHO_HANDLER)
        client.gpu_types()  # the connection is open before the clock starts
        _warm_up(client, instance, project)
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
            import_walls.append(_wall_time([PYTHON, "-c", "import runpod"], root / "sdk-home"))

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
        python_c_import_runpod_wall_p50_ms=ms(median(import_walls), 0),
        first_idle_vs_import=f"{median(totals) / median(import_walls):.2f}",
        n=REPEATS,
        load1_at_start=load_at_start,
        target="<2500ms,first_idle_vs_import<=0.5",
        met=str(median(totals) < 2.5 and median(totals) / median(import_walls) <= 0.5).lower(),
    )


def _wall_time(argv: list[str], home: Path) -> float:
    """Seconds from start to exit of a fresh interpreter running ``argv``."""
    start = time.perf_counter()
    subprocess.run(argv, env=clean_env(HOME=str(home)), capture_output=True, timeout=60, check=True)
    return time.perf_counter() - start


def _warm_up(client: Client, instance: object, project: Path) -> None:
    """One deploy, not timed: the embedded RunPod's fork server is up after it."""
    spec = create_endpoint(client, project, workers_min=0, workers_max=1)
    wait_until(functools.partial(_has_idle_worker, client.endpoint(spec.id)), DEPLOY_TIMEOUT, POLL, "a warm-up worker")
    pid = next(w for w in local_workers(instance, spec.id) if w["readyAt"])["pid"]
    client.delete_endpoint(spec.id)
    client.delete_template(spec.name)
    wait_until(functools.partial(_exited, pid), 30, 0.05, "the warm-up worker to exit")


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
