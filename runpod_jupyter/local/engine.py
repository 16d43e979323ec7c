"""The embedded RunPod's control plane: templates, endpoints and releases, the job queue, worker
states, scaling, GPU capacity, billing, timeouts, retries and webhooks.

It follows the platform's documented behaviour (seeds 000/001/003/004, notes/runpod-sdk-protocol.md):
job-take and job-stop are long-polls; late progress posts and results for cancelled jobs are
ignored; a job whose worker dies is retried once (``health.jobs.retried``) and otherwise fails with
the exit code's meaning; a worker that crashes before it ever asks for work is Unhealthy and
retried with exponential backoff; a new release marks running workers Outdated and replaces them
a few at a time; idle workers above ``workersMin`` stop after ``idleTimeout``; running workers are
billed per second, rounded up, at their GPU pool's price, and ``workersMin`` ("active") workers for as
long as they are up, at a discount; a negative balance disables endpoints
(their REST API answers "Not Found" while GraphQL still lists them).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..api.models import GPU_POOLS
from . import scaler, workers as wk
from .jobs import JobRecord, Signal, new_job_id
from .model import (
    HOLDS_GPU, SLOT_STATES, ControlPlaneError, EndpointRuntime, Options, init_timeout, iso_now, price, random_id,
)
from .store import Store

STOP_RESEND = 2.0  # seconds between stop signals for a job a worker still holds
SETTLE_EVERY = 60.0  # seconds between charges for a worker billed without a break

class Engine:
    """All control-plane state and behaviour; the HTTP layer in ``server.py`` only translates."""

    def __init__(self, options: Options, store: Store) -> None:
        self.options = options
        self.store = store
        self.templates: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, EndpointRuntime] = {}
        self.jobs: dict[str, JobRecord] = {}  # every job still retained
        # Indexes that keep the clock and health independent of how many finished jobs are kept:
        # jobs not final yet, and final ones in the order they finished, per retention kind.
        self._open: dict[str, JobRecord] = {}
        self._closed: dict[str, deque[str]] = {"run": deque(), "sync": deque()}
        self.workers: dict[str, wk.WorkerRecord] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.registry_auths: dict[str, dict[str, Any]] = {}
        self.balance: float = store.get_value("balance", options.balance)
        self._worker_signals: dict[str, Signal] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = Signal()
        self._stopping = False
        self._http: Any = None  # aiohttp session for webhooks, made on first use

    # ------------------------------------------------------------------------------------------
    # start-up, persistence
    # ------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild state after a restart: queued jobs stay queued, running ones are retried,
        finished ones stay readable until their retention ends."""
        for row in self.store.rows("templates"):
            self.templates[row["id"]] = row
        for row in self.store.rows("volumes"):
            self.volumes[row["id"]] = row
        for row in self.store.rows("registry_auths"):
            self.registry_auths[row["id"]] = row
        for row in self.store.rows("endpoints"):
            ep = EndpointRuntime(**row)
            self.endpoints[ep.id] = ep
        loaded = sorted((JobRecord.from_row(r) for r in self.store.rows("jobs")), key=lambda j: j.created)
        for job in sorted((j for j in loaded if j.final), key=lambda j: j.finished or 0.0):
            self._closed[_retention_kind(job)].append(job.id)
        for job in loaded:
            ep = self.endpoints.get(job.endpoint_id)
            if ep is None:
                self.store.delete("jobs", job.id)
                continue
            self.jobs[job.id] = job
            if not job.final:
                self._open[job.id] = job
            if job.status == "IN_PROGRESS":
                job.status, job.started, job.worker_id, job.progress = "IN_QUEUE", None, None, None
                job.retries += 1
                ep.retried += 1
                job.event("RETRY", "the embedded RunPod restarted while the job ran")
                self._save_job(job)
            if job.status == "IN_QUEUE":
                ep.queue.append(job.id)
        self._kill_orphans()

    def _save_job(self, job: JobRecord) -> None:
        self.store.put("jobs", job.id, job.to_row(), endpoint_id=job.endpoint_id, status=job.status)

    def _save_endpoint(self, ep: EndpointRuntime) -> None:
        self.store.put("endpoints", ep.id, ep.to_row())

    def _kill_orphans(self) -> None:
        """Worker process groups left by a server that died without stopping them."""
        recorded: dict[str, int] = self.store.get_value("worker_pgids", {}) or {}
        for worker_id, pgid in recorded.items():
            if _group_is_worker(pgid, worker_id):
                try:
                    os.killpg(pgid, 9)
                except (ProcessLookupError, PermissionError):
                    pass
        self.store.set_value("worker_pgids", {})

    def _record_pgids(self) -> None:
        live = {w.id: w.pid for w in self.workers.values() if w.pid and w.state != "exited"}
        self.store.set_value("worker_pgids", live)

    # ------------------------------------------------------------------------------------------
    # templates and endpoints (GraphQL)
    # ------------------------------------------------------------------------------------------
    def save_template(self, given: dict[str, Any]) -> dict[str, Any]:
        template_id = given.get("id")
        if template_id:
            current = self.templates.get(template_id)
            if current is None:
                raise ControlPlaneError(f"Template {template_id} does not exist.")
            template = {**current, **{k: v for k, v in given.items() if v is not None}}
        else:
            name = given.get("name") or ""
            if not name.strip():
                raise ControlPlaneError("Template name is required.")
            if not given.get("imageName"):
                raise ControlPlaneError("imageName is required.")
            template = {
                "containerDiskInGb": 10, "volumeInGb": 0, "env": [], "isServerless": False,
                "ports": "", "readme": "", "volumeMountPath": "/workspace",
                **{k: v for k, v in given.items() if v is not None}, "id": random_id(10),
            }
        clash = [t for t in self.templates.values() if t["name"] == template["name"] and t["id"] != template["id"]]
        if clash:
            raise ControlPlaneError(f"Template name must be unique: {template['name']!r} is taken.")
        self.templates[template["id"]] = template
        self.store.put("templates", template["id"], template)
        return template

    def delete_template(self, name: str) -> None:
        found = [t for t in self.templates.values() if t["name"] == name]
        if not found:
            raise ControlPlaneError(f"Template {name!r} does not exist.")
        users = [ep.data["name"] for ep in self.endpoints.values() if ep.data.get("templateId") == found[0]["id"]]
        if users:
            raise ControlPlaneError(f"Template {name!r} is in use by endpoint(s) {', '.join(users)}; delete those first.")
        del self.templates[found[0]["id"]]
        self.store.delete("templates", found[0]["id"])

    def save_endpoint(self, given: dict[str, Any]) -> dict[str, Any]:
        given = {k: v for k, v in given.items() if v is not None}
        endpoint_id = given.get("id")
        if endpoint_id:
            ep = self.endpoints.get(endpoint_id)
            if ep is None:
                raise ControlPlaneError(f"Endpoint {endpoint_id} does not exist.")
            data = {**ep.data, **given}
        else:
            missing = [k for k in ("name", "templateId", "gpuIds") if not given.get(k)]
            if missing:
                raise ControlPlaneError(f"{', '.join(missing)} required to create an endpoint.")
            data = {
                "idleTimeout": 5, "scalerType": "QUEUE_DELAY", "scalerValue": 4, "workersMin": 0,
                "workersMax": 3, "gpuCount": 1, "networkVolumeId": "", "locations": "",
                **given, "id": random_id(), "userId": "user_local", "createdAt": iso_now(),
            }
        template = self.templates.get(data.get("templateId") or "")
        if template is None:
            raise ControlPlaneError(f"Template {data.get('templateId')!r} does not exist.")
        self._validate_endpoint(data)
        data["version"] = (self.endpoints[endpoint_id].release + 1) if endpoint_id else 1
        if endpoint_id:
            ep = self.endpoints[endpoint_id]
            ep.data, ep.template = data, dict(template)
            ep.release += 1
            ep.prewarm = True
            ep.crash_streak = 0
        else:
            ep = EndpointRuntime(data=data, template=dict(template))
            self.endpoints[ep.id] = ep
        self._save_endpoint(ep)
        ep.work.notify()
        self._wake.notify()
        return self.endpoint_view(ep)

    def _validate_endpoint(self, data: dict[str, Any]) -> None:
        pools = [g.strip() for g in str(data.get("gpuIds") or "").split(",") if g.strip()]
        unknown = [g for g in pools if g not in GPU_POOLS and g not in self.options.gpus]
        if not pools or unknown:
            valid = ", ".join(sorted(set(GPU_POOLS) | set(self.options.gpus)))
            raise ControlPlaneError(f"Unknown GPU id(s) {', '.join(unknown) or '(none)'}; valid ids: {valid}.")
        low, high = int(data.get("workersMin") or 0), int(data.get("workersMax") or 0)
        if low < 0 or high < 0 or low > high:
            raise ControlPlaneError(f"workersMin ({low}) must be between 0 and workersMax ({high}).")
        others = sum(int(e.data.get("workersMax") or 0) for e in self.endpoints.values() if e.id != data["id"])
        if others + high > self.options.worker_limit:
            raise ControlPlaneError(
                f"Max workers across all endpoints must not exceed your account's worker quota of "
                f"{self.options.worker_limit} (other endpoints already use {others}). Lower workersMax, "
                "or delete endpoints you no longer need."
            )
        if int(data.get("idleTimeout") or 0) < 0 or int(data.get("scalerValue") or 1) < 1:
            raise ControlPlaneError("idleTimeout must be >= 0 and scalerValue >= 1.")
        if str(data.get("scalerType")) not in ("QUEUE_DELAY", "REQUEST_COUNT"):
            raise ControlPlaneError("scalerType must be QUEUE_DELAY or REQUEST_COUNT.")

    def delete_endpoint(self, endpoint_id: str) -> None:
        ep = self.endpoints.pop(endpoint_id, None)
        if ep is None:
            raise ControlPlaneError(f"Endpoint {endpoint_id} does not exist.")
        for worker in self._workers_of(endpoint_id):
            self._drain(worker, "endpoint deleted")
        for job in [j for j in self.jobs.values() if j.endpoint_id == endpoint_id]:
            if not job.final:
                self._finish(job, ep, "CANCELLED", reason="the endpoint was deleted")
            self._forget(job)
        self.store.delete("endpoints", endpoint_id)
        ep.work.notify()

    def endpoint_view(self, ep: EndpointRuntime) -> dict[str, Any]:
        template = self.templates.get(ep.data.get("templateId") or "") or ep.template
        return {**ep.data, "template": template, "workersStandby": ep.setting("workersMin", 0)}

    # ------------------------------------------------------------------------------------------
    # jobs (client REST API)
    # ------------------------------------------------------------------------------------------
    def endpoint(self, endpoint_id: str) -> EndpointRuntime | None:
        """The endpoint as the REST API sees it: None when unknown or disabled ("Not Found")."""
        ep = self.endpoints.get(endpoint_id)
        return None if ep is None or ep.disabled else ep

    def submit(self, ep: EndpointRuntime, body: dict[str, Any], kind: str) -> JobRecord:
        policy = body.get("policy") if isinstance(body.get("policy"), dict) else {}
        job = JobRecord(
            id=new_job_id(kind), endpoint_id=ep.id, input=body["input"], kind=kind,
            webhook=body.get("webhook") if isinstance(body.get("webhook"), str) else None,
            policy=policy,
            s3_config=body.get("s3Config") if isinstance(body.get("s3Config"), dict) else None,
        )
        job.event("IN_QUEUE")
        self.jobs[job.id] = job
        self._open[job.id] = job
        position = len(ep.queue)
        if not policy.get("lowPriority"):
            # Normal jobs go ahead of the low-priority ones, which wait at the tail.
            while position and self.jobs[ep.queue[position - 1]].policy.get("lowPriority"):
                position -= 1
        ep.queue.insert(position, job.id)
        self._save_job(job)
        ep.work.notify()
        self._wake.notify()
        return job

    def job(self, ep: EndpointRuntime, job_id: str) -> JobRecord | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.endpoint_id == ep.id else None

    async def wait_final(self, job: JobRecord, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not job.final and time.monotonic() < deadline:
            await job.changed.wait(deadline - time.monotonic())

    async def stream(self, job: JobRecord) -> dict[str, Any]:
        """Hand out the chunks not delivered yet (each exactly once); hold briefly for news."""
        deadline = time.monotonic() + self.options.stream_hold
        while not job.stream_pending and not job.final and time.monotonic() < deadline:
            await job.changed.wait(deadline - time.monotonic())
        chunks, job.stream_pending = job.stream_pending, []
        return {"id": job.id, "status": job.status, "stream": [{"output": c} for c in chunks]}

    def cancel(self, ep: EndpointRuntime, job: JobRecord) -> None:
        if job.final:
            return
        if job.status == "IN_QUEUE":
            self._unqueue(ep, job)
        self._finish(job, ep, "CANCELLED", reason="cancelled by request")

    def purge(self, ep: EndpointRuntime) -> int:
        """Drop queued jobs; RunPod then answers "request does not exist" for them."""
        removed = list(ep.queue)
        ep.queue.clear()
        for job_id in removed:
            job = self.jobs.get(job_id)
            if job is not None:
                self._forget(job)
        return len(removed)

    def health(self, ep: EndpointRuntime) -> dict[str, Any]:
        counts = {"idle": 0, "initializing": 0, "ready": 0, "running": 0, "throttled": 0, "unhealthy": 0, "outdated": 0}
        for worker in self._workers_of(ep.id):
            if worker.state in ("draining", "exited"):
                continue
            state = "outdated" if worker.release < ep.release else worker.state
            counts[state] += 1
        counts["ready"] = counts["idle"]
        in_progress = sum(1 for j in self._open.values() if j.endpoint_id == ep.id and j.status == "IN_PROGRESS")
        return {
            "jobs": {
                "completed": ep.completed, "failed": ep.failed, "inProgress": in_progress,
                "inQueue": len(ep.queue), "retried": ep.retried,
            },
            "workers": counts,
        }

    # ------------------------------------------------------------------------------------------
    # worker-facing API
    # ------------------------------------------------------------------------------------------
    def _touch(self, worker: wk.WorkerRecord) -> None:
        now = time.time()
        worker.last_seen = now
        if worker.contacted is None and worker.state == "initializing":
            worker.contacted = now
            worker.state = "idle"
            worker.idle_since = now
            worker.crashes = 0
            ep = self.endpoints.get(worker.endpoint_id)
            if ep is not None:
                ep.crash_streak = 0
                if worker.release == ep.release:
                    ep.prewarm = False
            self._wake.notify()

    def _may_take(self, worker: wk.WorkerRecord, ep: EndpointRuntime | None) -> bool:
        return (
            ep is not None and not ep.disabled and worker.state in ("idle", "running")
            and worker.release == ep.release and not worker.stop_after_job
        )

    async def take(self, endpoint_id: str, worker_id: str, batch: int) -> list[dict[str, Any]]:
        worker = self.workers.get(worker_id)
        if worker is None or worker.endpoint_id != endpoint_id:
            await asyncio.sleep(self.options.hold)  # a stranger: never a fast answer (no busy loop)
            return []
        self._touch(worker)
        deadline = time.monotonic() + self.options.hold
        while time.monotonic() < deadline and worker.state not in ("draining", "exited"):
            ep = self.endpoints.get(endpoint_id)
            if self._may_take(worker, ep) and ep.queue:
                assigned = [self._assign(ep, worker) for _ in range(min(batch, len(ep.queue)))]
                return [job.worker_payload() for job in assigned]
            await (ep.work if ep is not None else self._wake).wait(deadline - time.monotonic())
        if worker.state == "draining":
            await asyncio.sleep(0.2)
        return []

    def _assign(self, ep: EndpointRuntime, worker: wk.WorkerRecord) -> JobRecord:
        job = self.jobs[ep.queue.popleft()]
        now = time.time()
        job.status, job.started, job.worker_id, job.progress = "IN_PROGRESS", now, worker.id, None
        job.event("IN_PROGRESS", worker.id)
        worker.jobs.add(job.id)
        if worker.state == "idle":
            worker.state = "running"
            if not worker.active:  # an always-on worker is billed already
                worker.billing_since = now
        self._save_job(job)
        return job

    async def stop_poll(self, endpoint_id: str, worker_id: str) -> list[str]:
        worker = self.workers.get(worker_id)
        if worker is None:
            await asyncio.sleep(self.options.hold)
            return []
        self._touch(worker)
        signal = self._worker_signals.setdefault(worker_id, Signal())
        deadline = time.monotonic() + self.options.hold
        while time.monotonic() < deadline and worker.state not in ("draining", "exited"):
            stop = [jid for jid in worker.jobs if self._should_stop(jid)]
            if stop:
                for jid in stop:
                    self.jobs[jid].stop_sent = time.monotonic()
                return stop
            await signal.wait(min(STOP_RESEND, deadline - time.monotonic()))
        return []

    def _should_stop(self, job_id: str) -> bool:
        """A final job still on a worker is signalled, and signalled again while the worker keeps
        it: the SDK ignores a stop that lands before it has started the job."""
        job = self.jobs.get(job_id)
        if job is None or not job.final:
            return False
        return job.stop_sent is None or time.monotonic() - job.stop_sent > STOP_RESEND

    def job_done(self, worker_id: str, job_id: str, body: dict[str, Any]) -> None:
        worker = self.workers.get(worker_id)
        if worker is not None:
            self._touch(worker)
        job = self.jobs.get(job_id)
        if job is None:
            return
        if body.get("status") == "IN_PROGRESS":
            if not job.final and job.worker_id == worker_id:
                job.progress = body.get("output")
                job.progress_log.append([round(time.time(), 3), job.progress])
                job.changed.notify()
            return
        if worker is not None and body.get("stopPod"):
            worker.stop_after_job = True
        if job.status == "IN_PROGRESS" and job.worker_id == worker_id:
            ep = self.endpoints.get(job.endpoint_id)
            if "error" in body:
                self._finish(job, ep, "FAILED", output=body.get("output"), error=body["error"])
            else:
                self._finish(job, ep, "COMPLETED", output=body.get("output"))
        if worker is not None and job_id in worker.jobs:
            worker.jobs.discard(job_id)
            self._job_left_worker(worker)

    def job_stream(self, worker_id: str, job_id: str, body: dict[str, Any]) -> None:
        worker = self.workers.get(worker_id)
        if worker is not None:
            self._touch(worker)
        job = self.jobs.get(job_id)
        if job is None or job.final or job.worker_id != worker_id:
            return
        job.stream_pending.append(body.get("output"))
        job.stream_count += 1
        job.changed.notify()

    def ping(self, worker_id: str, params: dict[str, str]) -> None:
        worker = self.workers.get(worker_id)
        if worker is None:
            return
        if params.get("status") == "unhealthy":
            worker.reason = f"fitness check {params.get('check', '?')} failed: {params.get('reason', '')}"
            return
        self._touch(worker)
        listed = {j for j in (params.get("job_id") or "").split(",") if j}
        # A stopped async job posts nothing: once the worker stops listing it, it is gone.
        for job_id in [j for j in worker.jobs if j not in listed and self._stopped(j)]:
            worker.jobs.discard(job_id)
            self._job_left_worker(worker)

    def _stopped(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        return job is None or (job.final and job.stop_sent is not None)

    # ------------------------------------------------------------------------------------------
    # job endings
    # ------------------------------------------------------------------------------------------
    def _finish(
        self, job: JobRecord, ep: EndpointRuntime | None, status: str, *,
        output: Any = None, error: Any = None, reason: str | None = None,
    ) -> None:
        job.status = status
        job.finished = time.time()
        if self._open.pop(job.id, None) is not None:
            self._closed[_retention_kind(job)].append(job.id)
        job.output = output
        job.error = error
        job.reason = reason
        job.event(status, reason or "")
        if ep is not None:
            if status == "COMPLETED":
                ep.completed += 1
            elif status in ("FAILED", "TIMED_OUT"):
                ep.failed += 1
            self._save_endpoint(ep)
        self._save_job(job)
        if job.worker_id and job.worker_id in self._worker_signals:
            self._worker_signals[job.worker_id].notify()  # a job-stop poll may have news
        if job.webhook:
            self._spawn(self._send_webhook(job))

    def _forget(self, job: JobRecord) -> None:
        self.jobs.pop(job.id, None)
        self._open.pop(job.id, None)
        self.store.delete("jobs", job.id)
        job.changed.notify()

    def _unqueue(self, ep: EndpointRuntime, job: JobRecord) -> None:
        try:
            ep.queue.remove(job.id)
        except ValueError:
            pass

    def _retry_or_fail(self, job: JobRecord, why: str) -> None:
        """The job's worker is gone: run it again once, else fail it with the reason."""
        ep = self.endpoints.get(job.endpoint_id)
        if ep is None or job.final:
            return
        if job.retries < self.options.max_job_retries:
            job.retries += 1
            ep.retried += 1
            job.status, job.started, job.worker_id, job.progress = "IN_QUEUE", None, None, None
            job.stream_pending.clear()
            job.event("RETRY", why)
            ep.queue.appendleft(job.id)
            self._save_job(job)
            self._save_endpoint(ep)
            ep.work.notify()
        else:
            self._finish(job, ep, "FAILED", error=why, reason=why)

    async def _send_webhook(self, job: JobRecord) -> None:
        """POST the cloud's payload to the job's webhook; two retries, as on the platform."""
        import aiohttp

        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        body = job.webhook_body()
        for attempt in range(3):
            try:
                async with self._http.post(job.webhook, json=body) as response:
                    if response.status < 400:
                        job.event("WEBHOOK", f"delivered ({response.status})")
                        return
                    failure = f"HTTP {response.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                failure = type(exc).__name__
            await asyncio.sleep(min(10.0, 0.5 * (attempt + 1)))
        job.event("WEBHOOK", f"not delivered: {failure}")

    # ------------------------------------------------------------------------------------------
    # workers: lifecycle, capacity, billing
    # ------------------------------------------------------------------------------------------
    def _workers_of(self, endpoint_id: str) -> list[wk.WorkerRecord]:
        return [w for w in self.workers.values() if w.endpoint_id == endpoint_id]

    def _pool_free(self, pool: str) -> bool:
        capacity = self.options.gpus.get(pool)
        if capacity is None:
            return True
        used = sum(1 for w in self.workers.values() if w.pool == pool and w.state in HOLDS_GPU)
        return used < capacity

    def _grab_gpu(self, ep: EndpointRuntime) -> str | None:
        return next((pool for pool in ep.gpu_ids if self._pool_free(pool)), None)

    def _new_worker(self, ep: EndpointRuntime) -> wk.WorkerRecord:
        worker = wk.WorkerRecord(id=random_id(), endpoint_id=ep.id, release=ep.release, state="throttled")
        self.workers[worker.id] = worker
        self._try_start(ep, worker)
        return worker

    def _try_start(self, ep: EndpointRuntime, worker: wk.WorkerRecord) -> None:
        pool = self._grab_gpu(ep)
        if pool is None:
            worker.state = "throttled"
            worker.reason = f"no capacity in any of {', '.join(ep.gpu_ids)}"
            return
        worker.pool, worker.state, worker.reason = pool, "initializing", None
        worker.contacted = worker.last_seen = worker.idle_since = None
        worker.exit_code, worker.pid = None, None
        self._spawn(self._run_worker(ep, worker))

    async def _run_worker(self, ep: EndpointRuntime, worker: wk.WorkerRecord) -> None:
        home = self.options.data_dir / "workers" / worker.id / "home"
        launch = wk.build_launch(
            worker=worker, template=ep.template, control_url=self.options.control_url,
            worker_key=self.options.worker_key, ping_interval_ms=self.options.ping_interval_ms,
            home=home, resolve_secret=os.environ.get,
        )
        log_file = self.options.data_dir / "logs" / ep.id / f"{worker.id}.log"
        try:
            process = await wk.spawn(worker, launch, log_file)
        except OSError as exc:
            worker.logs.append({"t": time.time(), "worker": worker.id, "job": None, "level": "ERROR",
                                "message": f"could not start the worker: {exc}", "stream": "stderr"})
            self._on_exit(worker, 127)
            return
        self._record_pgids()
        pump = asyncio.ensure_future(wk.pump_logs(worker, process, log_file))
        returncode = await wk.wait_exit(worker, process)
        try:
            await asyncio.wait_for(pump, 5)
        except asyncio.TimeoutError:
            pump.cancel()
        self._on_exit(worker, wk.exit_code(returncode))

    def _on_exit(self, worker: wk.WorkerRecord, code: int) -> None:
        now = time.time()
        self._charge(worker, now)
        worker.exit_code = code
        worker.pool = None
        ep = self.endpoints.get(worker.endpoint_id)
        expected = worker.state == "draining" or worker.stop_after_job or code == 0
        why = wk.describe_exit(code)
        last_error = next((e["message"] for e in reversed(worker.logs) if e["level"] in ("ERROR", "STDERR")), None)
        if worker.reason and worker.reason.startswith(("fitness", "did not", "lost")):
            why = f"{worker.reason} ({why})"
        for job_id in list(worker.jobs):
            job = self.jobs.get(job_id)
            if job is not None and job.worker_id == worker.id:
                self._retry_or_fail(job, f"worker {worker.id} {why}")
        worker.jobs.clear()
        if not expected and worker.contacted is None and ep is not None and worker.release == ep.release:
            # Never asked for work: a crash loop on the platform. Unhealthy, retried with backoff.
            worker.crashes += 1
            ep.crash_streak += 1
            worker.state = "unhealthy"
            worker.reason = why + (f"; last error: {last_error}" if last_error else "")
            delay = min(self.options.crash_backoff_max, self.options.crash_backoff_base * 2 ** (worker.crashes - 1))
            worker.retry_at = now + delay
        else:
            worker.state = "exited"
            worker.reason = worker.reason or why
        self._record_pgids()
        if ep is not None:
            ep.work.notify()
        self._wake.notify()

    def _job_left_worker(self, worker: wk.WorkerRecord) -> None:
        if worker.jobs or worker.state != "running":
            return
        if not worker.active:
            self._charge(worker, time.time())
        worker.state = "idle"
        worker.idle_since = time.time()
        if worker.stop_after_job:  # refresh_worker: recycle the process
            self._drain(worker, "refresh_worker requested")
        self._wake.notify()

    def _charge(self, worker: wk.WorkerRecord, now: float, *, settle: bool = False) -> None:
        """Per-second billing, rounded up, for the time since billing began: a flex worker's time
        Running, an always-on worker's time up. ``settle`` bills the whole seconds so far of a
        worker that goes on being billed (the rest carries over)."""
        if worker.billing_since is None:
            return
        elapsed = max(0.0, now - worker.billing_since)
        seconds = math.floor(elapsed) if settle else math.ceil(elapsed)
        worker.billing_since = worker.billing_since + seconds if settle else None
        cost = seconds * price(worker.pool, active=worker.active)
        if not cost:
            return
        self.balance -= cost
        self.store.set_value("balance", self.balance)
        ep = self.endpoints.get(worker.endpoint_id)
        if ep is not None:
            ep.spent += cost
            self._save_endpoint(ep)
        if self.balance < 0:
            self._disable_all("the account balance went negative")

    def _disable_all(self, why: str) -> None:
        for ep in self.endpoints.values():
            if not ep.disabled:
                ep.disabled = True
                self._save_endpoint(ep)
                for worker in self._workers_of(ep.id):
                    self._drain(worker, why)

    def set_balance(self, balance: float) -> None:
        self.balance = float(balance)
        self.store.set_value("balance", self.balance)
        if self.balance < 0:
            self._disable_all("the account balance went negative")

    def set_capacity(self, gpus: dict[str, int]) -> None:
        self.options.gpus.update({k: int(v) for k, v in gpus.items()})
        self._wake.notify()

    def current_balance(self) -> float:
        now = time.time()
        running = sum(
            (now - w.billing_since) * price(w.pool, active=w.active)
            for w in self.workers.values() if w.billing_since is not None
        )
        return self.balance - running

    def spend_per_hour(self) -> float:
        return sum(price(w.pool, active=w.active) * 3600 for w in self.workers.values() if w.billing_since is not None)

    def _bill_always_on(self, ep: EndpointRuntime, now: float) -> None:
        """RunPod bills an endpoint's ``workersMin`` workers for as long as they are up, jobs or
        not, at a discount; the rest are billed only while Running. Ready workers of the current
        release are marked active up to ``workersMin``; long-running charges settle every minute
        so the balance (and a negative one) shows while they run."""
        want = 0 if ep.disabled else ep.setting("workersMin", 0)
        workers = self._workers_of(ep.id)
        ready = [w for w in workers if w.state in ("idle", "running") and w.release == ep.release]
        active = [w for w in ready if w.active]
        for worker in active[want:]:  # workersMin went down
            self._charge(worker, now)
            worker.active = False
            if worker.state == "running":
                worker.billing_since = now  # its job goes on, billed as flex
        for worker in [w for w in ready if not w.active][: max(0, want - len(active))]:
            self._charge(worker, now)  # ends a flex run in progress
            worker.active, worker.billing_since = True, now
        for worker in workers:
            if worker.active and worker.billing_since is not None and now - worker.billing_since >= SETTLE_EVERY:
                self._charge(worker, now, settle=True)

    def _drain(self, worker: wk.WorkerRecord, why: str) -> None:
        if worker.state in ("draining", "exited"):
            return
        if worker.process is None or worker.state in ("throttled", "unhealthy"):
            worker.state, worker.reason, worker.pool = "exited", why, None
            return
        self._charge(worker, time.time())
        worker.state = "draining"
        worker.reason = why
        worker.retry_at = time.time() + self.options.drain_grace
        wk.terminate(worker)
        ep = self.endpoints.get(worker.endpoint_id)
        if ep is not None:
            ep.work.notify()  # its held job-take answers now
        if worker.id in self._worker_signals:
            self._worker_signals[worker.id].notify()

    # ------------------------------------------------------------------------------------------
    # the clock: timeouts, retention, heartbeats, scaling
    # ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        while not self._stopping:
            try:
                self.tick()
            except Exception as exc:  # never let one bad tick stop the control plane
                print(f"runpod-jupyter local: tick failed: {type(exc).__name__}: {exc}", flush=True)
            await self._wake.wait(self.options.tick)

    def tick(self) -> None:
        now = time.time()
        self._expire_jobs(now)
        self._check_workers(now)
        for ep in list(self.endpoints.values()):
            self._scale(ep, now)
            self._bill_always_on(ep, now)
        self._prune_exited()

    def _expire_jobs(self, now: float) -> None:
        for kind, keep in (("sync", self.options.retention_sync), ("run", self.options.retention_run)):
            closed = self._closed[kind]
            while closed:
                job = self.jobs.get(closed[0])
                if job is not None and job.final and now - (job.finished or 0.0) <= keep:
                    break  # finished in order: the rest are younger
                closed.popleft()
                if job is not None and job.final:
                    self._forget(job)
        for job in list(self._open.values()):
            ep = self.endpoints.get(job.endpoint_id)
            ttl = job.policy.get("ttl")
            if ttl is not None and now - job.created > float(ttl) / 1000:
                if job.status == "IN_QUEUE" and ep is not None:
                    self._unqueue(ep, job)
                self._finish(job, ep, "TIMED_OUT", reason=f"ttl of {int(ttl)} ms passed before the job finished")
                continue
            if job.status == "IN_PROGRESS" and job.started is not None:
                limit_ms = job.policy.get("executionTimeout") or (ep.data.get("executionTimeoutMs") if ep else None)
                limit = float(limit_ms) / 1000 if limit_ms else self.options.execution_timeout
                if now - job.started > limit:
                    self._finish(job, ep, "TIMED_OUT", reason=f"ran longer than the execution timeout ({limit:g} s)")

    def _check_workers(self, now: float) -> None:
        for worker in list(self.workers.values()):
            ep = self.endpoints.get(worker.endpoint_id)
            if worker.state == "draining" and worker.retry_at and now > worker.retry_at:
                wk.kill(worker)
            elif worker.state == "initializing" and worker.spawned and worker.contacted is None:
                limit = init_timeout(ep, self.options.init_timeout)
                if now - worker.spawned > limit:
                    worker.reason = f"did not start within the init timeout ({limit:g} s; set RUNPOD_INIT_TIMEOUT)"
                    wk.kill(worker)
            elif worker.state in ("idle", "running") and worker.last_seen is not None:
                if now - worker.last_seen > self.options.heartbeat_timeout:
                    worker.reason = f"lost heartbeat (nothing heard for {now - worker.last_seen:.0f} s)"
                    wk.kill(worker)
            elif worker.state == "unhealthy" and ep is not None and worker.retry_at and now >= worker.retry_at:
                if worker.release < ep.release or ep.disabled:
                    worker.state = "exited"
                else:
                    self._try_start(ep, worker)
            elif worker.state == "throttled" and ep is not None and not ep.disabled:
                if worker.release < ep.release:
                    worker.state = "exited"
                else:
                    self._try_start(ep, worker)

    def _scale(self, ep: EndpointRuntime, now: float) -> None:
        if ep.disabled or ep.problem:
            return
        oldest = self.jobs[ep.queue[0]].created if ep.queue and ep.queue[0] in self.jobs else None
        live = sum(1 for w in self.workers.values() if w.state in SLOT_STATES | {"draining"})
        decision = scaler.plan(
            ep, self._workers_of(ep.id), now=now, oldest_queued=oldest, room=self.options.worker_limit - live
        )
        for worker, why in decision.drain:
            self._drain(worker, why)
        for worker in decision.retire:
            worker.state = "exited"
        for _ in range(decision.start):
            self._new_worker(ep)

    def _prune_exited(self) -> None:
        exited = [w for w in self.workers.values() if w.state == "exited"]
        for worker in sorted(exited, key=lambda w: w.created)[: max(0, len(exited) - self.options.exited_kept)]:
            self.workers.pop(worker.id, None)
            self._worker_signals.pop(worker.id, None)

    # ------------------------------------------------------------------------------------------
    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after a grace) and close the store."""
        self._stopping = True
        self._wake.notify()
        live = [w for w in self.workers.values() if w.process is not None and w.process.returncode is None]
        for worker in live:
            wk.terminate(worker)
        deadline = time.monotonic() + 5
        while any(w.process.returncode is None for w in live) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for worker in live:
            wk.kill(worker)
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()
        self.store.set_value("worker_pgids", {})


def _group_is_worker(pgid: int, worker_id: str) -> bool:
    """True if a live process in group ``pgid`` carries this worker's id (guards pid reuse)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    marker = f"RUNPOD_POD_ID={worker_id}".encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid and marker in (entry / "environ").read_bytes():
                return True
        except (OSError, ProcessLookupError):
            continue
    return False


def _retention_kind(job: JobRecord) -> str:
    """Results of /runsync are kept 60 s, everything else 30 min."""
    return "sync" if job.kind == "sync" else "run"
