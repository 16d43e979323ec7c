"""The dependencies layer: ``requirements.txt`` installed for the *image's* Python and platform
(not the notebook's), as one reproducible layer, cached on disk.

Installing for another machine is ``--target`` with ``--only-binary :all:`` and the base's
manylinux level (uv: ``--python-platform x86_64-manylinux_2_35``; pip: every ``manylinux_2_X`` tag
from the base's glibc down to 2_17 plus the legacy aliases, because pip does not expand them and
otherwise silently picks old wheels or none). Packages the base already has are left out (uv:
``--overrides`` with a never-true marker, which also drops them as dependencies of others; pip: a
``--report`` dry run, then ``--no-deps`` installs of the rest), so a vendored copy never shadows the
base's CUDA build. Source-only packages are allowed only when they build into a pure-Python wheel;
anything compiled on this machine would not run in the image and is refused with a way out.

The layer is keyed by everything that decides its bytes (requirements, base digest, Python,
platform, tool and its version, index options) and kept under ``data_dir()/cache/build/deps``,
so after the first build a handler edit costs nothing here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import DependencyError
from .bases import BaseImage
from .layers import DEFAULT_LEVEL, Layer, tree, write_layer

#: Where vendored packages live in the image (on ``PYTHONPATH``).
VENDOR_DIR = "/opt/runpod_jupyter/site-packages"
CACHE_FORMAT = 1
CACHE_KEEP = 16
INSTALL_TIMEOUT_S = 900.0
_UV_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
_LOCAL_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "-e", "--editable")


@dataclass(frozen=True)
class IndexOptions:
    """Where packages come from (passed identically to uv and pip)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    def args(self) -> list[str]:
        out: list[str] = []
        if self.index_url:
            out += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            out += ["--extra-index-url", url]
        for link in self.find_links:
            out += ["--find-links", str(link)]
        if self.no_index:
            out.append("--no-index")
        return out

    def fingerprint(self) -> list[str]:
        """Index options plus the listing of local find-links dirs (new files change the result)."""
        out = self.args()
        for link in self.find_links:
            path = Path(link)
            if path.is_dir():
                out += sorted(f"{p.name}:{p.stat().st_size}" for p in path.iterdir())
        return out


@dataclass(frozen=True)
class DepsLayer:
    """The result: the layer (None when nothing needs vendoring) and what went into it."""

    layer: Layer | None
    cached: bool = False
    tool: str = ""
    key: str = ""
    installed: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass
class _Plan:
    lines: list[str]
    direct: list[Requirement]
    excluded: list[str] = field(default_factory=list)


# -- tools ----------------------------------------------------------------------------------------
def find_uv() -> str | None:
    """uv on PATH, next to this Python, or from the ``uv`` wheel."""
    found = shutil.which("uv")
    if found:
        return found
    sibling = Path(sys.executable).with_name("uv")
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except Exception:  # noqa: BLE001 - the uv wheel is optional; any failure means "no uv"
        return None


def _version_of(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""


def choose_tool(tool: str = "auto") -> tuple[str, list[str], str]:
    """``(name, command prefix, version string)`` for ``uv``, ``pip`` or ``auto`` (uv if present)."""
    if tool in ("auto", "uv"):
        uv = find_uv()
        if uv:
            return "uv", [uv, "pip", "install"], _version_of([uv, "--version"])
        if tool == "uv":
            raise DependencyError(
                "uv was asked for but is not installed.",
                hint="pip install uv (or use tool='pip').",
            )
    if tool in ("auto", "pip"):
        version = _version_of([sys.executable, "-m", "pip", "--version"])
        if version:
            return "pip", [sys.executable, "-m", "pip", "install"], version.split(" from ")[0]
        raise DependencyError(
            "Neither uv nor pip is available to install the requirements.",
            hint="pip install uv",
        )
    raise DependencyError(f"Unknown install tool {tool!r}.", hint="Use 'uv', 'pip' or 'auto'.")


def pip_platforms(glibc: str) -> list[str]:
    """Every manylinux tag a base with this glibc runs, newest first, with the legacy aliases."""
    minor = int(glibc.split(".")[1])
    tags = [f"manylinux_2_{m}_x86_64" for m in range(minor, 16, -1)]
    return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def uv_platform(glibc: str) -> str:
    """uv knows a fixed list of manylinux levels; take the highest the base can run."""
    minor = int(glibc.split(".")[1])
    usable = [m for m in _UV_MANYLINUX if m <= minor] or [17]
    return f"x86_64-manylinux_2_{usable[-1]}"


# -- requirements ---------------------------------------------------------------------------------
def _logical_lines(text: str) -> list[str]:
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        stripped = re.sub(r"(^|\s)#.*$", "", line).strip()
        if stripped:
            out.append(stripped)
    if pending.strip():
        out.append(pending.strip())
    return out


def plan(requirements: str, base: BaseImage) -> _Plan:
    """Which requirement lines to install and which packages the base already provides."""
    lines = _logical_lines(requirements)
    kept: list[str] = []
    direct: list[Requirement] = []
    excluded: list[str] = []
    direct_names: set[str] = set()
    for line in lines:
        if line.startswith(_LOCAL_OPTIONS) or line.startswith((".", "/", "file:")):
            raise DependencyError(
                f"requirements.txt line {line!r} points at files on this machine, which the image build cannot see.",
                hint="Inline the requirements (name==version lines); build local packages into wheels and pass "
                     "their directory as find_links.",
            )
        if line.startswith("-"):
            kept.append(line)
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            kept.append(line)  # URLs, paths: the tool will say what is wrong with them
            continue
        direct_names.add(canonicalize_name(req.name))
        if base.satisfies(req):
            excluded.append(canonicalize_name(req.name))
            continue
        kept.append(line)
        direct.append(req)
    for name in base.packages:
        if name not in direct_names:
            excluded.append(name)
    return _Plan(lines=kept, direct=direct, excluded=sorted(set(excluded)))


# -- cache ----------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    from ..config import data_dir

    return data_dir() / "cache" / "build"


def cache_key(requirements: str, base: BaseImage, base_digest: str, tool: str, tool_version: str,
              index: IndexOptions, level: int) -> str:
    material = {
        "format": CACHE_FORMAT,
        "requirements": _logical_lines(requirements),
        "base_digest": base_digest,
        "python": base.python,
        "platform": base.platform_tag,
        "provided": sorted(f"{k}=={v}" for k, v in base.packages.items()) + list(base.package_prefixes),
        "tool": f"{tool} {tool_version}",
        "index": index.fingerprint(),
        "level": level,
        "vendor_dir": VENDOR_DIR,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _load_cached(entry: Path) -> tuple[Layer, dict] | None:
    meta_path, layer_path = entry / "meta.json", entry / "layer.tar.gz"
    try:
        meta = json.loads(meta_path.read_text())
        if layer_path.stat().st_size != meta["size"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    os.utime(meta_path)
    return Layer(path=layer_path, digest=meta["digest"], diff_id=meta["diff_id"], size=meta["size"]), meta


def _prune(root: Path, keep: int = CACHE_KEEP) -> None:
    entries = [p for p in root.iterdir() if p.is_dir() and (p / "meta.json").exists()] if root.is_dir() else []
    entries.sort(key=lambda p: (p / "meta.json").stat().st_mtime, reverse=True)
    for stale in entries[keep:]:
        shutil.rmtree(stale, ignore_errors=True)


# -- install --------------------------------------------------------------------------------------
def _run(cmd: list[str], timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise DependencyError(
            f"Installing the requirements took longer than {timeout:.0f} s and was stopped.",
            hint="Check the package index is reachable; large packages may need a base that already has them.",
        ) from None


_UV_NO_WHEEL = re.compile(r"Because ([A-Za-z0-9._-]+)(?:==([^\s]+))? has no usable wheels")
_UV_NO_PLATFORM = re.compile(r"Because ([A-Za-z0-9._-]+)(?:==([^\s]+))? has no wheels with a matching platform tag")
_PIP_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement ([A-Za-z0-9._-]+)")


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _install_uv(prefix: list[str], reqfile: Path, target: Path, base: BaseImage, excluded: list[str],
                index: IndexOptions, env: dict[str, str], timeout: float, work: Path) -> None:
    cmd = prefix + [
        "--target", str(target), "--python", sys.executable, "--python-version", base.python,
        "--python-platform", uv_platform(base.glibc), "--only-binary", ":all:", "--link-mode", "copy",
        "--no-progress", "--color", "never", "-r", str(reqfile), *index.args(),
    ]
    if excluded:
        overrides = work / "overrides.txt"
        overrides.write_text("".join(f'{name} ; sys_platform == "never"\n' for name in excluded))
        cmd += ["--overrides", str(overrides)]
    result = _run(cmd, timeout, env)
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    sources = _UV_NO_WHEEL.findall(output)
    if not sources:
        _explain_failure(output, base)
    # Source-only packages: let uv build exactly those; the wheel check below refuses native ones.
    retry = list(cmd)
    for name, _version in sources:
        retry += ["--no-binary", name]
    shutil.rmtree(target, ignore_errors=True)
    result = _run(retry, timeout, env)
    if result.returncode != 0:
        _explain_failure(result.stdout + result.stderr, base)


def _install_pip(prefix: list[str], reqfile: Path, target: Path, base: BaseImage, excluded: list[str],
                 index: IndexOptions, env: dict[str, str], timeout: float, work: Path) -> None:
    common = ["--python-version", base.python, "--implementation", "cp", "--only-binary=:all:",
              "--no-compile", "--no-warn-conflicts", "--disable-pip-version-check", "--no-input",
              *[arg for tag in pip_platforms(base.glibc) for arg in ("--platform", tag)], *index.args()]
    wheelhouse = work / "wheelhouse"
    links: list[str] = []
    for _attempt in range(2):
        report = work / "report.json"
        dry = prefix + ["--dry-run", "--quiet", "--ignore-installed", "--report", str(report), "--target",
                        str(work / "dry"), *common, *links, "-r", str(reqfile)]
        result = _run(dry, timeout, env)
        if result.returncode == 0:
            break
        output = result.stdout + result.stderr
        missing = _PIP_NO_VERSION.findall(output)
        if not missing or links:
            _explain_failure(output, base)
        for name in missing:
            _pip_build_pure(name, wheelhouse, index, env, timeout, base)
        links = ["--find-links", str(wheelhouse)]
    else:  # pragma: no cover - the loop always breaks or raises
        raise AssertionError
    resolved = json.loads(report.read_text()).get("install", [])
    direct = _direct_names(reqfile)
    wanted = []
    for item in resolved:
        meta = item.get("metadata", {})
        name = canonicalize_name(meta.get("name", ""))
        if name in excluded or (base.provided_version(name) is not None and name not in direct):
            continue
        wanted.append(f"{meta.get('name')}=={meta.get('version')}")
    if not wanted:
        target.mkdir(parents=True, exist_ok=True)
        return
    cmd = prefix + ["--target", str(target), "--no-deps", *common, *links, *wanted]
    result = _run(cmd, timeout, env)
    if result.returncode != 0:
        _explain_failure(result.stdout + result.stderr, base)


def _direct_names(reqfile: Path) -> set[str]:
    names: set[str] = set()
    for line in _logical_lines(reqfile.read_text()):
        try:
            names.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            continue
    return names


def _pip_build_pure(name: str, wheelhouse: Path, index: IndexOptions, env: dict[str, str], timeout: float,
                    base: BaseImage) -> None:
    """Build a source-only package on this machine; keep it only if the wheel is pure Python."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check",
           *index.args(), "-w", str(wheelhouse), name]
    result = _run(cmd, timeout, env)
    if result.returncode != 0:
        _explain_failure(result.stdout + result.stderr, base)
    for wheel in wheelhouse.glob("*.whl"):
        same = canonicalize_name(wheel.name.split("-")[0]) == canonicalize_name(name)
        if same and not wheel.name.endswith("-none-any.whl"):
            raise _native_error(name, base)


def _native_error(name: str, base: BaseImage) -> DependencyError:
    return DependencyError(
        f"{name} is published only as source code with compiled parts; it cannot be installed for the "
        f"image with --only-binary (building it here would produce a binary for this machine, not for "
        f"{base.platform_tag} with Python {base.python}).",
        hint=(
            f"Pin a version of {name} that ships manylinux wheels, choose a base image that already has it, "
            "or build with builder='docker', 'podman' or 'buildah' (the Dockerfile compiles it inside the image)."
        ),
    )


def _explain_failure(output: str, base: BaseImage) -> None:
    platform = _UV_NO_PLATFORM.search(output)
    if platform:
        name = platform.group(1)
        raise DependencyError(
            f"{name} has no wheel for {base.platform_tag} and Python {base.python}.",
            hint=(f"Pin an older {name} whose wheels support glibc {base.glibc}, pick a newer base image, or "
                  "build with builder='docker' / 'podman' / 'buildah'."),
            output=output,
        )
    raise DependencyError(
        f"Could not install the requirements for Python {base.python} on {base.platform_tag}:\n{_tail(output)}",
        hint="Check the package names and versions (only wheels can be used), and that the package index is reachable.",
        output=output,
    )


#: Files installers leave in ``*.dist-info`` that record *when*, not *what* (uv: cache timestamps of
#: packages built from source); they would make two identical installs differ.
_VOLATILE_METADATA = ("uv_cache.json",)


def _normalise(target: Path) -> None:
    """Drop volatile metadata files (and their RECORD lines), and console scripts, which carry this
    machine's interpreter path in their shebang."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    for dist in target.glob("*.dist-info"):
        dropped = [name for name in _VOLATILE_METADATA if (dist / name).is_file()]
        for name in dropped:
            (dist / name).unlink()
        record = dist / "RECORD"
        if dropped and record.is_file():
            lines = record.read_text().splitlines()
            kept = [line for line in lines if line.split(",", 1)[0].rsplit("/", 1)[-1] not in dropped]
            record.write_text("\n".join(kept) + "\n")


def _check_wheels(target: Path, base: BaseImage) -> list[str]:
    """Every installed distribution must run on the base: pure, or manylinux. Returns name==version."""
    installed = []
    for dist in sorted(target.glob("*.dist-info")):
        stem = dist.name[: -len(".dist-info")]
        name, _, version = stem.partition("-")
        installed.append(f"{name}=={version}")
        wheel = dist / "WHEEL"
        if not wheel.is_file():
            continue
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text(errors="replace").splitlines()
                if line.lower().startswith("tag:")]
        platforms = {t.rsplit("-", 1)[-1] for t in tags}
        ok = any(p == "any" or all(part.startswith("manylinux") for part in p.split(".")) for p in platforms)
        if platforms and not ok:
            raise _native_error(name.replace("_", "-"), base)
    return installed


def build_deps_layer(
    requirements: str,
    base: BaseImage,
    base_digest: str,
    *,
    cache_dir: Path | None = None,
    tool: str = "auto",
    index: IndexOptions | None = None,
    level: int = DEFAULT_LEVEL,
    timeout: float = INSTALL_TIMEOUT_S,
    on_status: Callable[[str], None] | None = None,
) -> DepsLayer:
    """Install ``requirements`` (the text of requirements.txt) for ``base`` into one layer at
    :data:`VENDOR_DIR`; reuse the cached layer when nothing that matters changed."""
    started = time.monotonic()
    index = index or IndexOptions()
    chosen = plan(requirements, base)
    if not any(not line.startswith("-") for line in chosen.lines):
        return DepsLayer(layer=None, excluded=tuple(chosen.excluded))
    name, prefix, version = choose_tool(tool)
    filtered = "\n".join(chosen.lines) + "\n"
    key = cache_key(filtered, base, base_digest, name, version, index, level)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    root = root / "deps"
    entry = root / key[:32]
    hit = _load_cached(entry)
    if hit:
        layer, meta = hit
        return DepsLayer(layer=layer, cached=True, tool=name, key=key, installed=tuple(meta.get("installed", ())),
                         excluded=tuple(chosen.excluded), seconds=time.monotonic() - started)
    if on_status:
        on_status(f"installing requirements with {name} for Python {base.python} ({base.platform_tag})")
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(dir=root, prefix=".work-") as tmp:
        work = Path(tmp)
        reqfile = work / "requirements.txt"
        reqfile.write_text(filtered)
        target = work / "site-packages"
        installer = _install_uv if name == "uv" else _install_pip
        installer(prefix, reqfile, target, base, chosen.excluded, index, env, timeout, work)
        _normalise(target)
        installed = _check_wheels(target, base)
        if on_status:
            on_status(f"packing {len(installed)} packages into the dependencies layer")
        staged = work / "layer.tar.gz"
        layer = write_layer(tree(target, VENDOR_DIR), staged, level=level)
        entry.mkdir(parents=True, exist_ok=True)
        final = entry / "layer.tar.gz"
        os.replace(staged, final)
        meta = {"digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size, "tool": f"{name} {version}",
                "python": base.python, "platform": base.platform_tag, "base_digest": base_digest,
                "installed": installed, "excluded": chosen.excluded}
        (entry / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    _prune(root)
    return DepsLayer(layer=Layer(path=final, digest=layer.digest, diff_id=layer.diff_id, size=layer.size),
                     cached=False, tool=name, key=key, installed=tuple(installed),
                     excluded=tuple(chosen.excluded), seconds=time.monotonic() - started)


def requirement_names(requirements: str) -> Sequence[str]:
    """Normalised names of the requirements (for reports)."""
    names = []
    for line in _logical_lines(requirements):
        try:
            names.append(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            continue
    return names
