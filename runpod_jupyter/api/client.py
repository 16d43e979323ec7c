"""Sync and async clients. Every method is written once, on ``_ClientBase``: it builds a protocol
program and hands it to ``_call`` (or ``_iter`` for streams). ``Client`` drives programs with
blocking I/O and returns results; ``AsyncClient`` drives the same programs and returns awaitables.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .. import errors
from .._version import __version__
from ..config import Settings
from ..connect import connect
from . import graphql, rest, v2
from ._wire import Emit, Program, RatePacer, Reply, Request, RetryPolicy, Sleep, check_status
from .models import EndpointSpec, Policy, TemplateSpec
from .observed import LogLine, parse_sse

# `import runpod` sets the root logger to INFO (logging.basicConfig), after which httpx would log
# every request a widget poller makes into the notebook. Quiet unless someone chose a level.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, pool=120.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)
#: The async client fans out (a batch of jobs, many streams): a pool wide enough for that.
ASYNC_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)


class Endpoint:
    """The job API of one endpoint. On an ``AsyncClient`` every method returns an awaitable
    (and ``stream`` an async iterator)."""

    def __init__(self, client: _ClientBase, endpoint_id: str, *, request_urls: dict[str, str] | None = None) -> None:
        self._client = client
        self.id = endpoint_id
        self._job_base = job_base(request_urls or {}, endpoint_id)

    def __repr__(self) -> str:
        return f"Endpoint({self.id!r}, backend={self._client.settings.backend!r})"

    @property
    def _base(self) -> str:
        return self._job_base or self._client.settings.rest_base

    def run(
        self,
        payload: Any,
        *,
        webhook: str | None = None,
        policy: Policy | None = None,
        s3_config: dict[str, Any] | None = None,
    ) -> Any:
        """Queue a job; returns a ``Job`` snapshot (IN_QUEUE)."""
        return self._client._call(
            rest.run(self._base, self.id, payload, self._client.retry, webhook=webhook, policy=policy, s3_config=s3_config)
        )

    def runsync(
        self,
        payload: Any,
        *,
        wait_ms: int | None = None,
        webhook: str | None = None,
        policy: Policy | None = None,
        s3_config: dict[str, Any] | None = None,
    ) -> Any:
        """Run and wait up to ``wait_ms``; the returned job may still be running."""
        return self._client._call(
            rest.runsync(
                self._base, self.id, payload, self._client.retry,
                wait_ms=wait_ms, webhook=webhook, policy=policy, s3_config=s3_config,
            )
        )

    def status(self, job_id: str) -> Any:
        return self._client._call(rest.status(self._base, self.id, job_id, self._client.retry))

    def cancel(self, job_id: str) -> Any:
        return self._client._call(rest.cancel(self._base, self.id, job_id, self._client.retry))

    def health(self) -> Any:
        return self._client._call(rest.health(self._base, self.id, self._client.retry))

    def purge_queue(self) -> Any:
        return self._client._call(rest.purge_queue(self._base, self.id, self._client.retry))

    def stream(self, job_id: str, *, poll_interval: float = 0.5, timeout: float | None = None) -> Any:
        """Each streamed chunk's output, in order; ends when the job reaches any final state."""
        return self._client._iter(
            rest.stream(self._base, self.id, job_id, self._client.retry, poll_interval=poll_interval, timeout=timeout)
        )


class _ClientBase:
    """Configuration and every API method; subclasses supply only the I/O."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings or connect(backend, api_key)
        self.retry = retry or RetryPolicy()
        self.pacer = RatePacer()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.settings.backend!r}, rest_base={self.settings.rest_base!r})"

    def _headers(self) -> dict[str, str]:
        key = self.settings.api_key
        if key is None:
            if self.settings.backend == "cloud":
                raise errors.MissingApiKeyError()
            return {}
        return {"Authorization": f"Bearer {key.reveal()}"}

    def _request_args(self, step: Request) -> dict[str, Any]:
        return {
            "method": step.method,
            "url": step.url,
            "content": step.body,
            "params": step.params or None,
            "headers": {**self._headers(), **({"Content-Type": "application/json"} if step.body is not None else {})},
            "timeout": step.timeout if step.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        }

    @staticmethod
    def _reply(response: httpx.Response) -> Reply:
        return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)

    def _call(self, program: Program) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _iter(self, program: Program) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- job API ---------------------------------------------------------------------------
    def endpoint(self, endpoint_id: str, *, request_urls: dict[str, str] | None = None) -> Endpoint:
        """The job API of an endpoint: at the ``requestUrls`` REST v2 gave for it when known, else
        at the backend's job API base."""
        return Endpoint(self, endpoint_id, request_urls=request_urls)

    # -- management API (REST v2) -----------------------------------------------------------
    @property
    def _v2(self) -> str:
        return self.settings.manage_base

    def list_endpoints(self) -> Any:
        return self._call(v2.list_endpoints(self._v2, self.retry))

    def get_endpoint(self, endpoint_id: str) -> Any:
        """The endpoint, or None when the account has none with that id."""
        return self._call(v2.get_endpoint(self._v2, endpoint_id, self.retry))

    def save_endpoint(self, endpoint: EndpointSpec) -> Any:
        """Create (no id), or update every setting (with an id: a new release, which rolls)."""
        if endpoint.id:
            return self._call(v2.update_endpoint(self._v2, endpoint, self.retry))
        return self._call(v2.create_endpoint(self._v2, endpoint, self.retry))

    def delete_endpoint(self, endpoint_id: str) -> Any:
        return self._call(v2.delete_endpoint(self._v2, endpoint_id, self.retry))

    def workers(self, endpoint_id: str) -> Any:
        """:class:`~.observed.Workers`: each worker's state and whether it runs an older release."""
        return self._call(v2.workers(self._v2, endpoint_id, self.retry))

    def releases(self, endpoint_id: str) -> Any:
        """:class:`~.observed.Releases`: history newest first, with the rollout's progress."""
        return self._call(v2.releases(self._v2, endpoint_id, self.retry))

    def list_templates(self) -> Any:
        return self._call(v2.list_templates(self._v2, self.retry))

    def save_template(self, template: TemplateSpec) -> Any:
        return self._call(v2.create_template(self._v2, template, self.retry))

    def delete_template(self, template_id: str) -> Any:
        """By id (REST v2 deletes templates by id, not by name)."""
        return self._call(v2.delete_template(self._v2, template_id, self.retry))

    def gpu_catalog(self) -> Any:
        return self._call(v2.gpu_catalog(self._v2, self.retry))

    def serverless_billing(self, **query: str) -> Any:
        return self._call(v2.serverless_billing(self._v2, self.retry, **query))

    # -- management API (GraphQL: what REST v2 lacks, and older calls) ------------------------
    @property
    def _gql(self) -> str:
        return self.settings.graphql_url

    def create_network_volume(self, name: str, size_gb: int, data_center_id: str) -> Any:
        return self._call(v2.create_network_volume(self._v2, name, size_gb, data_center_id, self.retry))

    def list_network_volumes(self) -> Any:
        return self._call(v2.list_network_volumes(self._v2, self.retry))

    def gpu_types(self) -> Any:
        return self._call(v2.gpu_types(self._v2, self.retry))

    def gpu_stock(self) -> Any:
        """Stock per serverless pool: ``{"ADA_24": "HIGH", "AMPERE_80": "NONE", ...}`` (REST v2's catalog)."""
        return self._call(v2.gpu_stock(self._v2, self.retry))

    def account(self) -> Any:
        return self._call(graphql.account(self._gql, self.retry))

    def save_registry_auth(self, name: str, username: str, password: str) -> Any:
        return self._call(v2.create_registry(self._v2, name, username, password, self.retry))

    def update_registry_auth(self, auth_id: str, username: str, password: str) -> Any:
        """GraphQL: REST v2 registries have no update."""
        return self._call(graphql.update_registry_auth(self._gql, auth_id, username, password, self.retry))

    def list_registry_auths(self) -> Any:
        return self._call(v2.list_registries(self._v2, self.retry))

    def delete_registry_auth(self, auth_id: str) -> Any:
        return self._call(v2.delete_registry(self._v2, auth_id, self.retry))


def job_base(request_urls: dict[str, str], endpoint_id: str) -> str | None:
    """The job API base that REST v2's ``requestUrls`` point at (``.../v2`` from
    ``.../v2/{id}/run``), or None when they are missing or shaped otherwise."""
    run = request_urls.get("run", "")
    suffix = f"/{endpoint_id}/run"
    if run.startswith(("https://", "http://")) and run.endswith(suffix):
        return run.removesuffix(suffix)
    return None


def _user_agent() -> str:
    return f"runpod-jupyter/{__version__}"


#: Reading stock is advice, not a step: a few quick tries, then the deploy goes on without it.
STOCK_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0, max_retry_after=2.0)


def read_stock(settings: Settings, *, timeout: float = 10.0) -> dict[str, str] | None:
    """Stock per pool on the backend ``settings`` point at (cloud or embedded RunPod, the same
    REST v2 catalog), or None when it cannot be read: unknown stock is no reason to stop anything."""
    try:
        with Client(settings, retry=STOCK_RETRY, timeout=timeout) as client:
            return dict(client.gpu_stock())
    except errors.RunpodError:
        return None


class Client(_ClientBase):
    """Blocking client. ``transport`` lets tests reach a server in-process or inject faults."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(settings, backend=backend, api_key=api_key, retry=retry)
        self._http = httpx.Client(
            transport=transport, timeout=timeout, limits=DEFAULT_LIMITS, headers={"User-Agent": _user_agent()}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _perform(self, step: Any) -> Any:
        """Do one step's I/O; the value goes back into the program. A host whose ``RateLimit``
        says its window is spent is waited for first, instead of being sent into a 429."""
        if isinstance(step, Request):
            pause = self.pacer.delay(step.url, time.monotonic())
            if pause:
                time.sleep(pause)
            reply = self._reply(self._http.request(**self._request_args(step)))
            self.pacer.observe(step.url, reply.headers, time.monotonic())
            return reply
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        raise TypeError(f"unknown step {step!r}")

    def _drive(self, program: Program, result: list[Any]) -> Iterator[Any]:
        """Run a program: do its I/O, yield what it emits, put its return value in ``result``."""
        try:
            step = next(program)
            while True:
                if isinstance(step, Emit):
                    yield step.value
                    step = program.send(None)
                    continue
                try:
                    value = self._perform(step)
                except httpx.TransportError as exc:
                    step = program.throw(exc)
                    continue
                step = program.send(value)
        except StopIteration as stop:
            result.append(stop.value)
        finally:
            program.close()

    def _call(self, program: Program) -> Any:
        result: list[Any] = []
        for _ in self._drive(program, result):
            pass
        return result[0]

    def _iter(self, program: Program) -> Iterator[Any]:
        return self._drive(program, [])

    def worker_logs(
        self,
        endpoint_id: str,
        worker_id: str,
        *,
        source: str | None = None,
        tail: int | None = 100,
        since: str | None = None,
        last_event_id: str | None = None,
        idle: float = 1.0,
    ) -> Iterator[LogLine]:
        """A worker's log lines from REST v2's event stream: those logged so far, then new ones as
        they come, until the stream has been quiet for ``idle`` seconds or the worker exits.
        ``last_event_id`` resumes after that line (``Last-Event-ID``), so no line comes twice;
        following a worker across reads is :class:`runpod_jupyter.worker_logs.Follower`'s."""
        step = v2.log_request(self.settings.manage_base, endpoint_id, worker_id, source=source,
                              tail=0 if last_event_id else tail, since=None if last_event_id else since)
        headers = {**self._headers(), "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            with self._http.stream("GET", step.url, params=step.params, headers=headers,
                                   timeout=httpx.Timeout(30.0, read=idle)) as response:
                if response.status_code != 200:
                    response.read()
                    check_status(self._reply(response), what="read a worker's logs")
                yield from parse_sse(response.iter_lines(), worker_id)
        except httpx.ReadTimeout:
            return  # quiet for `idle` seconds: what was logged so far has come
        except httpx.TransportError as exc:
            raise errors.TransportError(f"Could not read worker {worker_id}'s log: {type(exc).__name__}.") from exc


class AsyncClient(_ClientBase):
    """asyncio client on one connection pool; methods return awaitables."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        limits: httpx.Limits = ASYNC_LIMITS,
    ) -> None:
        super().__init__(settings, backend=backend, api_key=api_key, retry=retry)
        if transport is None:
            from ._aiohttp import AiohttpTransport

            transport = AiohttpTransport(limit=limits.max_connections or 1000)
        self._http = httpx.AsyncClient(
            transport=transport, timeout=timeout, limits=limits, headers={"User-Agent": _user_agent()}
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _perform(self, step: Any) -> Any:
        if isinstance(step, Request):
            pause = self.pacer.delay(step.url, time.monotonic())
            if pause:
                await asyncio.sleep(pause)
            reply = self._reply(await self._http.request(**self._request_args(step)))
            self.pacer.observe(step.url, reply.headers, time.monotonic())
            return reply
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        raise TypeError(f"unknown step {step!r}")

    # StopIteration must not leave a coroutine (PEP 479), so the program is resumed right here.
    async def _drive(self, program: Program, result: list[Any]) -> AsyncIterator[Any]:
        try:
            step = next(program)
            while True:
                if isinstance(step, Emit):
                    yield step.value
                    step = program.send(None)
                    continue
                try:
                    value = await self._perform(step)
                except httpx.TransportError as exc:
                    step = program.throw(exc)
                    continue
                step = program.send(value)
        except StopIteration as stop:
            result.append(stop.value)
        finally:
            program.close()

    async def _call(self, program: Program) -> Any:
        result: list[Any] = []
        async for _ in self._drive(program, result):
            pass
        return result[0]

    def _iter(self, program: Program) -> AsyncIterator[Any]:
        return self._drive(program, [])
