"""The default builder: no Docker daemon, no root, no base download.

It appends two layers to a base image that already lives in a registry: the dependencies layer
(cached, see ``deps.py``) and a small handler layer, rewrites the config, and pushes only what the
target repository lacks. Base layers are cross-repository mounted when base and target share a
registry, otherwise streamed registry-to-registry through this process in 1 MiB pieces. After the
first push, a handler edit uploads one small layer, the config and the manifest: a few KB.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from .._version import __version__
from .auth import Credentials, find_credentials
from .bases import BaseImage
from .deps import VENDOR_DIR, DepsLayer, IndexOptions, build_deps_layer
from .layers import DEFAULT_LEVEL, Layer, write_layer
from .manifest import LABEL_PREFIX, ResolvedBase, canonical_json, resolve_base, worker_config, worker_manifest
from .project import APP_DIR, WorkerProject
from .reference import ImageRef
from .registry import Registry, TransferStats, sha256_digest
from .result import BlobReport, BuildResult, Progress, ProgressCallback

#: Concurrent requests while checking and sending blobs (docker uses 3 to 5).
PARALLEL_REQUESTS = 4


class _Reporter:
    """Sends Progress to the callback (from one thread at a time); byte updates at most every
    64 KiB or at the end of a phase."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.lock = threading.Lock()
        self.callback = callback
        self.phase = ""
        self.done = 0
        self.total = 0
        self._last_sent = -1

    def phase_start(self, phase: str, message: str = "", total: int = 0) -> None:
        with self.lock:
            self.phase, self.done, self.total, self._last_sent = phase, 0, total, -1
            self._send(message)

    def advance(self, amount: int, message: str = "") -> None:
        with self.lock:
            self.done += amount
            if self.done - self._last_sent >= 65536 or self.done >= self.total:
                self._send(message)

    def finish(self, message: str) -> None:
        with self.lock:
            self.phase, self.done, self.total = "done", 1, 1
            self._send(message)

    def _send(self, message: str = "") -> None:
        self._last_sent = self.done
        if self.callback:
            self.callback(Progress(self.phase, self.done, self.total, message))


def _scopes(target: ImageRef, base: ImageRef) -> list[str]:
    scopes = [f"repository:{target.repository}:pull,push"]
    if base.registry == target.registry and base.repository != target.repository:
        scopes.append(f"repository:{base.repository}:pull")
    return scopes


def push_daemonless(
    project: WorkerProject,
    base: BaseImage,
    target: ImageRef,
    *,
    credentials: Credentials | None = None,
    base_credentials: Credentials | None = None,
    progress: ProgressCallback | None = None,
    cache_dir: Path | None = None,
    tool: str = "auto",
    index: IndexOptions | None = None,
    plain_http: bool | None = None,
    verify: bool | str = True,
    transport: httpx.BaseTransport | None = None,
    chunk_size: int | None = None,
    level: int = DEFAULT_LEVEL,
    labels: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> BuildResult:
    """Build the worker image on ``base`` and push it to ``target``; see the module docstring."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    report = _Reporter(progress)
    base_ref = base.ref
    stats = TransferStats()
    same_registry = base_ref.registry == target.registry
    if credentials is None:
        credentials = find_credentials(target.registry, target=True)
    options: dict[str, Any] = {"plain_http": plain_http, "verify": verify, "transport": transport, "stats": stats}
    target_registry = Registry(target.api_host, credentials=credentials, scopes=_scopes(target, base_ref), **options)
    if same_registry:
        base_registry = target_registry
    else:
        if base_credentials is None:
            base_credentials = find_credentials(base_ref.registry, target=False)
        base_registry = Registry(base_ref.api_host, credentials=base_credentials,
                                 scopes=[f"repository:{base_ref.repository}:pull"], **options)
    try:
        report.phase_start("resolve", f"resolving {base_ref}")
        t0 = time.monotonic()
        resolved = resolve_base(base_registry, base_ref)
        timings["resolve"] = time.monotonic() - t0

        t0 = time.monotonic()
        report.phase_start("dependencies", "checking requirements")
        deps = build_deps_layer(
            project.requirements, base, resolved.digest, cache_dir=cache_dir, tool=tool, index=index, level=level,
            on_status=lambda text: report.phase_start("dependencies", text),
        )
        timings["dependencies"] = time.monotonic() - t0

        with tempfile.TemporaryDirectory(prefix="rpj-build-") as tmp:
            t0 = time.monotonic()
            report.phase_start("layers", "packing the handler layer")
            handler_layer = write_layer(project.files, Path(tmp) / "handler.tar.gz", level=level)
            new_layers: list[tuple[Layer, str, str]] = []
            if deps.layer is not None:
                new_layers.append((deps.layer, "dependencies",
                                   f"runpod-jupyter: install requirements.txt into {VENDOR_DIR} ({deps.tool})"))
            new_layers.append((handler_layer, "handler", f"runpod-jupyter: COPY . {APP_DIR}"))
            config = worker_config(
                resolved.config,
                [(layer, created_by) for layer, _kind, created_by in new_layers],
                cmd=[base.python_exe, "-u", project.handler_path],
                workdir=APP_DIR,
                env={"PYTHONUNBUFFERED": "1", **(env or {})},
                pythonpath=VENDOR_DIR if deps.layer is not None else None,
                labels=_labels(project, base, resolved, deps, labels),
            )
            config_raw = canonical_json(config)
            manifest_raw, manifest_type = worker_manifest(resolved, config_raw, [layer for layer, _k, _c in new_layers])
            timings["layers"] = time.monotonic() - t0

            t0 = time.monotonic()
            blobs = _push_blobs(target_registry, base_registry, target, resolved, new_layers, config_raw,
                                chunk_size, report)
            timings["upload"] = time.monotonic() - t0

            t0 = time.monotonic()
            report.phase_start("manifest", "pushing the manifest", total=len(manifest_raw))
            tag = target.tag or "latest"
            digest = target_registry.put_manifest(target.repository, tag, manifest_raw, manifest_type)
            report.advance(len(manifest_raw))
            timings["manifest"] = time.monotonic() - t0
    finally:
        target_registry.close()
        if base_registry is not target_registry:
            base_registry.close()
    timings["total"] = time.monotonic() - started
    pinned = target.with_tag(None).with_digest(digest)
    result = BuildResult(
        image=pinned.pinned(),
        digest=digest,
        tagged=f"{target.name}:{tag}",
        builder="daemonless",
        base=resolved.pinned,
        media_type=manifest_type,
        bytes_uploaded=stats.bytes_up,
        requests=stats.requests,
        deps_cached=deps.cached if deps.layer is not None else None,
        timings=timings,
        blobs=tuple(blobs),
        source_hash=project.source_hash,
    )
    report.finish(result.image)
    return result


def _labels(project: WorkerProject, base: BaseImage, resolved: ResolvedBase, deps: DepsLayer,
            extra: dict[str, str] | None) -> dict[str, str]:
    labels = {
        f"{LABEL_PREFIX}.source-hash": project.source_hash,
        f"{LABEL_PREFIX}.version": __version__,
        f"{LABEL_PREFIX}.python": base.python,
        "org.opencontainers.image.base.digest": resolved.digest,
        "org.opencontainers.image.base.name": str(base.ref),
    }
    if deps.layer is not None:
        labels[f"{LABEL_PREFIX}.requirements-hash"] = sha256_digest(project.requirements.encode())
    labels.update(extra or {})
    return labels


def _push_blobs(
    target_registry: Registry,
    base_registry: Registry,
    target: ImageRef,
    resolved: ResolvedBase,
    new_layers: list[tuple[Layer, str, str]],
    config_raw: bytes,
    chunk_size: int | None,
    report: _Reporter,
) -> list[BlobReport]:
    """Make sure the target repository has every blob: HEAD them all, then mount, stream or
    upload the missing ones. Both steps run a few requests at a time, as docker does."""
    repo = target.repository
    same_registry = base_registry is target_registry
    wanted: dict[str, tuple[int, str, Callable[[], Any] | None]] = {}
    for descriptor in resolved.layers:
        wanted.setdefault(descriptor["digest"], (int(descriptor.get("size") or 0), "base", None))
    for layer, kind, _created_by in new_layers:
        wanted.setdefault(layer.digest, (layer.size, kind, layer.chunks))
    wanted.setdefault(sha256_digest(config_raw), (len(config_raw), "config", lambda: iter([config_raw])))

    with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS, thread_name_prefix="rpj-push") as pool:
        sizes = pool.map(lambda digest: target_registry.blob_size(repo, digest), wanted)
        present = {digest: size is not None for digest, size in zip(wanted, sizes, strict=True)}
        missing = [digest for digest in wanted if not present[digest]]
        message = f"{len(missing)} of {len(wanted)} blobs to send"
        copied = sum(wanted[d][0] for d in missing if wanted[d][1] == "base")
        if copied and not same_registry:
            message += (f"; {copied / 1e6:.0f} MB of base layers pass through this machine from "
                        f"{resolved.ref.registry} (a mount needs base and target in one registry)")
        report.phase_start("upload", message, total=sum(wanted[d][0] for d in missing))

        def send(digest: str) -> BlobReport:
            size, kind, body = wanted[digest]
            short = digest.split(":", 1)[-1][:12]
            if body is not None:
                target_registry.upload_blob(repo, digest, size, body, chunk_size=chunk_size,
                                            on_bytes=lambda n: report.advance(n, f"uploading {kind} {short}"))
                return BlobReport(digest, size, kind, "uploaded")
            location = None
            if same_registry and resolved.ref.repository != repo:
                location = target_registry.mount_blob(repo, digest, resolved.ref.repository)
                if location is None:
                    report.advance(size, f"mounted {short} from {resolved.ref.repository}")
                    return BlobReport(digest, size, kind, "mounted")
            target_registry.upload_blob(
                repo, digest, size, lambda: base_registry.stream_blob(resolved.ref.repository, digest),
                location=location, chunk_size=chunk_size,
                on_bytes=lambda n: report.advance(n, f"copying base layer {short}"),
            )
            return BlobReport(digest, size, kind, "streamed")

        sent = dict(zip(missing, pool.map(send, missing), strict=True))
    return [sent.get(digest) or BlobReport(digest, wanted[digest][0], wanted[digest][1], "existing")
            for digest in wanted]


def describe_blobs(blobs: tuple[BlobReport, ...]) -> str:
    """``mounted 2, uploaded 2 (1.2 KB), existing 1``: for logs."""
    counts: dict[str, list[int]] = {}
    for blob in blobs:
        counts.setdefault(blob.action, []).append(blob.size)
    return ", ".join(f"{action} {len(sizes)}" for action, sizes in sorted(counts.items()))


__all__ = ["push_daemonless", "describe_blobs"]
