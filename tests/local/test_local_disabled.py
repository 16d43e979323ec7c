"""An endpoint RunPod's job API no longer serves (disabled for a negative balance, or deleted):
``health()`` says so, as every other job API call does, instead of answering zero workers."""

from __future__ import annotations

import pytest
from support import deploy, embedded_runpod, local_post

from runpod_jupyter.api import Client, EndpointNotFoundError


def test_health_of_a_disabled_or_deleted_endpoint_says_so(tmp_path):
    with embedded_runpod(tmp_path / "own") as instance, Client(instance.settings()) as api:
        spec, ep = deploy(api, tmp_path, "print('unused')\n", wait_idle=False, workers_max=0)
        assert ep.health().workers.total == 0  # live, no worker yet: an answer, not an error
        local_post(instance, "/local/account", {"balance": -1.0})
        with pytest.raises(EndpointNotFoundError) as caught:
            ep.health()
        message = str(caught.value)
        assert f"Endpoint {spec.id} is disabled or deleted" in message
        assert "balance" in message and "recreate" in message  # what to do next
        api.delete_endpoint(spec.id)
        with pytest.raises(EndpointNotFoundError) as gone:
            ep.health()
        assert "deleted" in str(gone.value) and "deploy again" in str(gone.value)
