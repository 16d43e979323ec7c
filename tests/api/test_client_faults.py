"""The client's handling of the platform's quirks and of a broken network.

Faults are produced for real where they can be (a socket server that resets or never answers, a
closed port, the embedded RunPod's own rate limits, purges and disabled endpoints). Bodies that
only the cloud sends are replayed with ``httpx.MockTransport`` and say so.
"""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time

import httpx
import pytest
from support import deploy, embedded_runpod, local_post

from runpod_jupyter.api import (
    Client,
    EndpointNotFoundError,
    JobStatus,
    PayloadTooLargeError,
    RateLimitedError,
    RetryPolicy,
    SubmitUncertainError,
    TransportError,
    _wire,
    rest,
)
from runpod_jupyter.backoff import retry_after_seconds
from runpod_jupyter.config import Settings
from runpod_jupyter.errors import ConfigError
from runpod_jupyter.secret import Secret

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)


def _settings(base: str) -> Settings:
    return Settings(backend="cloud", rest_base=base, graphql_url=base + "/graphql", api_key=Secret("rpa_TESTKEY0123456789abcdef"))


class CountingTransport(httpx.HTTPTransport):
    """The real transport, counting what it was asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return super().handle_request(request)


class FaultyServer:
    """A raw TCP server on 127.0.0.1: each connection reads one request, then follows the
    script: "reset" closes without answering, "hang" never answers, anything else is a
    (status, body) pair sent as a real HTTP response."""

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            data = b""
            conn.settimeout(2)
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            self.requests.append(data)
            action = self.script.pop(0) if self.script else (200, {})
            if action == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()
            elif action == "hang":
                self._held.append(conn)
            else:
                status, body = action
                payload = json.dumps(body).encode()
                conn.sendall(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                    f"Connection: close\r\n\r\n".encode() + payload
                )
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            conn.close()
        self._sock.close()


@pytest.fixture()
def faulty():
    servers: list[FaultyServer] = []

    def make(script: list) -> FaultyServer:
        server = FaultyServer(script)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


HEALTH = {"jobs": {"completed": 1, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0},
          "workers": {"idle": 1, "initializing": 0, "ready": 1, "running": 0, "throttled": 0, "unhealthy": 0}}


def test_idempotent_calls_retry_through_resets(faulty):
    server = faulty(["reset", "reset", (200, HEALTH)])
    with Client(_settings(server.base), retry=FAST_RETRY) as api:
        health = api.endpoint("ep1").health()
    assert health.workers.idle == 1 and health.jobs.completed == 1
    assert len(server.requests) == 3


def test_run_is_never_resent_once_it_may_have_arrived(faulty):
    server = faulty(["reset", (200, {"id": "j1", "status": "IN_QUEUE"})])
    with Client(_settings(server.base), retry=FAST_RETRY) as api, pytest.raises(SubmitUncertainError) as caught:
        api.endpoint("ep1").run({"x": 1})
    assert len(server.requests) == 1  # no duplicate job
    assert "%runpod_jobs" in str(caught.value)


def test_run_retries_when_the_request_certainly_was_not_sent():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens: connection refused, nothing was sent
    transport = CountingTransport()
    with (
        Client(_settings(f"http://127.0.0.1:{port}/v2"), retry=FAST_RETRY, transport=transport) as api,
        pytest.raises(TransportError) as caught,
    ):
        api.endpoint("ep1").run({"x": 1})
    assert not isinstance(caught.value, SubmitUncertainError)
    assert transport.calls == FAST_RETRY.attempts


@pytest.mark.slow
def test_timeouts_retry_reads_but_not_submissions(faulty):
    server = faulty(["hang", (200, HEALTH)])
    with Client(_settings(server.base), retry=FAST_RETRY, timeout=0.5) as api:
        assert api.endpoint("ep1").health().workers.idle == 1
    hung = faulty(["hang"])
    with Client(_settings(hung.base), retry=FAST_RETRY, timeout=0.5) as api, pytest.raises(SubmitUncertainError):
        api.endpoint("ep1").run({})
    assert len(hung.requests) == 1


def test_429_waits_for_retry_after():
    program = rest.health("http://127.0.0.1:1/v2", "ep1", FAST_RETRY)
    request = next(program)
    assert isinstance(request, _wire.Request)
    step = program.send(_wire.Reply(429, {"retry-after": "1.5"}, b"{}"))
    assert step == _wire.Sleep(1.5)
    assert isinstance(program.send(None), _wire.Request)  # then asks again


def test_unreadable_retry_after_backs_off():
    """A Retry-After that is neither seconds nor a date means back off, not crash the call."""
    program = rest.health("http://127.0.0.1:1/v2", "ep1", FAST_RETRY)
    next(program)
    step = program.send(_wire.Reply(429, {"retry-after": "soon"}, b"{}"))
    assert isinstance(step, _wire.Sleep) and 0.005 <= step.seconds <= 0.01  # backoff(0), jittered


def test_retry_after_forms():
    assert retry_after_seconds(None) is None and retry_after_seconds("") is None
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds("-3") == 0.0
    assert 25 < retry_after_seconds(email.utils.formatdate(time.time() + 30, usegmt=True)) <= 30
    assert retry_after_seconds("Mon, 01 Jan 2001 00:00:00 -0000") == 0.0  # past, zone-less
    assert retry_after_seconds("later") is None


def test_policy_numbers():
    policy = RetryPolicy()  # the RunPod clients': 0.25 s doubling to 8 s, jittered down to half
    for attempt, cap in enumerate([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]):
        assert cap / 2 <= policy.backoff(attempt) <= cap
    steady = RetryPolicy(base_delay=0.5, max_retry_after=30.0, jitter=False)
    assert [steady.delay(a) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert steady.delay(0, 120.0) == 30.0 and steady.delay(3, 0.0) == 0.0


@pytest.mark.slow
def test_real_rate_limit_gives_a_clear_error(client, local_runpod, tmp_path):
    spec, _ = deploy(client, tmp_path, "print('unused')\n", wait_idle=False, workers_max=0)
    patient = Client(local_runpod.settings(), retry=RetryPolicy(attempts=2, max_retry_after=0.5))
    ep = patient.endpoint(spec.id)
    ep.purge_queue()
    ep.purge_queue()  # /purge-queue allows 2 per 10 s on RunPod
    with pytest.raises(RateLimitedError) as caught:
        ep.purge_queue()
    assert caught.value.status == 429 and "Wait" in str(caught.value)
    patient.close()


def test_payloads_over_the_limit_are_refused_before_sending():
    transport = CountingTransport()
    with Client(_settings("http://127.0.0.1:9/v2"), transport=transport) as api:
        ep = api.endpoint("ep1")
        with pytest.raises(PayloadTooLargeError) as caught:
            ep.run({"blob": "x" * 10_000_001})
        assert "URL" in str(caught.value)
        with pytest.raises(PayloadTooLargeError):
            ep.runsync({"blob": "x" * 20_000_001})
        with pytest.raises(ConfigError) as caught:
            ep.run({"when": object()})
        assert "JSON" in str(caught.value)
    assert transport.calls == 0


def test_purged_job_is_gone_with_a_reason(client, tmp_path):
    spec, ep = deploy(client, tmp_path, "print('unused')\n", wait_idle=False, workers_max=0)
    job = ep.run({"never": "runs"})
    assert ep.status(job.id).status is JobStatus.IN_QUEUE
    assert ep.purge_queue() == 1
    gone = ep.status(job.id)
    assert gone.status is JobStatus.GONE and gone.status.is_final
    assert "purged" in gone.reason and "expired" in gone.reason
    assert list(ep.stream(job.id, timeout=5)) == []  # a stream of a gone job ends at once


@pytest.mark.slow
def test_disabled_endpoint_is_explained(tmp_path, tmp_path_factory):
    """Negative balance: REST answers "Not Found" for everything while GraphQL lists the endpoint."""
    with embedded_runpod(tmp_path_factory.mktemp("broke")) as instance, Client(instance.settings()) as api:
        spec, ep = deploy(api, tmp_path, "print('unused')\n", wait_idle=False, workers_max=0)
        local_post(instance, "/local/account", {"balance": -1.0})
        with pytest.raises(EndpointNotFoundError) as caught:
            ep.run({})
        assert "balance" in str(caught.value) and "recreate" in str(caught.value)
        assert any(e.id == spec.id for e in api.list_endpoints())  # GraphQL still lists it
        local_post(instance, "/local/account", {"balance": 10.0})
        with pytest.raises(EndpointNotFoundError):  # stays broken after topping up
            ep.status("whatever")


def test_cloud_only_bodies():
    """Replayed with httpx.MockTransport: bodies only api.runpod.ai sends."""

    def cloud(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/health"):
            return httpx.Response(404, json={"message": "Not Found"})  # no worker registered yet
        if "/status/" in request.url.path:
            return httpx.Response(200, json={"id": "j1", "status": "TIMED_OUT", "delayTime": 5, "executionTime": 600000})
        return httpx.Response(503, json={"message": "Service Unavailable"})

    with Client(_settings("https://api.runpod.ai/v2"), retry=FAST_RETRY, transport=httpx.MockTransport(cloud)) as api:
        ep = api.endpoint("abc")
        health = ep.health()
        assert health.registered is False and health.workers.total == 0
        timed_out = ep.status("j1")
        assert timed_out.status is JobStatus.TIMED_OUT and timed_out.status.is_final
        from runpod_jupyter.api import ServerError

        with pytest.raises(ServerError) as caught:
            ep.purge_queue()
        assert "status.runpod.io" in str(caught.value)


@pytest.mark.slow
def test_async_client_keeps_the_same_retry_rules(faulty):
    """The async client (aiohttp underneath) maps faults the same way: idempotent calls retry,
    a submission that may have arrived is never resent, a refused connection is retried."""
    import asyncio

    from runpod_jupyter.api import AsyncClient

    resets = faulty(["reset", "reset", (200, HEALTH)])
    hung = faulty(["hang", (200, HEALTH)])
    once = faulty(["reset", (200, {"id": "j1", "status": "IN_QUEUE"})])
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()

    async def main():
        async with AsyncClient(_settings(resets.base), retry=FAST_RETRY) as api:
            health = await api.endpoint("ep1").health()
        async with AsyncClient(_settings(hung.base), retry=FAST_RETRY, timeout=0.5) as api:
            assert (await api.endpoint("ep1").health()).workers.idle == 1  # a read timeout, retried
        async with AsyncClient(_settings(once.base), retry=FAST_RETRY) as api:
            with pytest.raises(SubmitUncertainError):
                await api.endpoint("ep1").run({"x": 1})
        async with AsyncClient(_settings(f"http://127.0.0.1:{refused_port}/v2"), retry=FAST_RETRY) as api:
            with pytest.raises(TransportError) as caught:
                await api.endpoint("ep1").run({"x": 1})
            assert not isinstance(caught.value, SubmitUncertainError)
        return health

    health = asyncio.run(main())
    assert health.workers.idle == 1 and len(resets.requests) == 3
    assert len(once.requests) == 1  # no duplicate job
