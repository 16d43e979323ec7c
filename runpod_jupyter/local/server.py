"""HTTP face of the embedded RunPod (aiohttp), bound to 127.0.0.1 only.

Four kinds of routes:

* the cloud's job API, ``/v2/{endpoint_id}/run|runsync|status|stream|cancel|retry|health|purge-queue``,
  with Bearer auth, payload limits and rate limits — so ``runpod.Endpoint`` and our client work;
* RunPod's management REST API v2 (``/v2/serverless``, ``/v2/templates``; see :mod:`.v2`);
* the worker-facing routes the SDK's worker loop calls (``job-take``, ``job-stop``, ``job-done``,
  ``job-stream``, ``ping``), authenticated with a key only the workers get;
* ``/graphql`` (the management API) and ``/local/...``: routes that exist only here
  (worker lists with their states, logs per worker and per job, job timelines, and knobs to
  simulate balance and GPU capacity). They are documented as local-only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..embedded import LOCAL_KEY_ENV, read_state, write_state
from ..errors import ControlPlaneError
from . import door
from .data_dir import DataDirLock, make_private
from .engine import Engine
from .graphql_api import ManagementAPI
from .model import Options
from .store import Store
from .v2 import routes as rest_v2_routes
from .v2 import schema as v2_schema

RUN_LIMIT = 10 * 1000 * 1000
RUNSYNC_LIMIT = 20 * 1000 * 1000
#: RunPod's documented rate limits: requests per 10 seconds, per endpoint and route.
RATE_LIMITS = {"run": 1000, "runsync": 2000, "status": 2000, "stream": 2000, "cancel": 100, "purge-queue": 2}
NOT_FOUND = {"message": "Not Found"}
GONE = {"error": "request does not exist"}
SHUTDOWN_TIMEOUT = 1.0  # seconds a request still held open gets when the server stops

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":")), status=status,
        content_type="application/json", headers=headers,
    )


def _refused(exc: ControlPlaneError, status: int = 400) -> web.Response:
    """A request the door refused, answered as RunPod answers: ``{"error": ...}``."""
    return _json({"error": f"{exc.message} {exc.hint}" if exc.hint else exc.message}, status)


class RateLimiter:
    """A sliding window per (endpoint, route): 429 with Retry-After when it is full."""

    def __init__(self, limits: dict[str, int], window: float = 10.0) -> None:
        self.limits, self.window = limits, window
        self.hits: dict[tuple[str, str], collections.deque[float]] = {}

    def retry_after(self, endpoint_id: str, route: str) -> float | None:
        limit = self.limits.get(route)
        if limit is None:
            return None
        now = time.monotonic()
        hits = self.hits.setdefault((endpoint_id, route), collections.deque())
        while hits and now - hits[0] > self.window:
            hits.popleft()
        if len(hits) >= limit:
            return max(0.1, self.window - (now - hits[0]))
        hits.append(now)
        return None


class LocalRunPod:
    """The aiohttp application around one :class:`Engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.management = ManagementAPI(engine)
        self.limiter = RateLimiter(RATE_LIMITS)
        self.app = web.Application(client_max_size=RUNSYNC_LIMIT + 5 * 1000 * 1000)
        client, worker, local = self._client_auth, self._worker_auth, self._client_auth
        self.app.add_routes([
            web.get("/ping", self.ping),
            web.post("/graphql", client(self.graphql)),
            *rest_v2_routes(engine),  # before /v2/{ep}/...: /v2/serverless is not an endpoint id
            web.post("/v2/{ep}/run", client(self.run)),
            web.post("/v2/{ep}/runsync", client(self.runsync)),
            web.route("*", "/v2/{ep}/status/{job}", client(self.status)),
            web.route("*", "/v2/{ep}/stream/{job}", client(self.stream)),
            web.post("/v2/{ep}/cancel/{job}", client(self.cancel)),
            web.post("/v2/{ep}/retry/{job}", client(self.retry)),
            web.get("/v2/{ep}/health", client(self.health)),
            web.post("/v2/{ep}/purge-queue", client(self.purge)),
            web.get("/v2/{ep}/job-take/{worker}", worker(self.take)),
            web.get("/v2/{ep}/job-take-batch/{worker}", worker(self.take)),
            web.get("/v2/{ep}/job-stop/{worker}", worker(self.stop)),
            web.post("/v2/{ep}/job-done/{worker}/{job}", worker(self.done)),
            web.post("/v2/{ep}/job-stream/{worker}/{job}", worker(self.job_stream)),
            web.get("/v2/{ep}/ping/{worker}", worker(self.worker_ping)),
            web.get("/local/endpoints/{ep}/workers", local(self.local_workers)),
            web.get("/local/logs", local(self.local_logs)),
            web.get("/local/jobs/{job}", local(self.local_job)),
            web.get("/local/jobs", local(self.local_jobs)),
            web.post("/local/account", local(self.local_account)),
            web.post("/local/gpus", local(self.local_gpus)),
            web.get("/local/gpus", local(self.local_stock)),
        ])

    # -- auth ----------------------------------------------------------------------------------
    def _client_auth(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if "api_key" in request.query:  # RunPod's REST v2 takes the header only; URLs end up in logs
                return _json({"error": (
                    "Unauthorized: a key in the URL (?api_key=) is not accepted; send it in an "
                    "Authorization: Bearer <api key> header, and drop it from the URL."
                )}, 401)
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not door.same_secret(given, self.engine.options.api_key):
                return _json({"error": "Unauthorized: send Authorization: Bearer <api key>"}, 401)
            return await handler(request)

        return wrapped

    def _worker_auth(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            given = request.headers.get("Authorization", "")
            if not door.same_secret(given, self.engine.options.worker_key):
                return _json({"error": "Unauthorized worker"}, 401)
            return await handler(request)

        return wrapped

    def _limited(self, request: web.Request, route: str) -> web.Response | None:
        wait = self.limiter.retry_after(request.match_info["ep"], route)
        if wait is None:
            return None
        return _json({"error": f"rate limit exceeded for /{route}"}, 429, {"Retry-After": f"{wait:.1f}"})

    # -- client job API ------------------------------------------------------------------------
    async def ping(self, request: web.Request) -> web.Response:
        return _json({"ok": True, "pid": os.getpid()})

    async def graphql(self, request: web.Request) -> web.Response:
        try:
            payload = door.parse_json(await request.read())
        except ControlPlaneError as exc:
            return _json({"errors": [{"message": exc.message}]}, 400)
        status, body = self.management.handle(payload)
        return _json(body, status)

    async def _submission(self, request: web.Request, route: str, limit: int) -> tuple[Any, web.Response | None]:
        limited = self._limited(request, route)
        if limited is not None:
            return None, limited
        ep = self.engine.endpoint(request.match_info["ep"])
        if ep is None:
            return None, _json(NOT_FOUND, 404)
        raw = await request.read()
        if len(raw) > limit:
            return None, _json({"error": f"payload too large: {len(raw)} bytes, max {limit} bytes on /{route}"}, 413)
        try:
            body = door.submission(raw)
        except ControlPlaneError as exc:
            return None, _refused(exc)
        return (ep, body), None

    async def run(self, request: web.Request) -> web.Response:
        found, refused = await self._submission(request, "run", RUN_LIMIT)
        if refused is not None:
            return refused
        ep, body = found
        job = self.engine.queue.submit(ep, body, "run")
        return _json({"id": job.id, "status": job.status})

    async def runsync(self, request: web.Request) -> web.Response:
        found, refused = await self._submission(request, "runsync", RUNSYNC_LIMIT)
        if refused is not None:
            return refused
        ep, body = found
        try:
            wait_ms = int(request.query.get("wait", 90_000))
        except ValueError:
            wait_ms = 90_000
        job = self.engine.queue.submit(ep, body, "sync")
        await self.engine.queue.wait_final(job, max(1000, min(wait_ms, 300_000)) / 1000)
        return _json(job.status_view())

    async def _job(self, request: web.Request, route: str) -> tuple[Any, web.Response | None]:
        limited = self._limited(request, route)
        if limited is not None:
            return None, limited
        ep = self.engine.endpoint(request.match_info["ep"])
        if ep is None:
            return None, _json(NOT_FOUND, 404)
        job = self.engine.queue.job(ep, request.match_info["job"])
        if job is None:
            return None, _json(GONE, 404)
        return (ep, job), None

    async def status(self, request: web.Request) -> web.Response:
        found, refused = await self._job(request, "status")
        return refused or _json(found[1].status_view())

    async def stream(self, request: web.Request) -> web.Response:
        found, refused = await self._job(request, "stream")
        return refused or _json(await self.engine.queue.stream(found[1]))

    async def cancel(self, request: web.Request) -> web.Response:
        found, refused = await self._job(request, "cancel")
        if refused is not None:
            return refused
        ep, job = found
        self.engine.queue.cancel(ep, job)
        return _json({"id": job.id, "status": job.status})

    async def retry(self, request: web.Request) -> web.Response:
        """A FAILED or TIMED_OUT job runs again, same id and input; anything else is a 400."""
        found, refused = await self._job(request, "retry")
        if refused is not None:
            return refused
        ep, job = found
        try:
            self.engine.queue.retry(ep, job)
        except ControlPlaneError as exc:
            return _refused(exc)
        return _json({"id": job.id, "status": job.status})

    async def health(self, request: web.Request) -> web.Response:
        ep = self.engine.endpoint(request.match_info["ep"])
        # As on RunPod: "Not Found" until a first worker of the endpoint has registered.
        return _json(self.engine.health(ep)) if ep is not None and ep.registered else _json(NOT_FOUND, 404)

    async def purge(self, request: web.Request) -> web.Response:
        limited = self._limited(request, "purge-queue")
        if limited is not None:
            return limited
        ep = self.engine.endpoint(request.match_info["ep"])
        if ep is None:
            return _json(NOT_FOUND, 404)
        return _json({"removed": self.engine.queue.purge(ep), "status": "completed"})

    # -- worker-facing -------------------------------------------------------------------------
    async def take(self, request: web.Request) -> web.Response:
        batch = "job-take-batch" in request.path
        size = _int(request.query.get("batch_size"), 1) if batch else 1
        jobs = await self.engine.worker_api.take(request.match_info["ep"], request.match_info["worker"], max(1, size))
        if not jobs:
            return web.Response(status=204)
        return _json(jobs if batch else jobs[0])

    async def stop(self, request: web.Request) -> web.Response:
        ids = await self.engine.worker_api.stop_poll(request.match_info["ep"], request.match_info["worker"])
        return _json({"jobsToStop": ids}) if ids else web.Response(status=204)

    async def _worker_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        """A worker's post, read raw (the SDK labels its JSON text application/x-www-form-urlencoded).
        One that cannot be read fails its job with the reason, rather than leave it running."""
        try:
            body = door.parse_json(await request.read(), empty={})
        except ControlPlaneError as exc:
            why = f"the worker's result could not be read: {exc.message}"
            self.engine.worker_api.job_unreadable(request.match_info["worker"], request.match_info["job"], why)
            return _refused(exc)
        return body if isinstance(body, dict) else {"output": body}

    async def done(self, request: web.Request) -> web.Response:
        body = await self._worker_body(request)
        if isinstance(body, web.Response):
            return body
        self.engine.worker_api.job_done(request.match_info["worker"], request.match_info["job"], body)
        return _json({"ok": True})

    async def job_stream(self, request: web.Request) -> web.Response:
        body = await self._worker_body(request)
        if isinstance(body, web.Response):
            return body
        self.engine.worker_api.job_stream(request.match_info["worker"], request.match_info["job"], body)
        return _json({"ok": True})

    async def worker_ping(self, request: web.Request) -> web.Response:
        self.engine.worker_api.ping(request.match_info["worker"], dict(request.query))
        return _json({"ok": True})

    # -- local-only ----------------------------------------------------------------------------
    async def local_workers(self, request: web.Request) -> web.Response:
        ep = self.engine.endpoints.get(request.match_info["ep"])
        if ep is None:
            return _json(NOT_FOUND, 404)
        views = [w.view(ep.release) for w in self.engine.workers.values() if w.endpoint_id == ep.id]
        return _json({
            "endpointId": ep.id, "release": ep.release, "disabled": ep.disabled, "problem": ep.problem,
            "spent": round(ep.spent, 6), "queue": list(ep.queue), "workers": views,
        })

    async def local_logs(self, request: web.Request) -> web.Response:
        q = request.query
        ep, worker, job = q.get("endpoint_id"), q.get("worker_id"), q.get("job_id")
        try:
            since = door.query_number(q, "since", 0.0, 0.0, 1e12)
            limit = door.query_int(q, "limit", 500, 1, 5000)
        except ControlPlaneError as exc:
            return _refused(exc)
        lines = [
            entry
            for w in self.engine.workers.values()
            if (ep is None or w.endpoint_id == ep) and (worker is None or w.id == worker)
            for entry in w.logs
            if entry["t"] > since and (job is None or entry["job"] == job)
        ]
        lines.sort(key=lambda e: e["t"])
        return _json({"lines": lines[-limit:]})

    async def local_job(self, request: web.Request) -> web.Response:
        job = self.engine.jobs.get(request.match_info["job"])
        return _json(job.detail_view()) if job is not None else _json(GONE, 404)

    async def local_jobs(self, request: web.Request) -> web.Response:
        """The newest ``limit`` retained jobs (default 100), newest first."""
        ep = request.query.get("endpoint_id")
        try:
            limit = door.query_int(request.query, "limit", 100, 0, sys.maxsize)
        except ControlPlaneError as exc:
            return _refused(exc)
        newest = (j for j in reversed(self.engine.jobs.values()) if ep is None or j.endpoint_id == ep)
        return _json({"jobs": [j.detail_view() for j in itertools.islice(newest, limit)]})

    async def local_account(self, request: web.Request) -> web.Response:
        try:
            body = door.parse_json(await request.read(), empty={})
        except ControlPlaneError as exc:
            return _refused(exc)
        balance = body.get("balance") if isinstance(body, dict) else None
        if isinstance(balance, bool) or not isinstance(balance, (int, float)) or not abs(balance) <= 1e12:
            return _json({"error": 'send {"balance": <number>} (at most 1e12 either way)'}, 400)
        self.engine.billing.set_balance(body["balance"])
        return _json({"clientBalance": self.engine.billing.current_balance()})

    async def local_gpus(self, request: web.Request) -> web.Response:
        try:
            body = door.parse_json(await request.read(), empty={})
        except ControlPlaneError as exc:
            return _refused(exc)
        if not isinstance(body, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1_000_000 for v in body.values()
        ):
            return _json({"error": 'send {"POOL_ID": <capacity>, ...} (whole numbers from 0 to 1000000)'}, 400)
        self.engine.fleet.set_capacity(body)
        return _json({"gpus": self.engine.options.gpus})

    async def local_stock(self, request: web.Request) -> web.Response:
        """Per pool ``{capacity, inUse, free, availability}`` (see :mod:`.stock`)."""
        return _json({"gpus": self.engine.fleet.stock()})


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def parse_gpus(spec: str | None) -> dict[str, int]:
    """``"ADA_24=2,AMPERE_80=0"`` → ``{"ADA_24": 2, "AMPERE_80": 0}``."""
    out: dict[str, int] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        pool, _, count = part.partition("=")
        try:
            out[pool.strip()] = int(count)
        except ValueError:
            raise ValueError(f"bad --gpus entry {part!r}: use POOL=COUNT, e.g. ADA_24=2") from None
    return out


async def start_server(options: Options, port: int = 0) -> tuple[web.AppRunner, Engine, int]:
    """Bind 127.0.0.1, build the engine around the store, and start its clock."""
    store = Store(options.data_dir / "local.sqlite")
    engine = Engine(options, store)
    engine.load()
    server = LocalRunPod(engine)
    # On the way out, requests still held open (a /runsync wait, a stream's hold) get this long.
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    options.control_url = f"http://127.0.0.1:{bound}"
    engine.start()
    asyncio.get_running_loop().run_in_executor(None, _warm_schema)
    return runner, engine, bound


def _warm_schema() -> None:
    """Build REST v2's request checks in the background (see :func:`.v2.schema.warm`); should it
    fail, the first request that needs them builds them and reports the error."""
    with contextlib.suppress(Exception):
        v2_schema.warm()


async def _serve(options: Options, port: int, state_file: Path | None, announce: bool, lock: DataDirLock) -> None:
    runner, engine, bound = await start_server(options, port)
    lock.announce(options.control_url)
    if state_file is not None:
        write_state(state_file, pid=os.getpid(), port=bound, api_key=options.api_key, data_dir=options.data_dir)
    if announce:
        print(f"Embedded RunPod listening on 127.0.0.1:{bound}", flush=True)
        print(f"  REST     http://127.0.0.1:{bound}/v2   (RUNPOD_ENDPOINT_BASE_URL)", flush=True)
        print(f"  GraphQL  http://127.0.0.1:{bound}/graphql   (RUNPOD_API_BASE_URL=http://127.0.0.1:{bound})", flush=True)
        print(f"  data     {options.data_dir}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await engine.shutdown()
    await runner.cleanup()
    engine.store.close()
    if state_file is not None and state_file.exists():
        state = read_state(state_file)
        if state and state.get("pid") == os.getpid():
            state_file.unlink()


def serve_forever(
    port: int = 0,
    api_key: str | None = None,
    gpus: str | None = None,
    data_dir: str | None = None,
    state_file: str | None = None,
    announce: bool = True,
    worker_quota: int | None = None,
    **tuning: Any,
) -> int:
    """Run in the foreground until SIGINT/SIGTERM (the ``local serve`` command). The key is
    ``api_key``, else ``$RUNPOD_JUPYTER_LOCAL_KEY``, else the one kept in the data dir, else a new
    one. When it cannot start it says why and what to do on stderr, and returns 1 (2 for a bad flag)."""
    from ..config import data_dir as default_data_dir
    from ..errors import RunpodError
    from ..secret import register_secret

    api_key = api_key or os.environ.pop(LOCAL_KEY_ENV, None)  # popped: workers never see it
    try:
        capacity = parse_gpus(gpus)
    except ValueError as exc:
        print(f"runpod-jupyter: {exc}", file=sys.stderr)
        return 2
    if worker_quota is not None:
        tuning["worker_limit"] = worker_quota
    directory = Path(data_dir) if data_dir else default_data_dir() / "local"
    lock = DataDirLock(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock.acquire()  # before anything in the data dir is read or changed
        make_private(directory)
        store = Store(directory / "local.sqlite")
        key = api_key or store.get_value("api_key") or secrets.token_urlsafe(24)
        store.set_value("api_key", key)
        store.close()
    except RunpodError as exc:
        lock.release()
        print(f"runpod-jupyter: {exc}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        lock.release()
        print(f"runpod-jupyter: cannot use the data dir {directory}: {exc}", file=sys.stderr, flush=True)
        print("Pass a data dir this user can write with --data-dir.", file=sys.stderr, flush=True)
        return 1
    register_secret(key)
    options = Options(api_key=key, data_dir=directory, gpus=capacity, **tuning)
    try:
        asyncio.run(_serve(options, port, Path(state_file) if state_file else None, announce, lock))
    except RunpodError as exc:
        print(f"runpod-jupyter: {exc}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"runpod-jupyter: cannot listen on 127.0.0.1:{port}: {exc}", file=sys.stderr, flush=True)
        print("Choose another --port, or 0 for a free one.", file=sys.stderr, flush=True)
        return 1
    finally:
        lock.release()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m runpod_jupyter.local.server``: how the background instance is started (its key
    comes in ``$RUNPOD_JUPYTER_LOCAL_KEY``, never in argv, where ``ps`` would show it)."""
    parser = argparse.ArgumentParser(prog="runpod_jupyter.local.server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--gpus", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--state-file", default=None)
    parser.add_argument("--worker-quota", type=int, default=None)
    parser.add_argument("--tuning", default="{}", help="JSON of Options overrides (tests)")
    args = parser.parse_args(argv)
    return serve_forever(
        port=args.port, api_key=args.api_key, gpus=args.gpus, data_dir=args.data_dir,
        state_file=args.state_file, announce=True, worker_quota=args.worker_quota, **json.loads(args.tuning),
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
