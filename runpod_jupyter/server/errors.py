"""Errors the sidebar API answers with: an HTTP status, a message and what to do next.

Everything that can go wrong in a handler becomes a :class:`~runpod_jupyter.errors.SidebarError` before it reaches
tornado, so the browser always gets ``{"message", "hint", "reason"}`` JSON with a meaningful
status (400 bad input, 404 unknown thing, 409 wrong state, 502 RunPod failed) and never a
traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import (
    ApiError,
    ConfigError,
    EndpointNotFoundError,
    GraphQLError,
    PayloadTooLargeError,
    RunpodError,
    SidebarError,
)


def bad_request(message: str, hint: str | None = None) -> SidebarError:
    """400: the browser sent something this API cannot use."""
    return SidebarError(400, message, hint=hint, reason="bad-request")


def not_found(message: str, hint: str | None = None) -> SidebarError:
    """404: no such endpoint, job or journal entry."""
    return SidebarError(404, message, hint=hint, reason="not-found")


def conflict(message: str, hint: str | None = None) -> SidebarError:
    """409: the thing exists but is in the wrong state for this action."""
    return SidebarError(409, message, hint=hint, reason="conflict")


def from_runpod(exc: Exception) -> SidebarError:
    """Translate an error from the API client into the status the browser should see."""
    if isinstance(exc, SidebarError):
        return exc  # already the answer (a 409 for a backend that is off, say)
    message = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None)
    if isinstance(exc, ConfigError):
        return SidebarError(409, message, hint=hint, reason="not-configured")
    if isinstance(exc, EndpointNotFoundError):
        return SidebarError(404, message, hint=hint, reason="not-found")
    if isinstance(exc, GraphQLError) or (isinstance(exc, ApiError) and exc.status in (400, 409, 422)):
        # The management API refused the change (a quota, a template still in use, ...).
        return SidebarError(409, message, hint=hint, reason="refused")
    if isinstance(exc, ApiError) and exc.status == 404:
        return SidebarError(404, message, hint=hint, reason="not-found")
    if isinstance(exc, PayloadTooLargeError):
        return SidebarError(400, message, hint=hint, reason="bad-request")
    if isinstance(exc, RunpodError):
        return SidebarError(502, message, hint=hint, reason="upstream")
    return SidebarError(500, f"Unexpected {type(exc).__name__}: {exc}", reason="internal")


@contextmanager
def translated() -> Iterator[None]:
    """Around a call to RunPod: its error leaves as the sidebar's answer (status, message, hint).

    Translated here rather than in the handler so an upstream refusal is an answer, not a logged
    traceback. A ``SidebarError`` raised inside passes through unchanged. Works as a decorator too.
    """
    try:
        yield
    except RunpodError as exc:
        raise from_runpod(exc) from None
