"""A cell (or one function call) and the notebook values it reads → a runner job's input.

What travels, for each name the cell reads that the notebook has (:mod:`.analysis` finds them):

* a **module** (``np``) → an import redone on the worker (``import numpy as np``);
* an object **importable by module and qualified name** from a module other than the notebook's
  (``from transformers import pipeline``) → the same import;
* anything else → **pickled by value with cloudpickle** (functions and classes defined in the
  notebook included: cloudpickle carries their code), all values in one pickle so that notebook
  functions keep sharing one global namespace on the worker.

Everything is checked before anything is sent: a value that cannot be pickled (an open file, a
lock, a socket, a generator ...), that carries the RunPod API key or another known secret, or that
does not fit RunPod's payload limit is refused **by name**, with why and what to do, in one
:class:`~runpod_jupyter.errors.ShippingError`. The versions each pickle depends on travel with it
(:mod:`.versions`), so the worker refuses before it unpickles anything that would load wrongly.
"""

from __future__ import annotations

import ast
import base64
import builtins
import json
import linecache
import os
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..errors import CellSyntaxError, FlagError, ShippingError
from ..packaging.namespace import type_name
from ..secret import redact
from . import versions
from .analysis import cell_names
from .wire import DEFAULT_BUDGET, FORMAT, KIND_CALL, KIND_CELL

_NOTEBOOK_MODULES = ("__main__", "__mp_main__")
#: Names IPython puts in a notebook's namespace that mean nothing on a worker.
_KERNEL_ONLY = frozenset({
    "In", "Out", "get_ipython", "exit", "quit", "_ih", "_oh", "_dh", "display", "__builtins__",
    "__name__", "__doc__", "__spec__", "__loader__", "__package__", "__builtin__", "__IPYTHON__",
})
_SOURCE_LIMIT = 512 * 1024  # source text shipped for tracebacks through notebook functions

_ADVICE = (
    (("TextIOWrapper", "BufferedReader", "BufferedWriter", "FileIO", "BufferedRandom", "_io."),
     "an open file: pass its path and open it in the cell"),
    (("lock", "RLock", "Condition", "Semaphore", "_thread"),
     "a lock or another threading object: create it in the cell"),
    (("socket", "SSLContext", "SSLSocket", "Connection", "Session", "Client"),
     "a live connection: connect from the cell (ship the address or settings instead)"),
    (("generator", "coroutine", "async_generator"),
     "a generator: turn it into a list (`list(gen)`), or create it in the cell"),
    (("Secret",), "a credential that never leaves the kernel: give the worker its own (an endpoint "
                  "secret or env var)"),
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64_size(n: int) -> int:
    """Bytes of base64 text for ``n`` bytes."""
    return 4 * ((n + 2) // 3)


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# --------------------------------------------------------------------------- the cell


def parse(code: str, *, filename: str = "<cell>", first_line: int = 1) -> ast.Module:
    """The cell's syntax tree, or a CellSyntaxError naming the cell's own line."""
    try:
        return ast.parse(code, filename=filename)
    except SyntaxError as exc:
        line = (exc.lineno or 1) + first_line - 1
        shown = (exc.text or "").rstrip("\n")
        caret = f"\n    {shown}\n    {' ' * max((exc.offset or 1) - 1, 0)}^" if shown else ""
        raise CellSyntaxError(f"Line {line} of the cell: {exc.msg}.{caret}", line=line,
                              hint="Fix the syntax; nothing was sent.") from None


def _silent(code: str, tree: ast.Module) -> bool:
    """A last expression followed by ``;`` is not displayed, as in IPython."""
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return False
    last = tree.body[-1]
    lines = code.split("\n")
    end_line, end_col = last.end_lineno or 1, last.end_col_offset or 0
    rest = "\n".join([lines[end_line - 1][end_col:], *lines[end_line:]]) if end_line <= len(lines) else ""
    return rest.lstrip().startswith(";")


class Packed(NamedTuple):
    """A job's input, and the modules what it ships comes from (a cloud runner's image needs
    their packages; known from the pickling itself, so nothing is pickled twice)."""

    payload: dict[str, Any]
    modules: frozenset[str]


def pack_cell(code: str, user_ns: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """The job input for running ``code`` remotely (see :func:`packed_cell`)."""
    return packed_cell(code, user_ns, **options).payload


def packed_cell(
    code: str,
    user_ns: Mapping[str, Any],
    *,
    out: Sequence[str] | None = None,
    filename: str = "<cell>",
    first_line: int = 1,
    budget: int = DEFAULT_BUDGET,
) -> Packed:
    """The job input for running ``code`` remotely: the names the cell reads that the notebook
    has are shipped (modules as imports to redo remotely; other values cloudpickled by value),
    within ``budget`` bytes of JSON. Raises :class:`ShippingError` naming each value that cannot
    travel, with the reason and what to do, before anything is sent."""
    tree = parse(code, filename=filename, first_line=first_line)
    names = cell_names(tree)
    if out is not None:
        bad = [n for n in out if not isinstance(n, str) or not n.isidentifier()]
        if bad:
            raise FlagError(f"--out {', '.join(map(str, bad))}: not a Python name.",
                            hint="Pass the names to bring back, e.g. --out model,score.")
    shipped = {name: user_ns[name] for name in names.reads if _ships(name, user_ns)}
    imports, values = _split_imports(shipped)
    blob, pickled = _pickle_values(values, budget)
    payload: dict[str, Any] = {
        "kind": KIND_CELL, "format": FORMAT,
        "versions": versions.side_versions(versions.packages_of(pickled)),
        "imports": imports,
        "values": b64(blob) if blob is not None else None,
        "sources": _sources(values.values(), skip=filename),
        "code": code, "filename": filename, "first_line": int(first_line),
        "binds": list(names.binds),
        "out": list(dict.fromkeys(out)) if out is not None else None,
        "silent": _silent(code, tree),
    }
    _check_budget(payload, values, budget)
    return Packed(payload, frozenset({i["module"] for i in imports} | pickled))


def _ships(name: str, user_ns: Mapping[str, Any]) -> bool:
    if name not in user_ns or name in _KERNEL_ONLY:
        return False
    builtin = getattr(builtins, name, _ships)
    return user_ns[name] is not builtin  # a builtin shadowed in the notebook travels


# --------------------------------------------------------------------------- one call


def pack_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], **options: Any) -> dict[str, Any]:
    """The job input for one call remotely (see :func:`packed_call`)."""
    return packed_call(fn, args, kwargs, **options).payload


def packed_call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, budget: int = DEFAULT_BUDGET,
) -> Packed:
    """The job input for one call ``fn(*args, **kwargs)`` remotely (``fn`` cloudpickled by value
    when the notebook defines it, else by reference); same refusals as :func:`packed_cell`."""
    if not callable(fn):
        raise ShippingError(f"{fn!r} is not callable.", hint="Pass a function.")
    label = f"the function `{getattr(fn, '__name__', type(fn).__name__)}`"
    refused: dict[str, str] = {}
    blobs: dict[str, bytes] = {}
    modules: set[str] = set()
    for key, value in (("function", fn), ("arguments", (tuple(args), dict(kwargs)))):
        try:
            blob, found = versions.dumps(value)
        except Exception as exc:
            if key == "function":
                refused[label] = _why_not(label, fn, exc)
            else:
                refused.update(_argument_problems(args, kwargs))
            continue
        if _carries_secret(blob):
            refused[label if key == "function" else "the arguments"] = _SECRET_REASON
            continue
        blobs[key] = blob
        modules |= found
    if refused:
        _refuse(refused)
    payload: dict[str, Any] = {
        "kind": KIND_CALL, "format": FORMAT,
        "versions": versions.side_versions(versions.packages_of(modules)),
        "imports": [], "values": None,
        "sources": _sources([fn], skip=None),
        "function": b64(blobs["function"]), "arguments": b64(blobs["arguments"]),
    }
    size = len(json.dumps(payload))
    if size > budget:
        _refuse({
            label: f"{megabytes(len(blobs['function']))} pickled",
            "the arguments": f"{megabytes(len(blobs['arguments']))} pickled",
        }, summary=(f"The call comes to {megabytes(size)} of JSON; a job's input may be at most "
                    f"{megabytes(budget)}. Nothing was sent."), hint=_TOO_LARGE_HINT)
    return Packed(payload, frozenset(modules))


def _argument_problems(args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for label, value in [*((f"argument {i}", a) for i, a in enumerate(args)),
                         *((f"argument `{k}`", v) for k, v in kwargs.items())]:
        try:
            versions.dumps(value)
        except Exception as exc:
            found[label] = _why_not(label, value, exc)
    return found or {"the arguments": "cannot be pickled"}


# --------------------------------------------------------------------------- shared steps


def _split_imports(shipped: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Modules and importable objects become imports; the rest are values to pickle."""
    imports: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    for name, value in shipped.items():
        if isinstance(value, types.ModuleType):
            imports.append({"name": name, "module": value.__name__, "qualname": None})
            continue
        found = importable(value)
        if found is not None:
            imports.append({"name": name, "module": found[0], "qualname": found[1]})
        else:
            values[name] = value
    return imports, values


def importable(value: Any) -> tuple[str, str] | None:
    """(module, qualname) when importing gives back this very object from a module other than
    the notebook's (the shortest package path that works)."""
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    if module_name in _NOTEBOOK_MODULES or module_name == "builtins" and not isinstance(value, type):
        return None
    parts = module_name.split(".")
    for end in range(1, len(parts) + 1):
        candidate = ".".join(parts[:end])
        found: Any = sys.modules.get(candidate)
        for attr in qualname.split("."):
            found = getattr(found, attr, None)
        if found is value:
            return candidate, qualname
    return None


def _pickle_values(values: Mapping[str, Any], budget: int) -> tuple[bytes | None, set[str]]:
    """One cloudpickle of every value (so notebook functions share their globals on the worker)
    and the modules its objects come from; or the refusal of each value that cannot travel."""
    if not values:
        return None, set()
    try:
        blob, modules = versions.dumps(dict(values))
    except Exception:
        blob, modules = None, set()
    if blob is None or _carries_secret(blob):
        refused: dict[str, str] = {}
        for name, value in values.items():
            try:
                single, _ = versions.dumps(value)
            except Exception as exc:
                refused[name] = _why_not(name, value, exc)
                continue
            if _carries_secret(single):
                refused[name] = _SECRET_REASON
        _refuse(refused or {", ".join(values): "cannot be pickled together"})
    assert blob is not None
    return blob, modules


def _check_budget(payload: Mapping[str, Any], values: Mapping[str, Any], budget: int) -> None:
    size = len(json.dumps(payload))
    if size <= budget:
        return
    sizes: dict[str, int] = {}
    for name, value in values.items():
        sizes[name] = len(versions.dumps(value)[0])
    biggest = sorted(sizes.items(), key=lambda item: -item[1])
    refused: dict[str, str] = {}
    over = size - budget
    for name, n in biggest:
        refused[name] = f"{megabytes(n)} pickled ({megabytes(b64_size(n))} as base64)"
        over -= b64_size(n)
        if over <= 0:
            break
    if not refused:
        refused["the cell's code"] = f"{megabytes(len(payload.get('code', '')))}"
    _refuse(refused, summary=(
        f"The cell's input comes to {megabytes(size)} of JSON; RunPod takes at most "
        f"{megabytes(budget)} in one job. Nothing was sent."), hint=_TOO_LARGE_HINT)


_TOO_LARGE_HINT = ("Save large data where the worker can read it (a network volume, S3, a URL) and "
                   "ship its path, or build it in the cell on the worker.")
_SECRET_REASON = ("carries the RunPod API key or another known secret, which never leaves the "
                  "kernel: give the worker its own (an endpoint secret or env var)")


def _why_not(name: str, value: Any, exc: BaseException) -> str:
    """Why a value cannot be pickled, and what to do instead."""
    detail = redact(f"{type(exc).__name__}: {exc}")
    kind = type_name(value)
    if isinstance(value, types.FunctionType) and value.__module__ in _NOTEBOOK_MODULES:
        for global_name in value.__code__.co_names:
            if global_name in value.__globals__:
                used = value.__globals__[global_name]
                try:
                    versions.dumps(used)
                except Exception as inner:
                    why = _why_not(global_name, used, inner).removeprefix("is ")
                    return f"uses the notebook's `{global_name}`, which is {why}"
    text = f"{kind} {detail}"
    for needles, advice in _ADVICE:
        if any(n in text for n in needles):
            return f"is {advice} ({kind}; {detail})"
    return (f"is a {kind} that cannot be pickled ({detail}): create it in the cell, or ship "
            "something simpler it is made from (a path, a config dict)")


def _carries_secret(blob: bytes) -> bool:
    text = blob.decode("latin-1")
    key = os.environ.get("RUNPOD_API_KEY")
    return bool(key and len(key) >= 6 and key in text) or redact(text) != text


def _refuse(refused: Mapping[str, str], *, summary: str | None = None, hint: str | None = None) -> None:
    names = list(refused)
    shown = ", ".join(f"`{n}`" if " " not in n else n for n in names)
    detail = "\n".join(f"  {n}: {why}" for n, why in refused.items())
    raise ShippingError(
        summary or f"{shown} cannot travel to the worker; nothing was sent.",
        refused=dict(refused),
        hint=f"{detail}\n{hint}" if hint else detail,
    )


def _sources(values: Iterable[Any], *, skip: str | None) -> dict[str, str]:
    """The notebook source of the functions shipped (and their classes' methods), so a remote
    traceback through them shows their lines."""
    found: dict[str, str] = {}
    total = 0
    for value in values:
        codes: list[types.CodeType] = []
        if isinstance(value, types.FunctionType) and value.__module__ in _NOTEBOOK_MODULES:
            codes.append(value.__code__)
        elif isinstance(value, type) and value.__module__ in _NOTEBOOK_MODULES:
            codes.extend(v.__code__ for v in vars(value).values() if isinstance(v, types.FunctionType))
        for code in codes:
            filename = code.co_filename
            if filename in found or filename == skip:
                continue
            text = "".join(linecache.getlines(filename))
            if text and total + len(text) <= _SOURCE_LIMIT:
                found[filename] = text
                total += len(text)
    return found


# --------------------------------------------------------------------------- requirements


def requirements_for(*packed: Packed) -> list[str]:
    """The packages, pinned to the kernel's versions, that the jobs packed need on a worker image:
    a cell's own imports and the modules of everything shipped; ``runpod`` included."""
    from ..packaging.imports import ImportRef, collect_imports
    from ..packaging.requirements import resolve_requirements

    refs: list[ImportRef] = []
    modules: set[str] = set()
    for payload, shipped in packed:
        if payload["kind"] == KIND_CELL:
            refs.extend(collect_imports(parse(payload["code"], filename=payload["filename"],
                                              first_line=payload["first_line"]).body))
        modules |= shipped
    refs.extend(ImportRef(m, None, False, "the notebook namespace") for m in sorted(modules)
                if m.split(".")[0] not in _NOTEBOOK_MODULES and m.split(".")[0] not in ("builtins", "cloudpickle"))
    return list(resolve_requirements(refs, local_dir=None).lines)
