"""Deploy: package → (cloud: build and push) → create or update the endpoint (REST v2) → wait for a worker.

A deploy is declarative: running the same cell again with a changed handler or changed options
updates the endpoint of that name (a new release; workers roll), never a duplicate. The endpoint
carries its image and settings itself, so a failed deploy can be undone exactly: an endpoint it
created is deleted, an endpoint it updated is PATCHed back to its previous values (a release of
its own, as RunPod keeps releases read-only). The message says what was undone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .api import Client, EndpointSpec, Health
from .api.client import read_stock
from .api.models import GPU_POOLS, parse_gpu_list
from .config import Backend, Settings
from .connect import connect
from .deploy_options import DEFAULT_GPUS, SCALERS, DeployOptions  # noqa: F401 (DEFAULT_GPUS: re-exported)
from .endpoints import find_endpoint, remove_endpoint, retire_templates
from .errors import DeployError, RunpodError
from .findings import Finding, has_errors, sort_findings
from .names import check_endpoint_name

if TYPE_CHECKING:  # packaging loads on the first deploy, not with the magics
    from .packaging import WorkerProject

Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class DryRun:
    """What ``--dry-run`` produces: the project on disk and the findings, nothing deployed."""

    project: WorkerProject
    findings: tuple[Finding, ...]

    SHOWN = ("handler.py", "requirements.txt", "Dockerfile")

    def _files(self) -> list[tuple[str, str]]:
        return [(n, (self.project.path / n).read_text()) for n in self.SHOWN if (self.project.path / n).exists()]

    def __repr__(self) -> str:
        lines = [self.project.summary()]
        if self.findings:
            lines.append("preflight:")
            lines.extend("  " + str(f).replace("\n", "\n  ") for f in self.findings)
        for name, text in self._files():
            lines += ["", f"--- {name} ---", text.rstrip()]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_markdown_(self) -> str:
        parts = [f"**{self.project.name}** → `{self.project.path}`", "", "```text", self.project.summary()]
        parts += [str(f) for f in self.findings]
        parts.append("```")
        for name, text in self._files():
            lang = "python" if name.endswith(".py") else ("dockerfile" if name == "Dockerfile" else "text")
            parts += ["", f"`{name}`", f"```{lang}", text.rstrip(), "```"]
        return "\n".join(parts)


def validate_options(options: DeployOptions) -> None:
    """User mistakes in the options, found before anything is written or sent."""
    check_endpoint_name(options.name)
    unknown = [g for g in options.gpu if g not in GPU_POOLS]
    if not options.gpu or unknown:
        raise DeployError(
            f"Unknown GPU id(s): {', '.join(unknown) or '(none given)'}.",
            hint="Valid serverless GPU pools: " + ", ".join(
                f"{p.id} ({p.memory_gb} GB: {p.examples})" for p in GPU_POOLS.values()
            ),
        )
    if not 0 <= options.workers_min <= options.workers_max:
        raise DeployError(
            f"--workers-min {options.workers_min} / --workers-max {options.workers_max}: need 0 <= min <= max."
        )
    if options.scaler not in SCALERS:
        raise DeployError(f"--scaler {options.scaler!r}: use {' or '.join(SCALERS)}.")


def package(
    source: Any, options: DeployOptions, *, user_ns: Mapping[str, Any] | None = None, first_line: int = 1
) -> WorkerProject:
    """Source text (a cell or a file's content) or a function → worker project dir."""
    from . import packaging

    common: dict[str, Any] = dict(
        name=options.name, handler=options.handler, capture=options.capture,
        requirements=options.requirements, base_image=options.base_image, concurrency=options.concurrency,
        aggregate_stream=options.aggregate_stream,
    )
    if callable(source):  # the function given is the handler, whatever its name
        common["handler"] = getattr(source, "__name__", options.handler)
        return packaging.package_function(source, **common)
    if isinstance(source, Path):
        return packaging.package_file(source, **common)
    return packaging.package_cell(str(source), user_ns=user_ns, first_line=first_line, **common)


#: Container disk (GB) a deploy asks for at least, when --container-disk is not given.
MIN_CONTAINER_DISK = 20


def gpu_stock(backend: Backend, settings: Settings | None = None) -> dict[str, str] | None:
    """GPU stock per pool on the backend, or None when unknown. A preflight starts nothing: on the
    local backend only a running embedded RunPod is asked (a fresh one starts with no limits set)."""
    if settings is None:
        try:
            settings = connect(backend, start=False)
        except RunpodError:
            return None
    return read_stock(settings)


def preflight(
    project: WorkerProject, options: DeployOptions, backend: Backend, settings: Settings | None = None
) -> tuple[list[Finding], int]:
    """The findings, and the container disk to ask for: the one given, or what the estimated
    image and the cached models need. GPU stock is read from ``settings`` (else the backend's)."""
    from . import packaging
    from .packaging.preflight import disk_needed
    from .packaging.sizes import project_sizes

    image_gb, model_gb = project_sizes(project)
    checks = packaging.preflight(
        project,
        packaging.PreflightOptions(
            backend=backend, gpu_ids=options.gpu, env=dict(options.env), volume=options.volume,
            container_disk_gb=options.container_disk, image_size_gb=image_gb, model_size_gb=model_gb,
            stock=gpu_stock(backend, settings),
        ),
    )
    disk = options.container_disk or max(MIN_CONTAINER_DISK, disk_needed(image_gb, model_gb, options.volume))
    return sort_findings(checks), disk


def deploy(
    source: Any,
    name: str | None = None,
    *,
    user_ns: Mapping[str, Any] | None = None,
    first_line: int = 1,
    on_progress: Progress | None = None,
    options: DeployOptions | None = None,
    **flags: Any,
) -> Any:
    """Deploy a handler (cell source, file path or function) as endpoint ``name``.

    Returns a :class:`~runpod_jupyter.deployment.Deployment`, or a :class:`DryRun` with
    ``dry_run=True``. Keyword flags are :class:`DeployOptions` fields. ``on_progress(phase, detail)``
    is told each step, and each preflight warning or note as phase ``"advice"`` (they do not stop
    a deploy, but are worth reading).
    """
    if options is None:
        if name is None:
            raise DeployError("A deploy needs a name: deploy(source, name='echo').")
        if isinstance(flags.get("gpu"), str):
            flags["gpu"] = parse_gpu_list(flags["gpu"])
        options = DeployOptions(name=name, **flags)
    report = on_progress or (lambda phase, detail: None)
    options = replace(options, registry=config.push_registry(options.registry))  # deploy() as the flags do
    validate_options(options)
    backend = config.choose_backend(options.backend)
    # The cloud's key is checked before anything is written; the embedded RunPod starts only
    # once there is something to deploy.
    settings = connect("cloud") if backend == "cloud" else None
    report("package", "writing the worker project")
    project = package(source, options, user_ns=user_ns, first_line=first_line)
    findings, disk = preflight(project, options, backend, settings)
    options = replace(options, container_disk=disk)
    if has_errors(findings):
        raise DeployError(
            f"Preflight found {sum(f.level == 'error' for f in findings)} problem(s); nothing was deployed.",
            hint="\n".join(str(f) for f in findings if f.level == "error"),
            findings=findings,
        )
    if options.dry_run:
        return DryRun(project, tuple(findings))
    for finding in findings:  # warnings and info: the deploy goes on, the advice is shown
        report("advice", str(finding))
    if settings is None:
        settings = connect("local")
    with Client(settings) as client:
        endpoint = _Rollout(client, options, project, backend, report).run()
    from .deployment import Deployment

    return Deployment(
        name=options.name, endpoint_id=endpoint.saved_id, backend=backend, settings=settings,
        project=project, findings=tuple(findings), request_urls=endpoint.request_urls,
    )


class _Rollout:
    """One deploy's steps against REST v2, remembering what to undo. The endpoint carries its
    container settings itself (image, env, disk, registry): an update is one PATCH, a new release,
    and undoing it is a PATCH back to the previous values (the releases list shows both)."""

    def __init__(self, client: Client, options: DeployOptions, project: WorkerProject, backend: Backend, report: Progress):
        self.client, self.options, self.project, self.backend, self.report = client, options, project, backend, report
        self.undo: list[tuple[str, Callable[[], Any]]] = []

    def run(self) -> EndpointSpec:
        try:
            existing = find_endpoint(self.client, self.options.name)
            endpoint = self._endpoint(existing)
            if self.options.wait:
                self._wait_ready(endpoint)
        except BaseException as exc:
            undone = self._rollback()
            if isinstance(exc, RunpodError):
                what = f"The deploy of {self.options.name!r} failed: {exc.message}"
                hint = exc.hint or ""
            elif isinstance(exc, KeyboardInterrupt):
                what, hint = f"The deploy of {self.options.name!r} was interrupted.", ""
            else:
                raise
            summary = ("Undone: " + "; ".join(undone) + ".") if undone else "Nothing had been created yet."
            raise DeployError(what, hint=f"{hint}\n{summary}".strip(), undone=undone,
                              findings=getattr(exc, "findings", ())) from None
        retire_templates(self.client, self.options.name)
        return endpoint

    # -- steps -----------------------------------------------------------------------------
    def _image(self, existing: EndpointSpec | None) -> tuple[str, str | None]:
        """The image to run, and its registry login. On the cloud it is built and pushed only when
        the endpoint does not already run this exact project."""
        if self.backend == "local":
            return f"local:{self.project.path}", None
        from .image.publish import publish, published

        if existing is not None and existing.image and existing.image == published(self.project, self.options):
            self.report("build", f"the image of this project is already pushed: {existing.image}")
            return existing.image, existing.registry_auth_id
        self.report("build", "building and pushing the worker image")
        return publish(self.client, self.project, self.options, self.report)

    def _wanted(self, existing: EndpointSpec | None) -> EndpointSpec:
        """The endpoint this deploy asks for."""
        o = self.options
        image, auth_id = self._image(existing)
        return EndpointSpec(
            name=o.name, gpu_ids=tuple(o.gpu), workers_min=o.workers_min, workers_max=o.workers_max,
            idle_timeout=o.idle_timeout, scaler_type=o.scaler, scaler_value=o.scaler_value,
            network_volume_id=o.volume, locations=existing.locations if existing else None,
            gpu_count=existing.gpu_count if existing else 1, flashboot=existing.flashboot if existing else False,
            execution_timeout_ms=o.execution_timeout * 1000 if o.execution_timeout else (
                existing.execution_timeout_ms if existing else None),
            image=image, env=dict(o.env), container_disk_gb=o.container_disk or MIN_CONTAINER_DISK,
            docker_args="", registry_auth_id=auth_id, id=existing.id if existing else None,
        )

    def _endpoint(self, existing: EndpointSpec | None) -> EndpointSpec:
        o = self.options
        wanted = self._wanted(existing)
        if existing is None:
            self.report("endpoint", f"creating endpoint {o.name}")
            created = self.client.save_endpoint(wanted)
            created_id = created.saved_id
            self.undo.append(
                (f"deleted endpoint {created_id}", lambda: remove_endpoint(self.client, created_id, with_template=False))
            )
            return created
        if wanted == existing:
            self.report("endpoint", f"endpoint {o.name} is already up to date")
            return existing
        self.report("endpoint", f"updating endpoint {o.name} ({existing.id}): a new release")
        updated = self.client.save_endpoint(wanted)
        self.undo.append((
            f"put endpoint {existing.id} back on its previous release",
            lambda: self.client.save_endpoint(existing),
        ))
        return updated

    def _wait_ready(self, endpoint: EndpointSpec) -> None:
        limit = self.options.wait_timeout or (120.0 if self.backend == "local" else 900.0)
        interval = 0.2 if self.backend == "local" else 3.0
        self.report("wait", "waiting for a worker")
        api = self.client.endpoint(endpoint.saved_id, request_urls=endpoint.request_urls)
        deadline = time.monotonic() + limit
        health = Health()
        while time.monotonic() < deadline:
            health = api.health()
            if not health.registered:
                # "Not Found" until a worker registers: the worker list shows a crash loop.
                from .diagnose import with_workers

                health = with_workers(health, self.client.workers(endpoint.saved_id))
            if health.workers.idle or health.workers.running:
                self.report("ready", "a worker is ready")
                return
            if health.workers.unhealthy:
                raise _crash_loop_error(self.client, endpoint.saved_id)
            if endpoint.workers_max == 0:
                self.report("ready", "workersMax is 0: no worker will start until it is raised")
                return
            time.sleep(interval)
        self.report("slow", f"no worker ready after {limit:.0f} s; the endpoint stays deployed")

    def _rollback(self) -> list[str]:
        done = []
        for what, action in reversed(self.undo):
            try:
                action()
                done.append(what)
            except RunpodError as exc:
                done.append(f"could NOT undo ({what}): {exc.message}")
        self.undo.clear()
        return done


def _crash_loop_error(client: Client, endpoint_id: str) -> RunpodError:
    """Workers crash before taking jobs: say why, with the worker log's last lines."""
    from .api import local_routes as routes
    from .diagnose import diagnose, gather

    findings = [f for f in diagnose(gather(client, endpoint_id)) if f.code == "crash-loop"]
    lines = routes.logs(client.settings, endpoint_id=endpoint_id, limit=12) or []
    tail = ("Worker log (last lines):\n" + "\n".join(f"  {e['message']}" for e in lines)) if lines else ""
    error = DeployError(
        findings[0].message if findings else "The worker crashed before it could take a job.",
        hint=((findings[0].fix + "\n") if findings else "") + tail,
        findings=findings,
    )
    return error
