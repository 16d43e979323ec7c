"""Engine builders (buildah, podman; docker when a daemon exists) and the choice between builders."""

from __future__ import annotations

import shutil
import tempfile

import pytest
from image_support import USERS, local_index, make_project, skopeo_inspect, unique

from runpod_jupyter.image import (
    BaseImage,
    NoBuilderError,
    RegistryAuthError,
    available_builders,
    build_and_push,
    dockerfile_for,
)
from runpod_jupyter.image import (
    builders as builders_module,
)
from runpod_jupyter.image.builders import BuilderStatus

ALICE = ("alice", USERS["alice"][0])


def need(engine: str) -> None:
    if not shutil.which(engine):
        pytest.skip(f"{engine} is not installed")


@pytest.fixture
def engine_args(tmp_path, monkeypatch):
    """Private storage (vfs, in tmp) so the test neither needs nor touches the machine's image store.
    podman wants a runroot path under 50 characters, hence a short one of its own."""
    monkeypatch.setenv("BUILDAH_ISOLATION", "chroot")
    runroot = tempfile.mkdtemp(prefix="rpj-run-")
    yield ["--root", str(tmp_path / "store"), "--runroot", runroot, "--storage-driver", "vfs"]
    shutil.rmtree(runroot, ignore_errors=True)


def base_on(server) -> BaseImage:
    return BaseImage(image=f"{server.host}/base/tiny:docker", python="3.11", python_exe="python3.11")


def copy_only_dockerfile(project, base: BaseImage) -> None:
    (project / "Dockerfile").write_text(
        "ARG BASE_IMAGE=scratch\nFROM ${BASE_IMAGE}\nWORKDIR /app\nCOPY . /app\n"
        'CMD ["python3.11", "-u", "/app/handler.py"]\n'
    )


def test_buildah_builds_the_project_dockerfile_and_pushes_with_credentials(token_registry, isolated_env, tmp_path,
                                                                           engine_args):
    need("buildah")
    project = make_project(tmp_path / "p", "print('engine')\n")
    base = base_on(token_registry)
    copy_only_dockerfile(project, base)  # BASE_IMAGE comes in as a build arg
    phases = []
    result = build_and_push(project, base, f"{token_registry.host}/{unique('alice/w')}:v1", builder="buildah",
                            username=ALICE[0], password=ALICE[1], engine_args=engine_args, progress=phases.append)
    assert result.builder == "buildah" and result.image.endswith(result.digest)
    config = skopeo_inspect(result.image, creds=ALICE, config=True)["config"]
    assert config["Cmd"] == ["python3.11", "-u", "/app/handler.py"] and config["WorkingDir"] == "/app"
    assert config["Labels"]["io.runpod-jupyter.source-hash"] == result.source_hash
    assert {p.phase for p in phases} >= {"build", "push", "done"}
    assert not any(ALICE[1] in p.message for p in phases)


def test_podman_builds_an_equivalent_dockerfile_when_the_project_has_none(registry, isolated_env, tmp_path, engine_args):
    need("podman")
    project = make_project(tmp_path / "p")
    (project / "Dockerfile").unlink()
    result = build_and_push(project, base_on(registry), f"{registry.host}/{unique()}:v1", builder="podman",
                            engine_args=engine_args)
    config = skopeo_inspect(result.image, config=True)["config"]
    assert config["Cmd"] == ["python3.11", "-u", "/app/handler.py"]
    assert "PYTHONUNBUFFERED=1" in config["Env"]


def test_engine_push_without_permission_is_an_auth_error(token_registry, isolated_env, tmp_path, engine_args):
    need("buildah")
    project = make_project(tmp_path / "p")
    copy_only_dockerfile(project, base_on(token_registry))
    with pytest.raises(RegistryAuthError) as info:
        build_and_push(project, base_on(token_registry), f"{token_registry.host}/{unique('bob/w')}:v1",
                       builder="buildah", username="bob", password=USERS["bob"][0], engine_args=engine_args)
    assert USERS["bob"][0] not in str(info.value)


def test_auto_falls_back_to_an_engine_for_a_native_requirement(registry, isolated_env, tmp_path, engine_args,
                                                               wheelhouse, monkeypatch):
    need("buildah")
    real = builders_module.builder_status
    monkeypatch.setattr(builders_module, "builder_status",
                        lambda name: real(name) if name in ("daemonless", "buildah") else BuilderStatus(name, False, "hidden"))
    project = make_project(tmp_path / "p", requirements="rpj-csdist\n")
    copy_only_dockerfile(project, base_on(registry))
    seen = []
    result = build_and_push(project, base_on(registry), f"{registry.host}/{unique()}:v1", index=local_index(wheelhouse),
                            engine_args=engine_args, progress=seen.append)
    assert result.builder == "buildah"
    assert any("rpj-csdist" in p.message and "buildah" in p.message for p in seen)


def test_auto_with_no_engine_lists_the_options(registry, isolated_env, tmp_path, wheelhouse, monkeypatch):
    monkeypatch.setattr(builders_module, "builder_status",
                        lambda name: BuilderStatus(name, name == "daemonless", f"`{name}` is not on PATH"))
    project = make_project(tmp_path / "p", requirements="rpj-csdist\n")
    with pytest.raises(NoBuilderError) as info:
        build_and_push(project, base_on(registry), f"{registry.host}/{unique()}:v1", index=local_index(wheelhouse))
    err = info.value
    assert "rpj-csdist" in err.message and "No container engine" in err.message
    for name in ("daemonless: available", "docker: `docker` is not on PATH", "podman:", "buildah:"):
        assert name in err.hint


def test_a_missing_engine_is_named_with_the_alternatives(registry, isolated_env, tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(builders_module.shutil, "which", lambda name: None if name == "docker" else real_which(name))
    with pytest.raises(NoBuilderError) as info:
        build_and_push(make_project(tmp_path / "p"), base_on(registry), f"{registry.host}/{unique()}:v1",
                       builder="docker")
    assert "docker" in info.value.message and "daemonless: available" in info.value.hint
    with pytest.raises(NoBuilderError, match="Unknown builder"):
        build_and_push(make_project(tmp_path / "q"), base_on(registry), f"{registry.host}/{unique()}:v1",
                       builder="kaniko")


def test_builder_statuses():
    statuses = {s.name: s for s in available_builders()}
    assert list(statuses) == ["daemonless", "docker", "podman", "buildah"]
    assert statuses["daemonless"].available
    for name in ("podman", "buildah"):
        assert statuses[name].available == bool(shutil.which(name))


def test_generated_dockerfile_matches_the_daemonless_layout():
    base = BaseImage(image="runpod/base:1.0.7-ubuntu2204", python="3.11", python_exe="python3.11")
    text = dockerfile_for(base, requirements=True)
    assert text.startswith("FROM runpod/base:1.0.7-ubuntu2204\n")
    assert "--target /opt/runpod_jupyter/site-packages" in text and "ENV PYTHONPATH=/opt/runpod_jupyter/site-packages" in text
    assert text.rstrip().endswith('CMD ["python3.11", "-u", "/app/handler.py"]')
    assert "pip" not in dockerfile_for(base, requirements=False)
