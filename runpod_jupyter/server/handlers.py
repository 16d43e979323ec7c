"""Authenticated REST handlers under ``{base_url}/runpod-jupyter/api/``.

Each handler parses and checks its input, runs the blocking work in the extension's executor
(never on tornado's loop), and answers JSON. Every body passes through
:func:`~runpod_jupyter.secret.redact` on its way out: keys never reach the browser, even when a
server or a worker log echoes one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ..config import cloud_credentials
from ..errors import SidebarError
from ..secret import redact
from . import actions
from .backends import Backends, check_backend
from .errors import bad_request, from_runpod, not_found
from .overview import OverviewCache

PREFIX = ("runpod-jupyter", "api")
SETTINGS_KEY = "runpod_jupyter"


@dataclass
class Service:
    """What the handlers share: backends, the executors and the overview cache."""

    backends: Backends
    executor: ThreadPoolExecutor
    fanout: ThreadPoolExecutor
    cache: OverviewCache


def scrub(text: str) -> str:
    """Redact every key this server knows, the configured cloud key included even when the
    cloud backend was never asked for anything (a local job may echo it)."""
    cloud_credentials()  # registers the key with `redact`
    return redact(text)


class SidebarHandler(APIHandler):
    """JSON in, JSON out; failures become ``{"message", "hint", "reason"}`` with their status."""

    @property
    def service(self) -> Service:
        return self.settings[SETTINGS_KEY]

    async def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` in the executor; a RunPod or sidebar error becomes the HTTP answer."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.service.executor, fn, *args)
        except SidebarError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated to a JSON error, never a traceback
            error = from_runpod(exc)
            if error.status >= 500:
                self.log.exception("runpod-jupyter: %s %s failed", self.request.method, self.request.path)
            raise error from None

    def body(self) -> Any:
        raw = self.request.body or b""
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise bad_request("The request body is not valid JSON.") from None

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(scrub(json.dumps(data, default=str)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, SidebarError):
            body = exc.to_json()
        elif isinstance(exc, tornado.web.HTTPError):
            body = {"message": exc.log_message or exc.reason or "HTTP error", "hint": None, "reason": exc.reason}
        else:
            body = {"message": "Internal error in the runpod-jupyter server extension.",
                    "hint": "See the Jupyter server log.", "reason": "internal"}
        self.set_header("Content-Type", "application/json")
        self.finish(scrub(json.dumps(body)))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, SidebarError):
            status_code = exc.status
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, SidebarError):
            self.log.info("runpod-jupyter: %s %s -> %d %s", self.request.method, self.request.path, value.status, value.message)
            return
        super().log_exception(typ, value, tb)

    def query(self, name: str) -> str | None:
        value = self.get_query_argument(name, default=None)
        return value or None


class OverviewHandler(SidebarHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        fresh = self.query("fresh") in ("1", "true")
        self.reply(await self.service.cache.get(fresh=fresh))


class JobHandler(SidebarHandler):
    @tornado.web.authenticated
    async def get(self, job_id: str) -> None:
        backend = self.query("backend")
        if backend is not None:
            check_backend(backend)
        self.reply(await self.blocking(actions.job_detail, self.service.backends, job_id, backend, self.query("endpoint_id")))


class JobCancelHandler(SidebarHandler):
    @tornado.web.authenticated
    async def post(self, job_id: str) -> None:
        body = self.body()
        result = await self.blocking(actions.cancel_job, self.service.backends, job_id, body)
        self.service.cache.invalidate()
        self.reply(result)


class GpuTypesHandler(SidebarHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply(await self.blocking(actions.gpu_types, self.service.backends, self.query("backend")))


class LogsHandler(SidebarHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        params = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        self.reply(await self.blocking(actions.logs, self.service.backends, params))


class EndpointHandler(SidebarHandler):
    """``DELETE .../endpoints/{backend}/{id}``: scale to zero, delete it and its template."""

    @tornado.web.authenticated
    async def delete(self, backend: str, endpoint_id: str) -> None:
        check_backend(backend)
        result = await self.blocking(actions.delete_endpoint, self.service.backends, backend, endpoint_id)
        self.service.cache.invalidate()
        self.reply(result)


class EndpointActionHandler(SidebarHandler):
    """``POST .../purge-queue`` and ``.../scale``; ``GET .../diagnosis``."""

    @tornado.web.authenticated
    async def get(self, backend: str, endpoint_id: str, action: str) -> None:
        check_backend(backend)
        if action != "diagnosis":
            raise SidebarError(405, f"Use POST for {action}.", reason="method-not-allowed")
        self.reply(await self.blocking(actions.diagnosis, self.service.backends, backend, endpoint_id))

    @tornado.web.authenticated
    async def post(self, backend: str, endpoint_id: str, action: str) -> None:
        check_backend(backend)
        backends = self.service.backends
        if action == "purge-queue":
            result = await self.blocking(actions.purge_queue, backends, backend, endpoint_id)
        elif action == "scale":
            result = await self.blocking(actions.scale, backends, backend, endpoint_id, self.body())
        else:
            raise SidebarError(405, f"Use GET for {action}.", reason="method-not-allowed")
        self.service.cache.invalidate()
        self.reply(result)


class LocalStartHandler(SidebarHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        result = await self.blocking(actions.start_local, self.service.backends)
        self.service.cache.invalidate()
        self.reply(result)


class NotFoundHandler(SidebarHandler):
    """Anything else under the prefix: a JSON 404 rather than Jupyter's HTML page."""

    @tornado.web.authenticated
    def _missing(self, *args: Any) -> None:
        raise not_found(f"No such runpod-jupyter route: {self.request.path}")

    get = post = put = patch = delete = _missing


_ID = r"([A-Za-z0-9_.:-]{1,200})"
ROUTES: list[tuple[str, type[SidebarHandler]]] = [
    (r"overview", OverviewHandler),
    (rf"jobs/{_ID}", JobHandler),
    (rf"jobs/{_ID}/cancel", JobCancelHandler),
    (r"gpu-types", GpuTypesHandler),
    (r"logs", LogsHandler),
    (rf"endpoints/{_ID}/{_ID}", EndpointHandler),
    (rf"endpoints/{_ID}/{_ID}/(purge-queue|scale|diagnosis)", EndpointActionHandler),
    (r"local/start", LocalStartHandler),
    (r".*", NotFoundHandler),
]


def setup_handlers(web_app: Any, service: Service) -> None:
    base_url = web_app.settings["base_url"]
    web_app.settings[SETTINGS_KEY] = service
    web_app.add_handlers(".*$", [(url_path_join(base_url, *PREFIX, pattern), handler) for pattern, handler in ROUTES])
