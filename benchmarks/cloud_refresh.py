"""HTTP calls and bytes per endpoint-widget refresh on the cloud: the REST v2 path the widget takes
now against the GraphQL + ``/health`` path it replaces, in the same run, against one embedded
RunPod standing in for api.runpod.io (reached the way RunPod is: the ``cloud`` backend).

The endpoint has two always-on workers and two releases. Every request is counted by an httpx
transport that wraps the client's own (request line, headers and body both ways).

- v2 (what :class:`~runpod_jupyter.widgets.poller.Tick` does): ``GET /v2/serverless/{id}/workers``
  and ``/health`` (job counts) on every full read; the endpoint's settings (``GET
  /v2/serverless/{id}``) and its release history only when the worker list names a new version;
  the account (GraphQL: v2 has no balance) at most every ``ACCOUNT_EVERY`` seconds and GPU stock
  at most every ``STOCK_EVERY`` seconds (both amortised over a steady poll at the idle full-read
  pace and reported apart as well).
- legacy (the widget before): GraphQL ``myself { endpoint(id) }``, ``/health``, GraphQL account.
  It could not show throttled or unhealthy workers, staleness, rollout or stock on the cloud.

Sizes hold for any machine; no timing is reported.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import create_endpoint, embedded_runpod, note, result, scratch, wait_idle, worker_project  # noqa: E402

REFRESHES = 20
HANDLER = """
import runpod

def handler(job):
    return {"echo": job["input"]}

runpod.serverless.start({"handler": handler})
"""


class Counting(httpx.BaseTransport):
    """Counts requests and bytes on their way through the real transport."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.calls = 0
        self.bytes = 0
        self.paths: list[str] = []

    @staticmethod
    def _headers(headers: httpx.Headers) -> int:
        return sum(len(k) + len(v) + 4 for k, v in headers.raw)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        line = len(request.method) + len(request.url.raw_path) + 12
        self.calls += 1
        self.bytes += line + self._headers(request.headers) + len(request.content)
        self.bytes += 17 + self._headers(response.headers) + len(response.content)
        self.paths.append(f"{request.method} {request.url.path}")
        return response

    def take(self) -> tuple[int, int]:
        calls, size = self.calls, self.bytes
        self.calls = self.bytes = 0
        return calls, size

    def close(self) -> None:
        self.inner.close()


def cloud_settings(instance: Any) -> Any:
    from runpod_jupyter.config import Settings

    return Settings(backend="cloud", rest_base=instance.rest_base, graphql_url=instance.graphql_url,
                    api_key=instance.api_key, key_source="benchmark")


def measure(per_refresh: Any, counter: Counting) -> tuple[float, float]:
    """Median calls and bytes of ``REFRESHES`` refreshes."""
    calls, sizes = [], []
    for _ in range(REFRESHES):
        counter.take()
        per_refresh()
        c, b = counter.take()
        calls.append(c)
        sizes.append(b)
    return statistics.median(calls), statistics.median(sizes)


def main() -> None:
    from runpod_jupyter.api import Client, graphql
    from runpod_jupyter.deployment import Deployment
    from runpod_jupyter.widgets import poller
    from runpod_jupyter.widgets.poller import Tick, _Known
    from runpod_jupyter.widgets.readers import EndpointReader

    with scratch("cloud-refresh") as root, embedded_runpod(root) as instance:
        counter = Counting()
        with Client(instance.settings()) as setup:
            spec = create_endpoint(setup, worker_project(root, HANDLER), workers_min=2, workers_max=2)
            wait_idle(setup.endpoint(spec.id), 2, timeout=90)
            setup.save_endpoint(setup.get_endpoint(spec.id).with_changes(env={"MODE": "second"}))
            wait_idle(setup.endpoint(spec.id), 2, timeout=90)
        client = Client(cloud_settings(instance), transport=counter)
        dep = Deployment(name=spec.name, endpoint_id=spec.id, backend="cloud", settings=client.settings)
        dep._client = client  # the counted client (a Deployment makes its own otherwise)
        reader = EndpointReader(dep)
        known = _Known()

        def v2_refresh() -> None:  # one full read as the poller makes it, steady state
            known.at = float("-inf")
            state = reader.read(Tick(dep, known, full_every=0.0))
            assert state["rollout"]["summary"] == "2 of 2 workers on release 2", state["rollout"]
            assert state["workers"]["idle"] == 2 and state["stock"] is not None

        poller._stock_seen.clear()
        v2_refresh()  # first read: releases and stock too
        first_calls, first_bytes = counter.take()  # then steady: stock read under STOCK_EVERY s ago
        v2_calls, v2_bytes = measure(v2_refresh, counter)

        def releases() -> None:
            client.releases(spec.id)

        def stock() -> None:
            client.gpu_stock()

        def account() -> None:
            client.account()

        rel_calls, rel_bytes = measure(releases, counter)
        stock_calls, stock_bytes = measure(stock, counter)
        account_calls, account_bytes = measure(account, counter)

        def legacy_refresh() -> None:
            found = client._call(graphql.get_endpoint(client._gql, spec.id, client.retry))
            client.endpoint(spec.id).health()
            client._call(graphql.account(client._gql, client.retry))
            assert found is not None

        legacy_calls, legacy_bytes = measure(legacy_refresh, counter)

        def legacy_stock() -> None:
            client._call(graphql.gpu_stock(client._gql, client.retry))

        legacy_stock_calls, legacy_stock_bytes = measure(legacy_stock, counter)
        client.close()

    # Amortised over an idle endpoint's full reads (every FULL_EVERY_IDLE s): stock every
    # STOCK_EVERY s, the balance every ACCOUNT_EVERY s.
    from runpod_jupyter.diagnose import ACCOUNT_EVERY

    per_minute = 60.0 / poller.FULL_EVERY_IDLE
    stock_share = (60.0 / poller.STOCK_EVERY) / per_minute
    account_share = (60.0 / ACCOUNT_EVERY) / per_minute
    amortised_calls = v2_calls + stock_share * stock_calls + account_share * account_calls
    amortised_bytes = v2_bytes + stock_share * stock_bytes + account_share * account_bytes
    note(f"first v2 read (with releases and stock): {first_calls} calls, {first_bytes} B; "
         f"releases {rel_bytes:.0f} B, v2 stock {stock_bytes:.0f} B, GraphQL stock {legacy_stock_bytes:.0f} B")
    result(
        "cloud_refresh",
        v2_calls=f"{v2_calls:.0f}", v2_bytes=f"{v2_bytes:.0f}",
        legacy_calls=f"{legacy_calls:.0f}", legacy_bytes=f"{legacy_bytes:.0f}",
        v2_amortised_calls=f"{amortised_calls:.2f}", v2_amortised_bytes=f"{amortised_bytes:.0f}",
        calls_ratio=f"{amortised_calls / legacy_calls:.2f}", bytes_ratio=f"{amortised_bytes / legacy_bytes:.2f}",
        account_bytes=f"{account_bytes:.0f}",
        first_v2_calls=first_calls, first_v2_bytes=first_bytes,
        releases_bytes=f"{rel_bytes:.0f}", stock_calls=f"{stock_calls:.0f}", stock_bytes=f"{stock_bytes:.0f}",
        legacy_stock_bytes=f"{legacy_stock_bytes:.0f}", refreshes=REFRESHES,
    )


if __name__ == "__main__":
    main()
