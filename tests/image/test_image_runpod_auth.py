"""Registry credentials for RunPod's workers: saved once (REST v2), reused by name, and brought up
to date on every deploy (GraphQL's updateRegistryAuth: v2 has no update), against the embedded
RunPod's real APIs."""

from __future__ import annotations

import base64
import json
import sqlite3

import httpx
import pytest

from runpod_jupyter.api import Client
from runpod_jupyter.image import RegistryAuthError, ensure_registry_auth
from runpod_jupyter.image.runpod_auth import registry_auth_name
from runpod_jupyter.local.catalog import password_matches


class Recording(httpx.BaseTransport):
    """Passes every request on to the real server and keeps its body, to see where a password went."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.bodies: list[dict] = []
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.urls.append(str(request.url))
        if request.content:
            self.bodies.append({"path": request.url.path, **json.loads(request.content)})
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture()
def recorded(local_runpod):
    transport = Recording()
    with Client(local_runpod.settings(), transport=transport) as client:
        yield client, transport


def stored_auths(local_runpod) -> dict[str, dict]:
    """The embedded RunPod's own rows: what it kept of each login."""
    with sqlite3.connect(local_runpod.data_dir / "local.sqlite") as db:
        rows = [json.loads(data) for (data,) in db.execute("SELECT data FROM registry_auths")]
    return {row["name"]: row for row in rows}


@pytest.mark.slow
def test_created_once_then_reused(isolated_env, local_runpod, recorded):
    client, transport = recorded
    first = ensure_registry_auth(client, "docker.io/alice/worker:v1", username="alice", password="pat-of-alice-1")
    again = ensure_registry_auth(client, "alice/other@sha256:" + "a" * 64, username="alice", password="pat-of-alice-1")
    label = registry_auth_name("docker.io", "alice")
    assert first == again
    assert [a.id for a in client.list_registry_auths() if a.name == label] == [first]
    kept = stored_auths(local_runpod)[label]
    assert kept["username"] == "alice" and password_matches(kept["password"], "pat-of-alice-1")
    # the password travelled only in request bodies: REST v2's create, GraphQL's variables (never a
    # query text, never a URL)
    carrying = [b for b in transport.bodies if "pat-of-alice-1" in json.dumps(b)]
    assert carrying and all(b["path"] == "/v2/registries" or "pat-of-alice-1" not in b["query"] for b in carrying)
    assert not any("pat-of-alice-1" in url for url in transport.urls)


def test_a_rotated_password_replaces_the_old_one(isolated_env, local_runpod, recorded):
    client, _ = recorded
    first = ensure_registry_auth(client, "ghcr.io/carol/worker:v1", username="carol", password="old-token-of-carol")
    second = ensure_registry_auth(client, "ghcr.io/carol/worker:v2", username="carol", password="new-token-of-carol")
    assert first == second
    kept = stored_auths(local_runpod)[registry_auth_name("ghcr.io", "carol")]
    assert password_matches(kept["password"], "new-token-of-carol")
    assert not password_matches(kept["password"], "old-token-of-carol")


def test_the_store_never_holds_a_password(isolated_env, local_runpod, recorded):
    client, _ = recorded
    ensure_registry_auth(client, "quay.io/dave/worker:v1", username="dave", password="plain-token-of-dave")
    raw = b"".join(p.read_bytes() for p in local_runpod.data_dir.glob("local.sqlite*"))
    assert b"dave" in raw and b"plain-token-of-dave" not in raw
    assert "plain-token-of-dave" not in json.dumps([a.__dict__ for a in client.list_registry_auths()])


def test_credentials_come_from_docker_config(isolated_env, local_runpod, recorded):
    client, _ = recorded
    encoded = base64.b64encode(b"bob:pat-of-bob-22").decode()
    (isolated_env / ".docker" / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": encoded}}}))
    auth_id = ensure_registry_auth(client, "ghcr.io/bob/worker:v3")
    kept = stored_auths(local_runpod)[registry_auth_name("ghcr.io", "bob")]
    assert kept["id"] == auth_id and kept["username"] == "bob" and password_matches(kept["password"], "pat-of-bob-22")


def test_no_credentials_is_a_clear_error(isolated_env, local_runpod, recorded):
    client, transport = recorded
    with pytest.raises(RegistryAuthError) as info:
        ensure_registry_auth(client, "quay.io/nobody/worker:v1")
    assert "quay.io" in info.value.message and "docker login quay.io" in info.value.hint
    assert transport.bodies == []  # nothing was sent
