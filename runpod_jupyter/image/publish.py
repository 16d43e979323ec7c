"""The cloud half of a deploy: the worker project becomes an image in a registry RunPod can pull.

The push target is ``<registry>/<endpoint name>:<content hash>`` (``--registry`` or
``%runpod_config registry`` names the registry and namespace, e.g. ``docker.io/me``), and the
endpoint gets the digest-pinned reference, so a release always runs exactly what was built.
Private registries get a RunPod registry login (``saveRegistryAuth``), created once and reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..api import Client
from ..errors import DeployError, ImageError
from .auth import find_credentials
from .builders import build_and_push
from .reference import ImageRef, is_loopback
from .registry import Registry
from .result import Progress, ProgressCallback
from .runpod_auth import ensure_registry_auth


class PublishedProject(Protocol):
    """What publishing reads of a packaged worker project (``packaging.WorkerProject``)."""

    @property
    def path(self) -> Path: ...

    @property
    def content_hash(self) -> str: ...


class PublishOptions(Protocol):
    """What publishing reads of the deploy options (``deployer.DeployOptions``)."""

    @property
    def name(self) -> str: ...

    @property
    def registry(self) -> str | None: ...

    @property
    def base_image(self) -> str | None: ...

    @property
    def builder(self) -> str | None: ...


def image_target(registry: str, name: str, content_hash: str) -> str:
    repository = name.lower().replace("_", "-")
    return f"{registry.rstrip('/')}/{repository}:{content_hash[:12]}"


def published(project: PublishedProject, options: PublishOptions) -> str | None:
    """The digest-pinned image this exact project was already pushed as (its content-hash tag is
    in the registry), or None when it was not or the registry cannot say. One manifest read: an
    unchanged cell is not built again."""
    if not options.registry:
        return None
    target = ImageRef.parse(image_target(options.registry, options.name, project.content_hash))
    try:
        with Registry(target.api_host, credentials=find_credentials(target.registry),
                      scopes=[f"repository:{target.repository}:pull"]) as registry:
            manifest = registry.get_manifest(target.repository, target.tag or "latest")
    except ImageError:
        return None
    return target.with_tag(None).with_digest(manifest.digest).pinned()


def publish(client: Client, project: PublishedProject, options: PublishOptions,
            report: Callable[[str, str], None]) -> tuple[str, str | None]:
    """Build and push; return (digest-pinned image, RunPod registry auth id or None)."""
    if not options.registry:
        raise DeployError(
            "A cloud deploy pushes the worker image to a registry RunPod can pull from, and none is set.",
            hint="Pass --registry docker.io/<you> (or ghcr.io/<you>), or run `%runpod_config registry "
            "docker.io/<you>`; log in with `docker login` or set RUNPOD_JUPYTER_REGISTRY_USERNAME and "
            "RUNPOD_JUPYTER_REGISTRY_PASSWORD.",
        )
    target = image_target(options.registry, options.name, project.content_hash)
    host = ImageRef.parse(target).registry
    credentials = find_credentials(host)
    if credentials is None and not is_loopback(host):
        raise DeployError(
            f"No push credentials were found for {host}; nothing was built or deployed.",
            hint="Run `docker login` (credentials in ~/.docker/config.json), or set "
            "RUNPOD_JUPYTER_REGISTRY_USERNAME and RUNPOD_JUPYTER_REGISTRY_PASSWORD (a token works as password).",
        )
    result = build_and_push(
        project.path, options.base_image, target, builder=options.builder or "auto",
        progress=_throttled(report), username=credentials.username if credentials else None,
        password=credentials.password if credentials else None,
    )
    uploaded = f" ({result.bytes_uploaded / 1000:.1f} kB uploaded)" if result.bytes_uploaded is not None else ""
    report("build", f"pushed {result.image}{uploaded}")
    auth_id = ensure_registry_auth(client, result.image, credentials=credentials) if credentials else None
    return result.image, auth_id


def _throttled(report: Callable[[str, str], None], every: float = 2.0) -> ProgressCallback:
    """Build progress arrives per chunk; pass on phase changes and at most one line per ``every`` s."""
    last_phase: str | None = None
    last_at = 0.0

    def on_progress(progress: Progress) -> None:
        nonlocal last_phase, last_at
        now = time.monotonic()
        if progress.phase == last_phase and now - last_at < every:
            return
        last_phase, last_at = progress.phase, now
        share = f" {progress.fraction:.0%}" if progress.fraction is not None else ""
        report("build", f"{progress.phase}{share} {progress.message}".rstrip())

    return on_progress


