"""Image metadata: find the base's linux/amd64 manifest, then write the worker's config and
manifest on top of it.

Only the base's manifest and config (a few KB) are read; its layers are referenced by digest and
never downloaded when base and target share a registry. The new manifest keeps the base's
media-type family (Docker v2 or OCI), because some registries and runtimes refuse a manifest that
mixes them. Config and manifest are serialised with sorted keys and no spaces, and every time in
them is derived from the inputs, so the same inputs give the same digests.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from ..errors import ImageError
from .layers import Layer
from .reference import ImageRef
from .registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Registry,
    sha256_digest,
)

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FAMILIES = {
    "docker": (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
    "oci": (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
}
LABEL_PREFIX = "io.runpod-jupyter"
PLATFORM = ("linux", "amd64")


@dataclass(frozen=True)
class ResolvedBase:
    """The base pinned to one platform manifest: what the new image is built on."""

    ref: ImageRef
    digest: str
    index_digest: str | None
    media_type: str
    manifest: dict[str, Any]
    config: dict[str, Any]

    @property
    def family(self) -> str:
        return "oci" if self.media_type == OCI_MANIFEST else "docker"

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("layers") or [])

    @property
    def pinned(self) -> str:
        return self.ref.with_digest(self.digest).with_tag(None).pinned()


def _platform_label(entry: Mapping[str, Any]) -> str:
    platform = entry.get("platform") or {}
    label = f"{platform.get('os', '?')}/{platform.get('architecture', '?')}"
    return label + (f"/{platform['variant']}" if platform.get("variant") else "")


def select_platform(index: Mapping[str, Any], os_name: str = PLATFORM[0], arch: str = PLATFORM[1]) -> dict[str, Any]:
    """The index entry for ``os/arch`` (attestation entries, ``unknown/unknown``, are skipped)."""
    entries = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    for entry in entries:
        platform = entry.get("platform") or {}
        if platform.get("os") == os_name and platform.get("architecture") == arch:
            return entry
    offered = sorted({_platform_label(e) for e in entries if (e.get("platform") or {}).get("os") != "unknown"})
    raise ImageError(
        f"The base image has no {os_name}/{arch} variant (it offers {', '.join(offered) or 'none'}).",
        hint="RunPod workers run linux/amd64: pick a base image published for it.",
    )


def resolve_base(registry: Registry, ref: ImageRef) -> ResolvedBase:
    """Fetch the base's manifest (through an index if it is multi-arch) and its config."""
    top = registry.get_manifest(ref.repository, ref.reference)
    index_digest = None
    manifest = top
    if top.media_type in INDEX_TYPES or "manifests" in top.json():
        index_digest = top.digest
        entry = select_platform(top.json())
        manifest = registry.get_manifest(ref.repository, entry["digest"])
    body = manifest.json()
    media_type = body.get("mediaType") or manifest.media_type
    if media_type not in (DOCKER_MANIFEST, OCI_MANIFEST) or body.get("schemaVersion") != 2:
        raise ImageError(
            f"The base image {ref} uses a manifest format this builder cannot extend ({media_type or 'unknown'}).",
            hint="Use a base pushed with a current docker/podman (schema 2 or OCI), or builder='docker'.",
        )
    config_descriptor = body.get("config") or {}
    config = json.loads(registry.get_blob(ref.repository, config_descriptor["digest"]))
    if (config.get("os"), config.get("architecture")) not in ((PLATFORM[0], PLATFORM[1]), (None, None)):
        raise ImageError(
            f"The base image {ref} is for {config.get('os')}/{config.get('architecture')}, not linux/amd64.",
            hint="RunPod workers run linux/amd64: pick a base image published for it.",
        )
    return ResolvedBase(ref=ref, digest=manifest.digest, index_digest=index_digest, media_type=media_type,
                        manifest=body, config=config)


def _env_dict(env: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def created_time(base_config: Mapping[str, Any]) -> str:
    """``SOURCE_DATE_EPOCH`` when set, else the base's own creation time (stable for a pinned base)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = base_config.get("created")
    return created if isinstance(created, str) and created else "1970-01-01T00:00:00Z"


def worker_config(
    base_config: Mapping[str, Any],
    layers: Sequence[tuple[Layer, str]],
    *,
    cmd: Sequence[str],
    workdir: str = "/app",
    env: Mapping[str, str] | None = None,
    pythonpath: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The base config with our layers appended and the worker's Cmd, Env, WorkingDir and Labels.

    ``layers`` pairs each new layer with the history line that says what it holds. The base's
    Entrypoint is kept, as a Dockerfile ``CMD`` would keep it.
    """
    config = copy.deepcopy(dict(base_config))
    created = created_time(base_config)
    inner = dict(config.get("config") or {})
    merged = _env_dict(inner.get("Env") or [])
    for key, value in (env or {}).items():
        merged[key] = value
    if pythonpath:
        rest = [part for part in merged.get("PYTHONPATH", "").split(":") if part and part != pythonpath]
        merged["PYTHONPATH"] = ":".join([pythonpath, *rest])
    inner["Env"] = [f"{k}={v}" for k, v in merged.items()]
    inner["Cmd"] = list(cmd)
    inner["WorkingDir"] = workdir
    all_labels = dict(inner.get("Labels") or {})
    all_labels.update(labels or {})
    inner["Labels"] = all_labels
    config["config"] = inner
    rootfs = dict(config.get("rootfs") or {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + [layer.diff_id for layer, _ in layers]
    config["rootfs"] = rootfs
    history = list(config.get("history") or [])
    base_layers = len(rootfs["diff_ids"]) - len(layers)
    described = sum(1 for entry in history if not entry.get("empty_layer"))
    for _ in range(max(0, base_layers - described)):
        # Tools that rebuild on this image (buildah, docker) require one history entry per layer.
        history.append({"created": created, "created_by": "(base layer without history)"})
    for _layer, created_by in layers:
        history.append({"created": created, "created_by": created_by, "comment": "runpod-jupyter"})
    history.append({"created": created, "created_by": f"CMD {json.dumps(list(cmd))}", "empty_layer": True})
    config["history"] = history
    config["created"] = created
    config["os"], config["architecture"] = config.get("os") or PLATFORM[0], config.get("architecture") or PLATFORM[1]
    return config


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def worker_manifest(base: ResolvedBase, config_raw: bytes, layers: Sequence[Layer]) -> tuple[bytes, str]:
    """The manifest of the worker image, in the base's media-type family. Returns (bytes, type)."""
    manifest_type, config_type, layer_type = FAMILIES[base.family]
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": sha256_digest(config_raw), "size": len(config_raw)},
        "layers": base.layers + [{"mediaType": layer_type, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    if base.family == "oci":
        body["annotations"] = {
            "org.opencontainers.image.base.digest": base.digest,
            "org.opencontainers.image.base.name": str(replace(base.ref, digest=None)),
        }
    return canonical_json(body), manifest_type


__all__ = [
    "DOCKER_CONFIG", "DOCKER_LAYER", "OCI_CONFIG", "OCI_LAYER", "DOCKER_MANIFEST", "DOCKER_MANIFEST_LIST",
    "OCI_MANIFEST", "OCI_INDEX", "ResolvedBase", "resolve_base", "select_platform", "worker_config",
    "worker_manifest", "canonical_json", "created_time",
]
