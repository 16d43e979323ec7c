"""A worker project directory, as the builders see it.

The directory holds ``handler.py``, optionally ``requirements.txt`` and any helper files the
handler imports, and a ``Dockerfile`` for the engine builders. Everything but the Dockerfile,
``.dockerignore`` and what it lists, bytecode and editor/VCS clutter goes to ``/app`` in the image
(the same set a ``COPY . /app`` would take), which is why a handler edit only changes the small
handler layer.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ImageError
from .layers import Source, tree

APP_DIR = "/app"
HANDLER = "handler.py"
REQUIREMENTS = "requirements.txt"
DOCKERFILE = "Dockerfile"
#: Written by the packaging step: which base and ``python3.X`` the project was made for.
MANIFEST = "runpod-jupyter.json"
_NEVER_COPIED = (DOCKERFILE, ".dockerignore")


@dataclass(frozen=True)
class WorkerProject:
    """What is in a worker project: files bound for ``/app``, requirements, Dockerfile."""

    root: Path
    files: dict[str, Source]
    requirements: str
    dockerfile: Path | None
    source_hash: str
    manifest: dict = field(default_factory=dict)

    @property
    def handler_path(self) -> str:
        return f"{APP_DIR}/{HANDLER}"


def _ignore_patterns(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    patterns = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not line.startswith("!"):
            patterns.append(line.strip("/"))
    return patterns


def _ignored(rel: str, patterns: list[str]) -> bool:
    if rel in _NEVER_COPIED:
        return True
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel.split("/", 1)[0], p) for p in patterns)


def load_project(project_dir: str | Path) -> WorkerProject:
    """Read a worker project; refuse one without ``handler.py``."""
    root = Path(project_dir).expanduser().resolve()
    if not root.is_dir():
        raise ImageError(f"The worker project {root} does not exist.", hint="Pass the directory that holds handler.py.")
    if not (root / HANDLER).is_file():
        raise ImageError(
            f"{root} has no {HANDLER}.",
            hint="A worker project needs handler.py calling runpod.serverless.start(); "
                 "let the packaging step write it.",
        )
    patterns = _ignore_patterns(root)
    files = tree(root, APP_DIR, exclude=lambda rel: _ignored(rel, patterns))
    requirements_path = root / REQUIREMENTS
    requirements = requirements_path.read_text() if requirements_path.is_file() else ""
    dockerfile = root / DOCKERFILE
    try:
        manifest = json.loads((root / MANIFEST).read_text()) if (root / MANIFEST).is_file() else {}
    except (OSError, ValueError):
        manifest = {}
    return WorkerProject(
        root=root,
        files=files,
        requirements=requirements,
        dockerfile=dockerfile if dockerfile.is_file() else None,
        source_hash=source_hash(files),
        manifest=manifest if isinstance(manifest, dict) else {},
    )


def source_hash(files: dict[str, Source]) -> str:
    """sha256 over the sorted (path, content) pairs: the provenance label of the image."""
    digest = hashlib.sha256()
    for path in sorted(files):
        source = files[path]
        digest.update(path.encode() + b"\0")
        if isinstance(source, Path) and source.is_file() and not source.is_symlink():
            with open(source, "rb") as handle:
                for piece in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(piece)
        elif isinstance(source, (bytes, str)):
            digest.update(source.encode() if isinstance(source, str) else source)
        else:
            digest.update(repr(source).encode())
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()
