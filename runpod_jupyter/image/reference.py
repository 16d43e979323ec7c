"""Image references (``runpod/base:tag``, ``ghcr.io/me/app@sha256:…``) parsed the way docker does.

Docker's short names hide three rules that decide where bytes go: a first component with a dot,
a colon or ``localhost`` is a registry host, anything else lives on Docker Hub, and a one-word
Hub name is under ``library/``. The API host for Docker Hub is ``registry-1.docker.io`` while the
name users and RunPod templates write is ``docker.io``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from ..errors import ImageReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")


def canonical_registry(host: str) -> str:
    """``index.docker.io`` and friends are all ``docker.io``; other hosts are kept, lowercased."""
    host = host.strip().lower()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.x`` and ``::1`` (with or without a port)."""
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ImageRef:
    """One image name, split into where it lives and what it points at."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse ``[registry/]repo[:tag][@digest]`` with docker's defaulting rules."""
        original = text
        text = (text or "").strip()
        if not text:
            raise ImageReferenceError("An image name is empty.", hint="Write it like 'user/repo:tag'.")
        digest = None
        if "@" in text:
            text, digest = text.rsplit("@", 1)
            if not _DIGEST.match(digest):
                raise ImageReferenceError(
                    f"{original!r} has a malformed digest {digest!r}.",
                    hint="A digest looks like 'sha256:' followed by 64 hex characters.",
                )
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            registry, remainder = canonical_registry(first), rest
        else:
            registry, remainder = DOCKER_HUB, text
        tag = None
        last = remainder.rsplit("/", 1)[-1]
        if ":" in last:
            remainder, tag = remainder.rsplit(":", 1)
            if not _TAG.match(tag):
                raise ImageReferenceError(f"{original!r} has an invalid tag {tag!r}.",
                                          hint="Tags use letters, digits, '_', '.' and '-' (at most 128).")
        if registry == DOCKER_HUB and "/" not in remainder:
            remainder = f"library/{remainder}"
        if not _REPOSITORY.match(remainder):
            raise ImageReferenceError(
                f"{original!r} is not a valid image name.",
                hint="Repository names are lowercase letters, digits and separators ('.', '_', '-', '/').",
            )
        return cls(registry=registry, repository=remainder, tag=tag, digest=digest)

    @property
    def api_host(self) -> str:
        """The host that serves ``/v2/`` for this registry."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What to ask the manifests endpoint for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """``registry/repository`` as docker and RunPod templates write it."""
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> ImageRef:
        return replace(self, digest=digest)

    def with_tag(self, tag: str | None) -> ImageRef:
        return replace(self, tag=tag)

    def pinned(self) -> str:
        """``registry/repo@sha256:…``: immutable, what a template should reference."""
        if not self.digest:
            raise ValueError("this reference has no digest")
        return f"{self.name}@{self.digest}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out
