"""What a repeated diagnosis read asks RunPod: with the earlier read at hand, only the worker list
and health, until the endpoint's version moves (the cloud code path, the embedded RunPod standing
in for RunPod)."""

from __future__ import annotations

import httpx
import pytest
from support import deploy

from runpod_jupyter.api import Client
from runpod_jupyter.config import Settings
from runpod_jupyter.diagnose import gather

ECHO = """
import runpod

runpod.serverless.start({"handler": lambda job: job["input"]})
"""


class Paths(httpx.HTTPTransport):
    """The real transport, noting each request's method and path."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


@pytest.mark.slow
def test_a_repeated_read_asks_only_what_can_have_changed(local_runpod, client, tmp_path):
    spec, _ = deploy(client, tmp_path, ECHO, workers_max=1)
    settings = local_runpod.settings()
    cloud = Settings(backend="cloud", rest_base=settings.rest_base, graphql_url=settings.graphql_url,
                     api_key=settings.api_key, key_source="test")
    transport = Paths()
    with Client(cloud, transport=transport) as counted:
        first = gather(counted, spec.id)
        assert f"GET /v2/serverless/{spec.id}" in transport.seen and "POST /graphql" in transport.seen
        transport.seen.clear()
        second = gather(counted, spec.id, previous=first)
        assert transport.seen == [f"GET /v2/serverless/{spec.id}/workers", f"GET /v2/{spec.id}/health"]
        assert second.endpoint == first.endpoint and second.account == first.account
        client.save_endpoint(client.get_endpoint(spec.id).with_changes(workers_max=2))  # a new version
        transport.seen.clear()
        third = gather(counted, spec.id, previous=second)
        assert f"GET /v2/serverless/{spec.id}" in transport.seen and third.endpoint.workers_max == 2
    client.delete_endpoint(spec.id)
