"""Why a cell could not become a worker project. Every message names the line or name at fault,
and every hint says what to change.

::

    RunpodError
    └── PackagingError                 the cell cannot be turned into a worker project
        ├── CellSyntaxError            Python cannot parse the cell (line and caret shown)
        ├── HandlerNotFoundError       no ``def handler`` (lists the functions it did find)
        ├── HandlerSignatureError      the handler cannot be called with one argument, the job
        ├── UnresolvedNamesError       the handler needs names the cell does not define
        ├── CaptureError               a ``--capture`` value cannot be shipped (not picklable …)
        └── RequirementError           an import cannot be mapped to something pip can install

In a notebook these render as two short lines (what, then what to do) instead of a traceback:
IPython calls ``_render_traceback_`` when an exception defines it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..api.errors import RunpodError

__all__ = [
    "PackagingError", "CellSyntaxError", "HandlerNotFoundError", "HandlerSignatureError",
    "UnresolvedNamesError", "CaptureError", "RequirementError",
]


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
