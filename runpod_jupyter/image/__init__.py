"""Worker project → digest-pinned image in a registry, with or without a container engine.

::

    from runpod_jupyter.image import build_and_push

    result = build_and_push("worker/", base=None, target="docker.io/me/echo:v3",
                            progress=lambda p: print(p.phase, p.done, p.total))
    result.image            # 'docker.io/me/echo@sha256:…' → the template's imageName

The default builder needs no daemon: it appends a cached dependencies layer and a small handler
layer to a RunPod base image already in the registry and pushes only what is missing (a handler
edit re-pushes a few KB). ``builder='docker' | 'podman' | 'buildah'`` builds the project's
Dockerfile with that engine instead. :func:`ensure_registry_auth` lets RunPod pull a private image.

Nothing here is imported by ``import runpod_jupyter``.
"""

from ..errors import (
    DependencyError,
    ImageError,
    ImageReferenceError,
    NoBuilderError,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachableError,
)
from .auth import Credentials, find_credentials
from .bases import KNOWN_BASES, BaseImage, choose_base, known_base, pick_base
from .builders import BUILDERS, BuilderStatus, available_builders, build_and_push, dockerfile_for
from .deps import VENDOR_DIR, IndexOptions
from .reference import ImageRef
from .result import BlobReport, BuildResult, Progress, ProgressCallback
from .runpod_auth import ensure_registry_auth

__all__ = [
    "build_and_push", "BuildResult", "BlobReport", "Progress", "ProgressCallback",
    "BaseImage", "KNOWN_BASES", "known_base", "pick_base", "choose_base",
    "ImageRef", "Credentials", "find_credentials", "IndexOptions", "VENDOR_DIR",
    "BUILDERS", "BuilderStatus", "available_builders", "dockerfile_for", "ensure_registry_auth",
    "ImageError", "ImageReferenceError", "RegistryError", "RegistryAuthError", "RegistryUnreachableError",
    "DependencyError", "NoBuilderError",
]
