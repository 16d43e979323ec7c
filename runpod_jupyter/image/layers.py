"""Reproducible image layers: the same files always give the same bytes, hence the same digest.

A layer is a tar stream compressed with gzip. Everything that would make two builds of the same
files differ is fixed: entries sorted by path with explicit parent directories, modes normalised
(0755 for directories and executables, 0644 otherwise), owner root:root with empty names, one
mtime for all (``SOURCE_DATE_EPOCH`` or 0), PAX format, gzip header without a name or a time, a
fixed compression level, and no bytecode (``__pycache__``, ``*.pyc``). The tar is hashed (diff_id)
and the gzip is hashed (digest) while being written to a file, so a layer of any size is never
held in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

DEFAULT_LEVEL = 6
EXCLUDED_NAMES = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".DS_Store", ".mypy_cache", ".pytest_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Dir:
    """An explicit directory entry (for modes such as 1777 on ``/tmp``)."""

    mode: int = 0o755


@dataclass(frozen=True)
class Symlink:
    target: str


Source = bytes | str | Path | Dir | Symlink


@dataclass(frozen=True)
class Layer:
    """A gzip-compressed layer on disk, with the two hashes an image needs."""

    path: Path
    digest: str
    diff_id: str
    size: int

    def chunks(self, size: int = 1024 * 1024) -> Iterator[bytes]:
        """The compressed bytes, read in pieces (for a streamed upload)."""
        with open(self.path, "rb") as handle:
            while True:
                piece = handle.read(size)
                if not piece:
                    return
                yield piece


def source_date_epoch() -> int:
    """The fixed mtime of every entry: ``SOURCE_DATE_EPOCH`` when set (reproducible-builds.org), else 0."""
    try:
        return max(0, int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    except ValueError:
        return 0


def is_excluded(name: str) -> bool:
    return name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES)


def tree(src: Path, prefix: str, *, exclude: Callable[[str], bool] | None = None) -> dict[str, Source]:
    """Map every file, symlink and directory under ``src`` to ``prefix/relative/path``.

    Bytecode and VCS/editor clutter are left out; ``exclude`` gets the relative POSIX path and may
    leave out more.
    """
    src = Path(src)
    prefix = prefix.strip("/")
    out: dict[str, Source] = {}
    for root, dirs, files in os.walk(src, followlinks=False):
        kept = []
        for name in sorted(dirs):
            full = Path(root) / name
            rel = full.relative_to(src).as_posix()
            if is_excluded(name) or (exclude and exclude(rel)):
                continue
            if full.is_symlink():
                out[_join(prefix, rel)] = Symlink(os.readlink(full))
                continue
            out[_join(prefix, rel)] = Dir()
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            full = Path(root) / name
            rel = full.relative_to(src).as_posix()
            if is_excluded(name) or (exclude and exclude(rel)):
                continue
            out[_join(prefix, rel)] = Symlink(os.readlink(full)) if full.is_symlink() else full
    return out


def _join(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def _mode_for(source: Path) -> int:
    """0755 when the file is executable (POSIX bit, or a shebang where there are no bits), else 0644."""
    if os.name == "nt":
        with open(source, "rb") as handle:
            return 0o755 if handle.read(2) == b"#!" else 0o644
    return 0o755 if os.stat(source).st_mode & 0o111 else 0o644


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes to ``sink``."""

    def __init__(self, sink: BinaryIO | None) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data)
        self.hash.update(view)
        self.count += len(view)
        if self.sink is not None:
            self.sink.write(view)
        return len(view)


def _entries(files: Mapping[str, Source]) -> list[tuple[str, Source]]:
    """Normalise paths, add missing parent directories, sort."""
    entries: dict[str, Source] = {}
    for raw_path, source in files.items():
        path = PurePosixPath("/" + str(raw_path).replace("\\", "/")).as_posix().lstrip("/")
        if not path or ".." in PurePosixPath(path).parts:
            raise ValueError(f"refusing layer path {raw_path!r}")
        entries[path] = source
        parent = PurePosixPath(path).parent
        while str(parent) not in (".", "/", ""):
            entries.setdefault(parent.as_posix(), Dir())
            parent = parent.parent
    return sorted(entries.items(), key=lambda item: item[0])


def write_layer(
    files: Mapping[str, Source],
    dest: Path,
    *,
    level: int = DEFAULT_LEVEL,
    mtime: int | None = None,
) -> Layer:
    """Write ``{path in image: content}`` as a reproducible ``.tar.gz`` at ``dest``.

    Content is bytes/str (a file), a :class:`Path` (a file or directory on disk, streamed),
    :class:`Dir` or :class:`Symlink`.
    """
    mtime = source_date_epoch() if mtime is None else mtime
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    with open(partial, "wb") as out:
        compressed = _Hashing(out)
        gz = gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=compressed, mtime=0)
        plain = _Hashing(gz)  # type: ignore[arg-type]
        with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            for path, source in _entries(files):
                _add(archive, path, source, mtime)
        gz.close()
    os.replace(partial, dest)
    return Layer(
        path=dest,
        digest="sha256:" + compressed.hash.hexdigest(),
        diff_id="sha256:" + plain.hash.hexdigest(),
        size=compressed.count,
    )


def _info(path: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add(archive: tarfile.TarFile, path: str, source: Source, mtime: int) -> None:
    if isinstance(source, Dir):
        archive.addfile(_info(path, tarfile.DIRTYPE, source.mode, mtime))
        return
    if isinstance(source, Symlink):
        info = _info(path, tarfile.SYMTYPE, 0o777, mtime)
        info.linkname = source.target
        archive.addfile(info)
        return
    if isinstance(source, str):
        source = source.encode()
    if isinstance(source, bytes):
        info = _info(path, tarfile.REGTYPE, 0o755 if source.startswith(b"#!") else 0o644, mtime)
        info.size = len(source)
        archive.addfile(info, io.BytesIO(source))
        return
    source = Path(source)
    if source.is_symlink():
        info = _info(path, tarfile.SYMTYPE, 0o777, mtime)
        info.linkname = os.readlink(source)
        archive.addfile(info)
    elif source.is_dir():
        archive.addfile(_info(path, tarfile.DIRTYPE, 0o755, mtime))
    elif stat.S_ISREG(os.stat(source).st_mode):
        with open(source, "rb") as handle:
            info = _info(path, tarfile.REGTYPE, _mode_for(source), mtime)
            info.size = os.fstat(handle.fileno()).st_size
            archive.addfile(info, handle)
    # sockets, fifos and devices have no place in a worker layer: skipped


def copy_layer(layer: Layer, dest: Path) -> Layer:
    """A copy of ``layer`` at ``dest`` (same hashes: the bytes are the same)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    shutil.copyfile(layer.path, partial)
    os.replace(partial, dest)
    return Layer(path=dest, digest=layer.digest, diff_id=layer.diff_id, size=layer.size)


def read_entries(path: Path) -> list[tarfile.TarInfo]:
    """The entries of a layer file, for inspection and tests."""
    with tarfile.open(path, mode="r:gz") as archive:
        return archive.getmembers()


def iter_layer_files(path: Path) -> Iterable[tuple[tarfile.TarInfo, bytes | None]]:
    """Entries with the content of regular files (small layers only)."""
    with tarfile.open(path, mode="r:gz") as archive:
        for member in archive:
            data = archive.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            yield member, data
