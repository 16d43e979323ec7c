"""Run by the python of a clean environment holding runpod 2.0 (scripts/sdk_env.py), pointed at an
embedded RunPod by the SDK's own variables (RUNPOD_API_KEY, RUNPOD_API_BASE_URL,
RUNPOD_ENDPOINT_BASE_URL). Each scenario calls the unmodified SDK and prints one JSON object: what
it answered, or for a call that raised, the error's type, message and HTTP status.

    python scenarios.py NAME '{"arg": ...}'
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import runpod


def attempt(call: Callable[[], Any]) -> Any:
    """What ``call`` returned, or what it raised."""
    try:
        return call()
    except Exception as exc:  # the SDK's own errors are what the tests look at
        return {"raised": type(exc).__name__, "message": str(exc), "status": getattr(exc, "status_code", None)}


def management(project: str, name: str) -> dict[str, Any]:
    """The module-level helpers: templates, endpoints, GPUs, registries, account, pods."""
    out: dict[str, Any] = {"version": runpod.__version__}
    template = out["template"] = runpod.create_template(
        name=name, image_name=f"local:{project}", docker_start_cmd=f"{sys.executable} -u handler.py",
        is_serverless=True, env={"MODE": 2}, ports="8000/http", volume_in_gb=20,
    )
    other = out["other_template"] = runpod.create_template(name=f"{name}-b", image_name=f"local:{project}",
                                                           docker_start_cmd=f"{sys.executable} -u handler.py",
                                                           is_serverless=True, env={"MODE": 3})
    endpoint = out["endpoint"] = runpod.create_endpoint(
        name=name, template_id=template["id"], gpu_ids="AMPERE_16,-NVIDIA RTX 4000 Ada Generation",
        workers_max=1, idle_timeout=7, scaler_value=3, flashboot=True, locations="LOCAL",
    )
    out["listed"] = runpod.get_endpoints()
    out["updated"] = runpod.update_endpoint_template(endpoint["id"], other["id"])
    out["typo"] = attempt(lambda: runpod.create_endpoint(name=f"{name}-c", template_id=template["id"],
                                                          gpu_ids="ADA_24,-NVIDIA RTX 4000 Ada Generation"))
    out["unknown_pool"] = attempt(lambda: runpod.create_endpoint(name=f"{name}-d", template_id=template["id"],
                                                                  gpu_ids="NO_SUCH_POOL"))
    out["gpus"] = runpod.get_gpus()
    out["gpu"] = runpod.get_gpu("NVIDIA GeForce RTX 4090", 2)
    out["no_gpu"] = attempt(lambda: runpod.get_gpu("NVIDIA GeForce RTX 9999"))
    registry = out["registry"] = runpod.create_container_registry_auth(f"{name}-reg", "robot", "s3cret-pass")
    out["registry_updated"] = runpod.update_container_registry_auth(registry["id"], "robot2", "n3w-pass")
    out["registry_deleted"] = runpod.delete_container_registry_auth(registry["id"])
    out["user"] = runpod.update_user_settings("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@example.com\n")
    out["pods"] = attempt(runpod.get_pods)
    out["pod"] = attempt(lambda: runpod.get_pod("nope"))
    return out


def apps(endpoint_id: str) -> dict[str, Any]:
    """The async control-plane client the SDK's apps use: list, read workers, update, delete."""
    from runpod.apps.api import AppsApiClient

    async def main() -> dict[str, Any]:
        client = AppsApiClient()
        listed = await client.list_my_endpoints()
        workers = await client.endpoint_workers(endpoint_id)
        updated = await client.save_endpoint({"id": endpoint_id, "workersMax": 1, "scalerType": "REQUEST_COUNT",
                                              "scalerValue": 2})
        registries = await client.list_registry_auths()
        deleted = await client.delete_endpoint(endpoint_id)
        after = await client.list_my_endpoints()
        return {"listed": listed, "workers": workers, "updated": updated, "registries": registries,
                "deleted": deleted, "after": after}

    return asyncio.run(main())


def jobs(endpoint_id: str) -> dict[str, Any]:
    """The job client, sync and asyncio, against a running endpoint."""
    import aiohttp

    endpoint = runpod.Endpoint(endpoint_id)
    out: dict[str, Any] = {"run_sync": endpoint.run_sync({"n": 2}, timeout=60)}
    job = endpoint.run({"n": 3})
    out["streamed"] = list(job.stream())
    out["output"] = job.output(timeout=60)
    out["status"] = job.status()
    out["health"] = endpoint.health()
    out["purged"] = endpoint.purge_queue()

    async def asynchronous() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            client = runpod.AsyncioEndpoint(endpoint_id, session)
            started = await client.run({"n": 2})
            streamed = [chunk async for chunk in started.stream()]
            return {"streamed": streamed, "output": await started.output(timeout=60),
                    "status": await started.status()}

    out["async"] = asyncio.run(asynchronous())
    return out


if __name__ == "__main__":
    scenario = {"management": management, "apps": apps, "jobs": jobs}[sys.argv[1]]
    print(json.dumps(scenario(**json.loads(sys.argv[2]))))
