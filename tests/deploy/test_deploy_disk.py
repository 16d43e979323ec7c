"""The container-disk check runs in a real deploy: the image is estimated from the base and the
installed requirements, cached Hugging Face models are counted, and a disk too small for them
stops the deploy before anything is built. The embedded RunPod stands in for the cloud."""

from __future__ import annotations

import pytest

from runpod_jupyter import deploy, embedded
from runpod_jupyter.errors import DeployError

HANDLER = "import runpod\ndef handler(job):\n    return job['input']\n"
WITH_MODEL = """
import runpod
from transformers import AutoModel

def handler(job):
    model = AutoModel.from_pretrained("acme/huge-model")
    return str(model)
"""


@pytest.fixture()
def as_cloud(monkeypatch, tmp_path):
    """Cloud settings pointing at an embedded RunPod, and an empty Hugging Face cache."""
    instance = embedded.start()
    monkeypatch.setenv("RUNPOD_API_KEY", instance.api_key.reveal())
    monkeypatch.setenv("RUNPOD_API_BASE_URL", instance.url)
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", instance.rest_base)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    yield tmp_path / "hub"
    embedded.stop()


def test_a_disk_too_small_for_the_image_stops_the_deploy(as_cloud):
    with pytest.raises(DeployError) as caught:
        deploy(HANDLER, "disky", backend="cloud", gpu="ADA_24,AMPERE_24", container_disk=10, dry_run=True)
    assert "container disk (10 GB)" in str(caught.value) and "compressed image" in str(caught.value)
    dry = deploy(HANDLER, "disky", backend="cloud", gpu="ADA_24,AMPERE_24", dry_run=True)
    [info] = [f for f in dry.findings if f.code == "container-disk"]
    assert info.level == "info"


def test_cached_models_count_unless_they_live_on_a_volume(as_cloud):
    blobs = as_cloud / "models--acme--huge-model" / "blobs"
    blobs.mkdir(parents=True)
    with (blobs / "weights").open("wb") as f:  # sparse: 60 GB on paper, nothing on disk
        f.truncate(60 * 10**9)
    with pytest.raises(DeployError) as caught:
        deploy(WITH_MODEL, "modelled", backend="cloud", gpu="ADA_24,AMPERE_24", container_disk=60,
               requirements=("transformers==4.0.0",), dry_run=True)
    assert "60 GB of models" in str(caught.value)
    dry = deploy(WITH_MODEL, "modelled", backend="cloud", gpu="ADA_24,AMPERE_24", container_disk=60,
                 requirements=("transformers==4.0.0",), volume="vol-1", dry_run=True)
    assert not any(f.code == "container-disk" and f.level == "error" for f in dry.findings)
