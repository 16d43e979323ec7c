"""httpx's async interface on aiohttp's connection pool.

The async client fans out (a batch of jobs, many streams): with 50 requests in flight httpcore's
pool spends ~9 ms of CPU per request choosing connections (encode/httpcore#1035), aiohttp's about
0.2 ms. aiohttp is already installed (the ``runpod`` SDK depends on it). Errors are mapped onto
httpx's, keeping the one distinction the retry logic relies on: ``ConnectError``/``ConnectTimeout``
mean the request was certainly not sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx

_DROPPED = frozenset({"host", "content-length", "connection", "transfer-encoding"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                auto_decompress=False,  # httpx decodes, as it would with its own transport
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        limits: dict[str, Any] = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(
            total=None, connect=limits.get("connect"), sock_connect=limits.get("connect"), sock_read=limits.get("read")
        )
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROPPED]
        body = request.content if request.content else None
        try:
            async with self._session_now().request(
                request.method, str(request.url), headers=headers, data=body, timeout=timeout, allow_redirects=False,
            ) as response:
                content = await response.read()
                raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
                return httpx.Response(response.status, headers=raw_headers, content=content, request=request)
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except (aiohttp.SocketTimeoutError, asyncio.TimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
        except (aiohttp.ClientOSError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
            raise httpx.ReadError(str(exc), request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
