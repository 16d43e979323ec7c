"""The daemonless builder against a real registry: what goes over the wire, and what lands there."""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest
from image_support import (
    BASE_CONFIG,
    SKOPEO,
    RecordingTransport,
    _free_port,
    local_index,
    make_project,
    push_image,
    push_index,
    skopeo_inspect,
    tiny_base_layers,
    unique,
)

from runpod_jupyter.image import (
    VENDOR_DIR,
    BaseImage,
    ImageError,
    RegistryError,
    RegistryUnreachableError,
    build_and_push,
)
from runpod_jupyter.image.registry import DOCKER_MANIFEST, OCI_MANIFEST, Registry

HANDLER_V1 = "import runpod\n\ndef handler(job):\n    return {'v': 1}\n\nrunpod.serverless.start({'handler': handler})\n"
HANDLER_V2 = HANDLER_V1.replace("'v': 1", "'v': 2")


def tiny(registry, tag: str = "base/tiny:docker") -> BaseImage:
    return BaseImage(image=f"{registry.host}/{tag}", python="3.11", python_exe="python3.11", glibc="2.35")


def read_manifest(registry, image: str) -> tuple[dict, bytes]:
    repo_and_digest = image.split("/", 1)[1]
    repo, digest = repo_and_digest.split("@")
    with Registry(registry.host, credentials=None) as reg:
        got = reg.get_manifest(repo, digest)
    return got.json(), got.raw


def layer_members(registry, repository: str, digest: str) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    with Registry(registry.host) as reg:
        data = b"".join(reg.stream_blob(repository, digest))
    out = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as archive:
        for member in archive:
            content = archive.extractfile(member).read() if member.isfile() else None
            out[member.name] = (member, content)
    return out


def test_first_push_mounts_base_layers_and_uploads_only_what_is_new(registry, isolated_env, tmp_path):
    project = make_project(tmp_path / "p", HANDLER_V1, extra={"helpers/util.py": b"X = 1\n",
                                                                "__pycache__/junk.cpython-311.pyc": b"\0"})
    target = f"{registry.host}/{unique()}:v1"
    phases = []
    result = build_and_push(project, tiny(registry), target, progress=phases.append)

    repo = target.split("/", 1)[1].split(":")[0]
    assert result.image == f"{registry.host}/{repo}@{result.digest}"
    assert result.tagged == target
    actions = {(b.kind, b.action) for b in result.blobs}
    assert actions == {("base", "mounted"), ("handler", "uploaded"), ("config", "uploaded")}
    assert [b.action for b in result.blobs if b.kind == "base"] == ["mounted", "mounted"]

    manifest, manifest_raw = read_manifest(registry, result.image)
    new_sizes = manifest["config"]["size"] + manifest["layers"][-1]["size"] + len(manifest_raw)
    assert result.bytes_uploaded == new_sizes  # base bytes never travelled
    assert result.bytes_uploaded < 8 * 1024

    inspected = skopeo_inspect(result.image)
    assert inspected["Digest"] == result.digest and inspected["Architecture"] == "amd64"
    config = skopeo_inspect(result.image, config=True)["config"]
    assert config["Cmd"] == ["python3.11", "-u", "/app/handler.py"]
    assert config["WorkingDir"] == "/app"
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in config["Env"] and "PYTHONUNBUFFERED=1" in config["Env"]
    assert not any(e.startswith("PYTHONPATH=") for e in config["Env"])  # no requirements, no vendored dir
    assert config["Labels"]["io.runpod-jupyter.source-hash"] == result.source_hash

    members = layer_members(registry, repo, manifest["layers"][-1]["digest"])
    assert sorted(members) == ["app", "app/handler.py", "app/helpers", "app/helpers/util.py"]
    assert members["app/handler.py"][1] == HANDLER_V1.encode()
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m, _ in members.values())

    seen_phases = [p.phase for p in phases]
    assert seen_phases[0] == "resolve" and seen_phases[-1] == "done"
    uploads = [p for p in phases if p.phase == "upload"]
    assert uploads[-1].done == uploads[-1].total > 0


def test_handler_only_change_repushes_under_8kb(registry, isolated_env, tmp_path, wheelhouse):
    project = make_project(tmp_path / "p", HANDLER_V1, requirements="rpj-pure\n")
    repo = f"{registry.host}/{unique()}"
    first = build_and_push(project, tiny(registry), f"{repo}:v1", index=local_index(wheelhouse))
    deps_blob = [b for b in first.blobs if b.kind == "dependencies"]
    assert deps_blob and deps_blob[0].action == "uploaded" and first.deps_cached is False

    (project / "handler.py").write_text(HANDLER_V2)
    second = build_and_push(project, tiny(registry), f"{repo}:v2", index=local_index(wheelhouse))
    assert second.digest != first.digest
    assert second.bytes_uploaded < 8 * 1024, second.bytes_uploaded
    assert second.deps_cached is True
    by_kind = {b.kind: b.action for b in second.blobs}
    assert by_kind == {"base": "existing", "dependencies": "existing", "handler": "uploaded", "config": "uploaded"}

    config = skopeo_inspect(second.image, config=True)["config"]
    assert f"PYTHONPATH={VENDOR_DIR}" in config["Env"]
    manifest, _ = read_manifest(registry, second.image)
    deps_members = layer_members(registry, repo.split("/", 1)[1], manifest["layers"][-2]["digest"])
    assert f"{VENDOR_DIR.lstrip('/')}/rpj_pure/__init__.py" in deps_members
    assert f"{VENDOR_DIR.lstrip('/')}/rpj_native/__init__.py" in deps_members  # a dependency of rpj-pure


def test_identical_inputs_give_the_identical_digest(registry, isolated_env, tmp_path):
    a = make_project(tmp_path / "a", HANDLER_V1, extra={"data/x.txt": b"same"})
    b = make_project(tmp_path / "b", HANDLER_V1, extra={"data/x.txt": b"same"})
    (b / "handler.py").touch()  # different mtime on disk must not matter
    first = build_and_push(a, tiny(registry), f"{registry.host}/{unique()}:v1")
    other_repo = build_and_push(b, tiny(registry), f"{registry.host}/{unique()}:v1")
    assert other_repo.digest == first.digest

    again = build_and_push(a, tiny(registry), first.tagged)
    assert again.digest == first.digest
    _manifest, raw = read_manifest(registry, again.image)
    assert again.bytes_uploaded == len(raw)  # every blob was already there: only the manifest went up
    assert {blob.action for blob in again.blobs} == {"existing"}


@pytest.mark.parametrize("tag,family_type", [("base/tiny:docker", DOCKER_MANIFEST), ("base/tiny-oci:1", OCI_MANIFEST)])
def test_manifest_keeps_the_base_media_type_family(registry, isolated_env, tmp_path, tag, family_type):
    result = build_and_push(make_project(tmp_path / "p"), tiny(registry, tag), f"{registry.host}/{unique()}:v1")
    manifest, _ = read_manifest(registry, result.image)
    assert manifest["mediaType"] == family_type == result.media_type
    layer_types = {layer["mediaType"] for layer in manifest["layers"]}
    assert len(layer_types) == 1 and ("oci" in next(iter(layer_types))) == (family_type == OCI_MANIFEST)
    assert skopeo_inspect(result.image)["Digest"] == result.digest


def test_multi_arch_base_resolves_to_linux_amd64(registry, isolated_env, tmp_path):
    bases = registry.bases
    result = build_and_push(make_project(tmp_path / "p"), tiny(registry, "base/multi:1"),
                            f"{registry.host}/{unique()}:v1")
    assert result.base == f"{registry.host}/base/multi@{bases.multi_amd64.digest}"
    assert result.base.split("@")[1] != bases.multi_index
    config = skopeo_inspect(result.image, config=True)
    assert config["architecture"] == "amd64"
    assert len(config["rootfs"]["diff_ids"]) == 3


def test_base_without_amd64_is_refused_with_the_platforms_it_has(registry, isolated_env, tmp_path):
    arm = push_image(registry, "base/armonly", "arm", tiny_base_layers(tmp_path, seed=3, arch_note="arm64"),
                     {**BASE_CONFIG, "architecture": "arm64"}, "oci")
    push_index(registry, "base/armonly", "1", [(arm, {"os": "linux", "architecture": "arm64"})])
    with pytest.raises(ImageError) as info:
        build_and_push(make_project(tmp_path / "p"), tiny(registry, "base/armonly:1"), f"{registry.host}/{unique()}:v1")
    assert "linux/arm64" in info.value.message and "amd64" in info.value.message
    assert info.value.hint


def _drop_mount(request: httpx.Request) -> httpx.Request:
    if "mount" not in request.url.params:
        return request
    params = [(k, v) for k, v in request.url.params.multi_items() if k not in ("mount", "from")]
    return httpx.Request(request.method, request.url.copy_with(params=params), headers=request.headers,
                         content=request.content)


def test_refused_mount_falls_back_to_streaming_the_base_blobs(registry, isolated_env, tmp_path):
    transport = RecordingTransport(rewrite=_drop_mount)  # a registry that ignores mount requests
    result = build_and_push(make_project(tmp_path / "p"), tiny(registry, "base/big:1"),
                            f"{registry.host}/{unique()}:v1", transport=transport)
    base_blobs = [b for b in result.blobs if b.kind == "base"]
    assert [b.action for b in base_blobs] == ["streamed", "streamed"]
    assert result.bytes_uploaded > sum(b.size for b in base_blobs) > 5 * 1024 * 1024
    # the session opened by the refused mount was the one used: no second POST for those blobs
    posts = [s for s in transport.seen if s[0] == "POST"]
    assert len(posts) == 4  # 2 (answered as plain uploads) + handler layer + config
    patches = [s for s in transport.seen if s[0] == "PATCH"]
    assert len(patches) == 1 and "content-range" not in patches[0][3]  # the >4 MiB layer: one streamed PATCH
    _copy_and_verify(result.image, tmp_path)


def test_base_in_another_registry_is_streamed_through(registry, token_registry, isolated_env, tmp_path):
    base = BaseImage(image=f"{token_registry.host}/base/big:1", python="3.11")  # anonymous pull allowed there
    result = build_and_push(make_project(tmp_path / "p"), base, f"{registry.host}/{unique()}:v1")
    base_blobs = [b for b in result.blobs if b.kind == "base"]
    assert {b.action for b in base_blobs} == {"streamed"}
    assert result.bytes_uploaded > 5 * 1024 * 1024
    _copy_and_verify(result.image, tmp_path)


def test_layer_over_4mib_goes_up_in_one_streamed_patch(registry, isolated_env, tmp_path):
    big = random.Random(1).randbytes(5 * 1024 * 1024)
    project = make_project(tmp_path / "p", extra={"weights.bin": big})
    transport = RecordingTransport()
    result = build_and_push(project, tiny(registry), f"{registry.host}/{unique()}:v1", transport=transport)
    handler = next(b for b in result.blobs if b.kind == "handler")
    assert handler.size > 4 * 1024 * 1024 and handler.action == "uploaded"
    patches = [s for s in transport.seen if s[0] == "PATCH"]
    assert len(patches) == 1
    assert int(patches[0][3]["content-length"]) == handler.size and "content-range" not in patches[0][3]
    puts = [s for s in transport.seen if s[0] == "PUT" and f"digest={handler.digest.replace(':', '%3A')}" in s[2]]
    assert len(puts) == 1 and puts[0][3]["content-length"] == "0"
    _copy_and_verify(result.image, tmp_path)


def test_content_range_chunks_when_asked(registry, isolated_env, tmp_path):
    big = random.Random(2).randbytes(5 * 1024 * 1024)
    project = make_project(tmp_path / "p", extra={"weights.bin": big})
    transport = RecordingTransport()
    result = build_and_push(project, tiny(registry), f"{registry.host}/{unique()}:v1", transport=transport,
                            chunk_size=2 * 1024 * 1024)
    handler = next(b for b in result.blobs if b.kind == "handler")
    sessions: dict[str, list[str]] = {}
    for method, path, _query, headers in transport.seen:
        if method == "PATCH":
            sessions.setdefault(path.rsplit("/", 1)[-1], []).append(headers["content-range"])
    chunk = 2 * 1024 * 1024
    expected = [f"{start}-{min(start + chunk, handler.size) - 1}" for start in range(0, handler.size, chunk)]
    assert expected in sessions.values() and len(expected) == 3
    assert len(sessions) == 2  # the handler layer and the config, each in its own upload session
    _copy_and_verify(result.image, tmp_path)


def _copy_and_verify(image: str, tmp_path: Path) -> None:
    """``skopeo copy`` downloads every blob and checks every digest."""
    dest = tmp_path / f"copy-{abs(hash(image))}"
    proc = subprocess.run([SKOPEO, "copy", "--src-tls-verify=false", f"docker://{image}", f"dir:{dest}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((dest / "manifest.json").read_text())
    for layer in manifest["layers"]:
        assert (dest / layer["digest"].split(":", 1)[1]).stat().st_size == layer["size"]


@pytest.mark.slow
def test_unreachable_registry_says_so(isolated_env, tmp_path):
    host = f"127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(RegistryUnreachableError) as info:
        build_and_push(make_project(tmp_path / "p"), BaseImage(image=f"{host}/base/tiny:1", python="3.11"),
                       f"{host}/{unique()}:v1")
    assert host in info.value.message and "running" in info.value.hint


def test_missing_base_tag_is_a_clear_error(registry, isolated_env, tmp_path):
    with pytest.raises(RegistryError) as info:
        build_and_push(make_project(tmp_path / "p"), tiny(registry, "base/tiny:no-such-tag"),
                       f"{registry.host}/{unique()}:v1")
    assert info.value.status == 404 and "no-such-tag" in info.value.message
    assert "tag" in info.value.hint


def test_target_must_be_a_tag_not_a_digest(registry, isolated_env, tmp_path):
    with pytest.raises(ImageError, match="needs a tag"):
        build_and_push(make_project(tmp_path / "p"), tiny(registry), f"{registry.host}/x/y@sha256:{'a' * 64}")


def test_project_without_handler_is_refused(registry, isolated_env, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="handler.py"):
        build_and_push(tmp_path / "empty", tiny(registry), f"{registry.host}/{unique()}:v1")


class FlakyTransport(RecordingTransport):
    """The real registry, except that chosen requests first get an error reply (once each)."""

    def __init__(self, faults: list[tuple[str, str, int, dict]]) -> None:
        super().__init__()
        self.faults = list(faults)  # (method, query or path fragment, status, headers)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for fault in self.faults:
            method, fragment, status, headers = fault
            if request.method == method and fragment in str(request.url):
                self.faults.remove(fault)
                self.seen.append((request.method, request.url.path, request.url.query.decode(), {"injected": str(status)}))
                request.read()
                return httpx.Response(status, headers=headers, json={"errors": [{"code": "UNAVAILABLE"}]})
        return super().handle_request(request)


def test_registry_hiccups_are_retried(registry, isolated_env, tmp_path):
    transport = FlakyTransport([
        ("GET", "/manifests/", 429, {"Retry-After": "0"}),  # rate limited once
        ("PUT", "digest=", 503, {}),  # the first blob upload fails at the end: it is redone in a new session
    ])
    result = build_and_push(make_project(tmp_path / "p"), tiny(registry), f"{registry.host}/{unique()}:v1",
                            transport=transport)
    assert not transport.faults  # both faults were hit
    injected = [s for s in transport.seen if "injected" in s[3]]
    assert len(injected) == 2
    posts = [s for s in transport.seen if s[0] == "POST" and "mount" not in s[2]]
    assert len(posts) == 3  # handler layer + config, plus one new session for the upload that failed
    assert skopeo_inspect(result.image)["Digest"] == result.digest


def _scripted_registry(replies: list[httpx.Response]) -> tuple[Registry, list[float]]:
    """A Registry whose every request after the ping gets the next scripted reply; sleeps are recorded."""
    slept: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200) if request.url.path == "/v2/" else replies.pop(0)

    return Registry("127.0.0.1:1", transport=httpx.MockTransport(handle), sleep=slept.append), slept


def test_registry_backoff_keeps_its_own_numbers():
    """Registry retries: 4 attempts, 0.5/1/2 s without jitter, Retry-After cut to 30 s (not given up on)."""
    reg, slept = _scripted_registry([httpx.Response(503) for _ in range(4)])
    with reg:
        assert reg.request("GET", "/v2/x/manifests/v1").status_code == 503
    assert slept == [0.5, 1.0, 2.0]
    reg, slept = _scripted_registry([httpx.Response(429, headers={"Retry-After": "120"}),
                                     httpx.Response(429, headers={"Retry-After": "not a date"}),
                                     httpx.Response(200)])
    with reg:
        assert reg.request("GET", "/v2/x/manifests/v1").status_code == 200
    assert slept == [30.0, 1.0]  # the unreadable header falls back to backoff


def test_base_and_python_come_from_the_packaging_manifest(registry, isolated_env, tmp_path):
    manifest = {"base_image": f"{registry.host}/base/tiny-oci:1", "python": "3.10", "python_executable": "python3.10"}
    project = make_project(tmp_path / "p", extra={"runpod-jupyter.json": json.dumps(manifest).encode()})
    result = build_and_push(project, None, f"{registry.host}/{unique()}:v1")
    assert result.base == f"{registry.host}/base/tiny-oci@{registry.bases.oci.digest}"
    config = skopeo_inspect(result.image, config=True)["config"]
    assert config["Cmd"] == ["python3.10", "-u", "/app/handler.py"]
