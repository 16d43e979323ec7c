"""Job API programs (``/v2/{endpoint_id}/...``): run, runsync, status, stream, cancel, health,
purge-queue. Each function is a protocol program (see ``_wire``); the clients drive them."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

from .. import errors
from ._wire import Emit, Program, Reply, Request, RetryPolicy, Sleep, check_status, encode_json, send
from .models import GONE_REASON, Health, JobState, JobStatus, Policy

RUN_LIMIT = 10 * 1000 * 1000
RUNSYNC_LIMIT = 20 * 1000 * 1000
RUNSYNC_DEFAULT_WAIT_MS = 90_000
#: A job id no endpoint has: asking for its status tells "no worker yet" from "disabled".
HEALTH_PROBE_JOB = "runpod-jupyter-probe"


#: What RunPod's endpoint and job ids are made of. An id goes into a URL path: anything else
#: ("../purge-queue", "a/b", "x?y") could reach another route, so it is refused before sending.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_id(value: object, what: str) -> str:
    """``value`` if it can be a RunPod ``what`` id ("endpoint", "job"), else a ``ConfigError``."""
    if not isinstance(value, str) or not _ID.match(value):
        raise errors.ConfigError(
            f"{value!r} is not a valid {what} id; nothing was sent.",
            hint=f"A RunPod {what} id has only letters, digits, '-' and '_' "
            + ("(see %runpod_endpoints)." if what == "endpoint" else "(as returned by .run(), e.g. job.id)."),
        )
    return value


def _url(base: str, endpoint_id: str, route: str, job_id: str | None = None) -> str:
    path = f"{quote(check_id(endpoint_id, 'endpoint'), safe='')}/{route}"
    if job_id is not None:
        path += "/" + quote(check_id(job_id, "job"), safe="")
    return f"{base}/{path}"


def _is_gone(body: Any) -> bool:
    return isinstance(body, dict) and body.get("error") == "request does not exist"


def _is_endpoint_not_found(reply: Reply, body: Any) -> bool:
    return reply.status == 404 and not _is_gone(body)


def endpoint_not_found(endpoint_id: str, what: str) -> errors.EndpointNotFoundError:
    return errors.EndpointNotFoundError(
        f"Endpoint {endpoint_id} is disabled or deleted: RunPod's job API answers 'Not Found' for it "
        f"(while trying to {what}).",
        status=404,
        hint=(
            "If %runpod_endpoints still lists it, RunPod has disabled it: most often the account "
            "balance went negative, or the endpoint is broken. Add funds, then delete and recreate "
            "it (%runpod_delete NAME, then run the deploy cell again): an endpoint disabled for "
            "balance stays broken after topping up. If it is not listed, it was deleted: deploy again."
        ),
    )


def _job_body(reply: Reply, endpoint_id: str, what: str) -> Any:
    body = reply.json()
    if _is_gone(body):
        return body
    if _is_endpoint_not_found(reply, body):
        raise endpoint_not_found(endpoint_id, what)
    return check_status(reply, what=what)


def _submit_body(
    payload: Any,
    webhook: str | None,
    policy: Policy | None,
    s3_config: dict[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": payload}
    if webhook:
        body["webhook"] = webhook
    if policy is not None and policy.to_wire():
        body["policy"] = policy.to_wire()
    if s3_config:
        body["s3Config"] = s3_config
    return body


def _encoded(body: dict[str, Any], limit: int, route: str) -> bytes:
    content = encode_json(body)
    if len(content) > limit:
        raise errors.PayloadTooLargeError(len(content), limit, route)
    return content


def run(
    base: str,
    endpoint_id: str,
    payload: Any,
    retry: RetryPolicy,
    *,
    webhook: str | None = None,
    policy: Policy | None = None,
    s3_config: dict[str, Any] | None = None,
) -> Program:
    """POST /run: queue a job. Never resent once it may have reached RunPod."""
    content = _encoded(_submit_body(payload, webhook, policy, s3_config), RUN_LIMIT, "run")
    request = Request("POST", _url(base, endpoint_id, "run"), content, idempotent=False)
    reply = yield from send(request, retry)
    return JobState.from_wire(_job_body(reply, endpoint_id, "submit a job"))


def runsync(
    base: str,
    endpoint_id: str,
    payload: Any,
    retry: RetryPolicy,
    *,
    wait_ms: int | None = None,
    webhook: str | None = None,
    policy: Policy | None = None,
    s3_config: dict[str, Any] | None = None,
) -> Program:
    """POST /runsync?wait=ms: run and wait up to ``wait_ms`` (RunPod: 1 s to 300 s, default 90 s).
    Returns the job, which may still be IN_QUEUE/IN_PROGRESS if the wait ran out."""
    content = _encoded(_submit_body(payload, webhook, policy, s3_config), RUNSYNC_LIMIT, "runsync")
    wait = RUNSYNC_DEFAULT_WAIT_MS if wait_ms is None else max(1000, min(int(wait_ms), 300_000))
    request = Request(
        "POST",
        _url(base, endpoint_id, "runsync"),
        content,
        params={"wait": str(wait)},
        idempotent=False,
        timeout=wait / 1000 + 30,
    )
    reply = yield from send(request, retry)
    return JobState.from_wire(_job_body(reply, endpoint_id, "run a job synchronously"))


def status(base: str, endpoint_id: str, job_id: str, retry: RetryPolicy) -> Program:
    """GET /status/{id}. "request does not exist" becomes a final GONE job with its reason."""
    reply = yield from send(Request("GET", _url(base, endpoint_id, "status", job_id)), retry)
    return JobState.from_wire(_job_body(reply, endpoint_id, "read a job's status"), job_id)


def cancel(base: str, endpoint_id: str, job_id: str, retry: RetryPolicy) -> Program:
    """POST /cancel/{id}."""
    reply = yield from send(Request("POST", _url(base, endpoint_id, "cancel", job_id)), retry)
    return JobState.from_wire(_job_body(reply, endpoint_id, "cancel a job"), job_id)


def health(base: str, endpoint_id: str, retry: RetryPolicy) -> Program:
    """GET /health. RunPod answers "Not Found" both before a first worker has registered and for an
    endpoint it disabled (negative balance) or deleted; the job API tells them apart: only a live
    endpoint answers "request does not exist" for an unknown job. The first is no error; the
    second raises :class:`EndpointNotFoundError`, as every other job API call does."""
    reply = yield from send(Request("GET", _url(base, endpoint_id, "health")), retry)
    if reply.status == 404:
        probe = yield from send(Request("GET", _url(base, endpoint_id, f"status/{HEALTH_PROBE_JOB}")), retry)
        if _is_endpoint_not_found(probe, probe.json()):
            raise endpoint_not_found(endpoint_id, "read its health")
        return Health.no_worker_yet()
    return Health.from_wire(check_status(reply, what="read the endpoint's health") or {})


def purge_queue(base: str, endpoint_id: str, retry: RetryPolicy) -> Program:
    """POST /purge-queue: drop every queued (not running) job. Returns how many were removed."""
    reply = yield from send(Request("POST", _url(base, endpoint_id, "purge-queue")), retry)
    body = _job_body(reply, endpoint_id, "purge the queue")
    return int((body or {}).get("removed", 0))


def stream(
    base: str,
    endpoint_id: str,
    job_id: str,
    retry: RetryPolicy,
    *,
    poll_interval: float = 0.5,
    timeout: float | None = None,
) -> Program:
    """GET /stream/{id} until the job is final: emits each chunk's output once, in order, and
    ends on every final state (COMPLETED, FAILED, CANCELLED, TIMED_OUT, GONE). Returns the final
    status, or the last seen one if ``timeout`` seconds passed first."""
    url = _url(base, endpoint_id, "stream", job_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    last = JobStatus.IN_QUEUE
    while deadline is None or time.monotonic() < deadline:
        started = time.monotonic()
        reply = yield from send(Request("GET", url), retry)
        body = _job_body(reply, endpoint_id, "stream a job's output")
        if _is_gone(body):
            return JobStatus.GONE
        chunks = (body or {}).get("stream") or []
        for chunk in chunks:
            yield Emit(chunk.get("output") if isinstance(chunk, dict) else chunk)
        last = JobState.from_wire(body or {}, job_id).status
        if last.is_final and not chunks:
            return last
        if not chunks:
            # The embedded RunPod holds /stream until there is news; the cloud may answer at
            # once. Either way never ask more often than every ``poll_interval`` seconds.
            waited = time.monotonic() - started
            if waited < poll_interval:
                yield Sleep(poll_interval - waited)
    return last


__all__ = ["run", "runsync", "status", "cancel", "health", "purge_queue", "stream", "GONE_REASON"]
