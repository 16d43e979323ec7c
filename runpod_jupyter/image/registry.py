"""A client for the OCI distribution API (the ~10 endpoints a push needs), over httpx.

Written against the distribution spec and checked against the Debian ``docker-registry`` and
``skopeo`` in the tests. Registry quirks it handles on purpose:

* authentication is discovered from ``GET /v2/`` and answered once per registry with one token for
  every scope the push needs (pull+push on the target, pull on the base), so a cross-repository
  mount is allowed; a later ``401`` (expired token, or a challenge asking for a new scope) gets one
  fresh login and one retry;
* small blobs go up in one ``PUT ?digest=``; large ones in one streamed ``PATCH`` without
  ``Content-Range`` (GHCR refuses Content-Range chunks over 4 MiB), then ``PUT ?digest=``; 4 MiB
  ``Content-Range`` chunks are available for registries that want them, and a ``Range`` header in
  replies is never trusted (ECR sends stale ones): the final ``PUT`` is the check;
* blob downloads follow redirects (Docker Hub sends them to a CDN) and httpx drops the
  ``Authorization`` header on a cross-origin redirect;
* ``429`` and ``5xx`` are retried with bounded backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx

from .._version import __version__
from ..backoff import RetryPolicy, retry_after_seconds
from ..errors import RegistryAuthError, RegistryError, RegistryUnreachableError
from .auth import Authenticator, Credentials, login_hint
from .reference import is_loopback

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

#: Blobs up to this size go up in one PUT; bigger ones in one streamed PATCH.
MONOLITHIC_MAX = 4 * 1024 * 1024
#: Chunk size when a registry wants Content-Range chunks (GHCR's limit).
CHUNK_MAX = 4 * 1024 * 1024
READ_SIZE = 1024 * 1024
#: Retries for registry requests: 0.5, 1, 2 s without jitter (a push is one client, not a herd);
#: a longer Retry-After is cut to 30 s rather than given up on (a push is worth the wait).
RETRY = RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0, max_retry_after=30.0, jitter=False)
DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, read=300.0, write=300.0, pool=60.0)
_RETRYABLE = {429, 500, 502, 503, 504}


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class TransferStats:
    """What crossed the wire for one build: request count, bytes sent and received (bodies).
    Updated from several upload threads, hence the lock."""

    requests: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    token_requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, requests: int = 0, bytes_up: int = 0, bytes_down: int = 0, token_requests: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_up += bytes_up
            self.bytes_down += bytes_down
            self.token_requests += token_requests


_SSL_CONTEXTS: dict[Any, ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()


def ssl_context(verify: bool | str | ssl.SSLContext) -> ssl.SSLContext:
    """One SSL context per ``verify`` setting for the whole process: building one reads the CA
    bundle (~35 ms), which would otherwise be most of a handler-only redeploy."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    with _SSL_LOCK:
        context = _SSL_CONTEXTS.get(verify)
        if context is None:
            context = _SSL_CONTEXTS[verify] = httpx.create_ssl_context(verify=verify)
        return context


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as the registry served it (the digest covers these bytes)."""

    raw: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.raw)


BodyFactory = Callable[[], Iterable[bytes]]
ByteCallback = Callable[[int], None]


class Registry:
    """One registry host: authenticated requests with retries, and the distribution endpoints."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        scopes: list[str] | None = None,
        plain_http: bool | None = None,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        stats: TransferStats | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy = RETRY,
    ) -> None:
        self.host = host
        use_http = is_loopback(host) if plain_http is None else plain_http
        self.base_url = f"{'http' if use_http else 'https'}://{host}"
        self.auth = Authenticator(host, credentials, scopes or [])
        self.stats = stats if stats is not None else TransferStats()
        self._sleep = sleep
        self.retry_policy = retry
        self._pinged = False
        self._auth_lock = threading.Lock()
        self.http = httpx.Client(
            transport=transport,
            verify=ssl_context(verify),
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": f"runpod-jupyter/{__version__}"},
        )

    def __repr__(self) -> str:
        return f"Registry({self.base_url!r}, auth={self.auth!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the request loop -------------------------------------------------------------------
    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base_url + path_or_url

    def ping(self) -> None:
        """``GET /v2/``: learn how this registry authenticates and log in once, for all scopes."""
        self._pinged = True
        response = self.request("GET", "/v2/", ping=True)
        response.close()
        if response.status_code == 404:
            raise RegistryError(
                f"{self.host} does not answer the registry API (GET /v2/ gave 404).",
                status=404,
                hint="Check the registry address (for Docker Hub just write 'user/repo').",
            )

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        headers: dict[str, str] | None = None,
        params: Any = None,
        body: BodyFactory | bytes | None = None,
        stream: bool = False,
        retry: bool = True,
        ping: bool = False,
    ) -> httpx.Response:
        """Send one request: answer a 401 challenge once, retry 429/5xx (bounded) when allowed.

        ``body`` is bytes or a factory of byte chunks, called again for each attempt so streamed
        bodies can be resent after a fresh login.
        """
        if not self._pinged and not ping:
            self.ping()
        url = self._url(path_or_url)
        reauthed = False
        attempts = self.retry_policy.attempts
        for attempt in range(attempts):
            if self.auth.expired():
                self._reauth(url)
            send_headers = {**self.auth.header(), **(headers or {})}
            content: Any = body() if callable(body) else body
            try:
                request = self.http.build_request(method, url, headers=send_headers, params=params, content=content)
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                self.stats.add(requests=1)
                # A refused connection is retried once (a registry restarting); a broken GET/HEAD
                # more often (the request had no side effect).
                limit = 2 if isinstance(exc, httpx.ConnectError) else attempts if method in ("GET", "HEAD") else 1
                if retry and attempt < limit - 1:
                    self._sleep(self.retry_policy.backoff(attempt))
                    continue
                raise self._unreachable(exc) from None
            self.stats.add(requests=1, bytes_down=0 if stream else len(response.content))
            if response.status_code == 401 and not reauthed:
                challenge = response.headers.get("www-authenticate", "")
                if challenge:
                    response.close()
                    if self._answer(challenge, url):
                        reauthed = True
                        continue
                return response
            if response.status_code in _RETRYABLE and retry and attempt < attempts - 1:
                delay = self.retry_policy.delay(attempt, retry_after_seconds(response.headers.get("retry-after")))
                response.close()
                self._sleep(delay)
                continue
            return response
        raise AssertionError("unreachable: the loop always returns or raises")  # pragma: no cover

    def _reauth(self, url: str) -> None:
        """A token ran out: ping again so the registry sends a fresh challenge."""
        try:
            response = self.http.get(self.base_url + "/v2/", headers={})
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code == 401 and challenge:
            self._answer(challenge, url)

    def _answer(self, challenge: str, url: str) -> bool:
        """Log in for a challenge; one thread at a time, the others reuse its fresh header."""
        seen = self.auth.header()
        with self._auth_lock:
            if self.auth.header() != seen:
                return True  # another thread already renewed it while we waited
            before = self.auth.token_requests
            try:
                return self.auth.answer(self.http, challenge, url)
            finally:
                self.stats.add(token_requests=self.auth.token_requests - before)

    def _unreachable(self, exc: Exception) -> RegistryUnreachableError:
        reason = type(exc).__name__
        text = str(exc)
        hint = "Check the registry address, that it is running, and the network connection."
        if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
            hint = (
                "The registry's TLS certificate was not accepted. Pass verify='/path/to/ca.pem' for a "
                "private CA, or plain_http=True for a registry on a trusted network without TLS."
            )
        return RegistryUnreachableError(f"Could not reach the registry {self.host} ({reason}).", hint=hint)

    def fail(self, response: httpx.Response, action: str, repository: str, *, write: bool) -> NoReturn:
        """Turn an error reply into the right exception, with a next step in the hint."""
        status = response.status_code
        try:
            response.read()
            payload = response.json()
        except (ValueError, httpx.HTTPError):
            payload = None
        code = message = None
        if isinstance(payload, dict) and isinstance(payload.get("errors"), list) and payload["errors"]:
            first = payload["errors"][0] if isinstance(payload["errors"][0], dict) else {}
            code, message = first.get("code"), first.get("message")
        said = f" ({code}: {message})" if code else ""
        where = f"{self.host}/{repository}"
        if status in (401, 403):
            who = self.auth.who
            if self.auth.credentials is None:
                hint = login_hint(self.host)
            elif write:
                hint = (
                    f"The login worked but does not allow pushing to {repository}. Check the repository "
                    "name (is it under your user or organisation?), that the account may write to it, and "
                    "that the access token has write permission (Docker Hub: Read & Write; GHCR: "
                    "write:packages)."
                )
            else:
                hint = f"Check that {repository} exists and that the account may pull it."
            verb = "push to" if write else "read"
            raise RegistryAuthError(
                f"{self.host} refused to let {who} {verb} {repository} while trying to {action}{said}.",
                status=status, code=code, hint=hint,
            )
        if status == 404:
            raise RegistryError(
                f"{where} has no such object while trying to {action}{said}.",
                status=status, code=code,
                hint="Check the image name and tag (and that it was pushed to this registry).",
            )
        if status in _RETRYABLE:
            raise RegistryError(
                f"{self.host} kept failing (HTTP {status}) while trying to {action}{said}.",
                status=status, code=code,
                hint="The registry is overloaded or down; try again in a few minutes.",
            )
        raise RegistryError(
            f"{self.host} answered HTTP {status} while trying to {action} in {repository}{said}.",
            status=status, code=code, detail=payload,
            hint="This is a registry-side refusal; the code and message above say which rule was broken.",
        )

    # -- manifests ---------------------------------------------------------------------------
    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """Fetch a manifest or index by tag or digest, with every media type we understand."""
        response = self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
        if response.status_code != 200:
            self.fail(response, f"read the manifest {reference}", repository, write=False)
        raw = response.content
        digest = sha256_digest(raw)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(
                f"{self.host}/{repository} served a manifest whose digest does not match {reference}.",
                hint="The registry or a proxy altered the content; try again or use another mirror.",
            )
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        media_type = body.get("mediaType") or media_type
        return Manifest(raw=raw, media_type=media_type, digest=digest)

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """Push a manifest under a tag (or its digest); returns its digest."""
        response = self.request(
            "PUT", f"/v2/{repository}/manifests/{reference}", headers={"Content-Type": media_type}, body=raw
        )
        self.stats.add(bytes_up=len(raw))
        if response.status_code not in (200, 201):
            self.fail(response, f"push the manifest {reference}", repository, write=True)
        digest = sha256_digest(raw)
        served = response.headers.get("docker-content-digest")
        if served and served != digest:
            raise RegistryError(
                f"{self.host} stored the manifest under {served}, not {digest}.",
                hint="The registry rewrote the manifest; pin the digest it reports.",
            )
        return digest

    # -- blobs -------------------------------------------------------------------------------
    def blob_size(self, repository: str, digest: str) -> int | None:
        """``HEAD`` a blob: its size when the repository already has it, else None."""
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}")
        if response.status_code == 200:
            return int(response.headers.get("content-length") or 0)
        if response.status_code == 404:
            return None
        self.fail(response, f"check for the blob {digest[:19]}", repository, write=False)

    def get_blob(self, repository: str, digest: str, *, max_size: int = 16 * 1024 * 1024) -> bytes:
        """Download a small blob (an image config) and check its digest."""
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}")
        if response.status_code != 200:
            self.fail(response, f"read the blob {digest[:19]}", repository, write=False)
        data = response.content
        if len(data) > max_size:
            raise RegistryError(f"The blob {digest[:19]} in {repository} is unexpectedly large ({len(data)} bytes).")
        if sha256_digest(data) != digest:
            raise RegistryError(
                f"{self.host}/{repository} served a blob whose content does not match {digest[:19]}.",
                hint="Try again; if it persists the registry's storage is damaged.",
            )
        return data

    def stream_blob(self, repository: str, digest: str, on_bytes: ByteCallback | None = None) -> Iterator[bytes]:
        """The bytes of a blob, read in 1 MiB pieces and never held whole (closed when exhausted)."""
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", stream=True)
        try:
            if response.status_code != 200:
                self.fail(response, f"download the blob {digest[:19]}", repository, write=False)
            for chunk in response.iter_raw(READ_SIZE):
                self.stats.add(bytes_down=len(chunk))
                if on_bytes:
                    on_bytes(len(chunk))
                yield chunk
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        finally:
            response.close()

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> str | None:
        """Ask for a cross-repository mount. None when mounted; else the upload session to use."""
        response = self.request(
            "POST", f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": source_repository}
        )
        if response.status_code == 201:
            return None
        if response.status_code == 202 and response.headers.get("location"):
            return self._url_from_location(response)
        self.fail(response, f"mount the blob {digest[:19]} from {source_repository}", repository, write=True)

    def start_upload(self, repository: str) -> str:
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/")
        if response.status_code != 202 or not response.headers.get("location"):
            self.fail(response, "start a blob upload", repository, write=True)
        return self._url_from_location(response)

    def _url_from_location(self, response: httpx.Response) -> str:
        return str(response.url.join(response.headers["location"]))

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        body: BodyFactory,
        *,
        location: str | None = None,
        chunk_size: int | None = None,
        on_bytes: ByteCallback | None = None,
    ) -> None:
        """Upload one blob whose bytes ``body()`` yields, in the fewest requests the registry takes.

        A registry failure (5xx, a dropped connection) restarts the upload once in a new session:
        resuming a half-written session is not something registries agree on.
        """
        for attempt in range(2):
            try:
                self._upload_once(repository, digest, size, body, location, chunk_size, on_bytes)
                return
            except RegistryError as exc:
                transient = isinstance(exc, RegistryUnreachableError) or (exc.status or 0) in _RETRYABLE
                if attempt or not transient:
                    raise
                self._sleep(self.retry_policy.backoff(attempt))
                location = None

    def _upload_once(
        self,
        repository: str,
        digest: str,
        size: int,
        body: BodyFactory,
        location: str | None,
        chunk_size: int | None,
        on_bytes: ByteCallback | None,
    ) -> None:
        location = location or self.start_upload(repository)

        def counted() -> Iterator[bytes]:
            for chunk in body():
                self.stats.add(bytes_up=len(chunk))
                if on_bytes:
                    on_bytes(len(chunk))
                yield chunk

        octet = {"Content-Type": "application/octet-stream"}
        if chunk_size:
            location = self._upload_chunks(repository, location, size, counted, chunk_size)
            final_body: Any = b""
        elif size <= MONOLITHIC_MAX:
            final_body = counted
        else:
            response = self.request(
                "PATCH", location, headers={**octet, "Content-Length": str(size)}, body=counted, retry=False
            )
            if response.status_code not in (202, 204):
                self.fail(response, f"upload the blob {digest[:19]}", repository, write=True)
            location = self._url_from_location(response) if response.headers.get("location") else location
            final_body = b""
        headers = {**octet, "Content-Length": str(size if callable(final_body) else 0)}
        done = httpx.URL(location).copy_merge_params({"digest": digest})
        response = self.request("PUT", str(done), headers=headers, body=final_body, retry=False)
        if response.status_code not in (201, 204):
            self.fail(response, f"finish the upload of {digest[:19]}", repository, write=True)

    def _upload_chunks(
        self, repository: str, location: str, size: int, body: BodyFactory, chunk_size: int
    ) -> str:
        """Content-Range chunks, for registries that insist; at most ``chunk_size`` bytes each."""
        chunk_size = max(1, min(chunk_size, CHUNK_MAX))
        offset = 0
        pending = bytearray()

        def send(piece: bytes, start: int) -> str:
            end = start + len(piece) - 1
            response = self.request(
                "PATCH", location,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(piece)),
                         "Content-Range": f"{start}-{end}"},
                body=piece, retry=False,
            )
            if response.status_code not in (202, 204):
                self.fail(response, f"upload bytes {start}-{end}", repository, write=True)
            return self._url_from_location(response) if response.headers.get("location") else location

        for chunk in body():
            pending += chunk
            while len(pending) >= chunk_size:
                location = send(bytes(pending[:chunk_size]), offset)
                offset += chunk_size
                del pending[:chunk_size]
        if pending:
            location = send(bytes(pending), offset)
            offset += len(pending)
        if offset != size:
            raise RegistryError(f"Sent {offset} bytes for a blob of {size} bytes; the source changed while uploading.")
        return location
