"""Image names parse the way docker parses them."""

from __future__ import annotations

import pytest

from runpod_jupyter.image import ImageRef, ImageReferenceError
from runpod_jupyter.image.reference import canonical_registry, is_loopback

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,registry,repository,tag,digest", [
    ("ubuntu", "docker.io", "library/ubuntu", None, None),
    ("runpod/base:1.0.7-ubuntu2204", "docker.io", "runpod/base", "1.0.7-ubuntu2204", None),
    ("docker.io/runpod/base:1", "docker.io", "runpod/base", "1", None),
    ("index.docker.io/library/python:3.11", "docker.io", "library/python", "3.11", None),
    ("ghcr.io/me/app", "ghcr.io", "me/app", None, None),
    ("localhost/app:1", "localhost", "app", "1", None),
    ("127.0.0.1:5000/user/worker:v1", "127.0.0.1:5000", "user/worker", "v1", None),
    (f"127.0.0.1:5000/user/worker@{DIGEST}", "127.0.0.1:5000", "user/worker", None, DIGEST),
    (f"me/app:v2@{DIGEST}", "docker.io", "me/app", "v2", DIGEST),
    ("Registry.Example.COM/a/b/c:t", "registry.example.com", "a/b/c", "t", None),
])
def test_parse(text, registry, repository, tag, digest):
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


def test_api_host_reference_and_pinned():
    ref = ImageRef.parse("me/app:v1")
    assert ref.api_host == "registry-1.docker.io" and ref.reference == "v1"
    assert ImageRef.parse("me/app").reference == "latest"
    pinned = ref.with_tag(None).with_digest(DIGEST)
    assert pinned.pinned() == f"docker.io/me/app@{DIGEST}" and pinned.reference == DIGEST
    assert str(ImageRef.parse("127.0.0.1:5000/a:b")) == "127.0.0.1:5000/a:b"


@pytest.mark.parametrize("text", ["", "UPPER/case", "a/b:bad tag", "a/b@sha256:xyz", "a//b", "-lead/x"])
def test_invalid_names_are_refused_with_a_hint(text):
    with pytest.raises(ImageReferenceError) as info:
        ImageRef.parse(text)
    assert info.value.hint


def test_registry_spellings_and_loopback():
    assert canonical_registry("https://index.docker.io/v1/") == "docker.io"
    assert canonical_registry("GHCR.io") == "ghcr.io"
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost") and is_loopback("[::1]:5000")
    assert not is_loopback("ghcr.io") and not is_loopback("10.0.0.1:5000")
