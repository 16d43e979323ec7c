"""The protocol, written once: every API call is a generator of steps that a driver performs.

A *program* (see ``rest.py`` and ``graphql.py``) yields :class:`Request` (send this, give me the
:class:`Reply`), :class:`Sleep` (wait), or :class:`Emit` (hand this value to the caller, for
streams), and finally returns its result. The sync and async drivers in ``client.py`` are the
only code that does I/O, so retries, payload limits and error mapping exist exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from .. import errors
from ..backoff import RetryPolicy, retry_after_seconds  # shared with the registry client; re-exported

Program = Generator[Any, Any, Any]


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    #: Safe to resend when the connection breaks after sending (everything but /run).
    idempotent: bool = True
    timeout: float | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.content) if self.content else None
        except ValueError:
            return None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    value: Any


def encode_json(payload: Any) -> bytes:
    """Encode a body; a value JSON cannot carry is a user error, caught before anything is sent."""
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise errors.ConfigError(
            f"The input cannot be sent as JSON: {exc}.",
            hint="Convert it first: numpy arrays with .tolist(), bytes with base64, "
            "datetimes with .isoformat(); NaN and infinity are not valid JSON.",
        ) from None


def _not_sent(exc: httpx.TransportError) -> bool:
    """True when the request certainly never reached the server (safe to retry even /run)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def send(request: Request, policy: RetryPolicy) -> Generator[Any, Any, Reply]:
    """Send with retries: connection failures and timeouts back off and retry when the request
    is idempotent or was certainly not sent; 429 waits for Retry-After; 5xx retries if idempotent."""
    for attempt in range(policy.attempts):
        last = attempt == policy.attempts - 1
        try:
            reply = yield request
        except httpx.TransportError as exc:
            if not (request.idempotent or _not_sent(exc)):
                raise errors.SubmitUncertainError(
                    f"The connection to {_host(request.url)} broke after the job was sent "
                    f"({type(exc).__name__}); it may or may not have been queued, so it was not "
                    "resent (that could run it twice).",
                    hint="List recent jobs with %runpod_jobs, or check the endpoint's queue with "
                    ".health(), before submitting it again.",
                ) from None
            if last:
                raise errors.TransportError(
                    f"Could not reach {_host(request.url)} after {policy.attempts} attempts: "
                    f"{type(exc).__name__}: {exc}",
                    hint="Check the network and the base URL (RUNPOD_ENDPOINT_BASE_URL / "
                    "RUNPOD_API_BASE_URL); for the local backend, `runpod-jupyter local serve`.",
                ) from None
            yield Sleep(policy.backoff(attempt))
            continue
        if reply.status == 429:
            wait = retry_after_seconds(reply.headers.get("retry-after"))
            if last or (wait is not None and wait > policy.max_retry_after):
                raise errors.RateLimitedError(
                    "RunPod is rate limiting these requests (429).",
                    status=429,
                    body=reply.json(),
                    hint=f"Wait {wait:.0f} s and retry, or send fewer requests (batch inputs)."
                    if wait
                    else "Send fewer requests per second, or batch inputs into one job.",
                )
            yield Sleep(policy.delay(attempt, wait))
            continue
        if reply.status in (502, 503, 504) and request.idempotent and not last:
            yield Sleep(policy.backoff(attempt))
            continue
        return reply
    raise AssertionError("unreachable")  # pragma: no cover


def _host(url: str) -> str:
    return httpx.URL(url).host or url


def check_status(reply: Reply, *, what: str) -> Any:
    """Map an HTTP error status to the exception tree; return the decoded JSON body otherwise.
    RunPod's ``x-request-id`` goes into the message, so a user can quote it to support."""
    body = reply.json()
    quote = _request_id(reply)
    if reply.status in (401, 403):
        raise errors.AuthenticationError(
            f"RunPod refused the API key while trying to {what} ({reply.status}{quote}).",
            status=reply.status,
            hint="Check the key (RUNPOD_API_KEY, %runpod_config api_key, or "
            "~/.runpod/config.toml); it needs read/write access to serverless.",
        )
    if reply.status >= 500:
        raise errors.ServerError(
            f"RunPod failed while trying to {what} ({reply.status}{quote}).",
            status=reply.status,
            body=body,
            hint="This is on RunPod's side; retry in a minute, and check status.runpod.io"
            + (" (quote the request id to RunPod support if it persists)." if quote else "."),
        )
    if reply.status >= 400:
        detail = _message(body) or reply.content[:200].decode(errors="replace")
        raise errors.ApiError(
            f"RunPod rejected the request to {what} ({reply.status}{quote}): {detail}",
            status=reply.status,
            body=body,
        )
    return body


def _request_id(reply: Reply) -> str:
    """``", request id X"`` when RunPod named the request (REST v2 always does), else ``""``."""
    rid = reply.headers.get("x-request-id", "").strip()
    return f", request id {rid[:80]}" if rid else ""


def _message(body: Any) -> str | None:
    """The readable part of an error body: the job API's ``error``, problem+json's ``detail``
    with the validation ``errors`` it lists."""
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if isinstance(body.get(key), str):
                found = [str(e) for e in body.get("errors") or [] if isinstance(e, str)]
                return body[key] + (" [" + "; ".join(found[:5]) + "]" if found else "")
    return None


class RatePacer:
    """Slows a client down *before* RunPod answers 429, from the ``RateLimit`` header its REST v2
    sends on every authenticated answer (``"minute";r=0;t=12, "hour";r=2800;t=1812``): when a
    window has no requests left, the next request to that host waits until the window resets."""

    def __init__(self, max_wait: float = 60.0) -> None:
        self.max_wait = max_wait
        self._resume_at: dict[str, float] = {}

    def observe(self, url: str, headers: dict[str, str], now: float) -> None:
        value = headers.get("ratelimit")
        if not value:
            return
        waits = [reset for remaining, reset in parse_ratelimit(value) if remaining <= 0]
        if waits:
            self._resume_at[_host(url)] = now + min(max(waits), self.max_wait)

    def delay(self, url: str, now: float) -> float:
        """Seconds to wait before sending to ``url``'s host (0 when its budget has room)."""
        resume = self._resume_at.get(_host(url))
        if resume is None:
            return 0.0
        if resume <= now:
            del self._resume_at[_host(url)]
            return 0.0
        return resume - now


def parse_ratelimit(value: str) -> list[tuple[int, float]]:
    """``(remaining, seconds to reset)`` per window of a ``RateLimit`` header; unreadable members
    are skipped (a header a client cannot read must not stop it)."""
    windows = []
    for member in value.split(","):
        params = dict(
            part.strip().split("=", 1) for part in member.split(";")[1:] if "=" in part
        )
        try:
            windows.append((int(params["r"]), max(0.0, float(params["t"]))))
        except (KeyError, ValueError):
            continue
    return windows
