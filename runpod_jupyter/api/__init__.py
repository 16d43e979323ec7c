"""The RunPod wire: the job API, REST API v2 for management and GraphQL for what v2 lacks, sync
and async, on httpx.

Knows nothing of Jupyter. ``Client``/``AsyncClient`` take a :class:`~runpod_jupyter.config.Settings`
(or resolve one from the backend choice), so the same code talks to the cloud and to the
embedded RunPod.
"""

from ..errors import *  # noqa: F401,F403  (the exception tree is part of the public API)
from ._wire import RetryPolicy
from .client import AsyncClient, Client, Endpoint
from .models import (
    GPU_POOLS,
    Account,
    EndpointSpec,
    GpuPool,
    GpuType,
    Health,
    JobCounts,
    JobState,
    JobStatus,
    NetworkVolume,
    Policy,
    RegistryAuth,
    TemplateSpec,
    WorkerCounts,
)
from .observed import LogLine, Release, Releases, Rollout, WorkerInfo, Workers

__all__ = [
    "AsyncClient", "Client", "Endpoint", "RetryPolicy", "GPU_POOLS", "Account", "EndpointSpec",
    "GpuPool", "GpuType", "Health", "JobState", "JobCounts", "JobStatus", "NetworkVolume", "Policy",
    "RegistryAuth", "TemplateSpec", "WorkerCounts", "LogLine", "Release", "Releases", "Rollout", "WorkerInfo",
    "Workers",
]
