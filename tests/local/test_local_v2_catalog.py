"""REST v2's catalog, billing history, registries and network volumes on the embedded RunPod:
GPU availability following the simulated capacity and running workers, the one local data
center, spend history from the engine's billing, and registries/volumes shared with GraphQL
(a registry password never leaves as anything but a digest). Every answer is checked against
RunPod's OpenAPI document."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from support import add_endpoint, add_worker, deploy, embedded_runpod, engine_on_disk, final, local_post, wait_for
from v2_contract import call

from runpod_jupyter.api.models import GPU_POOLS

AVAILABLE = "include=AVAILABILITY&product=SERVERLESS"
PASSWORD = "correct-horse-battery-staple-7Q"


def _gpu(local_runpod, pool: str) -> dict:
    gpu_id = quote(GPU_POOLS[pool].gpu_types[0])
    response = call(local_runpod, "GET", f"/v2/catalog/gpus/{gpu_id}?{AVAILABLE}")
    assert response.status_code == 200, response.text
    return response.json()


def _graphql(local_runpod, query: str, variables: dict | None = None) -> dict:
    reply = httpx.post(f"{local_runpod.url}/graphql", json={"query": query, "variables": variables or {}},
                       headers={"Authorization": f"Bearer {local_runpod.api_key.reveal()}"})
    reply.raise_for_status()
    assert "errors" not in reply.json(), reply.text
    return reply.json()["data"]


def test_gpus_carry_pool_memory_price_and_availability_from_capacity(local_runpod):
    local_post(local_runpod, "/local/gpus", {"AMPERE_48": 0, "ADA_48_PRO": 1})
    plain = call(local_runpod, "GET", "/v2/catalog/gpus").json()["gpus"]
    assert {g["pool"] for g in plain} == set(GPU_POOLS) and all("availability" not in g for g in plain)
    h200 = next(g for g in plain if g["pool"] == "HOPPER_141")
    assert h200["memory"] == 141 and h200["price"]["serverless"] == round(GPU_POOLS["HOPPER_141"].price_per_second * 3600, 2)
    levels = {g["pool"]: g["availability"] for g in call(local_runpod, "GET", f"/v2/catalog/gpus?{AVAILABLE}").json()["gpus"]}
    assert (levels["AMPERE_48"], levels["ADA_48_PRO"], levels["HOPPER_141"]) == ("NONE", "LOW", "HIGH")
    assert "dataCenters" not in _gpu(local_runpod, "AMPERE_48")  # unavailable everywhere
    assert _gpu(local_runpod, "ADA_48_PRO")["dataCenters"] == [{"id": "LOCAL", "name": "Embedded RunPod (this machine)",
                                                                "availability": "LOW"}]


@pytest.mark.parametrize("query", ["include=AVAILABILITY", "product=SERVERLESS", "include=AVAILABILITY&product=PODS"])
def test_include_without_product_and_product_without_include_are_400(local_runpod, query):
    for path in ("/v2/catalog/gpus", f"/v2/catalog/gpus/{quote('NVIDIA H200')}"):
        response = call(local_runpod, "GET", f"{path}?{query}", check_request="PODS" not in query)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


def test_unknown_gpu_type_is_404(local_runpod):
    assert call(local_runpod, "GET", "/v2/catalog/gpus/NVIDIA%20B9000").status_code == 404


def test_one_local_data_center(local_runpod):
    listed = call(local_runpod, "GET", "/v2/catalog/datacenters").json()["dataCenters"]
    assert [d["id"] for d in listed] == ["LOCAL"] and listed[0]["networkVolumeTypes"] == ["STANDARD"]
    one = call(local_runpod, "GET", "/v2/catalog/datacenters/LOCAL?include=GPU_AVAILABILITY").json()
    assert {g["id"] for g in one["gpuAvailability"]} == {t for p in GPU_POOLS.values() for t in p.gpu_types}
    assert call(local_runpod, "GET", "/v2/catalog/datacenters?regions=EUROPE").json()["dataCenters"] == []
    assert call(local_runpod, "GET", "/v2/catalog/datacenters/US-KS-2").status_code == 404


def test_registries_round_trip_shared_with_graphql_and_password_never_shown(local_runpod):
    created = call(local_runpod, "POST", "/v2/registries", {"name": "v2-reg", "username": "me", "password": PASSWORD})
    assert created.status_code == 201 and created.json()["name"] == "v2-reg" and PASSWORD not in created.text
    reg_id = created.json()["id"]
    got = call(local_runpod, "GET", f"/v2/registries/{reg_id}")
    assert got.json() == {"id": reg_id, "name": "v2-reg"}
    assert {"id": reg_id, "name": "v2-reg"} in _graphql(local_runpod, "{ myself { containerRegistryCreds { id name } } }")[
        "myself"]["containerRegistryCreds"]
    made = _graphql(local_runpod, "mutation($i: SaveRegistryAuthInput) { saveRegistryAuth(input: $i) { id name } }",
                    {"i": {"name": "gql-reg", "username": "me", "password": PASSWORD}})["saveRegistryAuth"]
    listed = call(local_runpod, "GET", "/v2/registries")
    assert made in listed.json()["registries"] and PASSWORD not in listed.text and "username" not in listed.text
    assert call(local_runpod, "POST", "/v2/registries", {"name": "v2-reg", "username": "x", "password": "y"}).status_code == 400
    assert call(local_runpod, "POST", "/v2/registries", {"name": "r", "password": "y"},
                check_request=False).status_code == 422
    template = call(local_runpod, "POST", "/v2/templates", {"name": "pulls", "image": "local:/srv/p", "registry": reg_id})
    assert template.json()["registry"] == reg_id, template.text
    assert call(local_runpod, "DELETE", f"/v2/registries/{reg_id}").status_code == 204
    assert call(local_runpod, "GET", f"/v2/registries/{reg_id}").status_code == 404
    assert call(local_runpod, "GET", f"/v2/templates/{template.json()['id']}").json()["registry"] is None
    store = local_runpod.state_file.parent / "data" / "local.sqlite"
    with sqlite3.connect(store) as db:
        rows = [r[0] for r in db.execute("SELECT data FROM registry_auths")]
    assert rows and all(PASSWORD not in r and "scrypt" in r for r in rows)
    for path in (store, *store.parent.glob("local.sqlite-*")):
        assert PASSWORD.encode() not in path.read_bytes()


def test_network_volumes_round_trip_shared_with_graphql(local_runpod):
    body = {"name": "data", "size": 20, "dataCenter": "LOCAL"}
    created = call(local_runpod, "POST", "/v2/network-volumes", body)
    assert created.status_code == 201, created.text
    volume = created.json()
    assert volume == {"id": volume["id"], "name": "data", "size": 20, "dataCenter": "LOCAL", "type": "STANDARD"}
    seen = _graphql(local_runpod, "{ myself { networkVolumes { id name size dataCenterId } } }")["myself"]["networkVolumes"]
    assert {"id": volume["id"], "name": "data", "size": 20, "dataCenterId": "LOCAL"} in seen
    grown = call(local_runpod, "PATCH", f"/v2/network-volumes/{volume['id']}", {"size": 40, "name": "data2"})
    assert grown.json()["size"] == 40 and grown.json()["name"] == "data2"
    assert call(local_runpod, "PATCH", f"/v2/network-volumes/{volume['id']}", {"size": 30}).status_code == 400
    assert call(local_runpod, "PATCH", f"/v2/network-volumes/{volume['id']}", {}, check_request=False).status_code == 422
    assert call(local_runpod, "POST", "/v2/network-volumes", {**body, "dataCenter": "US-KS-2"}).status_code == 400
    assert call(local_runpod, "POST", "/v2/network-volumes", {**body, "type": "HIGH_PERFORMANCE"}).status_code == 400
    made = _graphql(local_runpod, "mutation($i: CreateNetworkVolumeInput) { createNetworkVolume(input: $i) { id } }",
                    {"i": {"name": "gql-vol", "size": 50, "dataCenterId": "LOCAL"}})["createNetworkVolume"]
    got = call(local_runpod, "GET", f"/v2/network-volumes/{made['id']}").json()
    assert got == {"id": made["id"], "name": "gql-vol", "size": 50, "dataCenter": "LOCAL", "type": "STANDARD"}
    assert made["id"] in {v["id"] for v in call(local_runpod, "GET", "/v2/network-volumes").json()["networkVolumes"]}
    assert call(local_runpod, "DELETE", f"/v2/network-volumes/{volume['id']}").status_code == 204
    assert call(local_runpod, "GET", f"/v2/network-volumes/{volume['id']}").status_code == 404


T0 = datetime(2026, 6, 1, 10, 30, tzinfo=UTC).timestamp()


def test_billing_history_from_the_engine_with_a_fixed_clock(tmp_path):
    """Charges made at fixed times, read back over HTTP by a server started on the same store."""
    engine = engine_on_disk(tmp_path / "data", balance=100.0)
    ep = add_endpoint(engine, "ep-hist", workersMin=0, workersMax=1)
    worker = add_worker(engine, ep, "w-1", state="running", pool="ADA_24")
    flex = GPU_POOLS["ADA_24"].price_per_second
    for start, seconds in ((T0, 10), (T0 + 3600, 20), (T0 + 86400, 5)):  # 10:30, 11:30 on day 1; day 2
        worker.billing_since = start
        engine.billing.charge(worker, start + seconds)
    engine.store.close()
    with embedded_runpod(tmp_path) as instance:
        daily = call(instance, "GET", "/v2/billing/serverless?startTime=2026-06-01T00:00:00Z"
                                      "&endTime=2026-06-03T00:00:00Z&bucketSize=day")
        assert daily.status_code == 200, daily.text
        records = daily.json()["records"]
        assert [(r["startTime"], r["serverlessId"]) for r in records] == [
            ("2026-06-01T00:00:00Z", "ep-hist"), ("2026-06-02T00:00:00Z", "ep-hist")]
        assert records[0]["totalAmount"] == pytest.approx(30 * flex) and records[1]["gpuAmount"] == pytest.approx(5 * flex)
        meta = daily.json()["metadata"]
        assert meta["totals"]["totalAmount"] == pytest.approx(35 * flex) and meta["uniqueServerlessCount"] == 1
        hourly = call(instance, "GET", "/v2/billing/serverless?startTime=2026-06-01T10:15:00Z"
                                       "&endTime=2026-06-01T11:45:00Z&bucketSize=hour&serverlessId=ep-hist").json()
        assert [r["startTime"] for r in hourly["records"]] == ["2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z"]
        assert hourly["metadata"]["query"]["endTime"] == "2026-06-01T12:00:00Z"
        assert call(instance, "GET", "/v2/billing/serverless?serverlessId=nobody&startTime=2026-06-01T00:00:00Z"
                    ).json()["records"] == []
        recent = call(instance, "GET", "/v2/billing/serverless?lastN=2&bucketSize=day").json()
        assert recent["records"] == [] and recent["metadata"]["recordCount"] == 0  # June is long past
        yearly = call(instance, "GET", "/v2/billing/serverless?lastN=1&bucketSize=year&startTime=2026-06-01T00:00:00Z")
        assert yearly.status_code == 400  # lastN excludes startTime
        years = call(instance, "GET", "/v2/billing/serverless?lastN=1&bucketSize=year").json()["metadata"]
        assert years["query"]["startTime"] == f"{datetime.now(UTC).year}-01-01T00:00:00Z"


@pytest.mark.slow
def test_availability_follows_a_running_worker_and_billing_records_its_job(local_runpod, client, tmp_path):
    local_post(local_runpod, "/local/gpus", {"AMPERE_16": 1})
    assert _gpu(local_runpod, "AMPERE_16")["availability"] == "LOW"
    spec, api = deploy(client, tmp_path, """
        import runpod, time
        def handler(job):
            time.sleep(1.2)
            return job["input"]
        runpod.serverless.start({"handler": handler})
    """, gpu_ids=("AMPERE_16",), workers_max=1)
    assert _gpu(local_runpod, "AMPERE_16")["availability"] == "NONE"
    assert final(api, api.run({"x": 1}).id, timeout=90).output == {"x": 1}
    query = f"/v2/billing/serverless?lastN=1&bucketSize=hour&serverlessId={spec.id}"
    spent = wait_for(lambda: call(local_runpod, "GET", query).json()["records"], timeout=30, what="a billing record")
    assert spent[0]["serverlessId"] == spec.id and spent[0]["totalAmount"] >= 2 * GPU_POOLS["AMPERE_16"].price_per_second
    client.delete_endpoint(spec.id)
    wait_for(lambda: _gpu(local_runpod, "AMPERE_16")["availability"] == "LOW", timeout=60,
             what="the worker to give its GPU back")
    local_post(local_runpod, "/local/gpus", {"AMPERE_16": 1000})
    assert _gpu(local_runpod, "AMPERE_16")["availability"] == "HIGH"
