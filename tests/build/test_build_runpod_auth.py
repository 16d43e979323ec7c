"""Registry credentials for RunPod's workers: saved through GraphQL once, then reused by name."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from runpod_jupyter.api import Client
from runpod_jupyter.build import RegistryAuthError, ensure_registry_auth
from runpod_jupyter.build.runpod_auth import registry_auth_name
from runpod_jupyter.config import Secret, Settings


class FakeGraphQL:
    """The two GraphQL operations involved, answered like RunPod answers them."""

    def __init__(self) -> None:
        self.saved: list[dict] = []
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        query = body["query"]
        if "containerRegistryCreds" in query:
            creds = [{"id": f"id-{i}", "name": s["name"]} for i, s in enumerate(self.saved)]
            return httpx.Response(200, json={"data": {"myself": {"containerRegistryCreds": creds}}})
        if "saveRegistryAuth" in query:
            self.saved.append(body["variables"]["input"])
            return httpx.Response(200, json={"data": {"saveRegistryAuth": {
                "id": f"id-{len(self.saved) - 1}", "name": body["variables"]["input"]["name"]}}})
        return httpx.Response(400, json={"errors": [{"message": "unexpected"}]})


def client_for(fake: FakeGraphQL) -> Client:
    settings = Settings(backend="cloud", rest_base="https://rest.invalid/v2", graphql_url="https://gql.invalid/graphql",
                        api_key=Secret("rpa_TESTKEY1234567890"), key_source="test")
    return Client(settings, transport=httpx.MockTransport(fake))


def test_created_once_then_reused(isolated_env):
    fake = FakeGraphQL()
    with client_for(fake) as client:
        first = ensure_registry_auth(client, "docker.io/alice/worker:v1", username="alice", password="pat-of-alice-1")
        again = ensure_registry_auth(client, "alice/other@sha256:" + "a" * 64, username="alice", password="pat-of-alice-1")
    assert first == again == "id-0"
    assert fake.saved == [{"name": registry_auth_name("docker.io", "alice"), "username": "alice",
                           "password": "pat-of-alice-1"}]
    # the password went only into the one saveRegistryAuth call, as a variable
    carrying = [b for b in fake.bodies if "pat-of-alice-1" in json.dumps(b)]
    assert len(carrying) == 1 and "pat-of-alice-1" not in carrying[0]["query"]


def test_credentials_come_from_docker_config(isolated_env):
    encoded = base64.b64encode(b"bob:pat-of-bob-22").decode()
    (isolated_env / ".docker" / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": encoded}}}))
    fake = FakeGraphQL()
    with client_for(fake) as client:
        auth_id = ensure_registry_auth(client, "ghcr.io/bob/worker:v3")
    assert auth_id == "id-0" and fake.saved[0]["username"] == "bob" and "ghcr.io" in fake.saved[0]["name"]


def test_no_credentials_is_a_clear_error(isolated_env):
    with client_for(FakeGraphQL()) as client, pytest.raises(RegistryAuthError) as info:
        ensure_registry_auth(client, "quay.io/nobody/worker:v1")
    assert "quay.io" in info.value.message and "docker login quay.io" in info.value.hint
