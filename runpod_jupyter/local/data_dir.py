"""The embedded RunPod's data dir: served by one server at a time, and readable by its user only.

Two servers on one data dir would share one store: the second would kill the first one's workers
as orphans and overwrite its key. So a server takes an exclusive lock on ``server.lock`` before it
touches anything else there, holds it for its whole life, and writes its pid and URL into it so a
second one can say who holds it. The store keeps the server's key, which runs commands as the
user: the dir is 0700 and the files the server keeps at its top 0600, also when an existing data
dir had looser modes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

LOCK_NAME = "server.lock"
#: Files at the data dir's top that hold the key or what clients sent: the user's only.
PRIVATE_FILES = (
    "local.sqlite", "local.sqlite-wal", "local.sqlite-shm", "local.sqlite-journal", "server.log", LOCK_NAME,
)


def make_private(directory: Path) -> None:
    """Create the data dir 0700, and tighten the modes of one that exists."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    for name in PRIVATE_FILES:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).chmod(0o600)


class DataDirLock:
    """The exclusive right to serve a data dir, for the life of this process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        """Take the lock without waiting; :class:`ConfigError` naming the holder if another has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise _busy(self.directory, holder) from None
        self._fd = fd
        self._write({"pid": os.getpid(), "url": None})
        return self

    def announce(self, url: str) -> None:
        """Once listening: the URL a refused second server tells its user to use instead."""
        self._write({"pid": os.getpid(), "url": url})

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def _write(self, holder: dict[str, Any]) -> None:
        assert self._fd is not None
        data = json.dumps(holder).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)


def _read(fd: int) -> dict[str, Any]:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _busy(directory: Path, holder: dict[str, Any]) -> ConfigError:
    pid, url = holder.get("pid", "unknown"), holder.get("url")
    where = url or "still starting"
    use = (
        f"other clients take RUNPOD_ENDPOINT_BASE_URL={url}/v2 and RUNPOD_API_BASE_URL={url} with its key"
        if url else "`runpod-jupyter local status` shows the shared instance's URLs"
    )
    return ConfigError(
        f"The data dir {directory} is in use by another embedded RunPod (pid {pid}, {where}); "
        "this one did not start and changed nothing there.",
        hint=(
            "Use that one instead: runpod_jupyter.connect(\"local\") returns its settings, key included, "
            f"when it is the shared background instance the notebooks use; {use}. "
            "To serve this data dir here, stop that one first (`runpod-jupyter local stop` for the "
            "background instance, Ctrl-C in the terminal of a `local serve`), or pass another --data-dir."
        ),
    )
