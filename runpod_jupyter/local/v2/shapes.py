"""REST v2's shapes of endpoints and templates, mapped onto the catalog's records (GraphQL's field
names) and back: one store, two APIs."""

from __future__ import annotations

from typing import Any

from ..model import EndpointRuntime

#: v2 container settings → the catalog's template fields.
CONTAINER = {"image": "imageName", "args": "dockerArgs", "disk": "containerDiskInGb", "registry": "containerRegistryAuthId"}
FLASHBOOT = ("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT")
CATEGORIES = ("CPU", "NVIDIA", "AMD")


def _split(text: Any) -> list[str]:
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


# -- templates -----------------------------------------------------------------------------------
def template_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A v2 template or container body → the catalog's template fields (only those given)."""
    out: dict[str, Any] = {CONTAINER[k]: v for k, v in body.items() if k in CONTAINER}
    if "ports" in body:
        out["ports"] = ",".join(body["ports"])
    if "env" in body:
        out["env"] = [{"key": k, "value": v} for k, v in body["env"].items()]
    simple = {"name": "name", "serverless": "isServerless", "public": "isPublic", "startSsh": "startSsh",
              "startJupyter": "startJupyter", "category": "category"}
    out.update({simple[k]: v for k, v in body.items() if k in simple})
    if "allowedCudaVersions" in body:
        out["allowedCudaVersions"] = ",".join(body["allowedCudaVersions"])
    if "mounts" in body:
        persistent = body["mounts"].get("persistent")
        out["volumeInGb"] = persistent["size"] if persistent else 0
        if persistent:
            out["volumeMountPath"] = persistent["path"]
    return out


def container_view(template: dict[str, Any]) -> dict[str, Any]:
    """The v2 container settings of a catalog template."""
    return {
        "image": template.get("imageName") or "",
        "args": template.get("dockerArgs") or "",
        "disk": max(1, int(template.get("containerDiskInGb") or 10)),
        "ports": _split(template.get("ports")),
        "env": {str(e.get("key")): str(e.get("value") or "") for e in template.get("env") or []},
        "registry": template.get("containerRegistryAuthId") or None,
    }


def template_view(template: dict[str, Any]) -> dict[str, Any]:
    """A catalog template in v2's Template shape."""
    volume = int(template.get("volumeInGb") or 0)
    category = template.get("category")
    return {
        "id": template["id"], "name": template["name"], **container_view(template),
        "mounts": {"persistent": {"size": volume, "path": template.get("volumeMountPath") or "/workspace"}}
        if volume else {},
        "serverless": bool(template.get("isServerless")),
        "public": bool(template.get("isPublic")),
        "category": category if category in CATEGORIES else "NVIDIA",
        "startSsh": bool(template.get("startSsh")),
        "startJupyter": bool(template.get("startJupyter")),
        "allowedCudaVersions": _split(template.get("allowedCudaVersions")),
    }


# -- endpoints -----------------------------------------------------------------------------------
def endpoint_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A v2 endpoint body → the catalog's endpoint fields (only those given; container settings
    are the template's, see :func:`template_fields`)."""
    out: dict[str, Any] = {}
    if "name" in body:
        out["name"] = body["name"]
    if "gpu" in body:
        gpu = body["gpu"]
        if "pools" in gpu:
            out["gpuIds"] = ",".join(gpu["pools"])
            # One selection with the pools: pools sent without exclusions clear them.
            out["excludedTypes"] = list(dict.fromkeys(e.strip() for e in gpu.get("excludedTypes") or []))
        if "count" in gpu:
            out["gpuCount"] = gpu["count"]
        if "allowedCudaVersions" in gpu:
            out["allowedCudaVersions"] = ",".join(gpu["allowedCudaVersions"])
    workers = body.get("workers") or {}
    for key, field in (("min", "workersMin"), ("max", "workersMax"), ("idleTimeout", "idleTimeout")):
        if key in workers:
            out[field] = workers[key]
    if "scaling" in body:
        scaling = body["scaling"]
        out["scalerType"] = scaling["type"]
        out["scalerValue"] = scaling["queueDelay" if scaling["type"] == "QUEUE_DELAY" else "requestCount"]
    if "timeout" in body:
        out["executionTimeoutMs"] = body["timeout"]
    if "networkVolumes" in body:
        out["networkVolumeId"] = ",".join(body["networkVolumes"])
    if "dataCenterIds" in body:
        out["locations"] = ",".join(body["dataCenterIds"])
    if "flashboot" in body:
        out["flashBootType"] = body["flashboot"]
    return out


def request_urls(base: str, endpoint_id: str) -> dict[str, str]:
    """Where the endpoint's jobs go: the job API of this same server."""
    root = f"{base}/v2/{endpoint_id}"
    return {
        "run": f"{root}/run", "runSync": f"{root}/runsync", "status": f"{root}/status/{{job_id}}",
        "stream": f"{root}/stream/{{job_id}}", "cancel": f"{root}/cancel/{{job_id}}",
        "retry": f"{root}/retry/{{job_id}}", "purgeQueue": f"{root}/purge-queue", "health": f"{root}/health",
    }


def endpoint_view(ep: EndpointRuntime, template: dict[str, Any], base: str, default_timeout_s: float) -> dict[str, Any]:
    """An endpoint in v2's Endpoint shape; ``template`` is the one whose container settings it runs."""
    data = ep.data
    scaler = str(data.get("scalerType") or "QUEUE_DELAY")
    value = data.get("scalerValue") or 4
    flashboot = data.get("flashBootType")
    return {
        "id": ep.id, "name": data.get("name") or "", "type": "QUEUE",
        "requestUrls": request_urls(base, ep.id), **container_view(template),
        "gpu": {
            "pools": ep.gpu_ids, "count": ep.setting("gpuCount", 1),
            "allowedCudaVersions": _split(data.get("allowedCudaVersions")), "minCudaVersion": None,
            **({"excludedTypes": list(data["excludedTypes"])} if data.get("excludedTypes") else {}),
        },
        "workers": {
            "min": ep.setting("workersMin", 0), "max": ep.setting("workersMax", 3),
            "idleTimeout": min(3600, max(1, ep.setting("idleTimeout", 5))),
        },
        "scaling": {"type": "REQUEST_COUNT", "requestCount": max(1, int(value))}
        if scaler == "REQUEST_COUNT" else {"type": "QUEUE_DELAY", "queueDelay": max(0.5, float(value))},
        "dataCenterIds": _split(data.get("locations")),
        "networkVolumes": _split(data.get("networkVolumeId")),
        "timeout": int(data.get("executionTimeoutMs") or default_timeout_s * 1000),
        "flashboot": flashboot if flashboot in FLASHBOOT else "OFF",
        "createdAt": _iso(data.get("createdAt")),
    }


def _iso(text: Any) -> str:
    """RunPod's creation time as RFC 3339 (the catalog keeps milliseconds and a Z)."""
    return str(text) if text else "1970-01-01T00:00:00Z"
