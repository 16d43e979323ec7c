"""The job journal: every job submitted from here, kept in sqlite in the user data dir.

RunPod forgets a result 30 minutes after /run (1 minute after /runsync) and never lists jobs;
the journal remembers what was submitted, where, when, and how it ended, so ``%runpod_jobs``
can list and reattach to jobs after a kernel restart and the sidebar can show recent jobs.
Kernels, the Lab server and the CLI share the file (WAL mode, short busy timeout).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import data_dir
from .secret import redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    endpoint_name TEXT NOT NULL DEFAULT '',
    backend TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'run',
    batch_id TEXT,
    submitted_at REAL NOT NULL,
    input_preview TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'IN_QUEUE',
    reason TEXT,
    finished_at REAL,
    delay_ms INTEGER,
    execution_ms INTEGER,
    worker_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (submitted_at DESC);
CREATE INDEX IF NOT EXISTS jobs_by_endpoint ON jobs (endpoint_id, submitted_at DESC);
"""
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT", "GONE"})
PREVIEW_CHARS = 120


@dataclass(frozen=True)
class JournalEntry:
    id: str
    endpoint_id: str
    endpoint_name: str
    backend: str
    kind: str
    batch_id: str | None
    submitted_at: float
    input_preview: str
    status: str
    reason: str | None
    finished_at: float | None
    delay_ms: int | None
    execution_ms: int | None
    worker_id: str | None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "endpointId": self.endpoint_id, "endpointName": self.endpoint_name,
            "backend": self.backend, "kind": self.kind, "batchId": self.batch_id,
            "submittedAt": self.submitted_at, "inputPreview": self.input_preview, "status": self.status,
            "reason": self.reason, "finishedAt": self.finished_at, "delayMs": self.delay_ms,
            "executionMs": self.execution_ms, "workerId": self.worker_id,
        }


def preview(value: object) -> str:
    """A short, key-free text of an input, for lists (never the whole payload)."""
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    text = redact(text)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


class Journal:
    """One sqlite file; safe to use from several threads and processes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or data_dir() / "journal.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=5.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record_submit(
        self,
        job_id: str,
        *,
        endpoint_id: str,
        endpoint_name: str,
        backend: str,
        kind: str = "run",
        batch_id: str | None = None,
        payload: object = None,
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO jobs (id, endpoint_id, endpoint_name, backend, kind, batch_id, "
                "submitted_at, input_preview) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, endpoint_id, endpoint_name, backend, kind, batch_id, time.time(), preview(payload)),
            )

    def record_status(
        self,
        job_id: str,
        status: str,
        *,
        reason: str | None = None,
        delay_ms: int | None = None,
        execution_ms: int | None = None,
        worker_id: str | None = None,
    ) -> None:
        """Keep the latest status; a final status is never overwritten by a later one."""
        finished = time.time() if status in FINAL else None
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = ?, reason = COALESCE(?, reason), finished_at = COALESCE(finished_at, ?), "
                "delay_ms = COALESCE(?, delay_ms), execution_ms = COALESCE(?, execution_ms), "
                "worker_id = COALESCE(?, worker_id) "
                f"WHERE id = ? AND status NOT IN ({','.join('?' * len(FINAL))})",
                (status, redact(reason) if reason else None, finished, delay_ms, execution_ms, worker_id, job_id, *FINAL),
            )

    def get(self, job_id: str) -> JournalEntry | None:
        rows = list(self._select("WHERE id = ?", (job_id,)))
        return rows[0] if rows else None

    def jobs(
        self,
        *,
        endpoint_id: str | None = None,
        backend: str | None = None,
        batch_id: str | None = None,
        unfinished: bool = False,
        limit: int = 100,
    ) -> list[JournalEntry]:
        """Most recent first."""
        clauses: list[str] = []
        params: list[object] = []
        for column, value in (("endpoint_id", endpoint_id), ("backend", backend), ("batch_id", batch_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if unfinished:
            clauses.append(f"status NOT IN ({','.join('?' * len(FINAL))})")
            params.extend(FINAL)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return list(self._select(f"{where} ORDER BY submitted_at DESC LIMIT ?", (*params, int(limit))))

    def _select(self, tail: str, params: tuple[object, ...]) -> Iterator[JournalEntry]:
        columns = [
            "id", "endpoint_id", "endpoint_name", "backend", "kind", "batch_id", "submitted_at",
            "input_preview", "status", "reason", "finished_at", "delay_ms", "execution_ms", "worker_id",
        ]
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(columns)} FROM jobs {tail}", params).fetchall()
        for row in rows:
            yield JournalEntry(*row)


_shared: Journal | None = None
_shared_lock = threading.Lock()


def shared() -> Journal:
    """The process-wide journal for the current data dir."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.path != data_dir() / "journal.sqlite":
            _shared = Journal()
        return _shared
