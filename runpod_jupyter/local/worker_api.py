"""What the ``runpod`` SDK's worker loop calls (notes/runpod-sdk-protocol.md): the job-take and
job-stop long-polls, the job-done and job-stream posts, and the heartbeat ping.

Any call counts as a sign of life. Late progress posts and results for jobs that already ended
(cancelled, timed out) are ignored. A stop is sent again while the worker still holds the job:
the SDK ignores one that lands before it has started the job.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..api.models import JobStatus
from ..secret import redact_values
from .fleet import Fleet
from .jobs import JobRecord
from .model import EndpointRuntime, Shared
from .queue import JobQueue
from .workers import LEAVING, SERVING, WorkerPhase, WorkerRecord

STOP_RESEND = 2.0  # seconds between stop signals for a job a worker still holds
UNLISTED_LIMIT = 2  # heartbeats in a row without a running job: the worker let go of it


class WorkerAPI:
    """The worker-facing routes' behaviour, over the job queue and the fleet."""

    def __init__(self, shared: Shared, queue: JobQueue, fleet: Fleet) -> None:
        self.shared = shared
        self.queue = queue
        self.fleet = fleet
        self._unlisted: dict[str, int] = {}  # job id -> heartbeats in a row that did not list it

    def _may_take(self, worker: WorkerRecord, ep: EndpointRuntime) -> bool:
        return (
            not ep.disabled and worker.state in SERVING and worker.release == ep.release and not worker.stop_after_job
        )

    async def take(self, endpoint_id: str, worker_id: str, batch: int) -> list[dict[str, Any]]:
        """job-take: up to ``batch`` jobs for the worker, held open until there are some or the hold ends."""
        worker = self.shared.workers.get(worker_id)
        hold = self.shared.options.hold
        if worker is None or worker.endpoint_id != endpoint_id:
            await asyncio.sleep(hold)  # a stranger: never a fast answer (no busy loop)
            return []
        self.fleet.touch(worker)
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline and worker.state not in LEAVING:
            ep = self.shared.endpoints.get(endpoint_id)
            if ep is not None and self._may_take(worker, ep) and ep.queue:
                assigned = [self.assign(ep, worker) for _ in range(min(batch, len(ep.queue)))]
                return [job.worker_payload() for job in assigned]
            await (ep.work if ep is not None else self.shared.wake).wait(deadline - time.monotonic())
        if worker.state == WorkerPhase.DRAINING:
            await asyncio.sleep(0.2)
        return []

    def assign(self, ep: EndpointRuntime, worker: WorkerRecord) -> JobRecord:
        """Give the job at the head of the endpoint's queue to the worker."""
        now = time.time()
        job = self.queue.take_next(ep, worker.id, now)
        self._unlisted.pop(job.id, None)  # a retried job's earlier run missed heartbeats of its own
        self.fleet.took_job(worker, job.id, now)
        self.queue.save(job)
        return job

    async def stop_poll(self, endpoint_id: str, worker_id: str) -> list[str]:
        """job-stop: the ids of the worker's jobs that ended (cancelled, timed out), held open until some."""
        worker = self.shared.workers.get(worker_id)
        hold = self.shared.options.hold
        if worker is None:
            await asyncio.sleep(hold)
            return []
        self.fleet.touch(worker)
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline and worker.state not in LEAVING:
            stop = [jid for jid in worker.jobs if self._should_stop(jid)]
            if stop:
                for jid in stop:
                    self.queue.jobs[jid].stop_sent = time.monotonic()
                return stop
            await worker.news.wait(min(STOP_RESEND, deadline - time.monotonic()))
        return []

    def _should_stop(self, job_id: str) -> bool:
        """A final job still on a worker is signalled, and signalled again while the worker keeps
        it: the SDK ignores a stop that lands before it has started the job."""
        job = self.queue.jobs.get(job_id)
        if job is None or not job.final:
            return False
        return job.stop_sent is None or time.monotonic() - job.stop_sent > STOP_RESEND

    def job_done(self, worker_id: str, job_id: str, body: dict[str, Any]) -> None:
        """job-done: a progress update (``status: IN_PROGRESS``) or the job's result or error."""
        worker = self.shared.workers.get(worker_id)
        if worker is not None:
            self.fleet.touch(worker)
        job = self.queue.jobs.get(job_id)
        if job is None:
            return
        if body.get("status") == JobStatus.IN_PROGRESS:
            if not job.final and job.worker_id == worker_id:
                job.progress = body.get("output")
                job.progress_log.append([round(time.time(), 3), job.progress])
                job.changed.notify()
            return
        if worker is not None and body.get("stopPod"):
            worker.stop_after_job = True
        if job.status == JobStatus.IN_PROGRESS and job.worker_id == worker_id:
            ep = self.shared.endpoints.get(job.endpoint_id)
            if "error" in body:
                error = body["error"]
                if worker is not None and isinstance(error, str):  # kept in the job row: no secrets
                    error = redact_values(error, worker.secrets)
                self.queue.finish(job, ep, JobStatus.FAILED, output=body.get("output"), error=error)
            else:
                self.queue.finish(job, ep, JobStatus.COMPLETED, output=body.get("output"))
        if worker is not None and job_id in worker.jobs:
            worker.jobs.discard(job_id)
            self.fleet.job_left(worker)

    def job_stream(self, worker_id: str, job_id: str, body: dict[str, Any]) -> None:
        """job-stream: one chunk of a generator handler's output, kept until /stream hands it out."""
        worker = self.shared.workers.get(worker_id)
        if worker is not None:
            self.fleet.touch(worker)
        job = self.queue.jobs.get(job_id)
        if job is None or job.final or job.worker_id != worker_id:
            return
        job.stream_pending.append(body.get("output"))
        job.stream_count += 1
        job.changed.notify()

    def ping(self, worker_id: str, params: dict[str, str]) -> None:
        """The heartbeat, listing the jobs the worker still runs (or a failed fitness check)."""
        worker = self.shared.workers.get(worker_id)
        if worker is None:
            return
        if params.get("status") == WorkerPhase.UNHEALTHY:
            worker.reason = f"fitness check {params.get('check', '?')} failed: {params.get('reason', '')}"
            return
        self.fleet.touch(worker)
        listed = {j for j in (params.get("job_id") or "").split(",") if j}
        # A stopped async job posts nothing: once the worker stops listing it, it is gone.
        for job_id in [j for j in worker.jobs if j not in listed and self._stopped(j)]:
            worker.jobs.discard(job_id)
            self.fleet.job_left(worker)
        self._drop_unposted(worker, listed)

    def _drop_unposted(self, worker: WorkerRecord, listed: set[str]) -> None:
        """The SDK lists the jobs it runs in each heartbeat and lets go of a job only after posting
        its result. A running job missing from two heartbeats in a row (one may be sent before the
        worker has recorded a job it just took) was let go without a result reaching here: its
        post failed (a result it could not encode or send). It fails now, not at its timeout."""
        for job_id in [j for j in self._unlisted if j in listed or self._ended(j)]:
            self._unlisted.pop(job_id, None)
        for job_id in [j for j in worker.jobs if j not in listed]:
            job = self.queue.jobs.get(job_id)
            if job is None or job.final or job.worker_id != worker.id:
                continue
            missed = self._unlisted[job_id] = self._unlisted.get(job_id, 0) + 1
            if missed >= UNLISTED_LIMIT:
                self._unlisted.pop(job_id, None)
                why = (
                    f"worker {worker.id} let go of the job without its result reaching the embedded RunPod "
                    "(posting the result failed: see the worker's log)"
                )
                self.queue.finish(job, self.shared.endpoints.get(job.endpoint_id), JobStatus.FAILED, error=why, reason=why)
                worker.jobs.discard(job_id)
                self.fleet.job_left(worker)

    def job_unreadable(self, worker_id: str, job_id: str, why: str) -> None:
        """A post from the worker that cannot be read: its job fails with ``why``."""
        job = self.queue.jobs.get(job_id)
        if job is None or job.final or job.worker_id != worker_id:
            return
        self.queue.finish(job, self.shared.endpoints.get(job.endpoint_id), JobStatus.FAILED, error=why, reason=why)

    def _stopped(self, job_id: str) -> bool:
        job = self.queue.jobs.get(job_id)
        return job is None or (job.final and job.stop_sent is not None)

    def _ended(self, job_id: str) -> bool:
        job = self.queue.jobs.get(job_id)
        return job is None or job.final
