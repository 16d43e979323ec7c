"""sqlite persistence for the embedded RunPod: templates, endpoints and their releases, jobs, account, volumes.

In-memory objects are the truth while the server runs; every change that matters after a restart
is written through here. Large job inputs and outputs are the exception: they live only here (the
``payloads`` table), are read back when needed, and the space of expired ones is given back to the
file system (incremental vacuum). Stream chunks and progress history are not persisted (a job that was
running when the server stopped is retried, so they would be rebuilt anyway).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (id TEXT PRIMARY KEY, name TEXT UNIQUE, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_endpoint ON jobs (endpoint_id, status);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS volumes (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registry_auths (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spend (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS releases (id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payloads (
    job_id TEXT NOT NULL, part TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, part)
);
"""
#: Free pages worth reclaiming: below this, deleted rows' space is simply reused.
RECLAIM_BYTES = 8 * 1024 * 1024
#: At most this much is given back per call (0.1-0.2 s of work on a busy 2-core machine).
RECLAIM_STEP = 16 * 1024 * 1024


#: sqlite's own files next to the store; they hold the same data, so they get the same mode.
SIDECARS = ("-wal", "-shm", "-journal")


class Store:
    """A thin, synchronous sqlite wrapper (one connection, used from the server's event loop).

    The store keeps the server's key, so it and sqlite's files next to it are the user's only
    (0600). One that cannot be read raises :class:`ConfigError` naming the file and how to set it
    aside, before anything is written to it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size == 0:
            raise _unreadable(path, "it is empty (0 bytes), so it was truncated")
        for name in (path, *(path.with_name(path.name + suffix) for suffix in SIDECARS)):
            with contextlib.suppress(FileNotFoundError):
                name.chmod(0o600)
        old_mask = os.umask(0o077)  # sqlite creates its files (and the -wal/-shm like them) 0600
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            try:
                self._open()
            except sqlite3.DatabaseError as exc:
                self._db.close()
                raise _unreadable(path, str(exc)) from None
        finally:
            os.umask(old_mask)

    def _open(self) -> None:
        """WAL mode, the schema, and a quick check that every page of the file can be read."""
        # A new store gives freed pages back step by step (see reclaim); it must be set before
        # the first table exists, and is a no-op on an existing file.
        self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems))
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- generic rows of JSON ----------------------------------------------------------------
    def put(self, table: str, row_id: str, data: dict[str, Any], **columns: Any) -> None:
        names = ["id", *columns, "data"]
        values = [row_id, *columns.values(), json.dumps(data, separators=(",", ":"))]
        marks = ",".join("?" * len(names))
        self._db.execute(f"INSERT OR REPLACE INTO {table} ({','.join(names)}) VALUES ({marks})", values)

    def delete(self, table: str, row_id: str) -> None:
        self._db.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        for (data,) in self._db.execute(f"SELECT data FROM {table}"):
            yield json.loads(data)

    # -- large job inputs and outputs, as JSON text (kept here, not in memory) ----------------
    def put_payload(self, job_id: str, part: str, text: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO payloads (job_id, part, data) VALUES (?, ?, ?)", (job_id, part, text))

    def payload(self, job_id: str, part: str) -> str | None:
        row = self._db.execute("SELECT data FROM payloads WHERE job_id = ? AND part = ?", (job_id, part)).fetchone()
        return row[0] if row else None

    def delete_payloads(self, job_id: str) -> None:
        self._db.execute("DELETE FROM payloads WHERE job_id = ?", (job_id,))

    def reclaim(self) -> bool:
        """Give the space of deleted rows back to the file system once there is much of it: an
        incremental vacuum of at most ``RECLAIM_STEP`` bytes (so the event loop is never held
        long), then a WAL checkpoint that truncates the log. True if more is left for a next call.
        The first time, one full VACUUM turns incremental auto-vacuum on (a WAL store cannot be
        created with it)."""
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0] * page_size
        if free < RECLAIM_BYTES:
            return False
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0:
            self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self._db.execute("VACUUM")
            free = 0
        else:
            # executescript steps the pragma to its end (one execute() frees a single page).
            self._db.executescript(f"PRAGMA incremental_vacuum({RECLAIM_STEP // page_size});")
            free -= RECLAIM_STEP
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return free >= RECLAIM_BYTES

    # -- key/value (account balance, server key, counters) -----------------------------------
    def get_value(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_value(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def _unreadable(path: Path, reason: str) -> ConfigError:
    return ConfigError(
        f"The embedded RunPod's store {path} cannot be read: {reason}.",
        hint=(
            f"Move it aside and start again with an empty store (its endpoints and jobs are not "
            f"carried over): mv {path} {path}.broken"
        ),
    )
