"""The management APIs through the project's client: REST v2 for endpoints and templates, GraphQL
for what v2 lacks, against the embedded RunPod, which rejects what RunPod rejects."""

from __future__ import annotations

import re

import httpx
import pytest
from support import LOCAL_KEY, worker_project

from runpod_jupyter.api import ApiError, EndpointSpec, TemplateSpec

TRICKY = 'say "hi" \\ back\\slash\nnew line {braces} $dollar'


def _raw_graphql(instance, query: str, variables: dict | None = None) -> httpx.Response:
    return httpx.post(
        instance.graphql_url, json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {LOCAL_KEY}"},
    )


@pytest.mark.slow
def test_tricky_names_round_trip_through_rest_v2(client, tmp_path):
    project = worker_project(tmp_path, "print('never started')\n")
    template = client.save_template(
        TemplateSpec(name=TRICKY, image_name=f"local:{project}", env={"NOTE": TRICKY}, docker_args="")
    )
    assert template.name == TRICKY and template.env == {"NOTE": TRICKY}
    endpoint = client.save_endpoint(
        EndpointSpec(name="tricky-ep", template_id=template.id, gpu_ids=("ADA_24", "AMPERE_24"), workers_max=0)
    )
    fetched = client.get_endpoint(endpoint.id)
    assert fetched.name == "tricky-ep"
    assert fetched.gpu_ids == ("ADA_24", "AMPERE_24")
    # templateId is resolved once: the endpoint carries the template's container settings itself.
    assert fetched.image == f"local:{project}" and fetched.env == {"NOTE": TRICKY}
    assert set(fetched.request_urls) >= {"run", "runSync", "status", "stream", "cancel", "retry", "purgeQueue", "health"}
    assert any(e.id == endpoint.id for e in client.list_endpoints())
    client.delete_endpoint(endpoint.id)
    client.delete_template(template.id)
    assert client.get_endpoint(endpoint.id) is None
    assert client.delete_endpoint(endpoint.id) is None  # deleting what is gone is no error


def test_update_makes_a_new_release_on_the_same_endpoint(client, tmp_path):
    project = worker_project(tmp_path, "import runpod\nrunpod.serverless.start({'handler': lambda j: 1})\n")
    created = client.save_endpoint(
        EndpointSpec(name="release-test", image=f"local:{project}", gpu_ids=("ADA_24",), workers_max=1)
    )
    updated = client.save_endpoint(created.with_changes(workers_max=2, idle_timeout=30))
    assert updated.id == created.id
    listed = [e for e in client.list_endpoints() if e.name == "release-test"]
    assert len(listed) == 1 and listed[0].workers_max == 2 and listed[0].idle_timeout == 30
    newest = client.releases(created.id).latest
    assert newest is not None and {"workers.max", "workers.idleTimeout"} <= set(newest.fields)
    client.delete_endpoint(created.id)


def test_fields_that_do_not_exist_on_runpod_are_rejected(local_runpod):
    for query in (
        "{ myself { serverlessWorkers { id } } }",
        "{ myself { endpoints { id workers { id } } } }",
        "{ myself { endpoints { id jobs { id } } } }",
        "{ myself { serverlessTemplates { id } } }",
        "{ myself { creditBalance } }",
        'mutation { saveEndpoint(input: {name: "x", templateId: "t", gpuIds: "ADA_24", flashBoot: true}) { id } }',
    ):
        response = _raw_graphql(local_runpod, query)
        assert response.status_code == 400, query
        assert "Cannot query field" in response.text or "unknown field" in response.text


def test_docker_args_is_required(local_runpod):
    response = _raw_graphql(
        local_runpod, 'mutation { saveTemplate(input: {name: "n", imageName: "i"}) { id } }'
    )
    assert response.status_code == 400
    assert "dockerArgs" in response.text


def test_v2_errors_carry_the_platform_message_and_request_id(client, tmp_path):
    with pytest.raises(ApiError) as caught:
        client.save_endpoint(EndpointSpec(name="x", template_id="missing", gpu_ids=("ADA_24",)))
    assert caught.value.status == 404 and "missing" in str(caught.value)
    assert re.search(r"request id [0-9A-Za-z-]{8,}", str(caught.value))  # to quote to RunPod support


def test_unknown_gpu_ids_are_refused_with_the_valid_ones(client, tmp_path):
    with pytest.raises(ApiError) as caught:
        client.save_endpoint(EndpointSpec(name="gpu-test", image=f"local:{tmp_path}", gpu_ids=("RTX_9090",)))
    assert "RTX_9090" in str(caught.value) and "ADA_24" in str(caught.value)
    assert not any(e.name == "gpu-test" for e in client.list_endpoints())


def test_volumes_gpus_account_and_registry_auth(client):
    volume = client.create_network_volume("models", 50, "LOCAL")  # the embedded RunPod's one data center
    assert volume.size == 50 and volume.data_center_id == "LOCAL"
    assert volume in client.list_network_volumes()
    gpus = client.gpu_types()
    assert {g.memory_in_gb for g in gpus} >= {24, 80}
    account = client.account()
    assert account.client_balance > 0 and account.current_spend_per_hr >= 0
    secret = "registry-password-7d1c0e"
    auth = client.save_registry_auth("docker-hub", "me", secret)
    assert auth in client.list_registry_auths()
    with pytest.raises(ApiError) as caught:
        client.save_registry_auth("docker-hub", "me", secret)
    assert secret not in str(caught.value)
    client.delete_registry_auth(auth.id)
    assert auth not in client.list_registry_auths()


def test_wrong_key_is_an_authentication_error(local_runpod):
    from runpod_jupyter.api import AuthenticationError, Client
    from runpod_jupyter.config import Settings
    from runpod_jupyter.secret import Secret

    wrong = Settings(
        backend="local", rest_base=local_runpod.rest_base, graphql_url=local_runpod.graphql_url,
        api_key=Secret("not-the-key-1234"),
    )
    with Client(wrong) as api, pytest.raises(AuthenticationError) as caught:
        api.account()
    assert "not-the-key-1234" not in str(caught.value)
    assert "RUNPOD_API_KEY" in str(caught.value)  # says what to do next
