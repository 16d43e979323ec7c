"""What can go wrong between a worker project and a pushed image. Every message says what
happened; every ``hint`` says what to do next.

::

    RunpodError                          (runpod_jupyter.api.errors)
    └── BuildError                       the image could not be built or pushed
        ├── ImageReferenceError          an image name that cannot be parsed
        ├── RegistryError                the registry answered with an error
        │   ├── RegistryAuthError        credentials refused, or no permission to push/pull
        │   └── RegistryUnreachableError connection refused, DNS, TLS, timeouts
        ├── DependencyError              requirements.txt could not be installed for the image
        └── NoBuilderError               no way to build here (no registry access, no engine)

Messages pass through :func:`runpod_jupyter.config.redact` (in ``RunpodError``), and the code
that raises them never formats a password or token into them in the first place.
"""

from __future__ import annotations

from typing import Any

from ..api.errors import RunpodError

__all__ = [
    "BuildError", "ImageReferenceError", "RegistryError", "RegistryAuthError",
    "RegistryUnreachableError", "DependencyError", "NoBuilderError",
]


class BuildError(RunpodError):
    """The worker image could not be built or pushed."""


class ImageReferenceError(BuildError):
    """An image name such as ``user/repo:tag`` that does not follow the reference grammar."""


class RegistryError(BuildError):
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


class DependencyError(BuildError):
    """The requirements could not be installed for the image's Python and platform."""

    def __init__(self, message: str, *, hint: str | None = None, output: str = "") -> None:
        self.output = output
        super().__init__(message, hint=hint)


class NoBuilderError(BuildError):
    """None of the requested builders can run on this machine."""
