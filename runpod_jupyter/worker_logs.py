"""An endpoint's worker log lines, read through RunPod's REST API v2 (the worker-log event
stream) the same way on both backends, each line given the job it belongs to.

Which workers: the endpoint's workers as v2 lists them, plus the worker a job ran on (its status
names it), plus, on the embedded RunPod, its recently exited workers (a crash loop's log is
mostly theirs). Lines of several workers are merged in time order.

Which job: the SDK prints its own lines as JSON ``{"requestId", "message", "level"}`` on RunPod,
so a tagged line names its job. An untagged line (a handler's ``print``) belongs to the job its
worker was running at that point of the worker's own log: after that job's first tagged line
and up to its ``Finished.``; exact while a worker runs one job at a time (the default). Where no
tag is in sight (the SDK's log level set above INFO, or the job's tags outside what was read),
the job's worker and its start and end times decide.
"""

from __future__ import annotations

import heapq
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .api.observed import LogLine
from .errors import ApiError, RunpodError
from .secret import redact, redact_values

if TYPE_CHECKING:
    from .api import Client

#: What the SDK logs, tagged with the job, once the job's result is sent.
FINISHED = "Finished."
#: Most lines a worker's stream gives back at once (REST v2's ``tail`` limit).
MAX_TAIL = 5000
#: Seconds a one-off read waits on a quiet stream before taking what came as all there is.
IDLE = 0.5
#: Log times may be cut to the whole second: a line stamped ``t`` was logged before ``t + SLACK``.
SLACK = 1.0
#: Seconds a job's end, as read from its status, may be late or early against the log's clock.
CLOCK = 0.05
#: Workers read at once.
PARALLEL = 8


@dataclass(frozen=True)
class JobWindow:
    """Where and when a job ran, for lines no tag attributes."""

    job_id: str
    worker_id: str | None
    start: float | None = None
    end: float | None = None  # None while it runs

    def holds(self, worker_id: str, t: float | None) -> bool:
        """Whether a line logged at ``t`` (its time may be cut to the whole second) falls in it."""
        if self.worker_id != worker_id or self.start is None or t is None:
            return False
        return self.start - SLACK < t and (self.end is None or t <= self.end + CLOCK)


def window_of(job_id: str, state: Any = None, detail: dict[str, Any] | None = None,
              observed: Iterable[tuple[float, str]] = ()) -> JobWindow | None:
    """A job's window from what is known of it: the embedded RunPod's job detail (``startedAt``,
    ``finishedAt``), else the times a watcher saw it turn ``IN_PROGRESS`` and final, checked
    against the status' ``executionTime``."""
    worker = (detail or {}).get("workerId") or getattr(state, "worker_id", None)
    if detail and detail.get("startedAt"):
        return JobWindow(job_id, worker, float(detail["startedAt"]), _float(detail.get("finishedAt")))
    start = end = None
    for t, status in observed:
        if status == "IN_PROGRESS" and start is None:
            start = t
        elif status in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"):
            end = t
    execution = getattr(state, "execution_time_ms", None)
    if end is not None and execution is not None:
        start = min(start if start is not None else end, end - execution / 1000)
    return JobWindow(job_id, worker, start, end) if start is not None else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def untag(text: str) -> tuple[bool, str | None, str, str]:
    """``(tagged, job id, level, message)`` of one printed line: the SDK's JSON lines carry a
    request id (null for lines about no job); anything else is printed text."""
    if text.startswith("{") and '"message"' in text:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "message" in data:
            job = data.get("requestId")
            return True, str(job) if job else None, str(data.get("level") or "INFO"), str(data["message"])
    return False, None, "INFO", text


class Attributor:
    """Gives each line its job, reading each worker's lines in that worker's own order (live:
    a line is placed when it arrives, without looking ahead)."""

    def __init__(self, windows: Iterable[JobWindow] = (), secrets: Iterable[str] = ()) -> None:
        self.windows = [w for w in windows if w is not None]
        self.secrets = list(secrets)
        self._open: dict[str, str | None] = {}  # worker -> the job its tags say it is running
        self._closed: set[str] = set()  # jobs whose ``Finished.`` has been read

    def add_window(self, window: JobWindow | None) -> None:
        if window is not None:
            self.windows = [w for w in self.windows if w.job_id != window.job_id] + [window]

    def window_job(self, worker: str, t: float | None) -> str | None:
        """The job whose window holds a line of ``worker`` at ``t`` (a finished job no longer does)."""
        return next((w.job_id for w in self.windows if w.job_id not in self._closed and w.holds(worker, t)), None)

    def entry(self, line: LogLine) -> dict[str, Any]:
        """One line as ``Deployment.logs()`` shows it: ``{"t", "worker", "job", "level", "message",
        "stream", "id", "tagged"}``, the message redacted."""
        tagged, job, level, message = untag(line.line)
        worker, t = line.worker_id, line.time
        if tagged:
            if job is not None and message == FINISHED:
                self._open[worker] = None
                self._closed.add(job)
            elif job is not None and job not in self._closed:
                self._open[worker] = job  # a tagged line of a job: the worker is running it now
        elif line.source == "container":
            job = self._open.get(worker) or self.window_job(worker, t)
        message = redact(redact_values(message, self.secrets))
        return {"t": t or 0.0, "worker": worker, "job": job, "level": level, "message": message,
                "stream": line.source, "id": line.id, "tagged": tagged}

    def entries(self, lines: list[LogLine]) -> list[dict[str, Any]]:
        """One worker's lines read at once: as :meth:`entry`, then an untagged line no start tag
        placed goes to the job whose tag comes next in the worker's log (its ``Finished.`` at
        the latest), where that job's window, if known, does not say otherwise."""
        out = [self.entry(line) for line in lines]
        by_id = {w.job_id: w for w in self.windows}
        started = _started_before(out)
        upcoming: str | None = None
        for index in range(len(out) - 1, -1, -1):
            entry = out[index]
            if entry["tagged"]:
                upcoming = entry["job"] or upcoming
                continue
            if entry["stream"] != "container" or upcoming is None:
                continue
            if entry["job"] is None or started[index] != entry["job"]:
                window = by_id.get(upcoming)
                if window is None or window.holds(entry["worker"], lines[index].time):
                    entry["job"] = upcoming
        return out


def _started_before(out: list[dict[str, Any]]) -> list[str | None]:
    """For each line, the job whose tagged lines came last before it, unless the last of them
    was its ``Finished.`` (one pass: a job's read holds up to ``MAX_TAIL`` lines)."""
    found: list[str | None] = []
    started: str | None = None
    for entry in out:
        found.append(started)
        if entry["tagged"] and entry["job"]:
            started = entry["job"] if entry["message"] != FINISHED else None
    return found


# -- which workers ----------------------------------------------------------------------------
def workers_of(client: Client, endpoint_id: str) -> list[str]:
    """The endpoint's workers: those v2 lists, then (embedded RunPod) its exited ones it still keeps."""
    found = [w.id for w in client.workers(endpoint_id).workers]
    if client.settings.local_url is not None:
        from .api import local_routes as routes

        listed = routes.workers(client.settings, endpoint_id) or {}
        found += [str(w["id"]) for w in listed.get("workers") or [] if isinstance(w, dict) and w.get("id")]
    return list(dict.fromkeys(found))


def job_worker(client: Client, endpoint_id: str, job_id: str) -> tuple[Any, str | None, JobWindow | None]:
    """A job's status, the worker it ran on (None before one took it) and its window (with the
    embedded RunPod's job detail where there is one)."""
    state = client.endpoint(endpoint_id).status(job_id)
    detail = None
    if state.worker_id and client.settings.local_url is not None:
        from .api import local_routes as routes

        detail = routes.job_detail(client.settings, job_id)
    window = window_of(job_id, state, detail)
    worker = (detail or {}).get("workerId") or state.worker_id
    return state, worker, window


# -- reading ----------------------------------------------------------------------------------
def read_worker(client: Client, endpoint_id: str, worker_id: str, *, tail: int, idle: float = IDLE) -> list[LogLine]:
    """The lines a worker has logged so far (none if it is gone)."""
    try:
        return list(client.worker_logs(endpoint_id, worker_id, tail=max(0, min(tail, MAX_TAIL)), idle=idle))
    except RunpodError:
        return []  # the worker is gone (404) or its log cannot be read: the others still count


def read(
    client: Client,
    endpoint_id: str,
    *,
    job: str | None = None,
    worker: str | None = None,
    tail: int = 100,
    secrets: Iterable[str] = (),
    idle: float = IDLE,
) -> list[dict[str, Any]]:
    """The last ``tail`` lines of the endpoint's workers (or of one worker, or of one job),
    oldest first, each with its job."""
    windows: list[JobWindow] = []
    if worker is not None:
        chosen = [worker]
    elif job is not None:
        _state, ran_on, window = job_worker(client, endpoint_id, job)
        chosen = [ran_on] if ran_on else []
        windows = [window] if window is not None else []
    else:
        chosen = workers_of(client, endpoint_id)
    if not chosen:
        return []
    # A job's lines may be anywhere in its worker's log: read as much as v2 gives.
    depth = MAX_TAIL if job is not None else tail
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(chosen))) as pool:
        streams = list(pool.map(lambda w: read_worker(client, endpoint_id, w, tail=depth, idle=idle), chosen))
    attributor = Attributor(windows, secrets)
    entries = [attributor.entries(lines) for lines in streams]
    merged = list(heapq.merge(*entries, key=lambda e: e["t"]))
    if job is not None:
        merged = [e for e in merged if e["job"] == job]
    return merged[-tail:] if tail > 0 else []


class Follower:
    """Follows workers' log streams on background threads, resuming after the last line seen;
    each new line (with its job) goes to ``on_line``. Reads are long polls of at most ``idle``
    quiet seconds, so :meth:`stop` takes effect within that."""

    def __init__(
        self,
        client: Client,
        endpoint_id: str,
        on_line: Callable[[dict[str, Any]], None],
        *,
        attributor: Attributor | None = None,
        tail: int = 0,
        idle: float = 1.0,
    ) -> None:
        self.client, self.endpoint_id, self.on_line = client, endpoint_id, on_line
        self.attributor = attributor or Attributor()
        self.tail, self.idle = tail, idle
        self.threads: dict[str, threading.Thread] = {}
        self.gone: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def follow(self, worker_id: str, *, tail: int | None = None) -> None:
        """Start following a worker (once per worker)."""
        with self._lock:
            if worker_id in self.threads or self._stop.is_set():
                return
            thread = threading.Thread(target=self._run, args=(worker_id, self.tail if tail is None else tail),
                                      name=f"runpod-logs-{worker_id[:12]}", daemon=True)
            self.threads[worker_id] = thread
        thread.start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def active(self) -> bool:
        """Whether a followed worker's stream may still bring lines."""
        return any(t.is_alive() for t in list(self.threads.values()))

    def stop(self) -> None:
        self._stop.set()

    def add_window(self, window: JobWindow | None) -> None:
        with self._lock:
            self.attributor.add_window(window)

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self.threads.values()):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _listed(self, worker_id: str) -> bool:
        """Whether the endpoint still lists the worker (a stream that ended early may only have
        been cut)."""
        try:
            return any(w.id == worker_id for w in self.client.workers(self.endpoint_id).workers)
        except RunpodError:
            return True  # cannot tell: keep reading, the next read tells again

    def _run(self, worker_id: str, tail: int) -> None:
        last: str | None = None
        # With no backlog wanted, the newest line is still read once: its id is where later
        # reads resume, so no line printed between two reads is lost.
        skip = tail == 0
        failures = 0
        while not self._stop.is_set():
            heard = time.monotonic()
            try:
                for line in self.client.worker_logs(self.endpoint_id, worker_id, tail=max(tail, 1),
                                                    last_event_id=last, idle=self.idle):
                    heard = time.monotonic()
                    last = line.id or last
                    with self._lock:  # one attributor, each worker's lines in order
                        entry = self.attributor.entry(line)
                    if skip:
                        skip = False
                        continue
                    self.on_line(entry)
                    if self._stop.is_set():
                        return
                skip = False
                failures = 0
                if time.monotonic() - heard < self.idle * 0.8:
                    if not self._listed(worker_id):
                        self.gone.add(worker_id)  # the server ended the stream: the worker has exited
                        return
                    self._stop.wait(0.2)  # cut short while the worker lives: ask again, not at once
            except ApiError as exc:
                if exc.status in (401, 403, 404, 410):
                    self.gone.add(worker_id)  # gone (or not ours to read): nothing more will come
                    return
                failures += 1
            except RunpodError:
                failures += 1  # a dropped connection or a busy server: try again, a few times
            if failures:
                if failures > 5:
                    return
                self._stop.wait(min(5.0, 0.5 * 2 ** failures))


def follow(
    client: Client,
    endpoint_id: str,
    *,
    job: str | None = None,
    worker: str | None = None,
    tail: int = 10,
    timeout: float | None = None,
    secrets: Iterable[str] = (),
    idle: float = 1.0,
    rescan: float = 5.0,
) -> Iterator[dict[str, Any]]:
    """New log lines as they come (after the last ``tail`` lines so far). With ``job``: that
    job's lines, until the job is final and its worker's stream has had a moment to catch up.
    Otherwise the endpoint's workers (or one worker), new workers included, until ``timeout``
    or the caller stops iterating (e.g. KeyboardInterrupt)."""
    lines: queue.Queue[dict[str, Any]] = queue.Queue()
    attributor = Attributor(secrets=secrets)
    follower = Follower(client, endpoint_id, lines.put, attributor=attributor, tail=tail, idle=idle)
    deadline = None if timeout is None else time.monotonic() + timeout
    final_at: float | None = None
    next_scan = 0.0
    try:
        while deadline is None or time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_scan:
                next_scan = now + (1.0 if job is not None else rescan)
                if worker is not None:
                    follower.follow(worker)
                elif job is not None:
                    state, ran_on, window = job_worker(client, endpoint_id, job)
                    follower.add_window(window)
                    if ran_on:
                        follower.follow(ran_on, tail=MAX_TAIL)
                    if state.status.is_final and final_at is None:
                        final_at = now
                else:
                    for found in workers_of(client, endpoint_id):
                        follower.follow(found)
            try:
                entry = lines.get(timeout=0.2)
            except queue.Empty:
                if final_at is not None and time.monotonic() - final_at > max(2.0, idle * 2):
                    return
                if worker is not None and follower.threads and not follower.active():
                    return  # the worker exited and every line was read
                continue
            if job is None or entry["job"] == job:
                yield entry
    finally:
        follower.stop()
