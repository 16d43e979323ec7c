"""Fixtures for the build tests: real registries on free 127.0.0.1 ports (anonymous, Bearer token,
Basic), each stopped by its PID at the end and seeded with the tiny base images."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_support import USERS, TokenServer, need_registry, seed_bases, start_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """An anonymous registry with the tiny bases pushed."""
    need_registry()
    root = tmp_path_factory.mktemp("registry")
    server = start_registry(root)
    try:
        server.bases = seed_bases(server, root / "layers")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("cryptography")
    need_registry()
    server = TokenServer(tmp_path_factory.mktemp("tokens"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer):
    """A registry that only accepts Bearer tokens from ``token_server``; bases pushed by admin."""
    root = tmp_path_factory.mktemp("token-registry")
    auth = {"token": {"realm": token_server.realm, "service": token_server.service, "issuer": token_server.issuer,
                      "rootcertbundle": str(token_server.bundle)}}
    server = start_registry(root, auth)
    server.creds = ("admin", USERS["admin"][0])
    try:
        server.bases = seed_bases(server, root / "layers")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory):
    """A registry with htpasswd (Basic) authentication; bases pushed by its one user."""
    bcrypt = pytest.importorskip("bcrypt")
    need_registry()
    root = tmp_path_factory.mktemp("basic-registry")
    htpasswd = root / "htpasswd"
    htpasswd.write_text("carol:" + bcrypt.hashpw(b"pw-carol-123", bcrypt.gensalt(5)).decode() + "\n")
    server = start_registry(root, {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd)}})
    server.creds = ("carol", "pw-carol-123")
    try:
        server.bases = seed_bases(server, root / "layers")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local distributions for ``--no-index --find-links`` installs (no package index involved)."""
    from image_packages import make_sdist, make_wheel

    where = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(where, "rpj-pure", "1.0", requires=("rpj-native>=1",))
    make_wheel(where, "rpj-native", "1.2", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    make_wheel(where, "rpj-new", "2.0", tag="cp311-cp311-manylinux_2_38_x86_64")
    make_wheel(where, "rpj-linux", "1.0", tag="cp311-cp311-linux_x86_64")
    make_wheel(where, "rpj-torchish", "1.0", requires=("nvidia-fake>=1",))
    make_wheel(where, "nvidia-fake", "1.0")
    make_wheel(where, "rpj-usestorch", "1.0", requires=("rpj-torchish",))
    make_wheel(where, "rpj-tool", "1.0", files={"rpj_tool-1.0.data/scripts/rpj-tool": "#!python\nprint(1)\n"})
    make_sdist(where, "rpj-sdist", "0.5")
    make_sdist(where, "rpj-csdist", "0.7", wheel_tag="cp311-cp311-linux_x86_64")
    return where


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credentials of this machine reach a test: empty docker config, no env credentials;
    data dir and uv cache in tmp."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("RUNPOD_JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    for name in ("RUNPOD_JUPYTER_REGISTRY_USERNAME", "RUNPOD_JUPYTER_REGISTRY_PASSWORD", "RUNPOD_JUPYTER_REGISTRY",
                 "SOURCE_DATE_EPOCH"):
        monkeypatch.delenv(name, raising=False)
    return home
