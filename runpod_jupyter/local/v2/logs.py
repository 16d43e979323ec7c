"""``/v2/serverless/{id}/workers/{workerId}/logs``: a worker's log lines as Server-Sent Events,
following it live, as RunPod's v2 streams them.

Each event's id is the line's time plus its sequence number in the worker's log
(``2026-06-01T12:05:04Z/000000000042``, the document's example), so lines of the same second stay
apart and ``Last-Event-ID`` resumes right after the line it names. ``container`` lines are what the
worker printed; ``system`` lines are the embedded RunPod's own (started, exited). The stream ends
once the worker has exited and its lines are sent, or when the client goes; every wait is short."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from ..engine import Engine
from ..workers import WorkerPhase, WorkerRecord
from .http import HEADERS, problem
from .workers import endpoint_of, iso

SOURCES = ("container", "system")
#: Longest wait for a new line before looking again whether the worker is gone.
POLL = 1.0
#: A comment line this often keeps proxies open and finds a client that went away.
KEEPALIVE = 15.0
EVENT_ID = re.compile(r"^(?P<ts>[^/]+)/(?P<seq>\d{1,18})$")


def source_of(entry: dict[str, Any]) -> str:
    return "system" if entry.get("stream") == "system" else "container"


def event(entry: dict[str, Any]) -> bytes:
    ts = iso(entry["t"])
    line = entry.get("raw") or entry["message"]  # as the worker printed it (the SDK's JSON lines too)
    data = json.dumps({"ts": ts, "source": source_of(entry), "line": line}, separators=(",", ":"))
    return f"id: {ts}/{entry.get('seq', 0):012d}\ndata: {data}\n\n".encode()


def _instant(text: str, what: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise problem(400, f"{what} {text!r} is not an RFC 3339 date-time.",
                      hint="Send e.g. 2026-06-01T12:05:04Z.") from None
    if moment.tzinfo is None:
        raise problem(400, f"{what} {text!r} has no time zone.", hint="End it with Z or an offset, e.g. 2026-06-01T12:05:04Z.")
    return moment.timestamp()


class Logs:
    """The handler of a worker's log stream."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def stream(self, request: web.Request) -> web.StreamResponse:
        ep = endpoint_of(self.engine, request)
        if request.method != "GET":
            raise problem(405, f"{request.method} is not allowed on {request.path}.", hint="Use GET.")
        wanted, pick = self._filter(request)
        worker = self.engine.workers.get(request.match_info["workerId"])
        if worker is None or worker.endpoint_id != ep.id:
            raise problem(404, f"Worker {request.match_info['workerId']} of endpoint {ep.id} does not exist.",
                          hint=f"List its workers with GET /v2/serverless/{ep.id}/workers.")
        cursor = worker.log_seq
        backlog = pick([e for e in list(worker.logs) if e.get("seq", 0) <= cursor and source_of(e) in wanted])
        response = web.StreamResponse(headers={
            **(HEADERS.get() or {}), "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "Connection": "keep-alive", "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        try:
            for entry in backlog:
                await response.write(event(entry))
            await self._follow(request, worker, response, wanted, cursor)
        except ConnectionResetError:
            pass  # the client went away
        return response

    def _filter(self, request: web.Request) -> tuple[tuple[str, ...], Any]:
        """The sources asked for, and what picks the backlog: after ``Last-Event-ID``, else from
        ``since``, else the last ``tail`` lines."""
        query = request.query
        source = query.get("source")
        if source is not None and source not in SOURCES:
            raise problem(400, f"source must be container or system, not {source!r}.",
                          hint="Leave it out for both.")
        raw_tail = query.get("tail", "100")
        if not raw_tail.isdigit() or int(raw_tail) > 5000:
            raise problem(400, f"tail must be a whole number from 0 to 5000, not {raw_tail!r}.",
                          hint="E.g. tail=100 (the default), or tail=0 for live lines only.")
        tail = int(raw_tail)
        wanted = (source,) if source else SOURCES
        last = request.headers.get("Last-Event-ID", "").strip()
        if last:
            matched = EVENT_ID.match(last)
            if matched:
                after = int(matched["seq"])
                return wanted, lambda lines: [e for e in lines if e.get("seq", 0) > after]
            moment = _instant(last, "Last-Event-ID")
            return wanted, lambda lines: [e for e in lines if int(e["t"]) > moment]
        if "since" in query:
            since = _instant(query["since"], "since")
            return wanted, lambda lines: [e for e in lines if e["t"] >= since]
        return wanted, lambda lines: lines[len(lines) - tail:] if tail else []

    async def _follow(self, request: web.Request, worker: WorkerRecord, response: web.StreamResponse,
                      wanted: tuple[str, ...], cursor: int) -> None:
        """Send the worker's new lines as they come, until it has exited and they are all sent, or
        the client has gone."""
        quiet_since = time.monotonic()
        while request.transport is not None and not request.transport.is_closing():
            gone = worker.state == WorkerPhase.EXITED or self.engine.workers.get(worker.id) is not worker
            fresh = [e for e in list(worker.logs) if e.get("seq", 0) > cursor]
            for entry in fresh:
                cursor = max(cursor, entry.get("seq", 0))
                if source_of(entry) in wanted:
                    await response.write(event(entry))
                    quiet_since = time.monotonic()
            if gone:
                return
            if time.monotonic() - quiet_since > KEEPALIVE:
                await response.write(b": keepalive\n\n")
                quiet_since = time.monotonic()
            await worker.log_news.wait(POLL)
