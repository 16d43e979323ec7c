"""What preflight's container-disk check needs to know before anything is built: an estimate of
the compressed image (the base image plus the pinned requirements as they are installed in this
kernel) and the size of the Hugging Face models the code loads that this machine has cached.

Estimates, on purpose cheap and offline: the base's size comes from a table, the requirements'
from the files of the installed distributions (and what they require), compressed by the same
factor the check unpacks with; a model counts only if it is in the local Hugging Face cache.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .project import WorkerProject

#: Compressed sizes of RunPod's base images, by repository (GB).
BASE_IMAGE_GB = {"runpod/pytorch": 8.5, "runpod/base": 4.5}
#: An image not in the table: about what a CUDA base weighs.
OTHER_BASE_GB = 4.5
#: How much smaller the pushed (compressed) layers are than the installed files.
COMPRESSION = 2.5
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def base_image_gb(image: str) -> float:
    repository = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return BASE_IMAGE_GB.get(repository.removeprefix("docker.io/"), OTHER_BASE_GB)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1024)
def _dist_bytes(name: str) -> tuple[int, tuple[str, ...]]:
    """(bytes of an installed distribution's files, the names it requires), or (0, ())."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return 0, ()
    total = 0
    for file in dist.files or ():
        try:
            total += Path(str(file.locate())).stat().st_size
        except OSError:
            continue
    requires = tuple(m.group(1) for r in dist.requires or () if "extra ==" not in r and (m := _NAME.match(r)))
    return total, requires


def installed_bytes(requirements: Iterable[str]) -> int:
    """Bytes the requirements and everything they pull in take, as installed in this kernel."""
    seen: set[str] = set()
    todo = [m.group(1) for line in requirements if (m := _NAME.match(line))]
    total = 0
    while todo:
        name = _normal(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        size, requires = _dist_bytes(name)
        total += size
        todo.extend(requires)
    return total


def image_size_gb(base_image: str, requirements: Iterable[str]) -> float:
    """The compressed image, estimated: base + requirements (installed size / compression)."""
    return round(base_image_gb(base_image) + installed_bytes(requirements) / COMPRESSION / 1e9, 1)


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def cached_models_gb(model_ids: Iterable[str]) -> float | None:
    """GB of the given Hugging Face models in this machine's cache; None if none is cached."""
    found, total = False, 0
    for model in model_ids:
        blobs = _hub_cache() / ("models--" + model.replace("/", "--")) / "blobs"
        if not blobs.is_dir():
            continue
        found = True
        total += sum(f.stat().st_size for f in blobs.iterdir() if f.is_file())
    return round(total / 1e9, 1) if found else None


def project_sizes(project: WorkerProject) -> tuple[float, float | None]:
    """(estimated compressed image GB, GB of the cached models its code loads or None)."""
    from .check_context import PreflightOptions, build_context
    from .preflight import hf_model_ids

    models = hf_model_ids(build_context(project, PreflightOptions()))
    return image_size_gb(project.base_image, project.requirements), cached_models_gb(models)
