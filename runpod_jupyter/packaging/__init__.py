"""Notebook cell → worker project directory (handler.py, requirements.txt, Dockerfile), and the
preflight checks run before a deploy.

::

    project = package_cell(cell_source, name="echo", user_ns=ipython.user_ns, capture=["LABELS"])
    findings = preflight(project, PreflightOptions(backend="cloud", gpu_ids=["ADA_24"]))
    if has_errors(findings): ...           # errors stop the deploy; show all findings either way

One module per step: :mod:`.source` reads the cell (what the handler needs, what is dropped and
why; with :mod:`.astutil` and :mod:`.imports`), :mod:`.namespace` resolves names from the
notebook (imports, ``--capture``),
:mod:`.requirements` pins imports to installed versions and copies local modules,
:mod:`.handler_file` and :mod:`.dockerfile` write the files, :mod:`.project` puts them in a
content-addressed directory, :mod:`.preflight` checks the result against the deploy options.
Failures raise :class:`~.errors.PackagingError` subclasses (message + hint, no traceback wall).

Design choices, in short: magics at the top level of a cell are stripped with a note (inside a
function they are an error); names from other cells are resolved to imports when they are modules
or importable objects, and shipped only when named with ``--capture`` (stdlib pickle, explicit on
purpose); local ``.py`` modules next to the notebook are copied into the project.
"""

from __future__ import annotations

from ..errors import (
                     CaptureError,
                     CellSyntaxError,
                     HandlerNotFoundError,
                     HandlerSignatureError,
                     PackagingError,
                     RequirementError,
                     UnresolvedNamesError,
)
from ..findings import Finding, format_findings, has_errors, sort_findings
from .namespace import CapturedValue
from .preflight import CHECKS, PreflightOptions, preflight
from .project import WorkerProject, package_cell, package_file, package_function
from .source import Dropped, HandlerKind

__all__ = [
    "package_cell", "package_file", "package_function", "WorkerProject", "Dropped", "HandlerKind",
    "CapturedValue", "preflight", "PreflightOptions", "CHECKS", "Finding", "has_errors",
    "sort_findings", "format_findings", "PackagingError", "CellSyntaxError", "HandlerNotFoundError",
    "HandlerSignatureError", "UnresolvedNamesError", "CaptureError", "RequirementError",
]
