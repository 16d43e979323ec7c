"""The table of known RunPod bases, and choosing one for the kernel's Python."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement

from runpod_jupyter.image import KNOWN_BASES, BaseImage, ImageError, choose_base, known_base, pick_base
from runpod_jupyter.image.bases import from_project_manifest


def test_table_entries_are_consistent():
    assert KNOWN_BASES
    for base in KNOWN_BASES:
        assert base.image.startswith(("runpod/base:", "runpod/pytorch:"))
        assert base.python_exe == f"python{base.python}"
        assert base.platform_tag.startswith("manylinux_2_") and base.platform_tag.endswith("_x86_64")
        assert "runpod" not in base.packages  # RunPod's images do not ship the SDK: it is vendored
    torch_bases = [b for b in KNOWN_BASES if b.image.startswith("runpod/pytorch:")]
    assert torch_bases and all(b.provided_version("torch") for b in torch_bases)
    assert all(b.provided_version("nvidia-cublas-cu12") == "" for b in torch_bases)


def test_pick_base_for_a_python():
    default = pick_base("3.12")
    assert default.image.startswith("runpod/base:") and default.python == "3.12" and default.cuda
    assert pick_base("3.12", cuda=False).cuda is None
    assert default.provided_version("jupyterlab")  # packages of the image's default Python count
    other = pick_base("3.11")
    assert other.python_exe == "python3.11" and other.packages == {}  # …but not for another interpreter
    torch = pick_base("3.11", torch=True)
    assert torch.image == "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"


def test_no_base_for_an_unknown_python():
    with pytest.raises(ImageError) as info:
        pick_base("3.7")
    assert "3.7" in info.value.message and "3.11" in info.value.hint


def test_known_base_matches_any_spelling():
    assert known_base("docker.io/runpod/base:1.0.7-ubuntu2204") is known_base("runpod/base:1.0.7-ubuntu2204")
    assert known_base("runpod/base:does-not-exist") is None
    assert known_base("NOT A NAME") is None


def test_choose_base_override_and_unknown_images():
    mine = BaseImage(image="me/base:1", python="3.10")
    assert choose_base(mine) is mine
    unknown = choose_base("ghcr.io/me/py:3.11", "3.11", glibc="2.31")
    assert (unknown.python, unknown.python_exe, unknown.glibc) == ("3.11", "python3.11", "2.31")
    switched = choose_base("runpod/base:1.0.7-ubuntu2204", "3.10")
    assert switched.python_exe == "python3.10"
    with pytest.raises(ImageError):
        choose_base("runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04", "3.12")


def test_satisfies_uses_the_base_version():
    base = BaseImage(image="x/y:1", python="3.11", packages={"torch": "2.4.0", "pip": ""})
    assert base.satisfies(Requirement("torch"))
    assert base.satisfies(Requirement("torch>=2.1,<2.5"))
    assert not base.satisfies(Requirement("torch>=2.5"))
    assert base.satisfies(Requirement("pip")) and base.satisfies(Requirement("pip>=24"))  # unknown version: trusted
    assert not base.satisfies(Requirement("numpy"))


def test_the_packaging_manifest_names_the_base():
    chosen = from_project_manifest({"base_image": "runpod/pytorch:2.9.0-py3.12-custom", "python": "3.12",
                                    "python_executable": "python3.12", "base_provides": ["torch", "torchvision"]})
    assert (chosen.image, chosen.python, chosen.python_exe) == ("runpod/pytorch:2.9.0-py3.12-custom", "3.12", "python3.12")
    assert chosen.satisfies(Requirement("torch==2.9.0"))  # provided, version unknown: not vendored again
    known = from_project_manifest({"base_image": "runpod/base:1.0.7-ubuntu2204", "python": "3.11"})
    assert known.glibc == "2.35" and known.python_exe == "python3.11"
    assert from_project_manifest({"python": "3.11"}) is None
