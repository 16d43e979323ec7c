"""What every REST v2 route of the embedded RunPod shares, as RunPod's v2 answers it: Bearer auth
only, a fresh ``x-request-id`` on every answer, ``RateLimit`` / ``RateLimit-Policy`` headers on
authenticated ones (a per-key budget per minute, then 429 with ``Retry-After``), and every error
as ``application/problem+json`` ``{title, status, detail, errors}``."""

from __future__ import annotations

import collections
import contextvars
import hashlib
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ...errors import ControlPlaneError, ProblemError
from .. import door

#: Requests per key and minute (RunPod's own budget is not published; this one is generous).
BUDGET = 600
WINDOW = 60.0
PROBLEM = "application/problem+json"
#: The headers every answer to the request being handled carries (see :class:`Conventions`).
HEADERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("v2_headers", default=None)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, message: str, *, hint: str | None = None, errors: list[str] | None = None) -> ProblemError:
    """A :class:`ProblemError` titled with the status's standard phrase."""
    return ProblemError(status, HTTPStatus(status).phrase, message, hint=hint, errors=errors or [])


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":")), status=status, content_type="application/json")


def problem_response(exc: ProblemError) -> web.Response:
    return web.Response(text=json.dumps(exc.to_json()), status=exc.status, content_type=PROBLEM)


class MinuteBudget:
    """Requests per key in a sliding minute: how many are left, when the oldest leaves the window."""

    def __init__(self, budget: int = BUDGET, window: float = WINDOW) -> None:
        self.budget, self.window = budget, window
        self.hits: dict[str, collections.deque[float]] = {}

    def spend(self, key: str) -> tuple[bool, int, int]:
        """Count one request for ``key`` (kept as a digest): (allowed, remaining, seconds to reset)."""
        now = time.monotonic()
        hits = self.hits.setdefault(hashlib.sha256(key.encode()).hexdigest(), collections.deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        allowed = len(hits) < self.budget
        if allowed:
            hits.append(now)
        reset = max(1, math.ceil(self.window - (now - hits[0]))) if hits else 1
        return allowed, self.budget - len(hits), reset

    def headers(self, remaining: int, reset: int) -> dict[str, str]:
        return {
            "RateLimit": f'"minute";r={remaining};t={reset}',
            "RateLimit-Policy": f'"minute";q={self.budget};w={int(self.window)}',
        }


class Conventions:
    """Wraps a v2 handler in the conventions above; the handler raises :class:`ProblemError` (or a
    catalog's :class:`ControlPlaneError`, a 400) for anything it refuses."""

    def __init__(self, api_key: Callable[[], str], budget: MinuteBudget | None = None,
                 check_query: Callable[[str, str, Any], None] | None = None) -> None:
        self.api_key = api_key
        self.budget = budget or MinuteBudget()
        self.check_query = check_query

    def __call__(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            rate: dict[str, str] = {}
            request_id = str(uuid.uuid4())
            try:
                given = self._key(request)
                allowed, remaining, reset = self.budget.spend(given)
                rate = self.budget.headers(remaining, reset)
                # A streaming answer sends its headers before it returns: it takes them from here.
                HEADERS.set({**rate, "x-request-id": request_id})
                if not allowed:
                    refused = problem_response(problem(
                        429, f"More than {self.budget.budget} requests this minute with this API key.",
                        hint=f"Wait {reset} s (Retry-After) and slow down; the RateLimit header shows what is left.",
                    ))
                    refused.headers["Retry-After"] = str(reset)
                    response: web.StreamResponse = refused
                else:
                    if self.check_query is not None and request.query:
                        resource = request.match_info.route.resource
                        self.check_query(resource.canonical if resource else request.path, request.method, request.query)
                    response = await handler(request)
            except ProblemError as exc:
                response = problem_response(exc)
            except ControlPlaneError as exc:
                response = problem_response(problem(400, exc.message, hint=exc.hint))
            if not response.prepared:
                response.headers.update(rate)
                response.headers["x-request-id"] = request_id
            return response

        return wrapped

    def _key(self, request: web.Request) -> str:
        """The caller's key, from the Authorization header only; 401 otherwise."""
        if "api_key" in request.query:  # URLs end up in logs: RunPod's v2 takes the header only
            raise problem(
                401, "A key in the URL (?api_key=) is not accepted.",
                hint="Send it in an Authorization: Bearer <api key> header, and drop it from the URL.",
            )
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not given:
            raise problem(401, "No API key was sent.", hint="Send Authorization: Bearer <api key>.")
        if not door.same_secret(given, self.api_key()):
            raise problem(401, "The API key was refused.",
                          hint="Send the embedded RunPod's key as Authorization: Bearer <api key>.")
        return given


async def read_body(request: web.Request) -> Any:
    """The request's JSON body, read by the front door (NaN, deep nesting refused; surrogates fixed)."""
    try:
        return door.parse_json(await request.read())
    except web.HTTPRequestEntityTooLarge:
        raise problem(413, "The body is larger than the embedded RunPod accepts.",
                      hint="Send a smaller body: a template or an endpoint is a few kilobytes.") from None
    except ControlPlaneError as exc:
        raise problem(400, exc.message, hint=exc.hint) from None
