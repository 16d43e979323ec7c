"""The unmodified ``runpod`` SDK 2.0 (release candidate, in its own cached environment built by
scripts/sdk_env.py) against the embedded RunPod: its management helpers speak REST v2, its worker
runs a handler, its job clients run jobs. What SDK 2.0 writes through REST v2, SDK 1.12 (in .venv)
reads through GraphQL, and the other way round: one store behind both.

The SDK-2.0 side runs as subprocess scripts (sdk2_scripts/scenarios.py) that print JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import LOCAL_KEY, worker_project

pytestmark = pytest.mark.slow  # runs SDK-2.0 processes, and workers

runpod = pytest.importorskip("runpod")

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).with_name("sdk2_scripts") / "scenarios.py"
SDK2 = "2.0.0rc2"

HANDLER = """
import runpod

def handler(job):
    for i in range(job["input"].get("n", 2)):
        yield {"i": i, "sdk": runpod.__version__}

runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
"""


@pytest.fixture(scope="module")
def sdk2_python() -> str:
    """The python of the cached SDK-2.0 environment (scripts/setup.sh builds it; so does this)."""
    built = subprocess.run([sys.executable, str(ROOT / "scripts" / "sdk_env.py"), SDK2],
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0:
        pytest.fail(f"could not build the runpod {SDK2} environment (scripts/sdk_env.py):\n{built.stderr[-2000:]}")
    return built.stdout.strip().splitlines()[-1]


def scenario(python: str, instance: Any, home: Path, which: str, **args: Any) -> dict[str, Any]:
    """Run one SDK-2.0 scenario against ``instance``; its JSON answer."""
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(home), "RUNPOD_API_KEY": LOCAL_KEY,
        "RUNPOD_API_BASE_URL": instance.url, "RUNPOD_ENDPOINT_BASE_URL": instance.rest_base,
    }
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([python, str(SCENARIOS), which, json.dumps(args)], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, f"scenario {which} failed:\n{done.stderr[-3000:]}"
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.fixture(scope="module")
def made_by_sdk2(local_runpod, sdk2_python, tmp_path_factory) -> dict[str, Any]:
    """What SDK 2.0's module-level helpers made and answered (its worker runs SDK 2.0 too)."""
    root = tmp_path_factory.mktemp("sdk2")
    project = worker_project(root, HANDLER)
    return scenario(sdk2_python, local_runpod, root / "home", "management",
                    project=str(project), name=f"sdk2-{uuid.uuid4().hex[:6]}")


def test_sdk2_management_helpers(made_by_sdk2, sdk2_python):
    made = made_by_sdk2
    assert made["version"] == SDK2
    template = made["template"]
    assert template["serverless"] is True and template["env"] == {"MODE": "2"}
    assert template["ports"] == ["8000/http"] and template["args"] == f"{sdk2_python} -u handler.py"
    assert template["mounts"] == {"persistent": {"size": 20, "path": "/workspace"}}

    endpoint = made["endpoint"]
    assert endpoint["type"] == "QUEUE" and endpoint["image"] == template["image"]
    assert endpoint["gpu"]["pools"] == ["AMPERE_16"]
    assert endpoint["gpu"]["excludedTypes"] == ["NVIDIA RTX 4000 Ada Generation"]
    assert endpoint["workers"] == {"min": 0, "max": 1, "idleTimeout": 7}
    assert endpoint["scaling"] == {"type": "QUEUE_DELAY", "queueDelay": 3}
    assert endpoint["flashboot"] == "FLASHBOOT" and endpoint["dataCenterIds"] == ["LOCAL"]
    assert endpoint["id"] in {e["id"] for e in made["listed"]}
    assert made["updated"]["env"] == {"MODE": "3"} and made["updated"]["gpu"] == endpoint["gpu"]

    # RunPod's prose rules, answered as problems the SDK turns into QueryError.
    assert made["typo"]["status"] == 400 and "none of the pools" in made["typo"]["message"]
    assert made["unknown_pool"]["status"] == 400 and "NO_SUCH_POOL" in made["unknown_pool"]["message"]

    pools = {g["id"]: g["pool"] for g in made["gpus"]}
    assert pools["NVIDIA GeForce RTX 4090"] == "ADA_24"
    assert made["gpu"]["availability"] in ("HIGH", "MEDIUM", "LOW", "NONE") and made["gpu"]["price"]["serverless"] > 0
    assert made["no_gpu"]["raised"] == "ValueError"

    assert made["registry"]["name"].endswith("-reg") and made["registry_updated"]["id"] == made["registry"]["id"]
    assert made["registry_deleted"] is True and "s3cret" not in json.dumps(made)
    assert made["user"]["pubKey"] == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@example.com"
    for refused in (made["pods"], made["pod"]):
        assert refused["raised"] == "QueryError" and refused["status"] == 501
        assert "serverless endpoints only" in refused["message"]


def test_sdk1_graphql_sees_what_sdk2_made(made_by_sdk2, sdk):
    endpoint = made_by_sdk2["endpoint"]
    listed = {e["id"]: e for e in sdk.get_endpoints()}
    seen = listed[endpoint["id"]]
    assert seen["name"] == endpoint["name"] and seen["gpuIds"] == "AMPERE_16"
    assert (seen["workersMin"], seen["workersMax"], seen["idleTimeout"]) == (0, 1, 7)
    assert (seen["scalerType"], seen["scalerValue"]) == ("QUEUE_DELAY", 3)
    assert {e["key"]: e["value"] for e in seen["env"]} == {"MODE": "3"}
    assert sdk.get_user()["pubKey"] == made_by_sdk2["user"]["pubKey"]


def test_sdk2_sees_and_changes_what_sdk1_made(local_runpod, sdk, sdk2_python, tmp_path):
    project = worker_project(tmp_path, HANDLER)
    name = f"sdk1-{uuid.uuid4().hex[:6]}"
    template = sdk.create_template(name=name, image_name=f"local:{project}", is_serverless=True)
    made = sdk.create_endpoint(name=name, template_id=template["id"], gpu_ids="ADA_24,AMPERE_24", workers_max=2)

    seen = scenario(sdk2_python, local_runpod, tmp_path / "home", "apps", endpoint_id=made["id"])
    listed = {e["id"]: e for e in seen["listed"]}[made["id"]]
    assert listed["name"] == name and listed["image"] == f"local:{project}"
    assert listed["gpu"]["pools"] == ["ADA_24", "AMPERE_24"] and listed["workers"]["max"] == 2
    assert seen["workers"]["endpointVersion"] == 1  # a new endpoint may be warming a first worker
    assert all(w["version"] == 1 and not w["isStale"] for w in seen["workers"]["workers"])
    assert seen["updated"]["scaling"] == {"type": "REQUEST_COUNT", "requestCount": 2}
    assert seen["updated"]["workers"]["max"] == 1
    assert seen["deleted"] is True and made["id"] not in {e["id"] for e in seen["after"]}
    assert made["id"] not in {e["id"] for e in sdk.get_endpoints()}


def test_sdk2_worker_and_job_clients(local_runpod, made_by_sdk2, sdk2_python, tmp_path):
    endpoint_id = made_by_sdk2["endpoint"]["id"]
    try:
        ran = scenario(sdk2_python, local_runpod, tmp_path / "home", "jobs", endpoint_id=endpoint_id)
    finally:  # its worker goes with it
        httpx.delete(f"{local_runpod.url}/v2/serverless/{endpoint_id}",
                     headers={"Authorization": f"Bearer {LOCAL_KEY}"}, timeout=30)
    tokens = [{"i": i, "sdk": SDK2} for i in range(3)]
    assert ran["run_sync"] == tokens[:2]
    assert ran["streamed"] == tokens and ran["output"] == tokens and ran["status"] == "COMPLETED"
    assert ran["health"]["jobs"]["completed"] >= 2 and ran["health"]["workers"]["idle"] + ran["health"]["workers"]["running"] >= 1
    assert ran["purged"]["status"] == "completed"
    assert ran["async"] == {"streamed": tokens[:2], "output": tokens[:2], "status": "COMPLETED"}


@pytest.mark.parametrize("method, path", [
    ("GET", "/v2/catalog/cpus/cpu3c"), ("GET", "/v2/clusters"), ("GET", "/v2/billing/pods"),
    ("GET", "/v2/registries/delegations"), ("PUT", "/v2/account/other"),
])
def test_routes_sdk2_knows_but_not_served_here_are_501_problems(local_runpod, method, path):
    response = httpx.request(method, f"{local_runpod.url}{path}", headers={"Authorization": f"Bearer {LOCAL_KEY}"})
    assert response.status_code == 501 and response.headers["content-type"].startswith("application/problem+json")
    assert "not served by the embedded RunPod" in response.json()["detail"] and response.headers["x-request-id"]
