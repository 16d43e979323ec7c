"""Tiny Python distributions made on the spot (wheels and sdists), so dependency installs in the
tests need no package index: ``--no-index --find-links <dir>``."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

BACKEND = '''\
"""In-tree PEP 517 backend: builds a wheel with the tag written below, without setuptools."""
import base64, hashlib, os, zipfile

NAME, VERSION, TAG = {name!r}, {version!r}, {tag!r}
FILES = {files!r}


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{{path}},sha256={{digest}},{{len(data)}}"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = f"{{NAME.replace('-', '_')}}-{{VERSION}}"
    name = f"{{dist}}-{{TAG}}.whl"
    purelib = "true" if TAG.endswith("none-any") else "false"
    entries = dict(FILES)
    entries[f"{{dist}}.dist-info/METADATA"] = f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n"
    entries[f"{{dist}}.dist-info/WHEEL"] = (
        f"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: {{purelib}}\\nTag: {{TAG}}\\n"
    )
    lines = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, text in sorted(entries.items()):
            data = text.encode()
            zf.writestr(path, data)
            lines.append(_record_line(path, data))
        lines.append(f"{{dist}}.dist-info/RECORD,,")
        zf.writestr(f"{{dist}}.dist-info/RECORD", "\\n".join(lines) + "\\n")
    return name
'''


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(
    where: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires: tuple[str, ...] = (),
    files: dict[str, str] | None = None,
) -> Path:
    """A valid wheel with one module ``<name>/__init__.py`` (plus ``files``)."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}"
    entries = {f"{module}/__init__.py": f"VERSION = {version!r}\n"}
    entries.update(files or {})
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    purelib = "true" if tag.endswith("none-any") else "false"
    entries[f"{dist}.dist-info/METADATA"] = metadata
    entries[f"{dist}.dist-info/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n"
    path = Path(where) / f"{dist}-{tag}.whl"
    lines = []
    with zipfile.ZipFile(path, "w") as zf:
        for inner, text in sorted(entries.items()):
            data = text.encode()
            zf.writestr(inner, data)
            lines.append(_record_line(inner, data))
        lines.append(f"{dist}.dist-info/RECORD,,")
        zf.writestr(f"{dist}.dist-info/RECORD", "\n".join(lines) + "\n")
    return path


def make_sdist(where: Path, name: str, version: str, *, wheel_tag: str = "py3-none-any") -> Path:
    """An sdist whose in-tree backend builds a wheel tagged ``wheel_tag`` (a pure one, or one that
    looks like a host-compiled extension: ``cp311-cp311-linux_x86_64``)."""
    module = name.replace("-", "_")
    root = f"{module}-{version}"
    files = {f"{module}/__init__.py": f"VERSION = {version!r}\n"}
    members = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": (
            "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n\n"
            f"[project]\nname = \"{name}\"\nversion = \"{version}\"\n"
        ),
        "backend.py": BACKEND.format(name=name, version=version, tag=wheel_tag, files=files),
        f"{module}/__init__.py": files[f"{module}/__init__.py"],
    }
    path = Path(where) / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for inner, text in sorted(members.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{inner}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path
