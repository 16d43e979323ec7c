"""A runner job's streamed chunks → events the notebook shows or binds.

Output and Display events are plain JSON. The last chunk, Done, carries pickles: they are loaded
only after the worker's versions match the kernel's (Python minor, cloudpickle, and the package of
every value coming back); a mismatch raises :class:`~runpod_jupyter.errors.VersionMismatchError`
and nothing is unpickled. A value that fails to load here (it needs a package the kernel lacks, or
the worker's device) is named in ``Done.refused`` and the others are kept.
"""

from __future__ import annotations

import base64
import importlib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from ..errors import VersionMismatchError
from . import versions
from .wire import FORMAT


@dataclass(frozen=True)
class Output:
    """stdout/stderr text as printed, in order."""

    name: str  # "stdout" | "stderr"
    text: str


@dataclass(frozen=True)
class Display:
    """Rich output: ``display(obj)``, a matplotlib figure, HTML ... as a mimebundle."""

    data: dict[str, Any]  # "text/plain", "text/html", "image/png" (base64 str) ...
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Done:
    """The cell or call ended normally; always the last event of a good run.

    ``refused`` maps a name (for a call: ``"return"``) to why its value could not come back."""

    values: dict[str, Any]
    refused: dict[str, str]
    result: dict[str, Any] | None
    value: Any
    worker_id: str


@dataclass(frozen=True)
class Failed:
    """The remote code raised, or the worker refused the job (``error_type`` "VersionMismatch")."""

    error_type: str
    message: str
    traceback: str
    worker_id: str


Event = Output | Display | Done | Failed


def read_event(output: Any, *, user_ns: dict[str, Any] | None = None) -> Event:
    """One streamed chunk's output (as the job API's /stream returns it) → an Event.

    Pickles are loaded only after the version check. With ``user_ns``, functions and classes the
    remote cell defined get the notebook's namespace as their globals, as if defined locally."""
    if not isinstance(output, dict) or "kind" not in output:
        raise VersionMismatchError(
            f"The runner answered with something that is not a runner event: {str(output)[:200]!r}.",
            hint="The endpoint's handler is not the runner's; delete the runner endpoint so it is made again.",
        )
    if output.get("format") != FORMAT:
        raise VersionMismatchError(
            f"The runner's worker speaks wire format {output.get('format')!r}; this kernel speaks {FORMAT}.",
            differences=[f"wire format {output.get('format')} on the worker, {FORMAT} in the kernel"],
            hint="Delete the runner endpoint so it is made again with this version's handler.",
        )
    kind = output["kind"]
    if kind == "output":
        return Output(str(output.get("name", "stdout")), str(output.get("text", "")))
    if kind == "display":
        return Display(dict(output.get("data") or {}), dict(output.get("metadata") or {}))
    if kind == "failed":
        return Failed(str(output.get("error_type", "Exception")), str(output.get("message", "")),
                      str(output.get("traceback", "")), str(output.get("worker_id", "")))
    if kind == "done":
        return _done(output, user_ns)
    raise VersionMismatchError(f"Unknown runner event kind {kind!r}.",
                               hint="Delete the runner endpoint so it is made again with this version's handler.")


def _done(output: Mapping[str, Any], user_ns: dict[str, Any] | None) -> Done:
    worker = str(output.get("worker_id", ""))
    theirs = output.get("versions") or {}
    found = versions.differences(theirs, ours_name="the kernel", theirs_name=f"the worker {worker}".strip())
    if found:
        raise VersionMismatchError(
            "The worker's versions differ from the kernel's, so the values it sent back are not "
            "loaded: " + "; ".join(found) + ".",
            differences=found,
            hint="Make the runner again from this kernel's environment (its image pins the kernel's "
                 "versions), or install the worker's versions in the kernel.",
        )
    refused = {str(k): str(v) for k, v in (output.get("refused") or {}).items()}
    values: dict[str, Any] = {}
    for item in output.get("imports") or []:
        name = str(item["name"])
        try:
            values[name] = _import(str(item["module"]), item.get("qualname"))
        except Exception as exc:
            refused[name] = f"cannot be imported in the kernel ({type(exc).__name__}: {exc})"
    needs = output.get("needs") or {}
    for name, blob in (output.get("values") or {}).items():
        missing = [d for d in needs.get(name, []) if versions.installed_version(d) is None]
        if missing:
            refused[name] = f"needs {', '.join(missing)}, which the kernel does not have installed"
            continue
        try:
            values[name] = _load(blob)
        except Exception as exc:
            refused[name] = _load_failure(exc)
    if user_ns is not None:
        values = {name: adopt(value, user_ns) for name, value in values.items()}
    value: Any = None
    if output.get("value") is not None:
        try:
            value = _load(output["value"])
        except Exception as exc:
            refused["return"] = _load_failure(exc)
    result = output.get("result")
    return Done(values, refused, dict(result) if isinstance(result, dict) else None, value, worker)


def _load(blob: str) -> Any:
    return cloudpickle.loads(base64.b64decode(blob))


def _load_failure(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if any(word in text for word in ("CUDA", "cuda", "device")):
        return (f"cannot be loaded in the kernel ({text}); it needs the worker's device: bring back a "
                "copy in host memory (x.cpu())")
    return f"cannot be loaded in the kernel ({text})"


def _import(module: str, qualname: Any) -> Any:
    found: Any = importlib.import_module(module)
    for attr in (qualname or "").split(".") if qualname else ():
        found = getattr(found, attr)
    return found


def adopt(value: Any, user_ns: dict[str, Any]) -> Any:
    """A function or class defined by a remote cell, with the notebook's namespace as its globals
    (cloudpickle gives it a private copy of the few globals it used)."""
    if isinstance(value, types.FunctionType) and value.__module__ in ("__main__", "__mp_main__") \
            and value.__globals__ is not user_ns:
        return _rebind(value, user_ns)
    if isinstance(value, type) and value.__module__ in ("__main__", "__mp_main__"):
        for attr, member in list(vars(value).items()):
            if isinstance(member, types.FunctionType) and member.__globals__ is not user_ns:
                rebound = _rebind(member, user_ns)
                if rebound is not member:
                    try:
                        setattr(value, attr, rebound)
                    except (AttributeError, TypeError):  # a read-only class keeps its own globals
                        break
    return value


def _rebind(fn: types.FunctionType, user_ns: dict[str, Any]) -> types.FunctionType:
    """The same function reading the notebook's globals; unchanged when it uses one the notebook
    lacks (e.g. with ``--out``, a constant the cell defined but did not bring back)."""
    if any(name not in user_ns for name in fn.__code__.co_names if name in fn.__globals__):
        return fn
    new = types.FunctionType(fn.__code__, user_ns, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    new.__qualname__, new.__module__, new.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
    new.__annotations__ = fn.__annotations__
    return new
