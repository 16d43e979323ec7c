"""Typed models of what RunPod sends and accepts, with the wire (camelCase) mapping in one place."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any


class JobStatus(str, enum.Enum):
    """A job's status as RunPod reports it, plus ``GONE`` for "request does not exist"."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    #: Client-side only: RunPod answered ``{"error": "request does not exist"}`` — the job was
    #: purged from the queue or its result outlived retention. Final.
    GONE = "GONE"

    @property
    def is_final(self) -> bool:
        return self not in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)

    def __str__(self) -> str:
        return self.value


GONE_REASON = (
    "RunPod no longer knows this request: it was purged from the queue, or its result expired "
    "(results are kept 30 min after /run and 1 min after /runsync)."
)


@dataclass(frozen=True)
class JobState:
    """What RunPod last said about a job, as returned by /run, /runsync, /status, /cancel."""

    id: str
    status: JobStatus
    output: Any = None
    error: Any = None
    delay_time_ms: int | None = None
    execution_time_ms: int | None = None
    worker_id: str | None = None
    #: Why the job is where it is, in words (set for GONE, TIMED_OUT, failures when known).
    reason: str | None = None

    @classmethod
    def from_wire(cls, data: dict[str, Any], job_id: str | None = None) -> JobState:
        if data.get("error") == "request does not exist" and "status" not in data:
            return cls(id=job_id or data.get("id", ""), status=JobStatus.GONE, reason=GONE_REASON)
        raw = str(data.get("status") or "IN_QUEUE").upper()
        try:
            status = JobStatus(raw)
        except ValueError:
            status = JobStatus.IN_PROGRESS if raw in ("RUNNING", "IN-PROGRESS") else JobStatus.FAILED
        return cls(
            id=str(data.get("id") or job_id or ""),
            status=status,
            output=data.get("output"),
            error=data.get("error"),
            delay_time_ms=data.get("delayTime"),
            execution_time_ms=data.get("executionTime"),
            worker_id=data.get("workerId"),
            reason=data.get("reason") or (_error_text(data.get("error")) if status is JobStatus.FAILED else None),
        )


def _error_text(error: Any) -> str | None:
    """RunPod sends handler errors as a JSON string; pull out the message if it is one."""
    if error is None:
        return None
    if isinstance(error, str):
        import json

        try:
            parsed = json.loads(error)
        except ValueError:
            return error
        if isinstance(parsed, dict):
            kind = str(parsed.get("error_type", "")).removeprefix("<class '").removesuffix("'>")
            message = parsed.get("error_message") or parsed.get("error") or error
            return f"{kind}: {message}" if kind else str(message)
        return error
    return str(error)


@dataclass(frozen=True)
class JobCounts:
    completed: int = 0
    failed: int = 0
    in_progress: int = 0
    in_queue: int = 0
    retried: int = 0


class WorkerState(str, enum.Enum):
    """A worker's status as RunPod's REST API v2 reports it. Whether the worker runs an older
    release is a separate flag there (``isStale``); views count such workers apart, as ``OUTDATED``."""

    RUNNING = "running"
    IDLE = "idle"
    INITIALIZING = "initializing"
    THROTTLED = "throttled"
    UNHEALTHY = "unhealthy"

    def __str__(self) -> str:
        return self.value


#: The word views use for a stale worker (one still on an older release), next to the states.
OUTDATED = "outdated"

#: Worker counts in the order every view shows them: from starting to serving, then the ones that
#: cannot serve (no capacity, an older release, broken).
WORKER_STATES: tuple[str, ...] = (
    WorkerState.INITIALIZING.value, WorkerState.IDLE.value, WorkerState.RUNNING.value,
    WorkerState.THROTTLED.value, OUTDATED, WorkerState.UNHEALTHY.value,
)


@dataclass(frozen=True)
class WorkerCounts:
    """Workers by state. ``outdated`` is reported by the embedded RunPod only."""

    idle: int = 0
    initializing: int = 0
    ready: int = 0
    running: int = 0
    throttled: int = 0
    unhealthy: int = 0
    outdated: int = 0

    @property
    def total(self) -> int:
        # "ready" overlaps "idle" on RunPod (both mean: waiting for a job).
        return self.idle + self.initializing + self.running + self.throttled + self.unhealthy + self.outdated


@dataclass(frozen=True)
class Health:
    """/health: job counts and worker counts. ``registered`` is False when RunPod answered
    "Not Found" because no worker has registered yet (a brand-new endpoint)."""

    jobs: JobCounts = field(default_factory=JobCounts)
    workers: WorkerCounts = field(default_factory=WorkerCounts)
    registered: bool = True

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Health:
        jobs = data.get("jobs") or {}
        workers = data.get("workers") or {}
        return cls(
            jobs=JobCounts(
                completed=int(jobs.get("completed", 0)),
                failed=int(jobs.get("failed", 0)),
                in_progress=int(jobs.get("inProgress", 0)),
                in_queue=int(jobs.get("inQueue", 0)),
                retried=int(jobs.get("retried", 0)),
            ),
            workers=WorkerCounts(**{f.name: int(workers.get(f.name, 0)) for f in fields(WorkerCounts)}),
        )

    @classmethod
    def no_worker_yet(cls) -> Health:
        return cls(registered=False)


@dataclass(frozen=True)
class Policy:
    """Per-job policy passed through to RunPod (milliseconds, as on the wire)."""

    execution_timeout: int | None = None
    ttl: int | None = None
    low_priority: bool | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.execution_timeout is not None:
            out["executionTimeout"] = int(self.execution_timeout)
        if self.ttl is not None:
            out["ttl"] = int(self.ttl)
        if self.low_priority is not None:
            out["lowPriority"] = bool(self.low_priority)
        return out


def _env_to_wire(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(env.items())]


def _env_from_wire(env: Any) -> dict[str, str]:
    return {str(e["key"]): str(e.get("value", "")) for e in (env or []) if isinstance(e, dict)}


@dataclass(frozen=True)
class TemplateSpec:
    """A serverless template: the image and how to start it. ``docker_args`` "" keeps the image CMD."""

    name: str
    image_name: str
    docker_args: str = ""
    container_disk_in_gb: int = 10
    volume_in_gb: int = 0
    volume_mount_path: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    is_serverless: bool = True
    container_registry_auth_id: str | None = None
    ports: str | None = None
    readme: str | None = None
    id: str | None = None

    def to_input(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "imageName": self.image_name,
            "dockerArgs": self.docker_args,
            "containerDiskInGb": self.container_disk_in_gb,
            "volumeInGb": self.volume_in_gb,
            "env": _env_to_wire(self.env),
            "isServerless": self.is_serverless,
        }
        optional = {
            "id": self.id,
            "volumeMountPath": self.volume_mount_path,
            "containerRegistryAuthId": self.container_registry_auth_id,
            "ports": self.ports,
            "readme": self.readme,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> TemplateSpec:
        return cls(
            id=data.get("id"),
            name=data.get("name") or "",
            image_name=data.get("imageName") or "",
            docker_args=data.get("dockerArgs") or "",
            container_disk_in_gb=int(data.get("containerDiskInGb") or 0),
            volume_in_gb=int(data.get("volumeInGb") or 0),
            volume_mount_path=data.get("volumeMountPath"),
            env=_env_from_wire(data.get("env")),
            is_serverless=bool(data.get("isServerless", True)),
            container_registry_auth_id=data.get("containerRegistryAuthId"),
            ports=data.get("ports"),
            readme=data.get("readme"),
        )

    def __repr__(self) -> str:  # env values may be secret references: show keys only
        return (
            f"TemplateSpec(id={self.id!r}, name={self.name!r}, image_name={self.image_name!r}, "
            f"env_keys={sorted(self.env)!r})"
        )


@dataclass(frozen=True)
class EndpointSpec:
    """A serverless endpoint's settings. ``gpu_ids`` are RunPod GPU pool ids, e.g. ``ADA_24``."""

    name: str
    template_id: str = ""
    gpu_ids: tuple[str, ...] = ("AMPERE_16",)
    workers_min: int = 0
    workers_max: int = 3
    idle_timeout: int = 5
    scaler_type: str = "QUEUE_DELAY"
    scaler_value: int = 4
    network_volume_id: str | None = None
    locations: str | None = None
    gpu_count: int = 1
    flashboot: bool = False
    execution_timeout_ms: int | None = None
    id: str | None = None
    template: TemplateSpec | None = None
    #: The container it runs. REST v2 keeps these on the endpoint itself (GraphQL: on its template).
    image: str = ""
    env: dict[str, str] = field(default_factory=dict)
    container_disk_gb: int | None = None
    docker_args: str = ""
    registry_auth_id: str | None = None
    #: Where its jobs go (REST v2's ``requestUrls``); compared by nobody, told by RunPod.
    request_urls: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def saved_id(self) -> str:
        """The id RunPod gave the endpoint; asking for it before it was saved is a bug."""
        if not self.id:
            raise ValueError(f"endpoint {self.name!r} has not been saved yet, so it has no id")
        return self.id

    def to_input(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "templateId": self.template_id,
            "gpuIds": ",".join(self.gpu_ids),
            "workersMin": self.workers_min,
            "workersMax": self.workers_max,
            "idleTimeout": self.idle_timeout,
            "scalerType": self.scaler_type,
            "scalerValue": self.scaler_value,
            "gpuCount": self.gpu_count,
        }
        optional = {
            "id": self.id,
            "networkVolumeId": self.network_volume_id,
            "locations": self.locations,
            "executionTimeoutMs": self.execution_timeout_ms,
            "flashBootType": "FLASHBOOT" if self.flashboot else None,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> EndpointSpec:
        gpu = data.get("gpuIds") or ""
        template = data.get("template")
        return cls(
            id=data.get("id"),
            name=data.get("name") or "",
            template_id=data.get("templateId") or (template or {}).get("id") or "",
            gpu_ids=tuple(g.strip() for g in gpu.split(",") if g.strip()),
            workers_min=int(data.get("workersMin") or 0),
            workers_max=int(data.get("workersMax") or 0),
            idle_timeout=int(data.get("idleTimeout") or 0),
            scaler_type=data.get("scalerType") or "QUEUE_DELAY",
            scaler_value=int(data.get("scalerValue") or 0),
            network_volume_id=data.get("networkVolumeId") or None,
            locations=data.get("locations") or None,
            gpu_count=int(data.get("gpuCount") or 1),
            flashboot=data.get("flashBootType") == "FLASHBOOT",
            execution_timeout_ms=data.get("executionTimeoutMs"),
            template=TemplateSpec.from_wire(template) if isinstance(template, dict) else None,
        )

    def with_changes(self, **changes: Any) -> EndpointSpec:
        return replace(self, **changes)

    def __repr__(self) -> str:  # env values may be secrets: keys only
        return (
            f"EndpointSpec(id={self.id!r}, name={self.name!r}, gpu_ids={self.gpu_ids!r}, "
            f"workers={self.workers_min}..{self.workers_max}, image={self.image or self.template_id!r}, "
            f"env_keys={sorted(self.env)!r})"
        )

    # -- REST API v2 ------------------------------------------------------------------------------
    def to_v2(self, *, create: bool) -> dict[str, Any]:
        """The body of ``POST /v2/serverless`` (``create``) or ``PATCH /v2/serverless/{id}``:
        every setting stated, so a PATCH puts an earlier release back exactly."""
        scaling: dict[str, Any] = (
            {"type": "REQUEST_COUNT", "requestCount": max(1, int(self.scaler_value))}
            if self.scaler_type == "REQUEST_COUNT"
            else {"type": "QUEUE_DELAY", "queueDelay": max(0.5, float(self.scaler_value))}
        )
        workers: dict[str, Any] = {"min": self.workers_min, "max": self.workers_max}
        if scaling["type"] == "QUEUE_DELAY":  # v2 refuses idleTimeout beside requestCount scaling
            workers["idleTimeout"] = min(3600, max(1, int(self.idle_timeout)))
        body: dict[str, Any] = {
            "name": self.name,
            "gpu": {"pools": list(self.gpu_ids), "count": self.gpu_count},
            "workers": workers,
            "scaling": scaling,
            "networkVolumes": [self.network_volume_id] if self.network_volume_id else [],
            "dataCenterIds": [p.strip() for p in (self.locations or "").split(",") if p.strip()],
            "flashboot": "FLASHBOOT" if self.flashboot else "OFF",
        }
        container: dict[str, Any] = {
            "env": dict(self.env), "args": self.docker_args, "registry": self.registry_auth_id,
            "disk": self.container_disk_gb,
        }
        if self.image or not create:  # its own container, every setting stated
            container["image"] = self.image or None
            body.update({k: v for k, v in container.items() if v is not None or k == "registry"})
        elif self.template_id:  # from a template: only what overrides it (env merges per key)
            body["templateId"] = self.template_id
            body.update({k: v for k, v in container.items() if v})
        if self.execution_timeout_ms:
            body["timeout"] = int(self.execution_timeout_ms)
        if create:
            body["type"] = "QUEUE"
        return body

    @classmethod
    def from_v2(cls, data: dict[str, Any]) -> EndpointSpec:
        """An ``Endpoint`` as REST v2 returns it."""
        gpu = data.get("gpu") or {}
        workers = data.get("workers") or {}
        scaling = data.get("scaling") or {}
        scaler = str(scaling.get("type") or "QUEUE_DELAY")
        value = scaling.get("requestCount" if scaler == "REQUEST_COUNT" else "queueDelay") or 4
        volumes = [str(v) for v in data.get("networkVolumes") or []]
        return cls(
            id=data.get("id"), name=str(data.get("name") or ""),
            gpu_ids=tuple(str(p) for p in gpu.get("pools") or ()), gpu_count=int(gpu.get("count") or 1),
            workers_min=int(workers.get("min") or 0), workers_max=int(workers.get("max") or 0),
            idle_timeout=int(workers.get("idleTimeout") or 0), scaler_type=scaler,
            scaler_value=round(float(value)),
            network_volume_id=volumes[0] if volumes else None,
            locations=",".join(data.get("dataCenterIds") or []) or None,
            flashboot=data.get("flashboot") in ("FLASHBOOT", "PRIORITY_FLASHBOOT"),
            execution_timeout_ms=data.get("timeout"),
            image=str(data.get("image") or ""), env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
            container_disk_gb=data.get("disk"), docker_args=str(data.get("args") or ""),
            registry_auth_id=data.get("registry") or None,
            request_urls={str(k): str(v) for k, v in (data.get("requestUrls") or {}).items()},
        )


@dataclass(frozen=True)
class GpuType:
    id: str
    display_name: str
    memory_in_gb: int
    secure_cloud: bool = True
    community_cloud: bool = True
    secure_price: float | None = None
    community_price: float | None = None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> GpuType:
        return cls(
            id=data["id"],
            display_name=data.get("displayName") or data["id"],
            memory_in_gb=int(data.get("memoryInGb") or 0),
            secure_cloud=bool(data.get("secureCloud", True)),
            community_cloud=bool(data.get("communityCloud", True)),
            secure_price=data.get("securePrice"),
            community_price=data.get("communityPrice"),
        )

    @classmethod
    def from_v2(cls, data: dict[str, Any]) -> GpuType:
        """A REST v2 catalog ``GpuType``."""
        price = data.get("price") or {}
        return cls(
            id=str(data["id"]), display_name=str(data.get("name") or data["id"]), memory_in_gb=int(data.get("memory") or 0),
            secure_cloud=bool(data.get("secure", True)), community_cloud=bool(data.get("community", True)),
            secure_price=price.get("secure"), community_price=price.get("community"),
        )


@dataclass(frozen=True)
class NetworkVolume:
    id: str
    name: str
    size: int
    data_center_id: str

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> NetworkVolume:
        return cls(
            id=data["id"],
            name=data.get("name") or "",
            size=int(data.get("size") or 0),
            data_center_id=data.get("dataCenterId") or data.get("dataCenter") or "",
        )


@dataclass(frozen=True)
class Account:
    client_balance: float
    current_spend_per_hr: float


@dataclass(frozen=True)
class RegistryAuth:
    id: str
    name: str


#: Always-on ("active", ``workersMin``) workers are billed for as long as they are up, jobs or
#: not, at a discount RunPod gives as "up to 30%". 20% keeps cost estimates on the safe side.
ACTIVE_DISCOUNT = 0.20


@dataclass(frozen=True)
class GpuPool:
    """A serverless GPU pool id, as used in ``gpuIds``, with what it stands for."""

    id: str
    memory_gb: int
    examples: str
    price_per_second: float  # approximate flex list price in USD
    #: RunPod's GPU type ids (GraphQL ``gpuTypes { id }``) the pool places workers on.
    gpu_types: tuple[str, ...] = ()


#: RunPod's serverless GPU pools (approximate flex prices, USD per second, late 2026).
GPU_POOLS: dict[str, GpuPool] = {
    p.id: p
    for p in (
        GpuPool("AMPERE_16", 16, "RTX A4000, A4500, RTX 4000 Ada", 0.00016,
                ("NVIDIA RTX A4000", "NVIDIA RTX A4500", "NVIDIA RTX 4000 Ada Generation")),
        GpuPool("AMPERE_24", 24, "RTX A5000, L4, RTX 3090", 0.00019,
                ("NVIDIA RTX A5000", "NVIDIA L4", "NVIDIA GeForce RTX 3090")),
        GpuPool("ADA_24", 24, "RTX 4090", 0.00031, ("NVIDIA GeForce RTX 4090",)),
        GpuPool("ADA_32_PRO", 32, "RTX 5090", 0.00044, ("NVIDIA GeForce RTX 5090",)),
        GpuPool("AMPERE_48", 48, "RTX A6000, A40", 0.00034, ("NVIDIA RTX A6000", "NVIDIA A40")),
        GpuPool("ADA_48_PRO", 48, "L40, L40S, RTX 6000 Ada", 0.00053,
                ("NVIDIA L40S", "NVIDIA L40", "NVIDIA RTX 6000 Ada Generation")),
        GpuPool("AMPERE_80", 80, "A100 80GB", 0.00076, ("NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB")),
        GpuPool("ADA_80_PRO", 80, "H100", 0.00116, ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL")),
        GpuPool("HOPPER_141", 141, "H200", 0.00155, ("NVIDIA H200",)),
    )
}

#: GPU type id → the serverless pool it belongs to.
POOL_OF_GPU_TYPE: dict[str, str] = {gpu: p.id for p in GPU_POOLS.values() for gpu in p.gpu_types}


def parse_gpu_list(text: str) -> tuple[str, ...]:
    """``"ADA_24, AMPERE_24"`` → ``("ADA_24", "AMPERE_24")``: how ``--gpu`` and ``gpu=`` are read.

    Only splits; whether the ids are known pools is the deploy's check (it lists them).
    """
    return tuple(g.strip() for g in text.split(",") if g.strip())


def per_second(pool_id: str | None, *, always_on: bool = False, default: float | None = None) -> float | None:
    """USD per second for one worker of a pool: its flex price, or less ``ACTIVE_DISCOUNT`` for an
    always-on one. A pool not in the table costs ``default`` (None: unknown)."""
    pool = GPU_POOLS.get(pool_id or "")
    flex = pool.price_per_second if pool is not None else default
    if flex is None:
        return None
    return flex * (1 - ACTIVE_DISCOUNT) if always_on else flex


def hourly_cost_range(gpu_ids: Iterable[str], *, always_on: int = 0, flex: int = 0) -> tuple[float, float] | None:
    """What ``always_on`` always-on workers and ``flex`` running ones cost an hour, on the cheapest
    and on the dearest of the listed pools (RunPod may place them on any); None if none is known."""
    costs = sorted(
        3600 * (always_on * (per_second(g, always_on=True) or 0.0) + flex * (per_second(g) or 0.0))
        for g in gpu_ids if g in GPU_POOLS
    )
    return (costs[0], costs[-1]) if costs else None
