"""sqlite persistence for the embedded RunPod: templates, endpoints, jobs, account, volumes.

In-memory objects are the truth while the server runs; every change that matters after a restart
is written through here. Stream chunks and progress history are not persisted (a job that was
running when the server stopped is retried, so they would be rebuilt anyway).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
"""


class Store:
    """A thin, synchronous sqlite wrapper (one connection, used from the server's event loop)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
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

    # -- key/value (account balance, server key, counters) -----------------------------------
    def get_value(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_value(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))
