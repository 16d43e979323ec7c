"""The cloud deploy path end to end against real parts: the worker image is built and pushed to a
real registry (docker-registry), and the template/endpoint go through the management API. The
embedded RunPod stands in for RunPod's API here (its URLs through the SDK's base-URL variables);
it stores cloud images without running them, so these deploys do not wait for a worker."""

from __future__ import annotations

import pytest
from image_support import skopeo_inspect

import runpod_jupyter
from runpod_jupyter.api import Client
from runpod_jupyter.endpoints import find_endpoint
from runpod_jupyter.errors import DeployError

HANDLER = """
import runpod
VERSION = {version}
def handler(job):
    return {{"version": VERSION}}
"""


@pytest.fixture()
def cloud_api(local_runpod, monkeypatch, tmp_path):
    monkeypatch.setenv("RUNPOD_API_KEY", local_runpod.api_key.reveal())
    monkeypatch.setenv("RUNPOD_API_BASE_URL", local_runpod.url)
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", local_runpod.rest_base)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.docker/config.json from the machine
    monkeypatch.delenv("RUNPOD_JUPYTER_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("RUNPOD_JUPYTER_REGISTRY_PASSWORD", raising=False)
    with Client(local_runpod.settings()) as client:
        yield client


def _deploy(version: int, registry, reported: list[str], name: str = "cloudy", **extra):
    return runpod_jupyter.deploy(
        HANDLER.format(version=version), name, backend="cloud", gpu="ADA_24",
        registry=f"{registry.host}/team", base_image=f"{registry.host}/base/tiny:docker",
        wait=False, on_progress=lambda phase, detail: reported.append(detail), **extra,
    )


def test_cloud_deploy_pushes_a_pinned_image_and_updates_in_place(cloud_api, registry):
    reported: list[str] = []
    first = _deploy(1, registry, reported)
    spec = cloud_api.get_endpoint(first.endpoint_id)
    image = spec.image
    assert image.startswith(f"{registry.host}/team/cloudy@sha256:")
    assert spec.docker_args == "" and "RUNPOD_API_KEY" not in spec.env
    config = skopeo_inspect(image, config=True)
    assert "/app/handler.py" in " ".join(config["config"]["Cmd"])
    assert any(line.startswith("pushed ") for line in reported)

    reported.clear()
    second = _deploy(2, registry, reported)
    assert second.endpoint_id == first.endpoint_id
    again = cloud_api.get_endpoint(first.endpoint_id).image
    assert again != image and again.startswith(f"{registry.host}/team/cloudy@sha256:")
    pushed = next(line for line in reported if line.startswith("pushed "))
    kilobytes = float(pushed.split("(")[1].split(" kB")[0])
    assert kilobytes < 8  # a handler edit re-pushes kilobytes, not the dependencies
    assert "image" in cloud_api.releases(first.endpoint_id).latest.fields  # one PATCH: a new release

    reported.clear()
    version = cloud_api.releases(first.endpoint_id).endpoint_version
    _deploy(2, registry, reported)  # the same cell again: nothing is built, pushed or released
    assert not any(line.startswith("pushed ") for line in reported)
    assert any("already pushed" in line for line in reported) and any("up to date" in line for line in reported)
    assert cloud_api.get_endpoint(first.endpoint_id).image == again
    assert cloud_api.releases(first.endpoint_id).endpoint_version == version
    second.delete()
    assert find_endpoint(cloud_api, "cloudy") is None


def test_cloud_deploy_without_a_registry(cloud_api, registry):
    with pytest.raises(DeployError) as caught:
        runpod_jupyter.deploy(HANDLER.format(version=1), "noregistry", backend="cloud", gpu="ADA_24", wait=False)
    assert "--registry" in str(caught.value) and "Nothing had been created" in str(caught.value)
    assert find_endpoint(cloud_api, "noregistry") is None


def test_cloud_deploy_with_wrong_registry_credentials_creates_nothing(cloud_api, basic_registry, monkeypatch):
    monkeypatch.setenv("RUNPOD_JUPYTER_REGISTRY_USERNAME", "carol")
    monkeypatch.setenv("RUNPOD_JUPYTER_REGISTRY_PASSWORD", "not-carols-password")
    templates = {t.name for t in cloud_api.list_templates()}
    with pytest.raises(DeployError) as caught:
        _deploy(1, basic_registry, [], name="locked")
    assert "not-carols-password" not in str(caught.value)
    assert "refused" in str(caught.value) and "carol" in str(caught.value)
    assert find_endpoint(cloud_api, "locked") is None
    assert {t.name for t in cloud_api.list_templates()} == templates


def test_private_registry_login_is_registered_with_runpod(cloud_api, basic_registry, monkeypatch):
    monkeypatch.setenv("RUNPOD_JUPYTER_REGISTRY_USERNAME", "carol")
    monkeypatch.setenv("RUNPOD_JUPYTER_REGISTRY_PASSWORD", "pw-carol-123")
    deployed = _deploy(1, basic_registry, [], name="private")
    spec = cloud_api.get_endpoint(deployed.endpoint_id)
    auths = {a.id: a.name for a in cloud_api.list_registry_auths()}
    assert spec.registry_auth_id in auths
    assert "pw-carol-123" not in repr(spec) and "pw-carol-123" not in str(spec.env)
    deployed.delete()


def test_cloud_deploy_without_push_credentials_builds_nothing(cloud_api):
    with pytest.raises(DeployError) as caught:
        runpod_jupyter.deploy(HANDLER.format(version=1), "nocreds", backend="cloud", gpu="ADA_24",
                              registry="docker.io/someone", wait=False)
    assert "No push credentials" in str(caught.value) and "docker login" in str(caught.value)
    assert find_endpoint(cloud_api, "nocreds") is None


def test_a_cloud_runner_is_pushed_where_runpod_config_registry_says(cloud_api, registry, monkeypatch):
    """``%%runpod_run --cloud``'s runner on the cloud path: its image holds the packages the cell
    imports, pinned to the kernel's versions, on the base asked for, pushed to the registry that
    ``%runpod_config registry`` set; a later kernel finds it by name and reuses it. No worker can
    run a cloud image here, so the runner asks for none (``workers_max=0``) instead of waiting."""
    from runpod_jupyter import hot, runner

    monkeypatch.setenv("RUNPOD_JUPYTER_REGISTRY", f"{registry.host}/team")  # what %runpod_config registry sets
    hot.forget_runners()
    options = hot.RunnerOptions(backend="cloud", gpu=("ADA_24",), workers_max=0,
                                base_image=f"{registry.host}/base/tiny:docker")
    needed = runner.requirements_for(runner.packed_cell("import cloudpickle\nblob = cloudpickle.dumps(1)\n", {}))
    reported: list[str] = []
    created = hot.ensure_runner(options, needed, report=reported.append)
    spec = cloud_api.get_endpoint(created.endpoint_id)
    assert spec.name == hot.runner_name()
    assert spec.image.startswith(f"{registry.host}/team/{hot.runner_name()}@sha256:")
    assert set(needed) <= set(spec.env[hot.REQUIREMENTS_ENV].splitlines())
    assert spec.env[hot.BASE_ENV] == options.base_image
    assert "RUNPOD_API_KEY" not in spec.env and spec.docker_args == ""
    config = skopeo_inspect(spec.image, config=True)
    assert "/app/handler.py" in " ".join(config["config"]["Cmd"])
    assert any(line.startswith("pushed ") for line in reported)

    version = cloud_api.releases(created.endpoint_id).endpoint_version
    hot.forget_runners()  # a new kernel: the runner is found by name and has what the cell needs
    reported.clear()
    again = hot.ensure_runner(options, needed, report=reported.append)
    assert again.endpoint_id == created.endpoint_id and not reported
    assert cloud_api.releases(created.endpoint_id).endpoint_version == version
    again.delete()
    hot.forget_runners()
