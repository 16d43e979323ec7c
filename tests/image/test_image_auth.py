"""Credentials and the login flows, against registries that really check them."""

from __future__ import annotations

import base64
import gzip
import json
import os
import stat
from pathlib import Path

import pytest
from image_support import USERS, make_project, skopeo_inspect, unique

from runpod_jupyter.image import BaseImage, RegistryAuthError, build_and_push, find_credentials
from runpod_jupyter.image.auth import Authenticator, Credentials, credentials_from, parse_challenge
from runpod_jupyter.image.registry import Registry
from runpod_jupyter.secret import redact

ALICE = ("alice", USERS["alice"][0])


def base_on(server, tag: str = "base/tiny:docker") -> BaseImage:
    return BaseImage(image=f"{server.host}/{tag}", python="3.11", python_exe="python3.11")


# -- parsing and lookup ---------------------------------------------------------------------------
def test_challenge_parsing_keeps_quoted_commas():
    got = parse_challenge('Bearer realm="https://auth.example/token",service="reg.example",'
                          'scope="repository:a/b:pull,push",error="insufficient_scope"')
    assert got.scheme == "bearer"
    assert got.params == {"realm": "https://auth.example/token", "service": "reg.example",
                          "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}
    assert parse_challenge('Basic realm="a \\"quoted\\" realm"').params["realm"] == 'a "quoted" realm'
    assert parse_challenge("") is None


def test_credentials_precedence_arguments_env_docker_config(isolated_env, monkeypatch):
    config = isolated_env / ".docker" / "config.json"
    encoded = base64.b64encode(b"fromfile:file-password-1").decode()
    config.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": encoded},
                                            "ghcr.io": {"username": "gh", "password": "gh-password-1"}}}))
    hub = find_credentials("docker.io")
    assert (hub.username, hub.password.reveal()) == ("fromfile", "file-password-1")
    assert find_credentials("registry-1.docker.io").username == "fromfile"  # same registry, other spelling
    assert find_credentials("ghcr.io").username == "gh"
    assert find_credentials("quay.io") is None

    monkeypatch.setenv("RUNPOD_JUPYTER_REGISTRY_USERNAME", "envuser")
    monkeypatch.setenv("RUNPOD_JUPYTER_REGISTRY_PASSWORD", "env-password-1")
    assert find_credentials("docker.io").username == "envuser"
    assert find_credentials("docker.io", target=False).username == "fromfile"  # env is for the push target
    monkeypatch.setenv("RUNPOD_JUPYTER_REGISTRY", "ghcr.io")
    assert find_credentials("docker.io").username == "fromfile"
    assert find_credentials("ghcr.io", target=False).username == "envuser"

    explicit = find_credentials("docker.io", "me", "arg-password-1")
    assert (explicit.username, explicit.source) == ("me", "argument")


def _helper(bindir: Path, name: str, answer: dict | None, log: Path) -> None:
    script = bindir / f"docker-credential-{name}"
    body = f"cat > {log}\n" + (f"echo '{json.dumps(answer)}'\n" if answer else "echo 'credentials not found' >&2; exit 1\n")
    script.write_text("#!/bin/sh\n[ \"$1\" = get ] || exit 2\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_credential_helpers_are_asked_like_docker_does(isolated_env, monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    _helper(bindir, "store", {"ServerURL": "x", "Username": "stored", "Secret": "helper-secret-1"}, tmp_path / "store.in")
    _helper(bindir, "ghcr", {"ServerURL": "ghcr.io", "Username": "<token>", "Secret": "identity-token-1"},
            tmp_path / "ghcr.in")
    _helper(bindir, "empty", None, tmp_path / "empty.in")
    config = isolated_env / ".docker" / "config.json"
    config.write_text(json.dumps({
        "credsStore": "store",
        "credHelpers": {"ghcr.io": "ghcr", "quay.io": "empty"},
        "auths": {"quay.io": {"auth": base64.b64encode(b"q:quay-password-1").decode()}},
    }))
    hub = find_credentials("docker.io")
    assert (hub.username, hub.password.reveal(), hub.source) == ("stored", "helper-secret-1", "docker-credential-store")
    assert (tmp_path / "store.in").read_text() == "https://index.docker.io/v1/"
    gh = find_credentials("ghcr.io")
    assert gh.identity_token.reveal() == "identity-token-1" and gh.password is None
    assert (tmp_path / "ghcr.in").read_text() == "ghcr.io"
    quay = find_credentials("quay.io")  # the helper had nothing: fall back to auths
    assert (quay.username, quay.password.reveal()) == ("q", "quay-password-1")


def test_credentials_never_show_themselves():
    creds = credentials_from("someone", "very-secret-password-9")
    assert "very-secret-password-9" not in repr(creds) and "very-secret-password-9" not in str(creds)
    assert redact("the password is very-secret-password-9") == "the password is ****"
    auth = Authenticator("r.example", creds, ["repository:a:pull"])
    assert "very-secret-password-9" not in repr(auth)


def test_basic_credentials_are_not_sent_over_plain_http_to_a_remote_host():
    import httpx

    auth = Authenticator("r.example", credentials_from("u", "plain-http-pw-1"), [])
    with httpx.Client() as http, pytest.raises(RegistryAuthError, match="plain HTTP"):
        auth.answer(http, 'Basic realm="x"', "http://r.example/v2/")


# -- Bearer token flow ----------------------------------------------------------------------------
def test_token_flow_one_token_with_push_and_base_pull_scopes(token_registry, token_server, isolated_env, tmp_path):
    before = len(token_server.requests)
    target = f"{token_registry.host}/{unique('alice/w')}:v1"
    result = build_and_push(make_project(tmp_path / "p"), base_on(token_registry), target,
                            username=ALICE[0], password=ALICE[1])
    asked = token_server.requests[before:]
    repo = target.split("/", 1)[1].split(":")[0]
    assert asked == [("alice", [f"repository:{repo}:pull,push", "repository:base/tiny:pull"])]
    assert {b.action for b in result.blobs if b.kind == "base"} == {"mounted"}
    assert skopeo_inspect(result.image, creds=ALICE)["Digest"] == result.digest

    # no credential anywhere in what was pushed
    with Registry(token_registry.host, credentials=credentials_from(*ALICE), scopes=[f"repository:{repo}:pull"]) as reg:
        manifest = reg.get_manifest(repo, result.digest)
        blobs = [reg.get_blob(repo, manifest.json()["config"]["digest"]), manifest.raw]
        blobs.append(gzip.decompress(b"".join(reg.stream_blob(repo, manifest.json()["layers"][-1]["digest"]))))
    assert not any(ALICE[1].encode() in blob for blob in blobs)
    assert ALICE[1] not in repr(result)


def test_wrong_password_is_reported_as_such(token_registry, isolated_env, tmp_path):
    with pytest.raises(RegistryAuthError) as info:
        build_and_push(make_project(tmp_path / "p"), base_on(token_registry),
                       f"{token_registry.host}/{unique('alice/w')}:v1", username="alice", password="not-the-password-7")
    err = info.value
    assert "refused the password for user 'alice'" in err.message
    assert "access token" in err.hint
    assert "not-the-password-7" not in str(err) and "not-the-password-7" not in repr(err)


def test_missing_push_permission_is_reported_with_what_to_check(token_registry, isolated_env, tmp_path):
    with pytest.raises(RegistryAuthError) as info:
        build_and_push(make_project(tmp_path / "p"), base_on(token_registry),
                       f"{token_registry.host}/{unique('bob/w')}:v1", username="bob", password=USERS["bob"][0])
    err = info.value
    assert "user 'bob'" in err.message and "push to" in err.message
    assert "write" in err.hint and err.status == 401


def test_anonymous_push_asks_for_a_login(token_registry, isolated_env, tmp_path):
    with pytest.raises(RegistryAuthError) as info:
        build_and_push(make_project(tmp_path / "p"), base_on(token_registry), f"{token_registry.host}/{unique('anon/w')}:v1")
    assert "anonymous" in info.value.message
    assert "docker login" in info.value.hint and "RUNPOD_JUPYTER_REGISTRY_USERNAME" in info.value.hint


def test_expired_token_is_renewed_once(token_registry, token_server, isolated_env, tmp_path):
    token_server.expired_tokens_to_issue = 1  # the first token is already expired when the registry sees it
    before = len(token_server.requests)
    result = build_and_push(make_project(tmp_path / "p"), base_on(token_registry),
                            f"{token_registry.host}/{unique('alice/w')}:v1", username=ALICE[0], password=ALICE[1])
    assert len(token_server.requests) - before == 2
    assert skopeo_inspect(result.image, creds=ALICE)["Digest"] == result.digest


def test_docker_config_credentials_are_used_for_the_push(token_registry, isolated_env, tmp_path):
    encoded = base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode()).decode()
    (isolated_env / ".docker" / "config.json").write_text(json.dumps({"auths": {token_registry.host: {"auth": encoded}}}))
    result = build_and_push(make_project(tmp_path / "p"), base_on(token_registry),
                            f"{token_registry.host}/{unique('alice/w')}:v1")
    assert skopeo_inspect(result.image, creds=ALICE)["Digest"] == result.digest


# -- Basic ----------------------------------------------------------------------------------------
def test_basic_auth_registry(basic_registry, isolated_env, tmp_path):
    result = build_and_push(make_project(tmp_path / "p"), base_on(basic_registry),
                            f"{basic_registry.host}/{unique()}:v1", username="carol", password="pw-carol-123")
    assert {b.action for b in result.blobs if b.kind == "base"} == {"mounted"}
    assert skopeo_inspect(result.image, creds=basic_registry.creds)["Digest"] == result.digest


def test_basic_auth_wrong_password(basic_registry, isolated_env, tmp_path):
    with pytest.raises(RegistryAuthError) as info:
        build_and_push(make_project(tmp_path / "p"), base_on(basic_registry), f"{basic_registry.host}/{unique()}:v1",
                       username="carol", password="wrong-pw-carol-1")
    assert "user 'carol'" in info.value.message
    assert "wrong-pw-carol-1" not in str(info.value)


def test_credentials_object_repr():
    creds = Credentials(username="x", source="test")
    assert repr(creds) == "Credentials(username='x', source='test')"
