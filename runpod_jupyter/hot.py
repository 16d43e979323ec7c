"""Runner endpoints: a notebook cell (``%%runpod_run``) or one function call (``remote``) runs on a
warm worker that outlives edits.

One runner per environment, named ``runner-<hash>`` after the kernel's interpreter, so it reads
clearly in ``%runpod_endpoints``. It is an ordinary endpoint: created on first use by the public
deploy path with the runner's worker handler, then found and reused. An edited cell never deploys;
only requirements the runner lacks (or a changed ``--gpu``/``--workers-max``/``--idle-timeout``/
``--base``) make a new release. On the local backend the runner's worker runs in the kernel's own environment.

Each run is one job: the cell and the values it reads are packed by :mod:`runpod_jupyter.runner`,
the job's stream is followed as it arrives (prints and displays land in the cell in order), and
the names the cell binds come back into the notebook. Interrupting the kernel cancels the job.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import config, runner
from .api.models import parse_gpu_list
from .deploy_options import DEFAULT_GPUS
from .deployment import Deployment, Job
from .errors import DeployError, EndpointNotFoundError, JobTimedOutError, RemoteError, RunpodError, VersionMismatchError

RUNNER_PREFIX = "runner-"
DEFAULT_WORKERS_MAX = 1
DEFAULT_IDLE_TIMEOUT = 600  # seconds: long enough to stay warm between edits
#: Env entry recording the requirements a runner was built with (to know when it lacks one).
REQUIREMENTS_ENV = "RUNPOD_JUPYTER_RUNNER_REQUIREMENTS"
#: Env entry recording the base image a runner was built on, when one was asked for.
BASE_ENV = "RUNPOD_JUPYTER_RUNNER_BASE"
#: Seconds without any output before the cell says it is waiting for a worker (and why).
QUIET_NOTICE = 5.0


@dataclass(frozen=True)
class RunnerOptions:
    """How a run wants its runner. ``None`` keeps what the runner has (defaults when it is created)."""

    backend: str | None = None
    gpu: tuple[str, ...] | None = None
    requirements: tuple[str, ...] = ()
    workers_max: int | None = None
    idle_timeout: int | None = None
    timeout: float | None = None  # seconds a run may take before it is cancelled
    base_image: str | None = None  # cloud: the runner image's base (default: a RunPod base for this Python)


@dataclass(frozen=True)
class _Runner:
    deployment: Deployment
    requirements: frozenset[str]
    gpu: tuple[str, ...]
    workers_max: int
    idle_timeout: int
    base_image: str | None = None

    def fits(self, wanted: frozenset[str], options: RunnerOptions) -> bool:
        return (
            wanted <= self.requirements
            and (options.gpu is None or tuple(options.gpu) == self.gpu)
            and (options.workers_max is None or options.workers_max == self.workers_max)
            and (options.idle_timeout is None or options.idle_timeout == self.idle_timeout)
            and (options.base_image is None or options.base_image == self.base_image)
        )


_runners: dict[tuple[str, str], _Runner] = {}
_runners_lock = threading.Lock()
_last_job: Job | None = None


def runner_name() -> str:
    """``runner-<8 hex>``: one name per Python environment (interpreter prefix and version)."""
    where = f"{sys.prefix}|{sys.version_info.major}.{sys.version_info.minor}"
    return RUNNER_PREFIX + hashlib.sha256(where.encode()).hexdigest()[:8]


def last_job() -> Job | None:
    """The job of the last remote run from this kernel (to look at, or to read its state)."""
    return _last_job


def ensure_runner(
    options: RunnerOptions = RunnerOptions(), needed: Iterable[str] = (), *, report: Callable[[str], None] | None = None
) -> Deployment:
    """The runner endpoint for this environment: found, or created (or given the requirements it
    lacks) through the ordinary deploy path. Never redeploys for a changed cell."""
    backend = config.choose_backend(options.backend)
    name = runner_name()
    wanted = frozenset(runner.RUNNER_REQUIREMENTS) | frozenset(options.requirements)
    if backend == "cloud":
        wanted |= frozenset(needed)
    else:  # locally the worker runs in the kernel's own environment: no image, no base
        options = replace(options, base_image=None)
    with _runners_lock:
        known = _runners.get((backend, name)) or _look_up(backend, name)
        if known is None or not known.fits(wanted, options):
            known = _create(backend, name, wanted, options, known, report or _say)
        _runners[(backend, name)] = known
        return known.deployment


def forget_runners() -> None:
    """Drop what this process remembers of runners (the next run looks them up again)."""
    with _runners_lock:
        _runners.clear()


def _look_up(backend: str, name: str) -> _Runner | None:
    from .api import Client
    from .connect import connect
    from .endpoints import find_endpoint

    settings = connect(backend)
    with Client(settings) as client:
        spec = find_endpoint(client, name)
    if spec is None:
        return None
    recorded = frozenset(line for line in str(spec.env.get(REQUIREMENTS_ENV, "")).splitlines() if line)
    deployment = Deployment(name=spec.name, endpoint_id=spec.saved_id, backend=settings.backend, settings=settings,
                            request_urls=spec.request_urls)
    return _Runner(deployment, recorded, tuple(spec.gpu_ids), spec.workers_max, spec.idle_timeout,
                   spec.env.get(BASE_ENV) or None)


def _create(
    backend: str, name: str, wanted: frozenset[str], options: RunnerOptions, known: _Runner | None,
    report: Callable[[str], None],
) -> _Runner:
    from .deployer import deploy

    requirements = wanted | (known.requirements if known else frozenset())
    gpu = tuple(options.gpu) if options.gpu else (known.gpu if known else DEFAULT_GPUS)
    workers_max = options.workers_max if options.workers_max is not None else (
        known.workers_max if known else DEFAULT_WORKERS_MAX)
    idle_timeout = options.idle_timeout if options.idle_timeout is not None else (
        known.idle_timeout if known else DEFAULT_IDLE_TIMEOUT)
    base_image = options.base_image or (known.base_image if known else None)
    env = {REQUIREMENTS_ENV: "\n".join(sorted(requirements)), **({BASE_ENV: base_image} if base_image else {})}
    report(f"{'updating' if known else 'creating'} runner {name} on the {backend} backend "
           f"({workers_max} worker(s) max, kept warm {idle_timeout} s)")
    try:
        deployment = deploy(
            Path(runner.HANDLER_FILE), name, backend=backend, requirements=tuple(sorted(requirements)), gpu=gpu,
            workers_min=0, workers_max=workers_max, idle_timeout=idle_timeout,
            aggregate_stream=False,  # the kernel reads the stream; a repeat would double large outputs
            base_image=base_image, env=env,
            on_progress=lambda phase, detail: report(detail) if phase in ("build", "wait", "ready", "slow") else None,
        )
    except DeployError as exc:
        if "worker quota" in exc.message:
            raise _quota_error(name, backend, workers_max) from None
        raise
    return _Runner(deployment, requirements, gpu, workers_max, idle_timeout, base_image)


def _quota_error(name: str, backend: str, workers_max: int) -> DeployError:
    """The account's worker quota is taken: say by which endpoints, and how to free room."""
    from .api import Client
    from .connect import connect

    holders: list[str] = []
    try:
        with Client(connect(backend, start=False)) as client:
            holders = [f"{e.name} (workersMax {e.workers_max})" for e in client.list_endpoints() if e.workers_max]
    except RunpodError:
        pass
    return DeployError(
        f"The runner {name} needs {workers_max} worker(s), but the account's worker quota is full.",
        hint=("Endpoints holding workers: " + ", ".join(holders) + ".\n" if holders else "")
        + "Free room: %runpod_delete NAME for endpoints you no longer need, or NAME.scale(max=0) to keep one "
        "without workers; then run the cell again.",
    )


def _say(text: str) -> None:
    print(f"runpod: {text}", file=sys.stderr, flush=True)


# -- running ---------------------------------------------------------------------------------------
def run_cell(
    code: str,
    user_ns: dict[str, Any],
    *,
    options: RunnerOptions = RunnerOptions(),
    out: Sequence[str] | None = None,
    filename: str = "<cell>",
    first_line: int = 1,
) -> Any:
    """Run ``code`` on the runner: output streams into the cell, the names it binds are bound in
    ``user_ns`` (nothing on failure). Returns the last expression's value (to show as the cell's
    result), or None after showing its remote display when the value could not come back."""
    packed = runner.packed_cell(code, user_ns, out=out, filename=filename, first_line=first_line)
    done = _run(packed.payload, options, _needed(options, packed), user_ns=user_ns)
    user_ns.update(done.values)
    _tell_refused(done.refused)
    if done.value is None and done.result:
        from IPython.display import display

        display(done.result, raw=True)
    return done.value


def _needed(options: RunnerOptions, *packed: runner.Packed) -> list[str]:
    """What a cloud runner must hold for these jobs (locally the kernel's environment has it)."""
    return runner.requirements_for(*packed) if config.choose_backend(options.backend) == "cloud" else []


def _tell_refused(refused: Mapping[str, str]) -> None:
    for name, why in refused.items():
        _say(f"{name} was not brought back: {why}")


def _run(
    payload: dict[str, Any], options: RunnerOptions, needed: Iterable[str], *, user_ns: dict[str, Any] | None = None
) -> Any:
    """One job on the runner, followed to its Done event (a deleted runner is made again once)."""
    global _last_job
    for attempt in (1, 2):
        deployment = ensure_runner(options, needed)
        try:
            job = deployment.run(payload)
        except EndpointNotFoundError:
            if attempt == 2:
                raise
            forget_runners()
            continue
        _last_job = job
        return follow(job, timeout=options.timeout, user_ns=user_ns)
    raise AssertionError("unreachable")  # pragma: no cover


def follow(job: Job, *, timeout: float | None = None, user_ns: dict[str, Any] | None = None) -> Any:
    """Show a runner job's events as they arrive and return its Done event; a remote failure is
    raised as :class:`RemoteError`. Interrupting (or ``timeout`` seconds) cancels the job. Functions
    and classes a cell defines come back with ``user_ns`` as their globals."""
    feed = job.feed()
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = 0

    def show_until_done(wait: float | None) -> Any:
        """Show the chunks not shown yet, waiting at most ``wait`` seconds; the Done event or None."""
        nonlocal shown
        for chunk in itertools.islice(feed.iterate(wait), shown, None):
            shown += 1
            done = _show(runner.read_event(chunk, user_ns=user_ns))
            if done is not None:
                return done
        return None

    try:
        done = show_until_done(QUIET_NOTICE if timeout is None else min(QUIET_NOTICE, timeout))
        if done is None:
            if shown == 0 and not feed.done:
                _waiting_notice(job)
            done = show_until_done(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if done is not None:
            return done
    except KeyboardInterrupt:
        _cancel(job)
        raise
    state = job.refresh()
    if not state.status.is_final:
        _cancel(job)
        raise JobTimedOutError(
            f"The run took longer than its timeout ({timeout:g} s); job {job.id} was cancelled.",
            job=job.state, hint="Give it more time with --timeout S (or timeout=S), or none to wait as long as it runs.",
        )
    job.result(timeout=0)  # a job that ended otherwise than COMPLETED raises its error here
    raise RemoteError(
        f"The runner's job {job.id} completed without sending its result.", error_type="RunnerError",
        hint=f"Its worker log may say why: %runpod_logs {job.deployment.name} --job {job.id}",
    )


def _show(event: Any) -> Any:
    """Put one event in the cell; the final Done is returned, a Failed raised."""
    if isinstance(event, runner.Output):
        stream = sys.stderr if event.name == "stderr" else sys.stdout
        stream.write(event.text)
        stream.flush()
        return None
    if isinstance(event, runner.Display):
        from IPython.display import display

        sys.stdout.flush()
        display(event.data, metadata=event.metadata or None, raw=True)
        return None
    if isinstance(event, runner.Failed):
        sys.stdout.flush()
        sys.stderr.flush()
        if event.error_type == "VersionMismatch":
            raise VersionMismatchError(event.message, hint="Nothing ran on the worker.")
        raise RemoteError(event.message, error_type=event.error_type, traceback=event.traceback,
                          worker_id=event.worker_id)
    if isinstance(event, runner.Done):
        return event
    return None


def _cancel(job: Job) -> None:
    try:
        job.cancel()
    except RunpodError as exc:
        _say(f"could not cancel job {job.id}: {exc.message}")


def _waiting_notice(job: Job) -> None:
    """Nothing arrived for a while: the job waits for a worker. Say so, and why when known."""
    name = job.deployment.name
    _say(f"waiting for a worker of {name} (a cold start after it scaled to zero, or none can start)")
    try:
        findings = job.deployment.diagnose()
    except RunpodError:
        return
    for finding in findings:
        if finding.level in ("error", "warning") and finding.code != "queued-no-workers":
            _say(f"{finding.message} {finding.fix}".strip())


# -- runpod_jupyter.remote ---------------------------------------------------------------------------
class RemoteFunction:
    """A notebook function that also runs on the runner: ``f.remote(...)``, ``f.map(items)``;
    ``f(...)`` still runs it here."""

    def __init__(self, fn: Callable[..., Any], options: RunnerOptions) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.options = options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """One call on the runner; its prints stream here; returns its result."""
        packed = runner.packed_call(self.fn, args, kwargs)
        return _run(packed.payload, self.options, _needed(self.options, packed)).value

    def map(self, items: Iterable[Any]) -> list[Any]:
        """One job per item (``f(item)``), results in input order. The first failure cancels the rest."""
        global _last_job
        packed = [runner.packed_call(self.fn, (item,), {}) for item in items]
        if not packed:
            return []
        payloads = [p.payload for p in packed]
        deployment = ensure_runner(self.options, _needed(self.options, *packed))
        jobs: list[Job] = []
        results: list[Any] = []
        try:
            for payload in payloads:
                jobs.append(deployment.run(payload))
            for index, job in enumerate(jobs):
                for ahead in jobs[index:index + 8]:
                    ahead.feed()  # read a few jobs' streams ahead while this one is shown
                _last_job = job
                results.append(follow(job, timeout=self.options.timeout).value)
        except BaseException:
            for job in jobs[len(results):]:
                if not job.state.status.is_final:
                    _cancel(job)
            raise
        return results

    def __repr__(self) -> str:
        return f"<remote function {getattr(self.fn, '__qualname__', self.fn)!r}>"


def remote(
    fn: Callable[..., Any] | None = None,
    *,
    gpu: str | Sequence[str] | None = None,
    backend: str | None = None,
    requirements: Sequence[str] = (),
    workers_max: int | None = None,
    idle_timeout: int | None = None,
    timeout: float | None = None,
    base_image: str | None = None,
) -> Any:
    """Decorator: ``@remote`` or ``@remote(gpu="ADA_24")`` on a notebook function gives it
    ``.remote(*args, **kwargs)`` and ``.map(items)``, run on this environment's runner."""
    pools = parse_gpu_list(gpu) if isinstance(gpu, str) else (tuple(gpu) if gpu else None)
    options = RunnerOptions(backend=backend, gpu=pools, requirements=tuple(requirements),
                            workers_max=workers_max, idle_timeout=idle_timeout, timeout=timeout, base_image=base_image)
    if fn is not None:
        return RemoteFunction(fn, options)
    return lambda f: RemoteFunction(f, options)
