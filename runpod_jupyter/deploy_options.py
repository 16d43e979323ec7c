"""What a deploy can be told, with its defaults: the one place they are written.

Kept apart from :mod:`runpod_jupyter.deployer` (which imports the HTTP client) so that the magic's
and the CLI's flags, built from these defaults at import time, keep ``%load_ext`` and ``--help``
light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_GPUS = ("AMPERE_16", "AMPERE_24", "ADA_24")
SCALERS = ("QUEUE_DELAY", "REQUEST_COUNT")
BUILDERS = ("oci", "docker", "podman", "buildah")


@dataclass(frozen=True)
class DeployOptions:
    """Everything a deploy can be told; the magic's and the CLI's flags map onto these."""

    name: str
    backend: str | None = None
    handler: str = "handler"
    gpu: tuple[str, ...] = DEFAULT_GPUS
    workers_min: int = 0
    workers_max: int = 3
    idle_timeout: int = 5
    scaler: str = "QUEUE_DELAY"
    scaler_value: int = 4
    volume: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    container_disk: int | None = None  # GB; None: sized from the image and models (at least 20)
    capture: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    base_image: str | None = None
    concurrency: int | None = None
    aggregate_stream: bool = True  # generator handlers: the final result repeats the streamed chunks
    execution_timeout: int | None = None  # seconds
    registry: str | None = None  # cloud: where images are pushed, e.g. docker.io/me/workers
    builder: str | None = None  # cloud: "oci" (daemonless, default), "docker", "podman", "buildah"
    wait: bool = True
    wait_timeout: float | None = None  # default: 120 s local, 900 s cloud
    dry_run: bool = False

    def __repr__(self) -> str:  # env values may be secret references or worse: keys only
        return f"DeployOptions(name={self.name!r}, backend={self.backend!r}, gpu={self.gpu!r}, env_keys={sorted(self.env)!r})"


def default(name: str) -> Any:
    """The default of one :class:`DeployOptions` field (what a flag left out means)."""
    for f in fields(DeployOptions):
        if f.name == name:
            return f.default_factory() if callable(f.default_factory) else f.default
    raise KeyError(name)
