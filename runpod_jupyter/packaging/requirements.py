"""Imports → ``requirements.txt`` pinned to what the kernel has installed, and local modules.

The worker must run the same library versions the notebook ran, so every distribution the
shipped code imports is pinned ``name==version`` to the kernel's installed version: import names
are mapped to distributions with :func:`importlib.metadata.packages_distributions` (``cv2`` →
``opencv-python``, ``yaml`` → ``PyYAML``), names are canonical (PEP 503) and the file is sorted.
Standard-library modules (:data:`sys.stdlib_module_names`) are left out; ``runpod`` is always in,
pinned, because the generated ``handler.py`` starts the worker with it.

**Local modules** — a ``mylib.py`` or ``mylib/`` package next to the notebook that the cell
imports — are **copied into the worker project** (next to ``handler.py``, so the import works
unchanged), and their own imports are pinned the same way. Only files under ``local_dir`` (the
notebook's directory) count as local; a module found elsewhere that no distribution owns is an
error, because nothing could install it on the worker.

A module that is not installed in the kernel cannot be pinned: that is an error unless the import
is optional (inside ``try: … except ImportError``) or the caller names the requirement explicitly
(``requirements=["vllm==0.6.3"]``); explicit requirement lines always win over detected pins.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata as metadata
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import RequirementError
from ..findings import Finding
from .imports import ImportRef, collect_imports
from .source import parse_cell

#: Files generated next to handler.py: a local module must not take one of these names.
RESERVED_NAMES = frozenset({"handler", "captured", "requirements", "Dockerfile", "runpod-jupyter"})
MAX_LOCAL_BYTES = 20 * 1024 * 1024
_SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache", ".venv"}


@dataclass(frozen=True)
class LocalModule:
    """A module next to the notebook, copied into the project: files as (relative path, bytes)."""

    name: str
    files: tuple[tuple[str, bytes], ...]

    @property
    def is_package(self) -> bool:
        return any("/" in path for path, _ in self.files)


@dataclass(frozen=True)
class ResolvedRequirements:
    """Pinned requirement lines (sorted by canonical name), local modules, and what to tell the user."""

    lines: tuple[str, ...]
    local_modules: tuple[LocalModule, ...]
    notes: tuple[Finding, ...]

    def names(self) -> set[str]:
        return {canonicalize_name(Requirement(line).name) for line in self.lines}


def requirement_line(req: Requirement) -> str:
    """One requirement, written with its canonical name so equal inputs give equal lines."""
    name = canonicalize_name(req.name)
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    specifier = ",".join(sorted(str(s) for s in req.specifier))
    body = f"{name}{extras} @ {req.url}" if req.url else f"{name}{extras}{specifier}"
    return f"{body}; {req.marker}" if req.marker else body


def parse_extra(lines: Iterable[str]) -> dict[str, str]:
    """Validate requirement lines given by the user; canonical name → normalised line."""
    out: dict[str, str] = {}
    for raw in lines:
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise RequirementError(f"Invalid requirement {text!r}: {exc}",
                                   hint="Use pip's syntax, e.g. 'torch==2.4.1' or 'transformers>=4.44'.") from None
        out[canonicalize_name(req.name)] = requirement_line(req)
    return out


_Stamp = tuple[tuple[str, int | None], ...]
_dist_cache: tuple[_Stamp, Mapping[str, list[str]]] | None = None


def packages_distributions() -> Mapping[str, list[str]]:
    """``packages_distributions()`` (≈0.2 s), reused until a ``sys.path`` directory changes
    (``%pip install`` adds a ``*.dist-info`` there, which changes its mtime)."""
    global _dist_cache
    stamp: list[tuple[str, int | None]] = []
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamp.append((entry, None))
    key = tuple(stamp)
    if _dist_cache is None or _dist_cache[0] != key:
        _dist_cache = (key, metadata.packages_distributions())
    return _dist_cache[1]


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _in_site_packages(path: Path) -> bool:
    return any(part in ("site-packages", "dist-packages") for part in path.parts)


def _module_paths(spec: importlib.machinery.ModuleSpec) -> list[Path]:
    paths: list[Path] = []
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        paths.append(Path(spec.origin))
    paths.extend(Path(p) for p in (spec.submodule_search_locations or ()))
    return paths


def _find_spec(top: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


def _find_local_spec(top: str, local_dir: Path | None) -> importlib.machinery.ModuleSpec | None:
    """The module as found in the notebook's directory itself (what a kernel started there imports)."""
    if local_dir is None or not local_dir.is_dir():
        return None
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, [str(local_dir)])
    except (ImportError, ValueError, OSError):
        return None
    if spec is None or not any(_under(p, local_dir) and not _in_site_packages(p) for p in _module_paths(spec)):
        return None
    return spec


def _pick_distributions(ref_module: str, candidates: list[str]) -> list[str]:
    """For a namespace like ``google``, the distributions that ship the imported submodule."""
    if len(candidates) <= 1:
        return candidates
    parts = ref_module.split(".")
    for depth in range(len(parts), 1, -1):
        prefix = "/".join(parts[:depth])
        matching = []
        for dist in candidates:
            try:
                files = metadata.distribution(dist).files or []
            except metadata.PackageNotFoundError:
                continue
            if any(str(f).startswith(prefix + "/") or str(f).startswith(prefix + ".") for f in files):
                matching.append(dist)
        if matching:
            return matching
    return candidates


def _pin(dist: str) -> tuple[str, list[Finding]]:
    notes: list[Finding] = []
    d = metadata.distribution(dist)
    name = canonicalize_name(d.metadata["Name"] or dist)
    version = d.version
    try:
        parsed = Version(version)
        if parsed.local:
            public = parsed.public
            notes.append(Finding(
                "info", "local-version",
                f"{name} {version} is a local build; pinned as {name}=={public} (the PyPI build).",
                f"If the worker needs that exact build, pass requirements=[\"{name}=={version}\"] "
                "with the matching --extra-index-url in a custom base image.",
            ))
            version = public
    except InvalidVersion:
        pass
    direct = d.read_text("direct_url.json")
    if direct:
        try:
            info = json.loads(direct)
        except ValueError:
            info = {}
        local = info.get("dir_info", {}).get("editable") or str(info.get("url", "")).startswith("file:")
        if local or "vcs_info" in info:
            notes.append(Finding(
                "warning", "unpublished-install",
                f"{name} is installed from a local path or a VCS checkout; {name}=={version} may not "
                "exist on PyPI, so the image build could fail.",
                f"Pass the requirement explicitly (requirements=[\"{name} @ git+https://…\"]), or "
                "publish it.",
            ))
    return f"{name}=={version}", notes


def _local_files(paths: list[Path], name: str) -> tuple[tuple[str, bytes], ...]:
    files: list[tuple[str, bytes]] = []
    for path in paths:
        if path.is_file() and path.name != "__init__.py":
            files.append((f"{name}.py", path.read_bytes()))
            break
        package_dir = path.parent if path.is_file() else path
        for file in sorted(package_dir.rglob("*")):
            rel = file.relative_to(package_dir)
            if not file.is_file() or any(p in _SKIP_DIRS or p.startswith(".") for p in rel.parts) \
                    or file.suffix in (".pyc", ".pyo"):
                continue
            files.append((f"{name}/{rel.as_posix()}", file.read_bytes()))
        break
    files.sort()
    if sum(len(b) for _, b in files) > MAX_LOCAL_BYTES:
        raise RequirementError(
            f"The local module `{name}` is over {MAX_LOCAL_BYTES // 2**20} MB; too big to copy into "
            "the worker project.",
            hint="Make it an installable package (pip install -e) and pass it in requirements, or "
            "move its data to a network volume.",
        )
    return tuple(files)


def resolve_requirements(
    imports: Sequence[ImportRef],
    *,
    local_dir: Path | None,
    extra: Sequence[str] = (),
) -> ResolvedRequirements:
    """Pin every non-stdlib distribution imported; copy local modules; explain the rest."""
    explicit = parse_extra(extra)
    distributions = packages_distributions()
    pins: dict[str, str] = {}
    notes: list[Finding] = []
    local: dict[str, LocalModule] = {}
    problems: list[str] = []
    seen: set[str] = set()
    queue = list(imports)
    importlib.invalidate_caches()

    while queue:
        ref = queue.pop(0)
        top = ref.module.split(".")[0]
        if not top or top == "__future__" or top in sys.stdlib_module_names or top in sys.builtin_module_names:
            continue
        key = f"{top}|{ref.module}"
        if key in seen or top in local:
            continue
        seen.add(key)
        if canonicalize_name(top) in explicit:
            continue
        local_spec = _find_local_spec(top, local_dir)
        spec = local_spec or _find_spec(top)
        if spec is None:
            where = f" (line {ref.line} of {ref.origin})" if ref.line else f" ({ref.origin})"
            if ref.optional:
                notes.append(Finding("info", "optional-import",
                                     f"`{top}` is imported inside try/except{where} and is not installed "
                                     "in this kernel: not added to requirements."))
            elif explicit:
                notes.append(Finding("warning", "unpinned-import",
                                     f"`{top}`{where} is not installed in this kernel; assuming one of the "
                                     "requirements you passed provides it.",
                                     "Check that the worker can import it (run handler.py with --test_input)."))
            else:
                problems.append(f"`{top}`{where} is not installed in this kernel, so its version "
                                "cannot be pinned")
            continue
        paths = _module_paths(spec)
        if local_spec is not None:
            if top in RESERVED_NAMES:
                raise RequirementError(
                    f"The local module `{top}` would clash with a generated file of the worker project.",
                    hint=f"Rename {top}.py (e.g. to my_{top}.py) and its imports.",
                )
            module = LocalModule(top, _local_files(paths, top))
            local[top] = module
            for path, data in module.files:
                if path.endswith(".py"):
                    try:
                        _, tree, _ = parse_cell(data.decode("utf-8", "replace"), origin=path)
                    except Exception:  # a broken local module fails on the worker the same way
                        continue
                    queue.extend(collect_imports(tree.body, origin=f"the local module {path}",
                                                 allow_relative=True))
            continue
        candidates = _pick_distributions(ref.module, list(distributions.get(top, [])))
        if not candidates:
            shown = paths[0] if paths else "an unknown place"
            problems.append(f"`{top}` is importable (from {shown}) but no installed distribution "
                            "provides it, so pip could not install it on the worker")
            continue
        for dist in candidates:
            line, pin_notes = _pin(dist)
            name = line.split("==")[0]
            if name not in pins and name not in explicit:
                pins[name] = line
                notes.extend(pin_notes)

    if problems:
        raise RequirementError(
            "Some imports cannot be turned into requirements: " + "; ".join(problems) + ".",
            hint=("Install them in the kernel (%pip install NAME) so the version can be pinned, or "
                  "name the requirement explicitly (requirements=[\"NAME==VERSION\"] / --requirement)."),
        )

    if "runpod" not in pins and "runpod" not in explicit:
        try:
            pins["runpod"] = _pin("runpod")[0]
        except metadata.PackageNotFoundError:
            pins["runpod"] = "runpod"
            notes.append(Finding("warning", "runpod-unpinned",
                                 "The runpod SDK is not installed in this kernel; requirements.txt asks "
                                 "for the newest runpod.", "pip install runpod in the kernel."))
    merged = {**pins, **explicit}
    for module_name in sorted(local):
        notes.append(Finding("info", "local-module",
                             f"Copied the local module `{module_name}` ({len(local[module_name].files)} file(s)) "
                             "into the worker project."))
    return ResolvedRequirements(
        lines=tuple(merged[k] for k in sorted(merged)),
        local_modules=tuple(local[k] for k in sorted(local)),
        notes=tuple(notes),
    )
