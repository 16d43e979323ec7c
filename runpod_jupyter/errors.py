"""Every error this package raises on purpose, in one tree. Every message says what happened
and every ``hint`` what to do next; in a notebook they render as those lines, not a traceback.

::

    RunpodError
    ├── ConfigError                  bad settings; nothing was sent
    │   ├── MissingApiKeyError       cloud backend without a key
    │   ├── FlagError                a flag's value cannot be read (--env NOEQUALS, --local --cloud)
    │   ├── ShippingError            a notebook value a remote cell reads cannot travel (named, with why)
    │   └── VersionMismatchError     the two sides' Python/package versions differ; nothing unpickled
    ├── PayloadTooLargeError         refused before sending (10 MB /run, 20 MB /runsync)
    ├── TransportError               connection failed or timed out, after retries
    │   └── SubmitUncertainError     /run may or may not have reached RunPod
    ├── ApiError                     RunPod answered with an error status
    │   ├── AuthenticationError      401/403: the key was refused
    │   ├── EndpointNotFoundError    REST "Not Found" for an endpoint
    │   ├── RateLimitedError         429 after honouring Retry-After
    │   └── ServerError              5xx after retries
    ├── GraphQLError                 the management API returned ``errors``
    ├── RemoteError                  remote cell code raised; carries the remote traceback
    ├── JobError                     a job ended badly (raised by ``Job.result``)
    │   ├── JobFailedError
    │   ├── JobCancelledError
    │   ├── JobTimedOutError
    │   ├── JobGoneError             "request does not exist": purged or expired
    │   └── WaitTimeoutError         still running after the time given to wait
    ├── PackagingError               the cell cannot be turned into a worker project
    │   ├── CellSyntaxError          Python cannot parse the cell (line and caret shown)
    │   ├── HandlerNotFoundError     no ``def handler`` (lists the functions it did find)
    │   ├── HandlerSignatureError    the handler cannot be called with one argument, the job
    │   ├── UnresolvedNamesError     the handler needs names the cell does not define
    │   ├── CaptureError             a ``--capture`` value cannot be shipped (not picklable …)
    │   └── RequirementError         an import cannot be mapped to something pip can install
    ├── ImageError                   the worker image could not be built or pushed
    │   ├── ImageReferenceError      an image name that cannot be parsed
    │   ├── RegistryError            the registry answered with an error
    │   │   ├── RegistryAuthError        credentials refused, or no permission to push/pull
    │   │   └── RegistryUnreachableError connection refused, DNS, TLS, timeouts
    │   ├── DependencyError          requirements.txt could not be installed for the image
    │   └── NoBuilderError           no way to build here (no registry access, no engine)
    ├── DeployError                  a deploy stopped; what it created was undone
    ├── ControlPlaneError            the embedded RunPod refuses a request, as RunPod would
    │   └── ProblemError             ... on REST v2: an HTTP status, a title, the errors found
    └── SidebarError                 what the sidebar API answers: an HTTP status and a reason

Messages and hints pass through :func:`runpod_jupyter.secret.redact`, so a key can never leak
through an exception, even when a server echoes it back; the code that raises them never formats a
password or token into them in the first place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .findings import Finding

from collections.abc import Sequence

from .secret import redact


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


class FlagError(ConfigError):
    """A flag's value cannot be read. A usage mistake: the magic shows it as IPython's
    ``UsageError``, the CLI as one line and exit status 2."""


class ShippingError(ConfigError):
    """A value a remote cell reads (or sends back) cannot travel; nothing was sent.
    ``refused`` maps each name to why."""

    def __init__(self, message: str, *, refused: dict[str, str] | None = None, hint: str | None = None) -> None:
        self.refused = dict(refused or {})
        super().__init__(message, hint=hint)


class VersionMismatchError(ConfigError):
    """The kernel and the worker differ in a version that pickles depend on (Python minor,
    cloudpickle, a shipped value's package); nothing was unpickled. ``differences`` lists them."""

    def __init__(self, message: str, *, differences: Sequence[str] = (), hint: str | None = None) -> None:
        self.differences = tuple(differences)
        super().__init__(message, hint=hint)


class RemoteError(RunpodError):
    """Code run on a worker raised. IPython shows the remote traceback (the cell's own line numbers),
    not the local frames that received it."""

    def __init__(
        self, message: str, *, error_type: str = "Exception", traceback: str = "", worker_id: str = "",
        hint: str | None = None,
    ) -> None:
        self.error_type = error_type
        self.traceback = redact(traceback)
        self.worker_id = worker_id
        super().__init__(message, hint=hint)

    def _render_traceback_(self) -> list[str]:
        lines = self.traceback.rstrip("\n").splitlines() if self.traceback else [f"{self.error_type}: {self.message}"]
        if self.hint:
            lines.extend(self.hint.splitlines())
        return lines


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


class WaitTimeoutError(JobError, TimeoutError):
    """The job is still running after the time given to wait; nothing was cancelled."""


class PackagingError(RunpodError):
    """The cell cannot be turned into a worker project; nothing was written."""


class CellSyntaxError(PackagingError):
    """Python cannot parse the cell."""

    def __init__(self, message: str, *, line: int | None, hint: str | None = None) -> None:
        self.line = line
        super().__init__(message, hint=hint)


class HandlerNotFoundError(PackagingError):
    """No function with the handler's name is defined in the cell."""

    def __init__(self, message: str, *, functions: Sequence[str] = (), hint: str | None = None):
        self.functions = tuple(functions)
        super().__init__(message, hint=hint)


class HandlerSignatureError(PackagingError):
    """The handler cannot be called the way the worker calls it: ``handler(job)``."""


class UnresolvedNamesError(PackagingError):
    """The kept code uses names that neither the cell nor the notebook can provide."""

    def __init__(self, message: str, *, names: Sequence[str], hint: str | None = None) -> None:
        self.names = tuple(names)
        super().__init__(message, hint=hint)


class CaptureError(PackagingError):
    """A value named with ``--capture`` cannot be shipped to the worker."""


class RequirementError(PackagingError):
    """An import cannot be turned into a pinned requirement (or a requirement line is invalid)."""


class ImageError(RunpodError):
    """The worker image could not be built or pushed."""


class ImageReferenceError(ImageError):
    """An image name such as ``user/repo:tag`` that does not follow the reference grammar."""


class RegistryError(ImageError):
    """A registry answered with an error status; ``status`` and ``code`` say which."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
        detail: Any = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(message, hint=hint)


class RegistryAuthError(RegistryError):
    """The registry (or its token service) refused the credentials or the requested access."""


class RegistryUnreachableError(RegistryError):
    """No HTTP conversation with the registry was possible."""


class DependencyError(ImageError):
    """The requirements could not be installed for the image's Python and platform."""

    def __init__(self, message: str, *, hint: str | None = None, output: str = "") -> None:
        self.output = output
        super().__init__(message, hint=hint)


class NoBuilderError(ImageError):
    """None of the requested builders can run on this machine."""


class DeployError(RunpodError):
    """The deploy stopped; ``findings`` and ``undone`` say why and what was cleaned up."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        findings: Sequence[Finding] = (),
        undone: Sequence[str] = (),
    ) -> None:
        self.findings = tuple(findings)
        self.undone = tuple(undone)
        super().__init__(message, hint=hint)


class ControlPlaneError(RunpodError):
    """A request the embedded RunPod refuses, as RunPod would; the message is what the caller sees."""


class ProblemError(ControlPlaneError):
    """A REST v2 request the embedded RunPod refuses, answered as RunPod's ``application/problem+json``:
    ``{title, status, detail, errors}`` (``detail`` is the message and hint)."""

    def __init__(
        self, status: int, title: str, message: str, *, hint: str | None = None, errors: Sequence[str] = (),
    ) -> None:
        self.status = status
        self.title = title
        self.errors = [redact(e) for e in errors]
        super().__init__(message, hint=hint)

    def to_json(self) -> dict[str, Any]:
        detail = f"{self.message} {self.hint}" if self.hint else self.message
        return {"title": self.title, "status": self.status, "detail": detail, "errors": self.errors}


class SidebarError(RunpodError):
    """A request the sidebar API refuses or cannot complete: an HTTP status, a message, a hint."""

    def __init__(self, status: int, message: str, *, hint: str | None = None, reason: str = "error") -> None:
        self.status = status
        self.reason = reason
        super().__init__(message, hint=hint)

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "hint": self.hint, "reason": self.reason}


__all__ = [
    "RunpodError", "ConfigError", "MissingApiKeyError", "FlagError", "ShippingError", "VersionMismatchError",
    "RemoteError", "PayloadTooLargeError", "TransportError",
    "SubmitUncertainError", "ApiError", "AuthenticationError", "EndpointNotFoundError",
    "RateLimitedError", "ServerError", "GraphQLError", "JobError", "JobFailedError",
    "JobCancelledError", "JobTimedOutError", "JobGoneError", "WaitTimeoutError", "PackagingError",
    "CellSyntaxError", "HandlerNotFoundError", "HandlerSignatureError", "UnresolvedNamesError",
    "CaptureError", "RequirementError", "ImageError", "ImageReferenceError", "RegistryError",
    "RegistryAuthError", "RegistryUnreachableError", "DependencyError", "NoBuilderError",
    "DeployError", "ControlPlaneError", "ProblemError", "SidebarError",
]
