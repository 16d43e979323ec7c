"""The embedded RunPod's worker fleet: starting workers on free GPUs, watching them, stopping them,
and what their ending means for their jobs.

A worker starts Initializing (Throttled while its pools have no free GPU) and is Idle once the SDK
first asks for work. One that never asks within the init timeout, or stops sending heartbeats, is
killed. One that crashes before it ever asked for work is Unhealthy and retried with exponential
backoff (a crash loop, as on the platform); its running jobs are retried or failed either way.
Workers are drained (SIGTERM, then SIGKILL after a grace) when scaled in, replaced by a new
release, or their endpoint is deleted or disabled. Worker processes a crashed server left behind
are killed at the next start.

Workers of the default command are forked by a fork server (:mod:`.forkserver`) started with the
fleet (:meth:`Fleet.prepare`) and stopped with it; see :func:`.workers.spawn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from . import scaler, stock
from . import workers as wk
from .billing import Billing
from .forkserver import MARKER_ENV, ForkServer
from .model import EndpointRuntime, Shared, init_timeout, random_id
from .queue import JobQueue
from .workers import LEAVING, SERVING, SLOT_STATES, WorkerPhase, WorkerRecord

PGIDS = "worker_pgids"  # store key: the live workers' process groups, for the orphan sweep
#: /health's worker counts in RunPod's order; "ready" repeats "idle", as on RunPod.
HEALTH_COUNTS = (
    WorkerPhase.IDLE, WorkerPhase.INITIALIZING, "ready", WorkerPhase.RUNNING, WorkerPhase.THROTTLED,
    WorkerPhase.UNHEALTHY, WorkerPhase.OUTDATED,
)


class Fleet:
    """Every worker's lifecycle. Holds the job queue (a dead worker's jobs are retried there) and
    billing (a worker's time is charged when it stops being billed)."""

    def __init__(self, shared: Shared, queue: JobQueue, billing: Billing) -> None:
        self.shared = shared
        self.queue = queue
        self.billing = billing
        self.stopping = False  # set by stop_all: exits are the server's doing, not the workers'
        self.forks: ForkServer | None = None  # set by prepare, when the options allow one

    def prepare(self) -> None:
        """Start the fork server now (on the running loop), so the first worker is forked from a
        warm interpreter rather than waiting for one."""
        options = self.shared.options
        if options.fork_server and self.forks is None:
            self.forks = ForkServer(
                home=options.data_dir / "forkserver" / "home",
                log_file=options.data_dir / "logs" / "forkserver.log",
                marker=str(options.data_dir),
            )
            self.forks.start()

    def set_capacity(self, gpus: dict[str, int]) -> None:
        """Local-only knob: GPUs free per pool, to simulate Throttled workers."""
        self.shared.options.gpus.update({k: int(v) for k, v in gpus.items()})
        self.shared.wake.notify()

    def stock(self) -> dict[str, dict[str, Any]]:
        """Per pool ``{capacity, inUse, free, availability}``, as GPU stock reads now."""
        return stock.pool_stock(self.shared.options.gpus, self.shared.workers.values())

    def _pool_free(self, pool: str) -> bool:
        capacity = self.shared.options.gpus.get(pool)
        if capacity is None:
            return True
        return stock.in_use(self.shared.workers.values(), pool) < capacity

    def _grab_gpu(self, ep: EndpointRuntime) -> str | None:
        return next((pool for pool in ep.gpu_ids if self._pool_free(pool)), None)

    def new_worker(self, ep: EndpointRuntime) -> WorkerRecord:
        """A worker for the endpoint's current release, started if a GPU is free (else Throttled)."""
        worker = WorkerRecord(id=random_id(), endpoint_id=ep.id, release=ep.release, state=WorkerPhase.THROTTLED)
        self.shared.workers[worker.id] = worker
        self.try_start(ep, worker)
        return worker

    def try_start(self, ep: EndpointRuntime, worker: WorkerRecord) -> None:
        """Start the worker's process on a free GPU of the endpoint's pools; Throttled if none."""
        pool = self._grab_gpu(ep)
        if pool is None:
            worker.state = WorkerPhase.THROTTLED
            worker.reason = f"no capacity in any of {', '.join(ep.gpu_ids)}"
            return
        worker.pool, worker.state, worker.reason = pool, WorkerPhase.INITIALIZING, None
        worker.contacted = worker.last_seen = worker.idle_since = None
        worker.exit_code, worker.pid, worker.killed_by = None, None, None
        self.shared.spawn(self._run(ep, worker))

    async def _run(self, ep: EndpointRuntime, worker: WorkerRecord) -> None:
        options = self.shared.options
        home = options.data_dir / "workers" / worker.id / "home"
        log_file = options.data_dir / "logs" / ep.id / f"{worker.id}.log"
        try:
            launch = wk.build_launch(
                worker=worker, template=ep.template, control_url=options.control_url,
                worker_key=options.worker_key, ping_interval_ms=options.ping_interval_ms,
                home=home, resolve_secret=os.environ.get,
            )
            process = await wk.spawn(worker, launch, log_file, self.forks)
        except Exception as exc:  # whatever stops the start (OSError, ValueError...), the worker fails with it
            why = f"could not start the worker: {type(exc).__name__}: {exc}"
            worker.add_log({"t": time.time(), "worker": worker.id, "job": None, "level": "ERROR",
                            "message": why, "stream": "stderr"})
            self._on_exit(worker, 127, failed=why)
            return
        self._record_pgids()
        how = "forked by the fork server" if worker.forked else "new process"
        worker.system_log(f"worker started on {worker.pool or 'a GPU'} (release {worker.release}, pid {process.pid}, {how})")
        pump = asyncio.ensure_future(wk.pump_logs(worker, process, log_file))
        returncode = await wk.wait_exit(worker, process)
        try:
            await asyncio.wait_for(pump, 5)
        except asyncio.TimeoutError:
            pump.cancel()
        self._on_exit(worker, wk.exit_code(returncode))

    def _on_exit(self, worker: WorkerRecord, code: int, failed: str | None = None) -> None:
        """The worker's process ended with ``code``, or never started (``failed`` says why): its
        jobs are retried or failed, its GPU is free, and it is Unhealthy (it never asked for work)
        or Exited."""
        now = time.time()
        self.billing.charge(worker, now)
        worker.exit_code = code
        worker.system_log(f"worker exited: {failed or wk.describe_exit(code, killed_by=worker.killed_by)}")
        worker.pool = None
        if self.stopping:  # the server stops, not the worker: its jobs wait for the next start
            worker.state = WorkerPhase.EXITED
            return
        ep = self.shared.endpoints.get(worker.endpoint_id)
        expected = worker.state == WorkerPhase.DRAINING or worker.stop_after_job or code == 0
        why = failed or wk.describe_exit(code, killed_by=worker.killed_by)
        last_error = None
        if failed is None:
            last_error = next((e["message"] for e in reversed(worker.logs) if e["level"] in ("ERROR", "STDERR")), None)
        if failed is None and worker.reason and worker.reason.startswith(("fitness", "did not", "lost")):
            why = f"{worker.reason} ({why})"
        for job_id in list(worker.jobs):
            job = self.queue.jobs.get(job_id)
            if job is not None and job.worker_id == worker.id:
                self.queue.retry_or_fail(job, f"worker {worker.id} {why}")
        worker.jobs.clear()
        if not expected and worker.contacted is None and ep is not None and worker.release == ep.release:
            # Never asked for work: a crash loop on the platform. Unhealthy, retried with backoff.
            worker.crashes += 1
            ep.crash_streak += 1
            worker.state = WorkerPhase.UNHEALTHY
            worker.reason = why + (f"; last error: {last_error}" if last_error else "")
            options = self.shared.options
            delay = min(options.crash_backoff_max, options.crash_backoff_base * 2 ** (worker.crashes - 1))
            worker.retry_at = now + delay
        else:
            worker.state = WorkerPhase.EXITED
            worker.reason = worker.reason or why
        self._record_pgids()
        if ep is not None:
            ep.work.notify()
        self.shared.wake.notify()

    def touch(self, worker: WorkerRecord) -> None:
        """The worker called in (job-take, job-stop, a post or a ping): the first call makes it Idle."""
        now = time.time()
        worker.last_seen = now
        if worker.contacted is None and worker.state == WorkerPhase.INITIALIZING:
            worker.contacted = now
            worker.state = WorkerPhase.IDLE
            worker.idle_since = now
            worker.crashes = 0
            ep = self.shared.endpoints.get(worker.endpoint_id)
            if ep is not None:
                ep.crash_streak = 0
                if not ep.registered:  # from now on /health answers
                    ep.registered = True
                    self.shared.save_endpoint(ep)
                if worker.release == ep.release:
                    ep.prewarm = False
            self.shared.wake.notify()

    def took_job(self, worker: WorkerRecord, job_id: str, now: float) -> None:
        """The worker took a job: Running, and billed from ``now`` unless it is always-on."""
        worker.jobs.add(job_id)
        if worker.state == WorkerPhase.IDLE:
            worker.state = WorkerPhase.RUNNING
            if not worker.active:  # an always-on worker is billed already
                worker.billing_since = now

    def job_left(self, worker: WorkerRecord) -> None:
        """A job left the worker: with none left it is Idle (and recycled if the SDK asked)."""
        if worker.jobs or worker.state != WorkerPhase.RUNNING:
            return
        if not worker.active:
            self.billing.charge(worker, time.time())
        worker.state = WorkerPhase.IDLE
        worker.idle_since = time.time()
        if worker.stop_after_job:  # refresh_worker: recycle the process
            self.drain(worker, "refresh_worker requested")
        self.shared.wake.notify()

    def drain(self, worker: WorkerRecord, why: str) -> None:
        """Stop the worker: SIGTERM now, SIGKILL after the grace; one without a process just ends."""
        if worker.state in LEAVING:
            return
        if worker.process is None or worker.state in (WorkerPhase.THROTTLED, WorkerPhase.UNHEALTHY):
            worker.state, worker.reason, worker.pool = WorkerPhase.EXITED, why, None
            return
        self.billing.charge(worker, time.time())
        worker.state = WorkerPhase.DRAINING
        worker.reason = why
        worker.retry_at = time.time() + self.shared.options.drain_grace
        wk.terminate(worker)
        ep = self.shared.endpoints.get(worker.endpoint_id)
        if ep is not None:
            ep.work.notify()  # its held job-take answers now
        worker.news.notify()

    def check(self, now: float) -> None:
        """The clock's look at every worker: kill the overdue (drain grace, init timeout, lost
        heartbeat) and restart Unhealthy ones after their backoff and Throttled ones when a GPU frees."""
        options = self.shared.options
        for worker in list(self.shared.workers.values()):
            ep = self.shared.endpoints.get(worker.endpoint_id)
            if worker.state == WorkerPhase.DRAINING and worker.retry_at and now > worker.retry_at:
                wk.kill(worker, f"still running {options.drain_grace:g} s after SIGTERM while draining ({worker.reason})")
            elif worker.state == WorkerPhase.INITIALIZING and worker.spawned and worker.contacted is None:
                limit = init_timeout(ep, options.init_timeout)
                if now - worker.spawned > limit:
                    worker.reason = f"did not start within the init timeout ({limit:g} s; set RUNPOD_INIT_TIMEOUT)"
                    wk.kill(worker, "init timeout")
            elif worker.state in SERVING and worker.last_seen is not None:
                if now - worker.last_seen > options.heartbeat_timeout:
                    worker.reason = f"lost heartbeat (nothing heard for {now - worker.last_seen:.0f} s)"
                    wk.kill(worker, "lost heartbeat")
            elif worker.state == WorkerPhase.UNHEALTHY and ep is not None and worker.retry_at and now >= worker.retry_at:
                if worker.release < ep.release or ep.disabled:
                    worker.state = WorkerPhase.EXITED
                else:
                    self.try_start(ep, worker)
            elif worker.state == WorkerPhase.THROTTLED and ep is not None and not ep.disabled:
                if worker.release < ep.release:
                    worker.state = WorkerPhase.EXITED
                else:
                    self.try_start(ep, worker)

    def scale(self, ep: EndpointRuntime, now: float) -> None:
        """Apply the scaler's plan for the endpoint, within the account's worker quota."""
        if ep.disabled or ep.problem:
            return
        jobs = self.queue.jobs
        oldest = jobs[ep.queue[0]].created if ep.queue and ep.queue[0] in jobs else None
        live = sum(1 for w in self.shared.workers.values() if w.state in SLOT_STATES | {WorkerPhase.DRAINING})
        decision = scaler.plan(
            ep, self.shared.workers_of(ep.id), now=now, oldest_queued=oldest,
            room=self.shared.options.worker_limit - live,
        )
        for worker, why in decision.drain:
            self.drain(worker, why)
        for worker in decision.retire:
            worker.state = WorkerPhase.EXITED
        for _ in range(decision.start):
            self.new_worker(ep)

    def prune_exited(self) -> None:
        """Keep only the newest ``exited_kept`` ended workers (their logs and exit codes)."""
        exited = [w for w in self.shared.workers.values() if w.state == WorkerPhase.EXITED]
        for worker in sorted(exited, key=lambda w: w.created)[: max(0, len(exited) - self.shared.options.exited_kept)]:
            self.shared.workers.pop(worker.id, None)

    def counts(self, ep: EndpointRuntime) -> dict[str, int]:
        """The endpoint's workers as /health counts them: a live worker of an older release is
        counted as outdated, whatever its state."""
        counts = {str(key): 0 for key in HEALTH_COUNTS}
        for worker in self.shared.workers_of(ep.id):
            if worker.state in LEAVING:
                continue
            state = WorkerPhase.OUTDATED if worker.release < ep.release else worker.state
            counts[state] += 1
        counts["ready"] = counts[WorkerPhase.IDLE]
        return counts

    def kill_orphans(self) -> None:
        """Worker process groups left by a server that died without stopping them."""
        recorded: dict[str, int] = self.shared.store.get_value(PGIDS, {}) or {}
        forked = f"{MARKER_ENV}={self.shared.options.data_dir}"
        for worker_id, pgid in recorded.items():
            if _group_is_worker(pgid, worker_id, forked):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, 9)
        self.shared.store.set_value(PGIDS, {})

    def _record_pgids(self) -> None:
        live = {w.id: w.pid for w in self.shared.workers.values() if w.pid and w.state != WorkerPhase.EXITED}
        self.shared.store.set_value(PGIDS, live)

    async def stop_all(self) -> None:
        """The server is stopping: every worker at once gets SIGTERM with its held job-take
        answered (so an idle SDK worker exits at once), SIGKILL after ``stop_grace``. Their jobs
        are left as they are in the store: a running one is retried at the next start."""
        self.stopping = True
        live = [w for w in self.shared.workers.values() if _running(w)]
        for worker in live:
            self.billing.charge(worker, time.time())  # billed up to the stop, as a drain is
            worker.state = WorkerPhase.DRAINING  # job-take hands it nothing more and answers now
            wk.terminate(worker)
            worker.news.notify()
        for ep in self.shared.endpoints.values():
            ep.work.notify()
        deadline = time.monotonic() + self.shared.options.stop_grace
        while any(_running(w) for w in live) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for worker in live:
            if _running(worker):
                wk.kill(worker, "the embedded RunPod stopped")
        deadline = time.monotonic() + 2.0
        while any(_running(w) for w in live) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.forks is not None:
            await self.forks.close()

    def forget_process_groups(self) -> None:
        """All workers are stopped: nothing for the next start's orphan sweep."""
        self.shared.store.set_value(PGIDS, {})


def _running(worker: WorkerRecord) -> bool:
    return worker.process is not None and worker.process.returncode is None


def _group_is_worker(pgid: int, worker_id: str, forked: str) -> bool:
    """True if a live process in group ``pgid`` carries this worker's id (guards pid reuse). A
    forked worker's /proc environ is its fork server's, which names the data dir (``forked``)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    marker = f"RUNPOD_POD_ID={worker_id}".encode()
    forked_marker = forked.encode() + b"\0"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            environ = (entry / "environ").read_bytes()
            if marker in environ or environ.startswith(forked_marker) or b"\0" + forked_marker in environ:
                return True
        except (OSError, ProcessLookupError):
            continue
    return False
