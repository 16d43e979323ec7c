"""What a deploy gives back: a :class:`Deployment` (one endpoint) and the :class:`Job` and
:class:`Batch` handles its methods return. They hold no protocol logic: every call goes through
the API client, and every job is written to the journal so it survives a kernel restart.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from . import config, errors, journal
from .api import Client, EndpointSpec, Health, JobStatus, Policy, models
from .connect import connect
from .errors import WaitTimeoutError
from .findings import Finding
from .secret import secret_env_values

_FINAL_ERRORS = {
    JobStatus.FAILED: errors.JobFailedError,
    JobStatus.CANCELLED: errors.JobCancelledError,
    JobStatus.TIMED_OUT: errors.JobTimedOutError,
    JobStatus.GONE: errors.JobGoneError,
}


#: Jobs of a batch whose /status is fetched at once.
STATUS_GROUP = 16


def _poll_delays(first: float = 0.1, ceiling: float = 1.0) -> Iterator[float]:
    delay = first
    while True:
        yield delay
        delay = min(ceiling, delay * 1.5)


class _Displayed:
    """Live widgets in a kernel, a static state (HTML and text) everywhere else.

    ``view_kind`` tells :mod:`runpod_jupyter.widgets` which view to make, so that the widgets never
    import this module: the display hook is the only way from here to there.
    """

    view_kind = ""

    def _ipython_display_(self) -> None:
        from .widgets import show

        show(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .widgets import static_bundle

        return static_bundle(self)


class Job(_Displayed):
    """One job on an endpoint. Displaying it (with the widgets) shows it live."""

    view_kind = "job"

    def __init__(self, deployment: Deployment, job_id: str, *, state: models.JobState | None = None) -> None:
        self.deployment = deployment
        self.id = job_id
        self._state = state or models.JobState(id=job_id, status=JobStatus.IN_QUEUE)
        self._lock = threading.Lock()
        self._feed: ChunkFeed | None = None

    # -- state -----------------------------------------------------------------------------
    def refresh(self) -> models.JobState:
        """Ask RunPod for the job's state now (unless it is already final)."""
        if self._state.status.is_final:
            return self._state
        state = self.deployment.api.status(self.id)
        self._remember(state)
        return state

    def _remember(self, state: models.JobState) -> None:
        with self._lock:
            changed = state.status != self._state.status
            self._state = state
        if changed:
            journal.shared().record_status(
                self.id, state.status.value, reason=state.reason, delay_ms=state.delay_time_ms,
                execution_ms=state.execution_time_ms, worker_id=state.worker_id,
            )

    @property
    def state(self) -> models.JobState:
        """The last state seen, without asking RunPod again."""
        return self._state

    @property
    def status(self) -> JobStatus:
        return self.refresh().status

    @property
    def progress(self) -> Any:
        """The latest ``progress_update`` value while the job runs (None otherwise)."""
        state = self.refresh()
        return state.output if state.status is JobStatus.IN_PROGRESS else None

    def wait(self, timeout: float | None = None) -> models.JobState:
        """Block until the job is final or ``timeout`` seconds pass; return the last state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ceiling = 1.0 if self.deployment.backend == "local" else 2.0
        for delay in _poll_delays(ceiling=ceiling):
            state = self.refresh()
            if state.status.is_final:
                return state
            if deadline is not None and time.monotonic() + delay > deadline:
                return state
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def result(self, timeout: float | None = None) -> Any:
        """The job's output once it completes; raises a ``JobError`` if it ends otherwise."""
        state = self.wait(timeout)
        if not state.status.is_final:
            raise WaitTimeoutError(
                f"Job {self.id} is still {state.status.value} after {timeout:g} s.",
                job=state, hint="Call .result() again to keep waiting, or .cancel() to stop it.",
            )
        if state.status is JobStatus.COMPLETED:
            return state.output
        raise _FINAL_ERRORS[state.status](
            f"Job {self.id} on {self.deployment.name!r} ended {state.status.value}"
            + (f": {state.reason}" if state.reason else "."),
            job=state,
            hint=_hint_for(state, self.deployment),
        )

    # -- streaming -------------------------------------------------------------------------
    def feed(self) -> ChunkFeed:
        """The one reader of this job's /stream (RunPod hands each chunk out once): every
        consumer in this process (``stream()``, the widgets) reads from it."""
        with self._lock:
            if self._feed is None:
                self._feed = ChunkFeed(self)
        return self._feed

    def stream(self, timeout: float | None = None) -> Iterator[Any]:
        """Each chunk the handler yields, in order, as it arrives; ends when the job is final."""
        return self.feed().iterate(timeout)

    @property
    def chunks(self) -> list[Any]:
        """The chunks received so far (when the job is being streamed)."""
        return list(self._feed.chunks) if self._feed else []

    # -- actions ---------------------------------------------------------------------------
    def cancel(self) -> JobStatus:
        state = self.deployment.api.cancel(self.id)
        self._remember(self.deployment.api.status(self.id) if state.status.is_final else state)
        return self._state.status

    def __repr__(self) -> str:
        s = self._state
        timing = ""
        if s.execution_time_ms is not None:
            timing = f", ran {s.execution_time_ms / 1000:.2f} s"
        return f"<Job {self.id} on {self.deployment.name!r}: {s.status.value}{timing}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        self.refresh()
        printer.text(repr(self))


class ChunkFeed:
    """Reads a job's /stream in a background thread into a list that any number of readers
    (iterators, widgets) follow. Stops at the job's final state."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.chunks: list[Any] = []
        self.done = False
        self.error: BaseException | None = None
        self.listeners: list[Callable[[Any], None]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name=f"runpod-stream-{job.id[:8]}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for chunk in self.job.deployment.api.stream(self.job.id):
                with self._cond:
                    self.chunks.append(chunk)
                    self._cond.notify_all()
                for listener in list(self.listeners):
                    listener(chunk)
        except BaseException as exc:  # surfaced to readers, never lost in a thread
            self.error = exc
        finally:
            with self._cond:
                self.done = True
                self._cond.notify_all()
            self.job.refresh()

    def iterate(self, timeout: float | None = None) -> Iterator[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        index = 0
        while True:
            with self._cond:
                while index >= len(self.chunks) and not self.done:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return
                    self._cond.wait(remaining if remaining is not None else 1.0)
                if index >= len(self.chunks):
                    if self.error is not None:
                        raise self.error
                    return
                chunk = self.chunks[index]
            index += 1
            yield chunk


class Batch(_Displayed):
    """Many jobs submitted together by :meth:`Deployment.map`; results come back in input order."""

    view_kind = "batch"

    def __init__(self, deployment: Deployment, jobs: list[Job], batch_id: str) -> None:
        self.deployment = deployment
        self.jobs = jobs
        self.id = batch_id
        self.last_calls = 0  # /status requests the last refresh made: what the next one may cost

    def __len__(self) -> int:
        return len(self.jobs)

    def refresh(self) -> dict[str, int]:
        """Fetch unfinished jobs' states, oldest first, a group at a time; return counts by status.

        A whole group still IN_QUEUE ends the pass: the queue is first in, first out, so the jobs
        submitted after them are waiting too. A large batch thus costs about one /status call per
        job over its life, not one per job per refresh (RunPod allows 2,000 per 10 s)."""
        pending = [job for job in self.jobs if not job.state.status.is_final]
        self.last_calls = 0
        if pending:
            with ThreadPoolExecutor(max_workers=min(STATUS_GROUP, len(pending))) as pool:
                for start in range(0, len(pending), STATUS_GROUP):
                    group = pending[start:start + STATUS_GROUP]
                    self.last_calls += len(group)
                    list(pool.map(Job.refresh, group))
                    if all(job.state.status is JobStatus.IN_QUEUE for job in group):
                        break
        return self.counts()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.jobs:
            out[job.state.status.value] = out.get(job.state.status.value, 0) + 1
        return out

    @property
    def done(self) -> int:
        return sum(job.state.status.is_final for job in self.jobs)

    def failures(self) -> list[tuple[int, Job]]:
        return [
            (i, job) for i, job in enumerate(self.jobs)
            if job.state.status.is_final and job.state.status is not JobStatus.COMPLETED
        ]

    def wait(self, timeout: float | None = None) -> dict[str, int]:
        deadline = None if timeout is None else time.monotonic() + timeout
        for delay in _poll_delays(first=0.2, ceiling=2.0):
            counts = self.refresh()
            if self.done == len(self.jobs):
                return counts
            if deadline is not None and time.monotonic() + delay > deadline:
                return counts
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def results(self, timeout: float | None = None, *, return_exceptions: bool = False) -> list[Any]:
        """Outputs in input order. A failed job raises its error, or with ``return_exceptions``
        stands in the list as the exception."""
        self.wait(timeout)
        out = []
        for job in self.jobs:
            try:
                out.append(job.result(timeout=0))
            except errors.JobError as exc:
                if not return_exceptions:
                    raise
                out.append(exc)
        return out

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        return f"<Batch of {len(self.jobs)} on {self.deployment.name!r}: {counts}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class Deployment(_Displayed):
    """A live endpoint. Returned by ``%%runpod_deploy`` and :func:`runpod_jupyter.deploy`."""

    view_kind = "endpoint"

    def __init__(
        self,
        *,
        name: str,
        endpoint_id: str,
        backend: str,
        settings: config.Settings,
        project: Any = None,
        findings: tuple[Finding, ...] = (),
        request_urls: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.endpoint_id = endpoint_id
        self.backend = backend
        self.settings = settings
        self.project = project
        self.findings = findings
        #: Where REST v2 says this endpoint's jobs go; jobs are sent there.
        self.request_urls = dict(request_urls or {})
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._deleted = False

    @classmethod
    def attach(cls, name_or_id: str, *, backend: str | None = None) -> Deployment:
        """A handle on an existing endpoint, by name or id (e.g. after a kernel restart)."""
        settings = connect(backend)
        with Client(settings) as client:
            for endpoint in client.list_endpoints():
                if name_or_id in (endpoint.id, endpoint.name):
                    return cls(name=endpoint.name, endpoint_id=endpoint.id, backend=settings.backend, settings=settings,
                               request_urls=endpoint.request_urls)
        raise errors.ConfigError(
            f"No endpoint named {name_or_id!r} on the {settings.backend} backend.",
            hint="List them with %runpod_endpoints.",
        )

    @property
    def client(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = Client(self.settings)
            return self._client

    @property
    def api(self):
        if self._deleted:
            raise self._deleted_error()
        return self.client.endpoint(self.endpoint_id, request_urls=self.request_urls)

    def _deleted_error(self) -> errors.EndpointNotFoundError:
        return errors.EndpointNotFoundError(
            f"Endpoint {self.name!r} ({self.endpoint_id}) was deleted.",
            status=404,
            hint="Deploy it again (run its %%runpod_deploy cell, or runpod_jupyter.deploy(...)): "
            "that creates a new endpoint, with a new handle.",
        )

    @contextlib.contextmanager
    def _alive(self) -> Iterator[None]:
        """RunPod's "Not Found" for an endpoint that no longer exists (deleted from another
        handle, the sidebar, the console) says so, rather than suggesting a negative balance."""
        try:
            yield
        except errors.EndpointNotFoundError:
            try:
                gone = self.client.get_endpoint(self.endpoint_id) is None
            except errors.RunpodError:
                gone = False
            if gone:
                self._deleted = True
                raise self._deleted_error() from None
            raise

    # -- jobs ------------------------------------------------------------------------------
    def run(
        self,
        payload: Any,
        *,
        webhook: str | None = None,
        execution_timeout: float | None = None,
        ttl: float | None = None,
        low_priority: bool | None = None,
        s3_config: dict[str, Any] | None = None,
        _batch_id: str | None = None,
    ) -> Job:
        """Queue one job (/run). Timeouts are in seconds."""
        policy = Policy(
            execution_timeout=int(execution_timeout * 1000) if execution_timeout else None,
            ttl=int(ttl * 1000) if ttl else None,
            low_priority=low_priority,
        )
        with self._alive():
            state = self.api.run(payload, webhook=webhook, policy=policy, s3_config=s3_config)
        journal.shared().record_submit(
            state.id, endpoint_id=self.endpoint_id, endpoint_name=self.name, backend=self.backend,
            kind="map" if _batch_id else "run", batch_id=_batch_id, payload=payload,
        )
        return Job(self, state.id, state=state)

    def run_sync(self, payload: Any, *, timeout: float = 90.0) -> Any:
        """Run and wait (/runsync); returns the output or raises the job's error."""
        started = time.monotonic()
        with self._alive():
            state = self.api.runsync(payload, wait_ms=int(min(timeout, 300) * 1000))
        journal.shared().record_submit(
            state.id, endpoint_id=self.endpoint_id, endpoint_name=self.name, backend=self.backend,
            kind="runsync", payload=payload,
        )
        job = Job(self, state.id)
        job._remember(state)
        return job.result(timeout=max(0.0, timeout - (time.monotonic() - started)))

    def map(self, inputs: Iterable[Any], **run_options: Any) -> Batch:
        """Submit one job per input (a few requests at a time; rate limits honoured)."""
        items = list(inputs)
        batch_id = uuid.uuid4().hex[:12]
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(items)))) as pool:
            jobs = list(pool.map(lambda item: self.run(item, _batch_id=batch_id, **run_options), items))
        return Batch(self, jobs, batch_id)

    def job(self, job_id: str) -> Job:
        """A handle on one of this endpoint's jobs by id."""
        return Job(self, job_id)

    def jobs(self, limit: int = 50) -> list[Job]:
        """Recent jobs submitted to this endpoint from here (the journal), newest first."""
        return [
            Job(self, e.id, state=models.JobState(id=e.id, status=JobStatus(e.status), reason=e.reason))
            for e in journal.shared().jobs(endpoint_id=self.endpoint_id, limit=limit)
        ]

    # -- the endpoint ----------------------------------------------------------------------
    def health(self) -> Health:
        with self._alive():
            return self.api.health()

    def info(self) -> EndpointSpec:
        """The endpoint's settings as RunPod has them."""
        spec = self.client.get_endpoint(self.endpoint_id)
        if spec is None:
            raise errors.ConfigError(f"Endpoint {self.name!r} ({self.endpoint_id}) no longer exists.")
        return spec

    def purge_queue(self) -> int:
        """Drop queued jobs (running ones continue). Returns how many were removed."""
        with self._alive():
            removed = self.api.purge_queue()
        for entry in journal.shared().jobs(endpoint_id=self.endpoint_id, unfinished=True, limit=10_000):
            Job(self, entry.id).refresh()  # purged ones now read "request does not exist"
        return removed

    def scale(self, min: int | None = None, max: int | None = None) -> EndpointSpec:  # noqa: A002
        """Change workersMin/workersMax (a new release, as on RunPod)."""
        spec = self.info()
        low = spec.workers_min if min is None else int(min)
        high = spec.workers_max if max is None else int(max)
        if not 0 <= low <= high:
            raise errors.ConfigError(f"scale(min={low}, max={high}): need 0 <= min <= max.")
        return self.client.save_endpoint(replace(spec, template=None, workers_min=low, workers_max=high))

    def logs(
        self, *, job: str | Job | None = None, worker: str | None = None, tail: int = 100, follow: bool = False,
        timeout: float | None = None,
    ) -> LogLines | Iterator[dict[str, Any]]:
        """Worker log lines through RunPod's REST API v2 (both backends), each with its job.
        With ``follow``: an iterator of new lines until the job is final (with ``job``), the
        worker exits (with ``worker``), ``timeout`` seconds pass, or the caller stops."""
        from . import worker_logs

        job_id = job.id if isinstance(job, Job) else job
        secrets = self._secret_env()
        if follow:
            return worker_logs.follow(self.client, self.endpoint_id, job=job_id, worker=worker, tail=tail,
                                      timeout=timeout, secrets=secrets)
        return LogLines(worker_logs.read(self.client, self.endpoint_id, job=job_id, worker=worker, tail=tail,
                                         secrets=secrets))

    def _secret_env(self) -> list[str]:
        """The endpoint's env values that are secrets, scrubbed from what is shown of it."""
        try:
            spec = self.client.get_endpoint(self.endpoint_id)
        except errors.RunpodError:
            return []
        return secret_env_values(spec.env) if spec is not None else []

    def diagnose(self) -> list[Finding]:
        from .diagnose import diagnose, gather

        return diagnose(gather(self.client, self.endpoint_id))

    def delete(self) -> list[str]:
        """Scale to zero, delete the endpoint and its template. Returns what was done."""
        from .endpoints import delete_endpoint

        done = delete_endpoint(self.client, self.endpoint_id)
        self._deleted = True
        return done

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __repr__(self) -> str:
        return f"<Deployment {self.name!r} ({self.endpoint_id}) on {self.backend}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        text = repr(self)
        try:
            h = self.health()
            w = h.workers
            text += (f"\n  workers: {w.idle} idle, {w.initializing} initializing, {w.running} running, "
                     f"{w.throttled} throttled, {w.unhealthy} unhealthy"
                     f"\n  jobs: {h.jobs.in_queue} queued, {h.jobs.in_progress} in progress, "
                     f"{h.jobs.completed} completed, {h.jobs.failed} failed")
        except errors.RunpodError as exc:
            text += f"\n  (state unavailable: {exc.message})"
        printer.text(text)


def format_log_line(entry: dict[str, Any]) -> str:
    """One log line as text: time, worker, job (or ``-``), message."""
    return (f"{time.strftime('%H:%M:%S', time.localtime(entry['t']))} {entry['worker'][:6]} "
            f"{(entry.get('job') or '-')[:8]:<8} {entry['message']}")


class LogLines(list):
    """Worker log lines; prints as plain text, one line each."""

    def __repr__(self) -> str:
        return "\n".join(format_log_line(e) for e in self) or "(no log lines)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _hint_for(state: models.JobState, deployment: Deployment) -> str:
    if state.status is JobStatus.FAILED:
        return f"The worker's error is in job.state.error; its log: %runpod_logs {deployment.name} --job {state.id}"
    if state.status is JobStatus.TIMED_OUT:
        return "Raise the job's execution_timeout (seconds) in .run(...), or the endpoint's --execution-timeout."
    if state.status is JobStatus.GONE:
        return "Results are kept 30 min after .run() and 1 min after .run_sync(); fetch them sooner."
    return ""
