"""The embedded RunPod's job queue: every job from submission until its result is no longer kept.

A job waits in its endpoint's queue (low-priority ones at the tail) until a worker's job-take
moves it In Progress. It ends Completed or Failed by its worker, Cancelled by request, or Timed
Out: its ``ttl`` passed, or it ran past the execution timeout. A job whose worker dies runs again
once (``health.jobs.retried``), then fails with the reason. Finished jobs stay readable 60 s after
/runsync and 30 min otherwise; then RunPod answers "request does not exist". A job with a webhook
has its result posted there when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

from ..api.models import JobStatus
from ..errors import ControlPlaneError
from . import door
from .jobs import INLINE_LIMIT, JobRecord, Stored, new_job_id
from .model import EndpointRuntime, Shared


class JobQueue:
    """The retained jobs, with indexes that keep the clock and /health independent of how many
    finished jobs are kept: the jobs not final yet, and the final ones in the order they ended,
    per retention kind."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.jobs: dict[str, JobRecord] = {}  # every job still retained
        self._open: dict[str, JobRecord] = {}
        self._closed: dict[str, deque[str]] = {"run": deque(), "sync": deque()}
        self._http: Any = None  # aiohttp session for webhooks, made on first use
        self._forgot = False  # jobs were dropped since the store last gave their space back

    def load(self) -> None:
        """Rebuild the jobs after a restart (endpoints loaded first): queued jobs stay queued,
        running ones are retried, finished ones stay readable until their retention ends."""
        store = self.shared.store
        loaded = sorted((JobRecord.from_row(r) for r in store.rows("jobs")), key=lambda j: j.created)
        for job in sorted((j for j in loaded if j.final), key=lambda j: j.finished or 0.0):
            self._closed[_retention_kind(job)].append(job.id)
        for job in loaded:
            ep = self.shared.endpoints.get(job.endpoint_id)
            if ep is None:
                store.delete("jobs", job.id)
                store.delete_payloads(job.id)
                continue
            job.read_stored = self._read_stored
            job.policy, dropped = door.sanitized_policy(job.policy)
            if dropped:
                job.event("POLICY", "ignored what the queue cannot apply: " + "; ".join(dropped))
                self.save(job)
            self.jobs[job.id] = job
            if not job.final:
                self._open[job.id] = job
            if job.status == JobStatus.IN_PROGRESS:
                job.status, job.started, job.worker_id, job.progress = JobStatus.IN_QUEUE, None, None, None
                job.retries += 1
                ep.retried += 1
                job.event("RETRY", "the embedded RunPod restarted while the job ran")
                self.save(job)
            if job.status == JobStatus.IN_QUEUE:
                ep.queue.append(job.id)

    def save(self, job: JobRecord) -> None:
        self.shared.store.put("jobs", job.id, job.to_row(), endpoint_id=job.endpoint_id, status=job.status)

    def submit(self, ep: EndpointRuntime, body: dict[str, Any], kind: str) -> JobRecord:
        """Queue a /run (``kind="run"``) or /runsync (``"sync"``) request and wake the scaler."""
        given = body.get("policy")
        policy: dict[str, Any] = given if isinstance(given, dict) else {}
        job = JobRecord(
            id=new_job_id(kind), endpoint_id=ep.id, input=None, kind=kind,
            webhook=body.get("webhook") if isinstance(body.get("webhook"), str) else None,
            policy=policy,
            s3_config=body.get("s3Config") if isinstance(body.get("s3Config"), dict) else None,
            read_stored=self._read_stored,
        )
        self._keep(job, "input", body["input"])
        job.event(JobStatus.IN_QUEUE)
        self.jobs[job.id] = job
        self._open[job.id] = job
        self._enqueue(ep, job)
        self.save(job)
        ep.work.notify()
        self.shared.wake.notify()
        return job

    def job(self, ep: EndpointRuntime, job_id: str) -> JobRecord | None:
        """The endpoint's job, or None: RunPod answers "request does not exist" for another's."""
        job = self.jobs.get(job_id)
        return job if job is not None and job.endpoint_id == ep.id else None

    async def wait_final(self, job: JobRecord, timeout: float) -> None:
        """Hold a /runsync answer until the job ends or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not job.final and time.monotonic() < deadline:
            await job.changed.wait(deadline - time.monotonic())

    async def stream(self, job: JobRecord) -> dict[str, Any]:
        """Hand out the chunks not delivered yet (each exactly once); hold briefly for news."""
        deadline = time.monotonic() + self.shared.options.stream_hold
        while not job.stream_pending and not job.final and time.monotonic() < deadline:
            await job.changed.wait(deadline - time.monotonic())
        chunks, job.stream_pending = job.stream_pending, []
        return {"id": job.id, "status": job.status, "stream": [{"output": c} for c in chunks]}

    def cancel(self, ep: EndpointRuntime, job: JobRecord) -> None:
        """Cancel a job not final yet; its worker, if any, is told to stop on its next job-stop poll."""
        if job.final:
            return
        if job.status == JobStatus.IN_QUEUE:
            self.unqueue(ep, job)
        self.finish(job, ep, JobStatus.CANCELLED, reason="cancelled by request")

    def retry(self, ep: EndpointRuntime, job: JobRecord) -> None:
        """/retry: a FAILED or TIMED_OUT job goes back to the queue, same id, same input."""
        if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            raise ControlPlaneError(
                f"Job {job.id} is {job.status.value}: only a FAILED or TIMED_OUT job can be retried.",
                hint="Submit a new job with /run instead.",
            )
        with contextlib.suppress(ValueError):  # its retention no longer runs
            self._closed[_retention_kind(job)].remove(job.id)
        job.status, job.started, job.finished, job.worker_id, job.progress = JobStatus.IN_QUEUE, None, None, None, None
        job.error, job.reason, job.stop_sent = None, None, None
        job.created = time.time()  # its ttl starts again
        self._keep(job, "output", None)
        job.stream_pending.clear()
        job.event("RETRY", "retried by request")
        self._open[job.id] = job
        self._enqueue(ep, job)
        self.save(job)
        ep.work.notify()
        self.shared.wake.notify()

    def _enqueue(self, ep: EndpointRuntime, job: JobRecord) -> None:
        """Normal jobs go ahead of the low-priority ones, which wait at the tail."""
        position = len(ep.queue)
        if not job.policy.get("lowPriority"):
            while position and self.jobs[ep.queue[position - 1]].policy.get("lowPriority"):
                position -= 1
        ep.queue.insert(position, job.id)

    def purge(self, ep: EndpointRuntime) -> int:
        """Drop queued jobs; RunPod then answers "request does not exist" for them."""
        removed = list(ep.queue)
        ep.queue.clear()
        for job_id in removed:
            job = self.jobs.get(job_id)
            if job is not None:
                self.forget(job)
        return len(removed)

    def in_progress(self, endpoint_id: str) -> int:
        """Jobs of the endpoint running now, for /health (counted over the open jobs only)."""
        return sum(
            1 for j in self._open.values() if j.endpoint_id == endpoint_id and j.status == JobStatus.IN_PROGRESS
        )

    def take_next(self, ep: EndpointRuntime, worker_id: str, now: float) -> JobRecord:
        """Move the job at the head of the queue In Progress on ``worker_id``."""
        job = self.jobs[ep.queue.popleft()]
        job.status, job.started, job.worker_id, job.progress = JobStatus.IN_PROGRESS, now, worker_id, None
        job.event(JobStatus.IN_PROGRESS, worker_id)
        return job

    def finish(
        self, job: JobRecord, ep: EndpointRuntime | None, status: JobStatus, *,
        output: Any = None, error: Any = None, reason: str | None = None,
    ) -> None:
        """End a job: count it, start its retention, tell its worker, post its webhook."""
        job.status = status
        job.finished = time.time()
        if self._open.pop(job.id, None) is not None:
            self._closed[_retention_kind(job)].append(job.id)
        self._keep(job, "output", output)
        job.error = error
        job.reason = reason
        job.event(status, reason or "")
        if ep is not None:
            if status == JobStatus.COMPLETED:
                ep.completed += 1
            elif status in (JobStatus.FAILED, JobStatus.TIMED_OUT):
                ep.failed += 1
            self.shared.save_endpoint(ep)
        self.save(job)
        worker = self.shared.workers.get(job.worker_id) if job.worker_id else None
        if worker is not None:
            worker.news.notify()  # a job-stop poll may have news
        if job.webhook:
            self.shared.spawn(self._send_webhook(job))

    def forget(self, job: JobRecord) -> None:
        """Drop a job for good: from then on RunPod answers "request does not exist"."""
        self.jobs.pop(job.id, None)
        self._open.pop(job.id, None)
        self.shared.store.delete("jobs", job.id)
        self.shared.store.delete_payloads(job.id)
        self._forgot = True
        job.changed.notify()

    def _keep(self, job: JobRecord, part: str, value: Any) -> None:
        """Set the job's input or output: a large one goes to the store and is read back from
        there when needed, so retained jobs cost memory by their count, not their payloads."""
        text = json.dumps(value, separators=(",", ":"))
        if len(text) > INLINE_LIMIT:
            self.shared.store.put_payload(job.id, part, text)
            value = Stored(len(text))
        setattr(job, part, value)

    def _read_stored(self, job_id: str, part: str) -> Any:
        text = self.shared.store.payload(job_id, part)
        return json.loads(text) if text is not None else None

    def unqueue(self, ep: EndpointRuntime, job: JobRecord) -> None:
        with contextlib.suppress(ValueError):  # not queued (any more)
            ep.queue.remove(job.id)

    def retry_or_fail(self, job: JobRecord, why: str) -> None:
        """The job's worker is gone: run it again once, else fail it with the reason."""
        ep = self.shared.endpoints.get(job.endpoint_id)
        if ep is None or job.final:
            return
        if job.retries < self.shared.options.max_job_retries:
            job.retries += 1
            ep.retried += 1
            job.status, job.started, job.worker_id, job.progress = JobStatus.IN_QUEUE, None, None, None
            job.stream_pending.clear()
            job.event("RETRY", why)
            ep.queue.appendleft(job.id)
            self.save(job)
            self.shared.save_endpoint(ep)
            ep.work.notify()
        else:
            self.finish(job, ep, JobStatus.FAILED, error=why, reason=why)

    def expire(self, now: float) -> None:
        """Forget results past their retention; time out jobs past their ``ttl`` or execution timeout."""
        options = self.shared.options
        for kind, keep in (("sync", options.retention_sync), ("run", options.retention_run)):
            closed = self._closed[kind]
            while closed:
                job = self.jobs.get(closed[0])
                if job is not None and job.final and now - (job.finished or 0.0) <= keep:
                    break  # finished in order: the rest are younger
                closed.popleft()
                if job is not None and job.final:
                    self.forget(job)
        if self._forgot:  # give dropped payloads' space back, a step per tick, once much is free
            self._forgot = self.shared.store.reclaim()
        for job in list(self._open.values()):
            try:
                self._expire_one(job, now)
            except Exception as exc:  # one job's timeouts failing must not stop the others'
                self._fail_unexpirable(job, exc)

    def _expire_one(self, job: JobRecord, now: float) -> None:
        """Time the job out if its ``ttl`` passed or it ran past its execution timeout."""
        ep = self.shared.endpoints.get(job.endpoint_id)
        ttl = job.policy.get("ttl")
        if ttl is not None and now - job.created > float(ttl) / 1000:
            if job.status == JobStatus.IN_QUEUE and ep is not None:
                self.unqueue(ep, job)
            self.finish(job, ep, JobStatus.TIMED_OUT, reason=f"ttl of {int(ttl)} ms passed before the job finished")
            return
        if job.status == JobStatus.IN_PROGRESS and job.started is not None:
            limit_ms = job.policy.get("executionTimeout") or (ep.data.get("executionTimeoutMs") if ep else None)
            limit = float(limit_ms) / 1000 if limit_ms else self.shared.options.execution_timeout
            if now - job.started > limit:
                self.finish(job, ep, JobStatus.TIMED_OUT, reason=f"ran longer than the execution timeout ({limit:g} s)")

    def _fail_unexpirable(self, job: JobRecord, exc: Exception) -> None:
        """A job whose timeouts cannot be applied fails with why; if even that fails, the clock
        stops looking at it (it is logged either way, once)."""
        why = f"its policy {job.policy!r} cannot be applied: {type(exc).__name__}: {exc}"
        print(f"runpod-jupyter local: job {job.id} failed: {why}", flush=True)
        ep = self.shared.endpoints.get(job.endpoint_id)
        try:
            if job.status == JobStatus.IN_QUEUE and ep is not None:
                self.unqueue(ep, job)
            self.finish(job, ep, JobStatus.FAILED, error=why, reason=why)
        except Exception as again:  # noqa: BLE001 - logged; the job is left out of the clock
            self._open.pop(job.id, None)
            print(f"runpod-jupyter local: job {job.id} left out of the clock: {type(again).__name__}: {again}", flush=True)

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

    async def close(self) -> None:
        """Close the webhooks' HTTP session, if one was opened."""
        if self._http is not None:
            await self._http.close()


def _retention_kind(job: JobRecord) -> str:
    """Results of /runsync are kept 60 s, everything else 30 min."""
    return "sync" if job.kind == "sync" else "run"
