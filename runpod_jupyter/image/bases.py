"""Known RunPod base images: which Python runs the worker, which glibc the wheels must fit, and
which packages are already inside (so they are not vendored again, and do not shadow the base's
CUDA builds).

Facts are read from RunPod's own build files (github.com/runpod/containers,
``official-templates/{base,pytorch}`` and ``shared/versions.hcl``): the ``1.0.x`` ``runpod/base``
images install CPython 3.9–3.13 from deadsnakes on Ubuntu and point ``python`` at 3.12, where the
Jupyter packages of ``base/requirements.txt`` are installed (in ``0.6.x`` that Python was 3.10);
``runpod/pytorch:1.0.x`` adds torch/torchvision/torchaudio to that Python; the older
``runpod/pytorch:<torch>-py3.X-…`` images have one Python (the tag's) with torch installed. None of
them ships the ``runpod`` SDK, so a worker's requirements always vendor it unless the base says
otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import ImageError
from .reference import ImageRef

DEFAULT_GLIBC = "2.28"

_RUNPOD_BASE_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
_RUNPOD_BASE_PACKAGES = {
    "jupyterlab": "4.5.9", "ipywidgets": "8.1.8", "notebook": "7.5.6", "jupyter-archive": "3.4.0",
    "hf-transfer": "0.1.9", "pip": "", "virtualenv": "",
}
#: torch pulls these from PyPI as its own dependencies; the base has them next to torch.
_TORCH_COMPANIONS = ("nvidia-", "triton")


@dataclass(frozen=True)
class BaseImage:
    """A base image and what the daemonless builder needs to know about its Python."""

    image: str
    python: str
    python_exe: str = "python"
    glibc: str = DEFAULT_GLIBC
    cuda: str | None = None
    os: str = ""
    #: Packages importable by ``python_exe`` in the base: normalised name → version ("" = unknown).
    packages: Mapping[str, str] = field(default_factory=dict)
    #: Name prefixes the base provides as a family (``nvidia-`` next to torch).
    package_prefixes: tuple[str, ...] = ()
    #: Other interpreters in the image (``for_python`` switches to one of them).
    pythons: tuple[str, ...] = ()
    note: str = ""

    @property
    def ref(self) -> ImageRef:
        return ImageRef.parse(self.image)

    @property
    def platform_tag(self) -> str:
        """The manylinux level of the base, e.g. ``manylinux_2_35_x86_64``."""
        major, minor = self.glibc.split(".", 1)
        return f"manylinux_{major}_{minor}_x86_64"

    def provided_version(self, name: str) -> str | None:
        """The base's version of ``name`` ("" when present but unversioned), None when absent."""
        key = canonicalize_name(name)
        if key in self.packages:
            return self.packages[key]
        if any(key.startswith(prefix) for prefix in self.package_prefixes):
            return ""
        return None

    def satisfies(self, requirement: Requirement) -> bool:
        """True when the base's copy of the package meets ``requirement`` (so it need not be vendored)."""
        version = self.provided_version(requirement.name)
        if version is None:
            return False
        if not str(requirement.specifier) or not version:
            return True  # present in an unknown version: trust the base, as the generated Dockerfile does
        try:
            return requirement.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            return False

    def for_python(self, version: str) -> BaseImage:
        """The same image, running another of its interpreters (its packages belong to the default one)."""
        if version == self.python:
            return self
        if version not in self.pythons:
            raise ImageError(
                f"{self.image} has no Python {version} (it has {', '.join(self.pythons or (self.python,))}).",
                hint="Pick another base with base=..., or run the notebook on one of those Pythons.",
            )
        return replace(self, python=version, python_exe=f"python{version}", packages={}, package_prefixes=())


def _normalised(packages: Mapping[str, str]) -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in packages.items()}


def _runpod_base(tag: str, glibc: str, os_name: str, cuda: str | None = None) -> BaseImage:
    return BaseImage(
        image=f"runpod/base:{tag}", python="3.12", python_exe="python3.12", glibc=glibc, cuda=cuda,
        os=os_name, packages=_normalised(_RUNPOD_BASE_PACKAGES), pythons=_RUNPOD_BASE_PYTHONS,
    )


def _runpod_pytorch(tag: str, python: str, torch: str, vision: str, audio: str, cuda: str, glibc: str,
                    os_name: str, pythons: tuple[str, ...] = (), extra: Mapping[str, str] | None = None) -> BaseImage:
    packages = {"torch": torch, "torchvision": vision, "torchaudio": audio, "pip": ""}
    packages.update(extra or {})
    return BaseImage(
        image=f"runpod/pytorch:{tag}", python=python, python_exe=f"python{python}", glibc=glibc, cuda=cuda,
        os=os_name, packages=_normalised(packages), package_prefixes=_TORCH_COMPANIONS, pythons=pythons,
    )


KNOWN_BASES: tuple[BaseImage, ...] = (
    # 0.6.x: nvidia/cuda:12.2.0-devel-ubuntu22.04, CPython 3.9-3.13, Jupyter installed for python3.10.
    BaseImage(image="runpod/base:0.6.3-cuda12.2.0", python="3.10", python_exe="python3.10", glibc="2.35",
              cuda="12.2.0", os="ubuntu22.04", pythons=_RUNPOD_BASE_PYTHONS,
              packages=_normalised({"jupyterlab": "", "ipywidgets": "", "jupyter-archive": "", "notebook": "6.5.5",
                                    "pip": "", "virtualenv": ""})),
    _runpod_base("1.0.7-ubuntu2204", "2.35", "ubuntu22.04"),
    _runpod_base("1.0.7-ubuntu2404", "2.39", "ubuntu24.04"),
    _runpod_base("1.0.7-cuda1281-ubuntu2204", "2.35", "ubuntu22.04", cuda="12.8.1"),
    _runpod_base("1.0.7-cuda1290-ubuntu2404", "2.39", "ubuntu24.04", cuda="12.9.0"),
    _runpod_pytorch("1.0.7-cu1281-torch280-ubuntu2204", "3.12", "2.8.0", "0.23.0", "2.8.0", "12.8.1", "2.35",
                    "ubuntu22.04", _RUNPOD_BASE_PYTHONS, _RUNPOD_BASE_PACKAGES),
    _runpod_pytorch("2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04", "3.11", "2.4.0", "0.19.0", "2.4.0", "12.4.1",
                    "2.35", "ubuntu22.04"),
    _runpod_pytorch("2.2.0-py3.10-cuda12.1.1-devel-ubuntu22.04", "3.10", "2.2.0", "0.17.0", "2.2.0", "12.1.1",
                    "2.35", "ubuntu22.04"),
    _runpod_pytorch("2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04", "3.10", "2.1.0", "0.16.0", "2.1.0", "11.8.0",
                    "2.35", "ubuntu22.04"),
)


def known_base(image: str) -> BaseImage | None:
    """The table entry for an image name (any spelling of the same registry/repo:tag)."""
    try:
        wanted = ImageRef.parse(image)
    except ImageError:
        return None
    for base in KNOWN_BASES:
        ref = base.ref
        if (ref.registry, ref.repository, ref.tag) == (wanted.registry, wanted.repository, wanted.tag):
            return base
    return None


def kernel_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def pick_base(python: str | None = None, *, torch: bool = False, cuda: bool = True) -> BaseImage:
    """A known base for ``python`` (default: this kernel's): a pytorch image when ``torch`` is
    wanted, else ``runpod/base`` (with CUDA unless ``cuda=False``: serverless workers are GPU
    workers). Prefers an image whose default Python is the wanted one, so its packages count."""
    python = python or kernel_python()
    candidates = [b for b in KNOWN_BASES if b.image.startswith("runpod/pytorch:" if torch else "runpod/base:1.")]
    if not torch:
        candidates = [b for b in candidates if bool(b.cuda) == cuda]
    exact = [b for b in candidates if b.python == python]
    if exact:
        return exact[0]
    usable = [b for b in candidates if python in b.pythons]
    if usable:
        return usable[0].for_python(python)
    known = sorted({p for b in candidates for p in (b.python, *b.pythons)}, key=lambda v: tuple(map(int, v.split("."))))
    raise ImageError(
        f"No known RunPod base image has Python {python}{' with torch' if torch else ''}.",
        hint=f"Known bases offer Python {', '.join(known)}. Pass base='image:tag' (and python=) to use another image.",
    )


def from_project_manifest(manifest: Mapping[str, object]) -> BaseImage | None:
    """The base the packaging step chose (``runpod-jupyter.json``): image, ``python3.X``, and the
    distributions it says the base provides (versions unknown)."""
    image, python = manifest.get("base_image"), manifest.get("python")
    if not isinstance(image, str) or not image or not isinstance(python, str) or not python:
        return None
    exe = manifest.get("python_executable")
    provides = manifest.get("base_provides") or []
    names = provides if isinstance(provides, Iterable) else ()
    known = known_base(image)
    if known is not None and (python == known.python or python in known.pythons):
        chosen = known.for_python(python)
    else:
        chosen = BaseImage(image=image, python=python, glibc=known.glibc if known else DEFAULT_GLIBC)
    extra: dict[str, str] = {canonicalize_name(name): "" for name in names if isinstance(name, str)}
    return replace(chosen, python_exe=exe if isinstance(exe, str) and exe else f"python{python}",
                   packages={**extra, **chosen.packages})


def choose_base(base: str | BaseImage | None, python: str | None = None, *, python_exe: str | None = None,
                glibc: str | None = None) -> BaseImage:
    """What the builder should use: a given :class:`BaseImage`, a table entry, or an unknown image
    described by the arguments (its Python defaults to the kernel's)."""
    if isinstance(base, BaseImage):
        chosen = base
    elif base is None:
        chosen = pick_base(python)
    else:
        found = known_base(base)
        if found is not None:
            chosen = found.for_python(python) if python and python != found.python else found
        else:
            version = python or kernel_python()
            chosen = BaseImage(image=base, python=version, python_exe=python_exe or f"python{version}",
                               glibc=glibc or DEFAULT_GLIBC, note="not in the table of known bases")
            return chosen
    if python_exe or glibc:
        chosen = replace(chosen, python_exe=python_exe or chosen.python_exe, glibc=glibc or chosen.glibc)
    return chosen
