"""One exception tree for everything the wire can do wrong. Every message says what to do next.

::

    RunpodError
    ├── ConfigError                  bad settings; nothing was sent
    │   └── MissingApiKeyError       cloud backend without a key
    ├── PayloadTooLargeError         refused before sending (10 MB /run, 20 MB /runsync)
    ├── TransportError               connection failed or timed out, after retries
    │   └── SubmitUncertainError     /run may or may not have reached RunPod
    ├── ApiError                     RunPod answered with an error status
    │   ├── AuthenticationError      401/403: the key was refused
    │   ├── EndpointNotFoundError    REST "Not Found" for an endpoint
    │   ├── RateLimitedError         429 after honouring Retry-After
    │   └── ServerError              5xx after retries
    ├── GraphQLError                 the management API returned ``errors``
    └── JobError                     a job ended badly (raised by ``Job.result``)
        ├── JobFailedError
        ├── JobCancelledError
        ├── JobTimedOutError
        └── JobGoneError             "request does not exist": purged or expired

Messages pass through :func:`runpod_jupyter.config.redact`, so a key can never leak through an
exception, even when the server echoes it back.
"""

from __future__ import annotations

from typing import Any

from ..config import redact

__all__ = [
    "RunpodError", "ConfigError", "MissingApiKeyError", "PayloadTooLargeError", "TransportError",
    "SubmitUncertainError", "ApiError", "AuthenticationError", "EndpointNotFoundError",
    "RateLimitedError", "ServerError", "GraphQLError", "JobError", "JobFailedError",
    "JobCancelledError", "JobTimedOutError", "JobGoneError",
]


class RunpodError(Exception):
    """Root of every error this package raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = redact(message)
        self.hint = redact(hint) if hint else None
        super().__init__(self.message if not self.hint else f"{self.message}\n{self.hint}")

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: what happened, then what to do."""
        lines = [f"{type(self).__name__}: {self.message}"]
        if self.hint:
            lines.extend(self.hint.splitlines())
        return lines


class ConfigError(RunpodError):
    """Settings are wrong or missing; nothing was sent."""


class MissingApiKeyError(ConfigError):
    """The cloud backend needs a key and none is configured."""

    def __init__(self) -> None:
        super().__init__(
            "No RunPod API key is configured for the cloud backend.",
            hint=(
                "Set RUNPOD_API_KEY in the environment, run `%runpod_config api_key` in a "
                "notebook, or put it in ~/.runpod/config.toml (the SDK's file). "
                "Or use the embedded RunPod with --local, which needs no account."
            ),
        )


class PayloadTooLargeError(RunpodError):
    """The request body is over RunPod's limit; it was not sent."""

    def __init__(self, size: int, limit: int, route: str) -> None:
        self.size, self.limit, self.route = size, limit, route
        super().__init__(
            f"The input is {size / 1e6:.1f} MB; RunPod accepts at most {limit / 1e6:.0f} MB "
            f"on /{route}. Nothing was sent.",
            hint=(
                "Upload large files somewhere the worker can reach (S3, a presigned URL, a "
                "network volume) and send their URLs in the input instead."
            ),
        )


class TransportError(RunpodError):
    """The request could not be completed (connection refused, reset or timed out)."""


class SubmitUncertainError(TransportError):
    """/run lost its connection after sending: the job may exist. It was NOT resent."""


class ApiError(RunpodError):
    """RunPod answered with an error status."""

    def __init__(self, message: str, *, status: int, body: Any = None, hint: str | None = None):
        self.status = status
        self.body = body
        super().__init__(message, hint=hint)


class AuthenticationError(ApiError):
    """401/403: the API key was refused."""


class EndpointNotFoundError(ApiError):
    """RunPod's REST API does not know this endpoint (deleted, or disabled for balance)."""


class RateLimitedError(ApiError):
    """Still rate limited (429) after waiting as long as RunPod asked."""


class ServerError(ApiError):
    """RunPod failed (5xx) and retrying did not help."""


class GraphQLError(RunpodError):
    """The management API answered with ``errors``."""

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None):
        self.errors = errors or []
        super().__init__(message)


class JobError(RunpodError):
    """A job did not complete; ``job`` holds its last known state."""

    def __init__(self, message: str, *, job: Any = None, hint: str | None = None):
        self.job = job
        super().__init__(message, hint=hint)


class JobFailedError(JobError):
    """The handler raised or returned an ``error``."""


class JobCancelledError(JobError):
    """The job was cancelled (by a call to cancel, or a purge)."""


class JobTimedOutError(JobError):
    """The job ran past its ``executionTimeout`` or waited past its ``ttl``."""


class JobGoneError(JobError):
    """RunPod no longer knows the job: purged from the queue, or its result expired."""
