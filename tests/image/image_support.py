"""Helpers for the build tests: Debian's ``docker-registry`` started on a free 127.0.0.1 port, a
Bearer token server (RS256 JWT with x5c) in a thread, tiny base images made offline with the
package's own layer writer, and ``skopeo`` as the independent check of what was pushed."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from runpod_jupyter.image.auth import credentials_from
from runpod_jupyter.image.layers import Layer, write_layer
from runpod_jupyter.image.manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    OCI_CONFIG,
    OCI_LAYER,
    canonical_json,
)
from runpod_jupyter.image.registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Registry,
    sha256_digest,
)

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo")
READY_TIMEOUT_S = 15.0

USERS = {
    # name: (password, rule) — rule(repository) -> allowed actions
    "alice": ("s3cret-alice", lambda repo: {"pull", "push"} if repo.startswith("alice/") else {"pull"}),
    "bob": ("hunter22-bob", lambda repo: {"pull"}),
    "admin": ("admin-pw-123", lambda repo: {"pull", "push"}),
}
ANONYMOUS_RULE = lambda repo: {"pull"} if repo.startswith("base/") else set()  # noqa: E731


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def need_registry() -> None:
    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    if not SKOPEO:
        pytest.skip("skopeo is not installed (apt-get install skopeo): it is the independent check of pushed images")


@dataclass
class RegistryServer:
    """One docker-registry process we started; stopped by its own PID."""

    host: str
    root: Path
    proc: subprocess.Popen
    log: Path
    creds: tuple[str, str] | None = None
    bases: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_registry(root: Path, auth: dict[str, Any] | None = None) -> RegistryServer:
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-secret-not-for-production"},
    }
    if auth:
        config["auth"] = auth
    cfg = root / "config.yml"
    cfg.write_text(json.dumps(config))  # JSON is YAML
    log = root / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=out, stderr=subprocess.STDOUT)
    server = RegistryServer(host=f"127.0.0.1:{port}", root=root, proc=proc, log=log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    for _ in range(3000):
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/v2/", timeout=1.0).status_code in (200, 401):
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    server.stop()
    raise RuntimeError(f"docker-registry did not become ready: {log.read_text()[-2000:]}")


# -- token server ---------------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """The distribution token flow: Basic credentials in, an RS256 JWT (with x5c) out."""

    def __init__(self, workdir: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-token-issuer")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(self.key, hashes.SHA256())
        )
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.bundle = workdir / "token-cert.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.issuer, self.service = "test-issuer", "test-registry"
        self.requests: list[tuple[str | None, list[str]]] = []
        self.expired_tokens_to_issue = 0
        self.lock = threading.Lock()
        self.port = _free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def _sign(self, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        rule = USERS[user][1] if user else ANONYMOUS_RULE
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) != 3 or parts[0] != "repository":
                continue
            allowed = sorted(set(parts[2].split(",")) & rule(parts[1]))
            access.append({"type": "repository", "name": parts[1], "actions": allowed})
        return access

    def _handler(self) -> type:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                query = parse_qs(urlsplit(self.path).query)
                scopes = [s for value in query.get("scope", []) for s in value.split(" ")]
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if name not in USERS or USERS[name][0] != password:
                        self._reply(401, {"details": "invalid username or password"})
                        return
                    user = name
                with server.lock:
                    server.requests.append((user, scopes))
                    expired = server.expired_tokens_to_issue > 0
                    if expired:
                        server.expired_tokens_to_issue -= 1
                now = int(time.time())
                claims = {
                    "iss": server.issuer, "sub": user or "", "aud": server.service,
                    "iat": now - 300, "nbf": now - 300, "exp": now - 120 if expired else now + 300,  # registry leeway: 60 s
                    "jti": uuid.uuid4().hex, "access": server.grant(user, scopes),
                }
                token = server._sign(claims)
                self._reply(200, {"token": token, "access_token": token, "expires_in": 300})

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


# -- base images ----------------------------------------------------------------------------------
@dataclass
class PushedImage:
    repository: str
    tag: str
    digest: str
    family: str
    layers: list[Layer] = field(default_factory=list)


def push_image(
    registry: RegistryServer,
    repository: str,
    tag: str,
    layers: list[Layer],
    config: dict[str, Any],
    family: str = "docker",
) -> PushedImage:
    """Push a single-platform image made of ``layers`` with ``config`` (diff_ids filled in here)."""
    config = dict(config)
    config["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    config_raw = canonical_json(config)
    manifest_type, config_type, layer_type = (
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER) if family == "docker" else (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": sha256_digest(config_raw), "size": len(config_raw)},
        "layers": [{"mediaType": layer_type, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    raw = canonical_json(manifest)
    with _admin(registry, repository) as reg:
        for layer in layers:
            if reg.blob_size(repository, layer.digest) is None:
                reg.upload_blob(repository, layer.digest, layer.size, layer.chunks)
        reg.upload_blob(repository, sha256_digest(config_raw), len(config_raw), lambda: iter([config_raw]))
        digest = reg.put_manifest(repository, tag, raw, manifest_type)
    return PushedImage(repository, tag, digest, family, list(layers))


def _admin(registry: RegistryServer, repository: str) -> Registry:
    creds = credentials_from(*registry.creds) if registry.creds else None
    return Registry(registry.host, credentials=creds, scopes=[f"repository:{repository}:pull,push"])


def push_index(registry: RegistryServer, repository: str, tag: str, entries: list[tuple[PushedImage, dict]]) -> str:
    """An OCI index over already pushed manifests (``entries``: image, platform)."""
    manifests = []
    with _admin(registry, repository) as reg:
        for image, platform in entries:
            got = reg.get_manifest(image.repository, image.digest)
            manifests.append({"mediaType": got.media_type, "digest": got.digest, "size": len(got.raw),
                              "platform": platform})
        raw = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        return reg.put_manifest(repository, tag, raw, OCI_INDEX)


def tiny_base_layers(workdir: Path, *, big: int = 256 * 1024, seed: int = 7, arch_note: str = "amd64") -> list[Layer]:
    """Two layers: an OS stub with a fake python3.11, and ``big`` random bytes standing in for a
    real base's bulk (seeded, so the digests are the same on every run)."""
    rng = random.Random(seed)
    os_layer = write_layer(
        {
            "etc/os-release": f'PRETTY_NAME="tiny test base ({arch_note})"\nID=tiny\n',
            "usr/local/bin/python3.11": "#!/bin/sh\necho fake python\n",
        },
        workdir / f"os-{seed}-{arch_note}.tar.gz",
    )
    bulk = write_layer({"usr/share/bulk.bin": rng.randbytes(big)}, workdir / f"bulk-{seed}-{big}.tar.gz", level=1)
    return [os_layer, bulk]


BASE_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2024-01-02T03:04:05Z",
    "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["/bin/sh"]},
    "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "tiny os"},
                {"created": "2024-01-02T03:04:05Z", "created_by": "tiny bulk"}],
}


@dataclass
class Bases:
    docker: PushedImage
    oci: PushedImage
    multi_repository: str
    multi_tag: str
    multi_index: str
    multi_amd64: PushedImage
    big: PushedImage


def seed_bases(registry: RegistryServer, workdir: Path) -> Bases:
    layers = tiny_base_layers(workdir)
    docker = push_image(registry, "base/tiny", "docker", layers, BASE_CONFIG, "docker")
    oci = push_image(registry, "base/tiny-oci", "1", layers, BASE_CONFIG, "oci")
    arm_config = {**BASE_CONFIG, "architecture": "arm64"}
    arm = push_image(registry, "base/multi", "arm64-only", tiny_base_layers(workdir, seed=8, arch_note="arm64"),
                     arm_config, "oci")
    amd = push_image(registry, "base/multi", "amd64-only", layers, BASE_CONFIG, "oci")
    index = push_index(registry, "base/multi", "1", [
        (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
        (amd, {"os": "linux", "architecture": "amd64"}),
    ])
    big_layers = tiny_base_layers(workdir, big=5 * 1024 * 1024 + 123, seed=9)
    big = push_image(registry, "base/big", "1", big_layers, BASE_CONFIG, "docker")
    return Bases(docker=docker, oci=oci, multi_repository="base/multi", multi_tag="1", multi_index=index,
                 multi_amd64=amd, big=big)


def make_project(where: Path, handler: str = "print('v1')\n", requirements: str | None = None,
                 extra: dict[str, bytes] | None = None) -> Path:
    """A worker project dir: handler.py, optional requirements.txt, a Dockerfile, extra files."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "handler.py").write_text(handler)
    if requirements is not None:
        (where / "requirements.txt").write_text(requirements)
    (where / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    for name, data in (extra or {}).items():
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return where


def unique(prefix: str = "user/worker") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def skopeo_inspect(image: str, *, creds: tuple[str, str] | None = None, config: bool = False) -> dict[str, Any]:
    """``skopeo inspect`` (an independent implementation) must accept the pushed image."""
    cmd = [SKOPEO, "inspect", "--tls-verify=false"]
    if config:
        cmd.append("--config")
    if creds:
        cmd += ["--creds", f"{creds[0]}:{creds[1]}"]
    cmd.append(f"docker://{image}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"skopeo refused {image}: {proc.stderr}"
    return json.loads(proc.stdout)


class RecordingTransport(httpx.BaseTransport):
    """Passes requests to the real network transport and remembers (method, path, query, headers)."""

    def __init__(self, rewrite: Callable[[httpx.Request], httpx.Request] | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: list[tuple[str, str, str, dict[str, str]]] = []
        self.rewrite = rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.rewrite:
            request = self.rewrite(request)
        self.seen.append((request.method, request.url.path, request.url.query.decode(), dict(request.headers)))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def local_index(wheelhouse: Path):
    from runpod_jupyter.image import IndexOptions

    return IndexOptions(no_index=True, find_links=(str(wheelhouse),))
