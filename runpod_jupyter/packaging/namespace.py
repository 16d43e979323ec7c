"""Names the handler uses that the cell does not define: find them in the notebook, or explain.

Resolution, for each such name, against the notebook namespace (``user_ns``):

1. **a module** (``np`` imported in an earlier cell) → an import line is generated
   (``import numpy as np``), and the module counts for ``requirements.txt``;
2. **a function or class from an importable module** (``pipeline`` from ``transformers``) → a
   ``from transformers import pipeline`` line, checked to give back the very same object;
3. **named with ``--capture``** → its current value is pickled with the standard :mod:`pickle`
   module into ``captured.pkl`` next to ``handler.py`` and loaded when the worker starts. Values
   that pickle refuses are refused here, with the reason. A value whose pickle refers to a class
   or function of the notebook itself is shipped only if this cell defines it (the caller checks
   ``CapturedValue.needs_defined``). Modules a value needs to be unpickled (``numpy`` for an
   array) are added to the requirements;
4. **anything else** (a value not captured, a function defined in another cell, a name defined
   nowhere) → :class:`~.errors.UnresolvedNamesError` listing every such name with what to do.

The same values give the same ``captured.pkl`` bytes, hence the same project directory (a set of
strings is the exception across kernels: its order follows the process's hash seed).

Capturing is explicit on purpose: shipping notebook state silently is how a worker ends up with a
2 GB pickle or a stale value. Functions are never pickled: a pickled function is only a reference
to its module, which a worker does not have for notebook code, so the fix is to move it into the
cell.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import CaptureError, UnresolvedNamesError
from ..findings import Finding
from .imports import ImportRef

_NOTEBOOK_MODULES = ("__main__", "__mp_main__")
_PICKLE_PROTOCOL = 4


@dataclass(frozen=True)
class CapturedValue:
    """A notebook value shipped with ``--capture``: never its contents in a repr, only its shape."""

    name: str
    type_name: str
    size: int  # bytes of its pickle
    needs_defined: tuple[str, ...] = ()  # notebook-level classes/functions the pickle refers to


@dataclass(frozen=True)
class Resolution:
    """What the free names became: import lines, captured values, and notes for the user."""

    import_lines: tuple[str, ...]
    imports: tuple[ImportRef, ...]
    captured: tuple[CapturedValue, ...]
    captured_blob: bytes | None  # the pickle written to captured.pkl, or None
    notes: tuple[Finding, ...]


def type_name(value: object) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _import_line_for_module(name: str, module: types.ModuleType) -> str:
    real = module.__name__
    if real == name:
        return f"import {real}"
    return f"import {real} as {name}"


def _import_line_for_object(name: str, value: object) -> str | None:
    """``from pkg import obj`` when importing it gives back this very object (shortest path)."""
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return None
    if module_name in _NOTEBOOK_MODULES or module_name == "builtins" or "." in qualname:
        return None
    parts = module_name.split(".")
    for end in range(1, len(parts) + 1):
        candidate = ".".join(parts[:end])
        module = sys.modules.get(candidate)
        if module is not None and getattr(module, qualname, None) is value:
            return f"from {candidate} import {qualname}" + (f" as {name}" if name != qualname else "")
    return None


class _RecordingPickler(pickle.Pickler):
    """A pickler that notes every class and function a value refers to (by module)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=_PICKLE_PROTOCOL)
        self.references: set[tuple[str, str]] = set()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type) or callable(obj):
            module = getattr(obj, "__module__", None)
            qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
            if isinstance(module, str) and isinstance(qualname, str):
                self.references.add((module, qualname))
        return NotImplemented


def pickle_value(name: str, value: object) -> tuple[bytes, set[tuple[str, str]]]:
    """Pickle one captured value, or say plainly why it cannot be shipped; also returns the
    (module, qualname) of every class and function the pickle refers to."""
    if isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", None) in _NOTEBOOK_MODULES:
        kind = "class" if isinstance(value, type) else "function"
        raise CaptureError(
            f"--capture {name}: `{name}` is a {kind} defined in the notebook; pickle stores only a "
            "reference to it, which the worker cannot resolve.",
            hint=f"Move the `{'class' if kind == 'class' else 'def'} {name}` into this cell.",
        )
    buffer = io.BytesIO()
    pickler = _RecordingPickler(buffer)
    try:
        pickler.dump(value)
    except Exception as exc:  # pickle raises TypeError, AttributeError, PicklingError, …
        raise CaptureError(
            f"--capture {name}: the value ({type_name(value)}) cannot be pickled with the standard "
            f"pickle module: {type(exc).__name__}: {exc}",
            hint=("Create it inside the cell instead (for a model or a client: in a function the "
                  "handler calls on its first job), or capture something simpler it is made from "
                  "(a path, a config dict)."),
        ) from None
    return buffer.getvalue(), pickler.references


def resolve_names(
    free_names: Sequence[str],
    user_ns: Mapping[str, Any] | None,
    capture: Sequence[str] = (),
    *,
    origin: str = "the cell",
    defined: frozenset[str] = frozenset(),
) -> Resolution:
    """Turn each free name into an import or a captured value; raise listing the rest."""
    ns = user_ns if user_ns is not None else {}
    capture_set = list(dict.fromkeys(capture))
    import_lines: set[str] = set()
    imports: list[ImportRef] = []
    notes: list[Finding] = []
    captured: list[CapturedValue] = []
    blobs: dict[str, bytes] = {}
    problems: list[tuple[str, str]] = []

    for name in capture_set:
        if not name.isidentifier():
            raise CaptureError(f"--capture {name!r}: not a Python name.",
                               hint="Pass variable names, e.g. --capture THRESHOLD,labels.")
        if name in defined:
            notes.append(Finding("info", "capture-unneeded",
                                 f"--capture {name}: {origin} defines `{name}` itself; the cell's "
                                 "definition is shipped, not the notebook's value."))
        elif name not in free_names:
            notes.append(Finding("info", "capture-unneeded",
                                 f"--capture {name}: the handler does not use `{name}`; not shipped."))

    for name in free_names:
        if name not in ns:
            problems.append((name, "defined nowhere: not in this cell, not in the notebook"
                             if user_ns is not None else f"not defined in {origin}"))
            continue
        value = ns[name]
        if isinstance(value, types.ModuleType):
            line = _import_line_for_module(name, value)
            import_lines.add(line)
            imports.append(ImportRef(value.__name__, None, False, "the notebook namespace"))
            notes.append(Finding("info", "import-added",
                                 f"`{name}` comes from the notebook: added `{line}` to handler.py"
                                 + (" (modules are imported, not captured)." if name in capture_set else ".")))
            continue
        if name in capture_set:
            blob, refs = pickle_value(name, value)
            needs = sorted({q.split(".")[0] for m, q in refs if m in _NOTEBOOK_MODULES})
            for module, _ in sorted(refs):
                if module not in _NOTEBOOK_MODULES:
                    imports.append(ImportRef(module, None, False, f"the captured value `{name}`"))
            blobs[name] = blob
            captured.append(CapturedValue(name, type_name(value), len(blob), tuple(needs)))
            continue
        from_line = _import_line_for_object(name, value)
        if from_line is not None:
            import_lines.add(from_line)
            imports.append(ImportRef(from_line.split()[1], None, False, "the notebook namespace"))
            notes.append(Finding("info", "import-added",
                                 f"`{name}` comes from the notebook: added `{from_line}` to handler.py."))
            continue
        defined_in = getattr(value, "__module__", None)
        if isinstance(value, (types.FunctionType, type)) and defined_in in _NOTEBOOK_MODULES:
            kind = "class" if isinstance(value, type) else "function"
            problems.append((name, f"a {kind} defined in another cell: move `{'class' if kind == 'class' else 'def'} "
                                   f"{name}` into this cell"))
        else:
            problems.append((name, f"a {type_name(value)} value from the notebook: ship it with "
                                   f"--capture {name}, or define it in this cell"))

    if problems:
        names = [n for n, _ in problems]
        detail = "\n".join(f"  {n}: {why}" for n, why in problems)
        raise UnresolvedNamesError(
            f"The handler uses {', '.join(f'`{n}`' for n in names)}, which {origin} does not define.",
            names=names,
            hint=(f"{detail}\n--capture pickles the current value with the standard pickle module "
                  "into captured.pkl, loaded when the worker starts."),
        )

    captured_blob: bytes | None = None
    if blobs:
        captured_blob = pickle.dumps({k: blobs[k] for k in sorted(blobs)}, protocol=_PICKLE_PROTOCOL)
        notes.append(Finding(
            "info", "captured",
            "Captured from the notebook (pickled into captured.pkl): "
            + ", ".join(f"{c.name} ({c.type_name}, {_size(c.size)})" for c in captured) + ".",
        ))
    return Resolution(tuple(sorted(import_lines)), tuple(imports), tuple(captured), captured_blob, tuple(notes))


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
