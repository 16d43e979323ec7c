"""A runnable base image made from this machine's own files (no network): its Python, the ``runpod``
SDK with its dependencies from this environment, the shared libraries they load, and ``sh``/``env``.

Layers are built with the package's layer writer and cached outside the repository
(``platformdirs.user_cache_dir('runpod-jupyter-tests')``), keyed by what went into them, so only
the first run pays for compressing them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from runpod_jupyter.image.layers import Dir, Layer, Symlink, write_layer

FORMAT = 3
_SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "__pycache__",
                "config-3.11-x86_64-linux-gnu", "pydoc_data"}
_LDD = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def cache_root() -> Path:
    import platformdirs

    path = Path(platformdirs.user_cache_dir("runpod-jupyter-tests", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def closure(root: str = "runpod") -> dict[str, metadata.Distribution]:
    """The installed distributions ``root`` needs, following requirements (and requested extras)."""
    found: dict[str, metadata.Distribution] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    for _ in range(10_000):
        if not todo:
            break
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append((req.name, frozenset(req.extras)))
    return found


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def _add_host_path(entries: dict, path: str, depth: int = 0) -> None:
    """Put ``path`` into the image as on the host: symlinked components as symlinks, then the file."""
    if depth > 20:
        raise RuntimeError(f"symlink loop at {path}")
    parts = Path(path).parts
    current = Path("/")
    for index, part in enumerate(parts[1:], start=1):
        current = current / part
        if current.is_symlink():
            target = os.readlink(current)
            entries[str(current)[1:]] = Symlink(target)
            resolved = Path(os.path.normpath(current.parent / target))
            rest = parts[index + 1:]
            _add_host_path(entries, str(resolved.joinpath(*rest)) if rest else str(resolved), depth + 1)
            return
    entries[str(current)[1:]] = current


def _libraries(elves: list[Path]) -> set[str]:
    out: set[str] = set()
    for start in range(0, len(elves), 64):
        batch = [str(p) for p in elves[start:start + 64]]
        proc = subprocess.run(["ldd", *batch], capture_output=True, text=True, timeout=120)
        out.update(_LDD.findall(proc.stdout))
    return out


def host_base_layers() -> tuple[list[Layer], dict[str, str], dict]:
    """(layers, packages the base provides, config) for a base made of host files."""
    prefix = Path(sys.base_prefix)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    python = prefix / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    dists = closure("runpod")
    packages = {key: dist.version for key, dist in dists.items()}
    key_material = json.dumps({"format": FORMAT, "python": sys.version, "prefix": str(prefix),
                               "packages": sorted(packages.items())}, sort_keys=True)
    key = hashlib.sha256(key_material.encode()).hexdigest()[:24]
    where = cache_root() / f"host-base-{key}"
    meta = where / "meta.json"
    if meta.is_file():
        saved = json.loads(meta.read_text())
        layers = [Layer(path=where / item["file"], digest=item["digest"], diff_id=item["diff_id"], size=item["size"])
                  for item in saved["layers"]]
        if all(layer.path.is_file() and layer.path.stat().st_size == layer.size for layer in layers):
            return layers, packages, saved["config"]

    site = f"{str(stdlib)[1:]}/site-packages"
    python_files: dict = {str(python)[1:]: python}
    for lib in (prefix / "lib").glob("libpython*.so*"):
        python_files[str(lib)[1:]] = lib
    for path in stdlib.rglob("*"):
        rel = path.relative_to(stdlib)
        if rel.parts[0] in _SKIP_STDLIB or "__pycache__" in rel.parts or path.suffix == ".pyc":
            continue
        if path.is_file() and not path.is_symlink():
            python_files[str(path)[1:]] = path
    sdk_files: dict = {}
    for dist in dists.values():
        for entry in dist.files or []:
            path = Path(dist.locate_file(entry)).resolve()
            if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
                continue
            try:
                rel = path.relative_to(Path(dist.locate_file("")).resolve())
            except ValueError:
                continue
            if rel.parts and rel.parts[0] == "..":
                continue
            sdk_files[f"{site}/{rel.as_posix()}"] = path

    system: dict = {"tmp": Dir(0o1777), "app": Dir(), "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
                    "etc/group": "root:x:0:\n", "etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
                    "usr/local/bin/python3.11": Symlink(str(python)), "usr/local/bin/python3": Symlink(str(python)),
                    "dev": Dir(), "proc": Dir()}
    for tool in ("/bin/sh", "/usr/bin/env"):
        _add_host_path(system, tool)
    elves = [p for p in [*python_files.values(), *sdk_files.values()] if isinstance(p, Path) and _is_elf(p)]
    shell_elves = [Path(os.path.realpath(t)) for t in ("/bin/sh", "/usr/bin/env")]
    for library in sorted(_libraries(elves + shell_elves)):
        _add_host_path(system, library)

    where.mkdir(parents=True, exist_ok=True)
    layers = [
        write_layer(system, where / "system.tar.gz", level=1),
        write_layer(python_files, where / "python.tar.gz", level=1),
        write_layer(sdk_files, where / "runpod-sdk.tar.gz", level=1),
    ]
    config = {
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": [f"PATH={prefix}/bin:/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
                   "Cmd": ["python3.11"]},
    }
    meta.write_text(json.dumps({
        "layers": [{"file": layer.path.name, "digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size}
                   for layer in layers],
        "config": config,
    }))
    return layers, packages, config
