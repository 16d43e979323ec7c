"""Plain-words findings about an endpoint, from its live state. One set of rules, shown by the
widgets, the Lab sidebar and the CLI alike (design §5, field notes in seeds 002/003).

:func:`gather` does the I/O (health, the endpoint, the account, REST v2's workers and releases,
and on the embedded RunPod its worker list); :func:`diagnose` is pure: state in, findings out.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .api.models import GPU_POOLS, Account, EndpointSpec, Health, JobCounts, WorkerCounts, hourly_cost_range
from .api.observed import Releases, Workers
from .api.stock import describe, pools_with_stock
from .findings import Finding, sort_findings

if TYPE_CHECKING:
    from .api import Client

EXIT_FIXES = {
    1: "A Python exception or a missing module at start-up. Read the worker log (%runpod_logs NAME), "
    "fix the code before runpod.serverless.start, and redeploy.",
    2: "handler.py was not found. Check the start command (dockerArgs) and that the image copies the "
    "handler where the command expects it.",
    137: "Killed (SIGKILL), often out of memory (GPU VRAM or RAM). If so, use a bigger GPU pool, a smaller "
    "batch or model, or load the model in lower precision.",
    139: "A segmentation fault, on RunPod usually the container disk filling up. Raise "
    "containerDiskInGb (image × 2.5 + models + 20 GB) or keep models on /runpod-volume.",
}


@dataclass
class EndpointState:
    """Everything the rules look at; any part may be missing."""

    endpoint_id: str
    backend: str
    endpoint: EndpointSpec | None = None
    listed: bool | None = None  # does GraphQL list it?
    health: Health | None = None
    rest_not_found: bool = False  # the job API answered "Not Found" for run/status/purge
    account: Account | None = None
    workers: list[dict[str, Any]] | None = None  # embedded RunPod only: per-worker state
    problem: str | None = None  # embedded RunPod only: why it cannot run this image
    spent: float | None = None  # embedded RunPod only: USD billed to this endpoint so far
    oldest_queued_s: float | None = None
    stock: dict[str, str] | None = None  # GPU stock per pool, read when jobs wait without workers
    observed_at: float = field(default_factory=time.time)
    account_at: float = field(default_factory=time.time)  # when ``account`` was read
    observed: Workers | None = None  # REST v2's worker list: states /health cannot tell, staleness
    releases: Releases | None = None  # REST v2's release history and the newest one's rollout

    @property
    def counts(self) -> WorkerCounts | None:
        """Workers by state: REST v2's list when it was read (throttled, unhealthy and stale
        workers included), else what ``/health`` says."""
        if self.observed is not None:
            return self.observed.counts()
        return self.health.workers if self.health is not None else None


def diagnose(state: EndpointState) -> list[Finding]:
    """The findings for one endpoint, most severe first."""
    return sort_findings(found for found in (rule(state) for rule in _RULES) if found is not None)


def _disabled(s: EndpointState) -> Finding | None:
    if not (s.rest_not_found and s.listed):
        return None
    balance = f" (balance ${s.account.client_balance:.2f})" if s.account is not None else ""
    return Finding(
        "error", "endpoint-disabled",
        f"RunPod's job API answers 'Not Found' for this endpoint although it is still listed{balance}: "
        "the account balance went negative, or the endpoint is broken.",
        "Add funds, then delete and recreate the endpoint (%runpod_delete NAME and run the deploy cell "
        "again): an endpoint disabled for balance stays broken after topping up.",
    )


def _deleted(s: EndpointState) -> Finding | None:
    if s.listed is False:
        return Finding("error", "endpoint-deleted", "This endpoint no longer exists.",
                       "Run the deploy cell again to recreate it.")
    return None


def _no_worker_yet(s: EndpointState) -> Finding | None:
    if s.health is None or s.health.registered or s.rest_not_found:
        return None
    parked = s.endpoint is not None and s.endpoint.workers_max == 0
    if parked and s.health.jobs.in_queue:
        return None  # "workers-max-zero" says it
    return Finding(
        "info", "no-worker-yet", "No worker has registered yet (RunPod answers 'Not Found' for health until then).",
        "workersMax is 0, so none will start: scale up (.scale(max=1))." if parked else
        "Wait for the first worker to start; if it never does, check the image name and the worker logs.",
    )


def _cloud_only_image(s: EndpointState) -> Finding | None:
    if s.problem:
        return Finding("error", "cloud-only-image", s.problem,
                       "Deploy with --cloud, or package the handler with %%runpod_deploy --local.")
    return None


def _exit_code(reason: str | None) -> int | None:
    """The exit code a worker's reason names; None for a SIGKILL the embedded RunPod sent itself
    (the reason says why, and it was not memory)."""
    if "killed (SIGKILL) by the embedded RunPod" in (reason or ""):
        return None
    match = re.search(r"exit code (\d+)", reason or "")
    return int(match.group(1)) if match else None


def _crash_loop(s: EndpointState) -> Finding | None:
    counts = s.counts
    if s.health is None or counts is None or counts.unhealthy == 0:
        return None
    reasons = [w.get("reason") or "" for w in s.workers or [] if w.get("state") == "unhealthy"]
    code = next((c for c in map(_exit_code, reasons) if c is not None), None)
    cause = f" ({reasons[0]})" if reasons and reasons[0] else ""
    if "init timeout" in (reasons[0] if reasons else ""):
        fix = ("Start-up takes longer than the init timeout: set RUNPOD_INIT_TIMEOUT (seconds) in the "
               "endpoint env, or move model downloads out of start-up (bake them in, or use cached models).")
    else:
        fix = EXIT_FIXES.get(code or 0, "Read the worker log (%runpod_logs NAME), fix start-up, and redeploy.")
    queued = s.health.jobs.in_queue
    fix += " Purge the queue of jobs sent to the broken release." if queued else ""
    return Finding(
        "error", "crash-loop",
        f"{counts.unhealthy} worker(s) crash before taking jobs: a crash loop; RunPod keeps "
        f"retrying them with exponential backoff{cause}.",
        fix,
    )


def _queued_without_workers(s: EndpointState) -> Finding | None:
    h = s.health
    if h is None or h.jobs.in_queue == 0:
        return None
    w = s.counts or h.workers
    if s.endpoint is not None and s.endpoint.workers_max == 0:
        return Finding("error", "workers-max-zero", f"{h.jobs.in_queue} job(s) wait but workersMax is 0.",
                       "Scale up: .scale(max=1) or %runpod_deploy --workers-max 1.")
    pools = ", ".join(s.endpoint.gpu_ids) if s.endpoint is not None else "the selected GPU pools"
    wider = _wider_pools(s.endpoint)
    if w.idle + w.running + w.initializing == 0 and _out_of_stock(s):
        stocked = pools_with_stock(s.stock or {}, exclude=s.endpoint.gpu_ids if s.endpoint else ())
        return Finding(
            "error", "no-gpu-capacity",
            f"{h.jobs.in_queue} job(s) wait: no capacity in {pools} (GPU stock NONE"
            f"{', workers throttled' if w.throttled else ''}).",
            (f"Add pools that have stock, cheapest first: {describe(s.stock or {}, stocked)}"
             if stocked else "No pool reports stock now: wait, or try again later")
            + "; or remove the network volume pin so any data centre can host workers.",
        )
    if w.throttled and w.idle + w.running + w.initializing == 0:
        return Finding(
            "error", "no-gpu-capacity",
            f"{h.jobs.in_queue} job(s) wait: RunPod has no free GPU in {pools} (workers throttled).",
            f"Widen the GPU list across tiers{wider}, or remove the network volume pin so any data centre can host workers.",
        )
    if w.total == 0 and not s.problem:
        age = f" for {s.oldest_queued_s:.0f} s" if s.oldest_queued_s else ""
        return Finding(
            "warning", "queued-no-workers",
            f"{h.jobs.in_queue} job(s) have waited{age} with zero workers: a worker is starting, or RunPod "
            f"cannot place one in {pools} (GPU unavailable where the endpoint is pinned).",
            f"If this lasts more than a minute, widen the GPU list{wider} or remove the network volume.",
        )
    return None


def _out_of_stock(s: EndpointState) -> bool:
    """Stock is known for every pool of the endpoint, and all read NONE."""
    gpus = s.endpoint.gpu_ids if s.endpoint is not None else ()
    return bool(s.stock and gpus) and all((s.stock or {}).get(g) == "NONE" for g in gpus)


def _running_but_queued(s: EndpointState) -> Finding | None:
    h = s.health
    if h is None or h.jobs.in_queue == 0 or h.jobs.in_progress > 0 or (s.counts or h.workers).running == 0:
        return None
    return Finding(
        "warning", "startup-before-start",
        "Workers show 'running' but no job is in progress: code before runpod.serverless.start "
        "(model downloads, installs) is still running or failing.",
        "Check the worker log; move heavy start-up into a lazily-called function, and set "
        "RUNPOD_INIT_TIMEOUT for long cold starts.",
    )


def _throttled(s: EndpointState) -> Finding | None:
    h, w = s.health, s.counts
    if h is None or w is None or not w.throttled or (h.jobs.in_queue and w.idle + w.running == 0):
        return None  # the queued-job rule above says it more precisely
    return Finding(
        "warning", "throttled", f"{w.throttled} worker(s) throttled: no capacity for them right now.",
        f"Widen the GPU list across tiers{_wider_pools(s.endpoint)}.",
    )


def _died_mid_job(s: EndpointState) -> Finding | None:
    if s.health is None or s.health.jobs.retried == 0:
        return None
    codes = [c for c in (_exit_code(w.get("reason")) for w in s.workers or [] if w.get("state") == "exited") if c]
    code = next((c for c in codes if c not in (0, 143)), None)
    fix = EXIT_FIXES.get(code or 0, "Read the worker log around the failed job (%runpod_logs NAME).")
    return Finding(
        "warning", "worker-died-mid-job",
        f"{s.health.jobs.retried} job(s) were retried because their worker died"
        + (f" (exit code {code})" if code else "") + ".",
        fix,
    )


def _balance(s: EndpointState) -> Finding | None:
    a = s.account
    if a is None:
        return None
    if a.client_balance < 0:
        return Finding("error", "negative-balance", f"The account balance is ${a.client_balance:.2f}.",
                       "Add funds; endpoints disabled by a negative balance must be recreated.")
    if a.current_spend_per_hr > 0 and a.client_balance < a.current_spend_per_hr:
        hours = a.client_balance / a.current_spend_per_hr
        return Finding("warning", "low-balance",
                       f"At ${a.current_spend_per_hr:.2f}/h the balance (${a.client_balance:.2f}) "
                       f"lasts about {hours * 60:.0f} min.",
                       "Add funds, or scale down idle endpoints (workersMin 0).")
    return None


def _rolling(s: EndpointState) -> Finding | None:
    stale = len(s.observed.stale) if s.observed is not None else (s.health.workers.outdated if s.health else 0)
    if not stale:
        return None
    progress = s.releases.summary() if s.releases is not None else ""
    return Finding("info", "rolling-update",
                   f"{stale} worker(s) still run an earlier release" + (f" ({progress})." if progress else "."),
                   "Nothing to do: they finish their jobs and are replaced a few at a time.")


def _always_on(s: EndpointState) -> Finding | None:
    ep = s.endpoint
    if ep is None or ep.workers_min <= 0:
        return None
    span = hourly_cost_range(ep.gpu_ids, always_on=ep.workers_min)
    if span is None:
        return None
    low, high = span
    cost = f"${low:.2f}/h" if high - low < 0.005 else f"${low:.2f}–{high:.2f}/h, by the GPU placed"
    return Finding(
        "info", "always-on-workers",
        f"{ep.workers_min} always-on worker(s) (workersMin) are billed while up, jobs or not: about {cost}.",
        "Keep them where cold starts hurt; NAME.scale(min=0) lets the endpoint scale to zero when idle.",
    )


def _wider_pools(endpoint: EndpointSpec | None) -> str:
    if endpoint is None or not endpoint.gpu_ids:
        return ""
    memory = max((GPU_POOLS[g].memory_gb for g in endpoint.gpu_ids if g in GPU_POOLS), default=0)
    extra = [p.id for p in GPU_POOLS.values() if p.memory_gb >= memory and p.id not in endpoint.gpu_ids][:3]
    return f" (e.g. add {', '.join(extra)})" if extra else ""


_RULES = (
    _disabled, _deleted, _cloud_only_image, _crash_loop, _queued_without_workers, _running_but_queued,
    _throttled, _died_mid_job, _no_worker_yet, _balance, _rolling, _always_on,
)


def with_worker_list(health: Health, found: dict[str, Any] | None) -> Health:
    """Before a first worker registers, /health says only "Not Found" (on RunPod as on the embedded
    one). The embedded RunPod's worker list still knows who is starting, crashing or throttled and
    what waits, so counts taken from it stand in (``registered`` stays False)."""
    if health.registered or not found:
        return health
    states = [str(w.get("state")) for w in found.get("workers") or []]
    counts = {f.name: states.count(f.name) for f in fields(WorkerCounts)}
    return Health(jobs=JobCounts(in_queue=len(found.get("queue") or [])), workers=WorkerCounts(**counts),
                  registered=False)


def with_workers(health: Health, workers: Workers) -> Health:
    """The same stand-in from REST v2's worker list, on either backend: before a first worker
    registers, who is starting, crashing or throttled (``registered`` stays False)."""
    if health.registered or not workers.workers:
        return health
    return Health(jobs=health.jobs, workers=workers.counts(), registered=False)


#: Seconds an earlier read's account balance is reused by :func:`gather` (it moves slowly).
ACCOUNT_EVERY = 60.0


def releases_for(client: Client, endpoint_id: str, observed: Workers, known: Releases | None) -> Releases:
    """The endpoint's release history: ``known`` while the worker list names the same endpoint
    version (every change of settings is a new one), else read again. The rollout is counted
    afresh from ``observed`` either way."""
    if known is None or known.endpoint_version != observed.endpoint_version:
        known = client.releases(endpoint_id)
    return known.rolled(observed)


def gather(client: Client, endpoint_id: str, *, previous: EndpointState | None = None) -> EndpointState:
    """Read what the rules need through a sync :class:`~runpod_jupyter.api.Client`: REST v2's
    workers, ``/health`` (job counts), the endpoint and the account (callers that show the rollout
    read the releases, which change only with the endpoint's version). On the embedded RunPod its
    per-worker list adds exit codes, reasons and spend.

    With ``previous`` (an earlier read of the same endpoint, as a poller keeps), what cannot have
    changed is not asked again: the endpoint's settings while its version (from the worker list)
    is the same, since every change of settings is a new version; the balance for
    :data:`ACCOUNT_EVERY` seconds. A steady refresh is then two requests: workers and health."""
    from .errors import EndpointNotFoundError, RunpodError

    state = EndpointState(endpoint_id=endpoint_id, backend=client.settings.backend)
    observed = None
    with contextlib.suppress(RunpodError):
        observed = client.workers(endpoint_id)
    same_version = (
        previous is not None and previous.endpoint is not None and previous.observed is not None
        and observed is not None and observed.endpoint_version is not None
        and observed.endpoint_version == previous.observed.endpoint_version
    )
    if same_version and previous is not None:
        state.endpoint, state.listed = previous.endpoint, True
    else:
        try:
            state.endpoint = client.get_endpoint(endpoint_id)
            state.listed = state.endpoint is not None
        except RunpodError:
            pass
    if state.listed:  # REST v2 on both backends: real worker states and staleness
        state.observed = observed
    try:
        state.health = client.endpoint(endpoint_id).health()
        if not state.health.registered and state.listed:
            # Health says "Not Found": tell "no worker yet" from "disabled" by asking the job API.
            client.endpoint(endpoint_id).status("runpod-jupyter-probe")
    except EndpointNotFoundError:
        state.rest_not_found = True
    except RunpodError:
        pass
    if previous is not None and previous.account is not None and time.time() - previous.account_at < ACCOUNT_EVERY:
        state.account, state.account_at = previous.account, previous.account_at
    else:
        with contextlib.suppress(RunpodError):
            state.account = client.account()
    if client.settings.local_url is None and state.health is not None and state.observed is not None:
        state.health = with_workers(state.health, state.observed)
    if client.settings.local_url is not None:
        from .api import local_routes as routes

        found = routes.workers(client.settings, endpoint_id) or {}
        state.workers, state.problem = found.get("workers"), found.get("problem")
        state.spent = found.get("spent")
        if state.health is not None:
            state.health = with_worker_list(state.health, found)
        queue = found.get("queue") or []
        if queue:
            created = (routes.job_detail(client.settings, queue[0]) or {}).get("createdAt")
            if isinstance(created, (int, float)):
                state.oldest_queued_s = max(0.0, time.time() - created)
    h, w = state.health, state.counts
    if h is not None and w is not None and h.jobs.in_queue and w.idle + w.running + w.initializing == 0:
        with contextlib.suppress(RunpodError):  # only then does stock tell the causes apart
            state.stock = client.gpu_stock()
    return state
