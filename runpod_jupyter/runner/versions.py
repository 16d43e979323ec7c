"""What a pickle depends on, and the versions of it on this side.

A pickle made with one version of a library may load wrongly (or not at all) with another, and a
cloudpickled function carries bytecode that only its own Python minor version can run. So each
side says what it has: the Python minor version, cloudpickle's version, and the version of the
distribution of every module the pickled objects come from (their types, classes, functions and
the modules they refer to). The other side compares before it unpickles anything.
"""

from __future__ import annotations

import importlib.metadata as metadata
import io
import sys
import types
from collections.abc import Mapping
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from ..packaging.requirements import packages_distributions

#: Modules whose objects never need a version check: the standard library, the notebook itself,
#: and cloudpickle (checked on its own).
_UNCHECKED = frozenset({"__main__", "__mp_main__", "builtins", "cloudpickle", "_cloudpickle_wrapper"})


def python_minor() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def side_versions(packages: Mapping[str, str] | None = None) -> dict[str, Any]:
    """This side's versions, as they travel: Python minor, cloudpickle, and ``packages``."""
    return {"python": python_minor(), "cloudpickle": cloudpickle.__version__, "packages": dict(packages or {})}


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def packages_of(modules: set[str]) -> dict[str, str]:
    """Distribution → installed version, for the top-level modules given (stdlib and modules no
    distribution provides, such as a local ``mylib.py``, are left out)."""
    found: dict[str, str] = {}
    distributions = packages_distributions()
    for top in sorted(modules):
        if top in _UNCHECKED or top in sys.stdlib_module_names or top.startswith("_"):
            continue
        for dist in distributions.get(top, []):
            version = installed_version(dist)
            if version is not None:
                found[dist] = version
    return found


def _root(module: object) -> str | None:
    return module.split(".")[0] if isinstance(module, str) and module else None


class RecordingPickler(cloudpickle.Pickler):
    """cloudpickle, noting the top-level module of everything pickled."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=cloudpickle.DEFAULT_PROTOCOL)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        root = _root(kind.__module__)
        if root:
            self.modules.add(root)
        if isinstance(obj, types.ModuleType):
            module_root = _root(obj.__name__)
        else:
            module_root = _root(getattr(obj, "__module__", None)) if isinstance(obj, type) or callable(obj) else None
        if module_root:
            self.modules.add(module_root)
        return super().reducer_override(obj)


def dumps(value: Any) -> tuple[bytes, set[str]]:
    """``cloudpickle.dumps(value)`` and the top-level modules its objects come from."""
    buffer = io.BytesIO()
    pickler = RecordingPickler(buffer)
    pickler.dump(value)
    return buffer.getvalue(), pickler.modules


def differences(theirs: Mapping[str, Any], *, ours_name: str, theirs_name: str) -> list[str]:
    """What differs between the other side's versions and this one's (empty: all match)."""
    found: list[str] = []
    if theirs.get("python") != python_minor():
        found.append(f"Python {theirs.get('python')} on {theirs_name}, {python_minor()} on {ours_name}")
    if theirs.get("cloudpickle") != cloudpickle.__version__:
        found.append(f"cloudpickle {theirs.get('cloudpickle')} on {theirs_name}, "
                     f"{cloudpickle.__version__} on {ours_name}")
    for dist, version in sorted((theirs.get("packages") or {}).items()):
        mine = installed_version(dist)
        if mine is not None and mine != version:
            found.append(f"{dist} {version} on {theirs_name}, {mine} on {ours_name}")
    return found
