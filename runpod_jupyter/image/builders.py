"""Container-engine builders (``docker``, ``podman``, ``buildah``) and the one entry point,
:func:`build_and_push`, that picks a builder and returns the same :class:`BuildResult` for all.

The engines build the project's generated ``Dockerfile`` (or, if there is none, an equivalent one
written here: same ``/app``, same vendored site-packages dir, same ``Cmd``) and push with a
temporary auth file, so a password never appears on a command line or in the user's docker
config. They are the way out when the daemonless builder cannot help: packages that must be
compiled inside Linux.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .._version import __version__
from ..errors import DependencyError, ImageError, NoBuilderError, RegistryAuthError
from ..secret import Secret
from .auth import Credentials, credentials_from, find_credentials
from .bases import BaseImage, choose_base, from_project_manifest
from .daemonless import push_daemonless
from .deps import VENDOR_DIR, IndexOptions
from .manifest import LABEL_PREFIX
from .project import APP_DIR, WorkerProject, load_project
from .reference import DOCKER_HUB, ImageRef, is_loopback
from .result import BuildResult, Progress, ProgressCallback

ENGINES = ("docker", "podman", "buildah")
BUILDERS = ("daemonless", *ENGINES)
ENGINE_TIMEOUT_S = 3600.0
_PROBE_TIMEOUT_S = 20.0
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_AUTH_FAILURE = re.compile(r"unauthorized|authentication required|denied|401|403", re.IGNORECASE)


@dataclass(frozen=True)
class BuilderStatus:
    """Whether a builder can run here, and why not."""

    name: str
    available: bool
    reason: str


def builder_status(name: str) -> BuilderStatus:
    """Probe one builder: is the CLI on PATH, and (docker) does a daemon answer?"""
    if name == "daemonless":
        return BuilderStatus(name, True, "built in (needs only registry access)")
    if name not in ENGINES:
        return BuilderStatus(name, False, f"unknown builder (choose from {', '.join(BUILDERS)})")
    exe = shutil.which(name)
    if not exe:
        return BuilderStatus(name, False, f"`{name}` is not on PATH")
    probe = [exe, "version", "--format", "{{.Server.Version}}"] if name == "docker" else [exe, "--version"]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return BuilderStatus(name, False, f"`{name}` did not answer ({type(exc).__name__})")
    if proc.returncode != 0:
        what = "no Docker daemon answers" if name == "docker" else f"`{name} --version` failed"
        return BuilderStatus(name, False, what)
    return BuilderStatus(name, True, exe)


def available_builders() -> list[BuilderStatus]:
    """Every builder with its status, daemonless first."""
    return [builder_status(name) for name in BUILDERS]


def _options_text(statuses: Sequence[BuilderStatus]) -> str:
    return "; ".join(f"{s.name}: {'available' if s.available else s.reason}" for s in statuses)


def dockerfile_for(base: BaseImage, *, requirements: bool) -> str:
    """A Dockerfile that builds what the daemonless builder builds (for projects without one)."""
    lines = [f"FROM {base.image}", f"WORKDIR {APP_DIR}"]
    if requirements:
        lines += [
            f"COPY requirements.txt {APP_DIR}/requirements.txt",
            f"RUN {base.python_exe} -m pip install --no-cache-dir --no-compile --target {VENDOR_DIR} "
            f"-r {APP_DIR}/requirements.txt",
            f"ENV PYTHONPATH={VENDOR_DIR}",
        ]
    lines += [
        "ENV PYTHONUNBUFFERED=1",
        f"COPY . {APP_DIR}",
        f'CMD ["{base.python_exe}", "-u", "{APP_DIR}/handler.py"]',
    ]
    return "\n".join(lines) + "\n"


def _declares_base_arg(dockerfile: Path) -> bool:
    try:
        text = dockerfile.read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"^\s*ARG\s+BASE_IMAGE\b", text, re.MULTILINE) is not None


def _auth_file(directory: Path, registry: str, credentials: Credentials, docker_layout: bool) -> Path:
    """An auth file readable only by us, in the format the engines read (``auths``)."""
    secret = credentials.password.reveal() if credentials.password else ""
    key = "https://index.docker.io/v1/" if registry == DOCKER_HUB else registry
    encoded = base64.b64encode(f"{credentials.username}:{secret}".encode()).decode()
    path = directory / ("config.json" if docker_layout else "auth.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"auths": {key: {"auth": encoded}}}, handle)
    return path


def _run_engine(cmd: list[str], phase: str, progress: ProgressCallback | None, env: dict[str, str],
                timeout: float, cwd: Path) -> str:
    """Run one engine command, passing its output lines on as progress; return the whole output."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
                            errors="replace")
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if progress:
                progress(Progress(phase, len(lines), 0, line.rstrip()[-200:]))
            if time.monotonic() > deadline:
                break
        remaining = max(1.0, deadline - time.monotonic())
        proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
            raise ImageError(f"`{Path(cmd[0]).name} {phase}` ran longer than {timeout:.0f} s and was stopped.",
                             hint="Check the engine's output above; large bases take a long first pull.")
    output = "\n".join(lines)
    if proc.returncode != 0:
        tail = "\n".join(lines[-15:])
        engine = Path(cmd[0]).name
        if phase == "push" and _AUTH_FAILURE.search(tail):
            raise RegistryAuthError(f"`{engine} push` was refused by the registry:\n{tail}",
                                    hint="Check the user name, the password or token, and its push permission.")
        raise ImageError(f"`{engine} {phase}` failed (exit {proc.returncode}):\n{tail}",
                         hint="The engine's last lines above say which step failed.")
    return output


def push_with_engine(
    engine: str,
    project: WorkerProject,
    base: BaseImage,
    target: ImageRef,
    *,
    credentials: Credentials | None = None,
    progress: ProgressCallback | None = None,
    plain_http: bool | None = None,
    engine_args: Sequence[str] = (),
    timeout: float = ENGINE_TIMEOUT_S,
) -> BuildResult:
    """Build the project's Dockerfile with ``engine`` and push it; returns the pinned image."""
    status = builder_status(engine)
    if not status.available:
        raise NoBuilderError(
            f"The {engine} builder is not available here: {status.reason}.",
            hint=f"Options: {_options_text(available_builders())}.",
        )
    exe = status.reason
    started = time.monotonic()
    timings: dict[str, float] = {}
    tag = target.tag or "latest"
    tagged = f"{target.name}:{tag}"
    insecure = is_loopback(target.registry) if plain_http is None else plain_http
    if credentials is None:
        credentials = find_credentials(target.registry, target=True)
    env = dict(os.environ)
    if env.get("DOCKER_CONFIG") and not (Path(env["DOCKER_CONFIG"]) / "config.json").is_file():
        env.pop("DOCKER_CONFIG")  # podman/buildah refuse to push when it names a dir without config.json
    with tempfile.TemporaryDirectory(prefix="rpj-engine-") as tmp:
        work = Path(tmp)
        dockerfile = project.dockerfile
        if dockerfile is None:
            dockerfile = work / "Dockerfile"
            dockerfile.write_text(dockerfile_for(base, requirements=bool(project.requirements.strip())))
        build_args = ["--build-arg", f"BASE_IMAGE={base.image}"] if _declares_base_arg(dockerfile) else []
        verb = "bud" if engine == "buildah" else "build"
        labels = ["--label", f"{LABEL_PREFIX}.source-hash={project.source_hash}",
                  "--label", f"{LABEL_PREFIX}.version={__version__}"]
        build = [exe, *engine_args, verb, "--platform", "linux/amd64", "-f", str(dockerfile), "-t", tagged,
                 *build_args, *labels]
        if engine != "docker" and insecure:
            build.append("--tls-verify=false")
        build.append(str(project.root))
        auth: list[str] = []
        if credentials is not None:
            if engine == "docker":
                _auth_file(work, target.registry, credentials, docker_layout=True)
                env["DOCKER_CONFIG"] = str(work)
            else:
                auth = ["--authfile", str(_auth_file(work, target.registry, credentials, docker_layout=False))]
        if progress:
            progress(Progress("build", 0, 0, f"{engine} {verb} {tagged}"))
        t0 = time.monotonic()
        _run_engine(build, "build", progress, env, timeout, project.root)
        timings["build"] = time.monotonic() - t0
        t0 = time.monotonic()
        if engine == "docker":
            output = _run_engine([exe, "push", tagged], "push", progress, env, timeout, project.root)
            found = _DIGEST.findall(output)
            digest = found[-1] if found else ""
        else:
            digest_file = work / "digest"
            push = [exe, *engine_args, "push", "--digestfile", str(digest_file), *auth]
            if insecure:
                push.append("--tls-verify=false")
            push += [tagged, f"docker://{tagged}"]
            _run_engine(push, "push", progress, env, timeout, project.root)
            digest = digest_file.read_text().strip() if digest_file.is_file() else ""
        timings["push"] = time.monotonic() - t0
    if not _DIGEST.fullmatch(digest):
        raise ImageError(f"`{engine} push` finished but did not report the image digest.",
                         hint="Push again, or look the digest up in the registry.")
    timings["total"] = time.monotonic() - started
    result = BuildResult(
        image=target.with_tag(None).with_digest(digest).pinned(),
        digest=digest,
        tagged=tagged,
        builder=engine,
        base=base.image,
        timings=timings,
        source_hash=project.source_hash,
    )
    if progress:
        progress(Progress("done", 1, 1, result.image))
    return result


def build_and_push(
    project_dir: str | Path,
    base: str | BaseImage | None,
    target: str,
    *,
    builder: str = "auto",
    python: str | None = None,
    username: str | None = None,
    password: str | Secret | None = None,
    progress: ProgressCallback | None = None,
    cache_dir: str | Path | None = None,
    install_tool: str = "auto",
    index: IndexOptions | None = None,
    plain_http: bool | None = None,
    verify: bool | str = True,
    chunk_size: int | None = None,
    labels: dict[str, str] | None = None,
    engine_args: Sequence[str] = (),
    transport: httpx.BaseTransport | None = None,
) -> BuildResult:
    """Build the worker image for ``project_dir`` on ``base`` and push it to ``target``.

    ``base``: an image name, a :class:`BaseImage`, or None for the base named in the project's
    ``runpod-jupyter.json`` (written by the packaging step), else the known RunPod base that
    matches ``python`` (default: this kernel's). ``builder``: ``auto`` (daemonless, falling back to an engine
    when a requirement must be compiled), ``daemonless``, ``docker``, ``podman`` or ``buildah``.
    Credentials: ``username``/``password``, else the environment, else ``~/.docker/config.json``.
    Returns a :class:`BuildResult` whose ``image`` is ``registry/repo@sha256:…``.
    """
    project = load_project(project_dir)
    from_manifest = from_project_manifest(project.manifest) if base is None and python is None else None
    chosen_base = from_manifest or choose_base(base, python)
    target_ref = ImageRef.parse(target)
    if target_ref.digest:
        raise ImageError(f"The target {target!r} names a digest; a push needs a tag.",
                         hint="Write the target as 'registry/repo:tag'.")
    credentials = credentials_from(username, password)
    if builder not in ("auto", *BUILDERS):
        raise NoBuilderError(f"Unknown builder {builder!r}.", hint=f"Choose one of: auto, {', '.join(BUILDERS)}.")
    daemonless_args: dict[str, Any] = dict(
        credentials=credentials, progress=progress, cache_dir=Path(cache_dir) if cache_dir else None,
        tool=install_tool, index=index, plain_http=plain_http, verify=verify, transport=transport,
        chunk_size=chunk_size, labels=labels,
    )
    if builder == "daemonless":
        return push_daemonless(project, chosen_base, target_ref, **daemonless_args)
    if builder in ENGINES:
        return push_with_engine(builder, project, chosen_base, target_ref, credentials=credentials, progress=progress,
                                plain_http=plain_http, engine_args=engine_args)
    try:
        return push_daemonless(project, chosen_base, target_ref, **daemonless_args)
    except DependencyError as err:
        statuses = available_builders()
        for status in statuses:
            if status.name in ENGINES and status.available:
                if progress:
                    progress(Progress("build", 0, 0, f"{err.message} Building with {status.name} instead."))
                return push_with_engine(status.name, project, chosen_base, target_ref, credentials=credentials,
                                        progress=progress, plain_http=plain_http, engine_args=engine_args)
        raise NoBuilderError(
            f"{err.message}\nNo container engine is available to build it instead.",
            hint=f"{err.hint or ''} Builders here: {_options_text(statuses)}.".strip(),
        ) from err
