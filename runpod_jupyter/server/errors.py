"""Errors the sidebar API answers with: an HTTP status, a message and what to do next.

Everything that can go wrong in a handler becomes a :class:`~runpod_jupyter.errors.SidebarError` before it reaches
tornado, so the browser always gets ``{"message", "hint", "reason"}`` JSON with a meaningful
status (400 bad input, 404 unknown thing, 409 wrong state, 502 RunPod failed) and never a
traceback.
"""

from __future__ import annotations

from typing import Any

from ..errors import SidebarError


def bad_request(message: str, hint: str | None = None) -> SidebarError:
    return SidebarError(400, message, hint=hint, reason="bad-request")


def not_found(message: str, hint: str | None = None) -> SidebarError:
    return SidebarError(404, message, hint=hint, reason="not-found")


def conflict(message: str, hint: str | None = None) -> SidebarError:
    return SidebarError(409, message, hint=hint, reason="conflict")


def from_runpod(exc: Exception) -> SidebarError:
    """Translate an error from the API client into the status the browser should see."""
    from ..api import errors

    message = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None)
    if isinstance(exc, errors.ConfigError):
        return SidebarError(409, message, hint=hint, reason="not-configured")
    if isinstance(exc, errors.EndpointNotFoundError):
        return SidebarError(404, message, hint=hint, reason="not-found")
    if isinstance(exc, errors.GraphQLError):
        # The management API refused the change (a quota, a template still in use, ...).
        return SidebarError(409, message, hint=hint, reason="refused")
    if isinstance(exc, errors.PayloadTooLargeError):
        return SidebarError(400, message, hint=hint, reason="bad-request")
    if isinstance(exc, errors.RunpodError):
        return SidebarError(502, message, hint=hint, reason="upstream")
    return SidebarError(500, f"Unexpected {type(exc).__name__}: {exc}", reason="internal")
