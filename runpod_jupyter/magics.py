"""``%%runpod_deploy`` and the line magics. Thin on purpose: parse, call deploy/handles, display.

User mistakes in arguments raise ``UsageError`` (no traceback); everything the platform or the
packaging step refuses is a ``RunpodError``, which renders in the notebook as two short lines
(what happened, what to do).
"""

from __future__ import annotations

import html
import os
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

_CONFIG_KEYS = ("backend", "api_key", "registry")


def _backend(args: Any) -> str | None:
    return "local" if args.local else ("cloud" if args.cloud else None)


def _env_pairs(pairs: list[str] | None) -> dict[str, str]:
    env = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--env {pair!r}: use KEY=VALUE (for secrets: KEY={{{{ RUNPOD_SECRET_name }}}}).")
        env[key.strip()] = value
    return env


class Table:
    """Rows shown as an HTML table in Jupyter and as aligned text elsewhere."""

    def __init__(self, columns: list[str], rows: list[list[Any]], empty: str) -> None:
        self.columns, self.rows, self.empty = columns, rows, empty

    def __repr__(self) -> str:
        if not self.rows:
            return self.empty
        cells = [self.columns] + [[str(c) for c in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<p>{html.escape(self.empty)}</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in self.rows
        )
        return f"<table class='runpod-jupyter-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class JobList(list):
    """``jobs = %runpod_jobs``: a list of Job handles that displays as a table."""

    def _table(self) -> Table:
        rows = []
        for job in self:
            s = job.state
            rows.append([
                job.id, job.deployment.name, job.deployment.backend, s.status.value,
                "" if s.execution_time_ms is None else f"{s.execution_time_ms / 1000:.2f} s",
                (s.reason or "")[:80],
            ])
        return Table(["job", "endpoint", "backend", "status", "ran", "reason"], rows, "No jobs recorded yet.")

    def __repr__(self) -> str:
        return repr(self._table())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        return self._table()._repr_html_()


@magics_class
class RunpodMagics(Magics):
    @magic_arguments()
    @argument("name", help="endpoint name; also the variable the Deployment is bound to")
    @argument("--local", action="store_true", help="deploy to the embedded RunPod (no account needed)")
    @argument("--cloud", action="store_true", help="deploy to RunPod (needs an API key and a registry)")
    @argument("--handler", default="handler", help="name of the handler function (default: handler)")
    @argument("--gpu", default=None, help="GPU pools, comma-separated, e.g. ADA_24,AMPERE_24")
    @argument("--workers-min", type=int, default=0, help="always-on workers (billed while running)")
    @argument("--workers-max", type=int, default=3, help="upper bound of workers")
    @argument("--idle-timeout", type=int, default=5, help="seconds an idle worker is kept")
    @argument("--scaler", default="QUEUE_DELAY", choices=["QUEUE_DELAY", "REQUEST_COUNT"])
    @argument("--scaler-value", type=int, default=4, help="seconds (QUEUE_DELAY) or jobs per worker (REQUEST_COUNT)")
    @argument("--volume", default=None, help="network volume id (mounted at /runpod-volume)")
    @argument("--env", action="append", metavar="KEY=VALUE", help="endpoint env; secrets as {{ RUNPOD_SECRET_name }}")
    @argument("--container-disk", type=int, default=20, help="container disk in GB")
    @argument("--capture", action="append", metavar="NAME", help="ship a picklable value defined in another cell")
    @argument("--requirement", action="append", metavar="SPEC", help="extra pip requirement (overrides the pin)")
    @argument("--base", default=None, help="base image (default: a RunPod base for this Python)")
    @argument("--concurrency", type=int, default=None, help="jobs per worker at once (async handlers)")
    @argument("--execution-timeout", type=int, default=None, help="seconds a job may run")
    @argument("--registry", default=None, help="cloud: where to push the image, e.g. docker.io/me/workers")
    @argument("--builder", default=None, choices=["oci", "docker", "podman", "buildah"], help="cloud image builder")
    @argument("--dry-run", action="store_true", help="write and show the worker project; deploy nothing")
    @argument("--no-wait", action="store_true", help="do not wait for a worker to be ready")
    @cell_magic
    def runpod_deploy(self, line: str, cell: str) -> None:
        """Deploy the handler defined in this cell as a RunPod serverless endpoint.

        The cell is packaged with the imports, helpers and constants the handler uses; names it
        takes from other cells are resolved (modules) or reported (move them here, or --capture).
        Binds NAME to a Deployment: NAME.run({...}), NAME.run_sync(...), NAME.map([...]).
        """
        args = parse_argstring(self.runpod_deploy, line)
        if args.local and args.cloud:
            raise UsageError("Choose one of --local and --cloud.")
        if not args.name.isidentifier():
            raise UsageError(f"{args.name!r} must be a Python identifier: it names the variable the Deployment is bound to.")
        from .deployer import DeployOptions, DryRun, deploy

        options = DeployOptions(
            name=args.name, backend=_backend(args), handler=args.handler,
            gpu=tuple(g.strip() for g in args.gpu.split(",") if g.strip()) if args.gpu else DeployOptions.__dataclass_fields__["gpu"].default,
            workers_min=args.workers_min, workers_max=args.workers_max, idle_timeout=args.idle_timeout,
            scaler=args.scaler, scaler_value=args.scaler_value, volume=args.volume, env=_env_pairs(args.env),
            container_disk=args.container_disk, capture=tuple(args.capture or ()),
            requirements=tuple(args.requirement or ()), base_image=args.base, concurrency=args.concurrency,
            execution_timeout=args.execution_timeout, registry=args.registry or os.environ.get("RUNPOD_JUPYTER_REGISTRY"),
            builder=args.builder, wait=not args.no_wait, dry_run=args.dry_run,
        )
        started = time.monotonic()
        progress = _DeployProgress(self.shell)
        result = deploy(cell, options=options, user_ns=self.shell.user_ns, first_line=2, on_progress=progress)
        progress.finish(time.monotonic() - started, dry_run=isinstance(result, DryRun))
        from IPython.display import display

        if not isinstance(result, DryRun):
            self.shell.user_ns[args.name] = result
        display(result)

    @magic_arguments()
    @argument("--local", action="store_true")
    @argument("--cloud", action="store_true")
    @line_magic
    def runpod_endpoints(self, line: str) -> Table:
        """List endpoints with their workers and queue."""
        args = parse_argstring(self.runpod_endpoints, line)
        return endpoint_table(_backend(args))

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="only this endpoint's jobs")
    @argument("--limit", type=int, default=20)
    @line_magic
    def runpod_jobs(self, line: str) -> JobList:
        """Jobs submitted from here (kept across kernel restarts), with fresh states.

        ``jobs = %runpod_jobs`` gives handles: jobs[0].result() fetches a result RunPod still keeps.
        """
        args = parse_argstring(self.runpod_jobs, line)
        return recent_jobs(endpoint_name=args.name, limit=args.limit)

    @magic_arguments()
    @argument("name", help="endpoint name")
    @argument("--job", default=None, help="only this job's lines")
    @argument("--worker", default=None, help="only this worker's lines")
    @argument("--tail", type=int, default=50)
    @argument("--local", action="store_true")
    @argument("--cloud", action="store_true")
    @line_magic
    def runpod_logs(self, line: str) -> Any:
        """Worker log lines of an endpoint (embedded RunPod; RunPod has no public logs API)."""
        args = parse_argstring(self.runpod_logs, line)
        return self._deployment(args.name, _backend(args)).logs(job=args.job, worker=args.worker, tail=args.tail)

    @magic_arguments()
    @argument("name", help="endpoint name")
    @argument("--local", action="store_true")
    @argument("--cloud", action="store_true")
    @line_magic
    def runpod_delete(self, line: str) -> None:
        """Delete an endpoint and its template (scaling it to zero first)."""
        args = parse_argstring(self.runpod_delete, line)
        deployment = self._deployment(args.name, _backend(args))
        done = deployment.delete()
        if getattr(self.shell.user_ns.get(args.name), "endpoint_id", None) == deployment.endpoint_id:
            del self.shell.user_ns[args.name]
        print("; ".join(done) + ".")

    @magic_arguments()
    @argument("key", nargs="?", default=None, choices=_CONFIG_KEYS + (None,), help="setting to change")
    @argument("value", nargs="?", default=None)
    @line_magic
    def runpod_config(self, line: str) -> None:
        """Show the configuration, or set one setting for this kernel.

        ``%runpod_config backend local|cloud`` · ``%runpod_config registry docker.io/me/workers`` ·
        ``%runpod_config api_key`` (asks for the key at a prompt, so it never lands in the notebook).
        """
        args = parse_argstring(self.runpod_config, line)
        from . import config

        if args.key == "api_key":
            if args.value:
                raise UsageError(
                    "Don't write the key into the notebook: run `%runpod_config api_key` alone and paste "
                    "it at the prompt, or set RUNPOD_API_KEY before starting Jupyter."
                )
            import getpass

            key = getpass.getpass("RunPod API key (kept for this kernel only): ").strip()
            if key:
                register_secret(key)
                os.environ["RUNPOD_API_KEY"] = key
                print("API key set for this kernel.")
            return
        if args.key == "backend":
            if args.value not in ("local", "cloud"):
                raise UsageError("%runpod_config backend local|cloud")
            os.environ["RUNPOD_JUPYTER_BACKEND"] = args.value
        elif args.key == "registry":
            if not args.value:
                raise UsageError("%runpod_config registry REGISTRY/NAMESPACE (e.g. docker.io/me/workers)")
            os.environ["RUNPOD_JUPYTER_REGISTRY"] = args.value
        creds = config.cloud_credentials()
        print(f"backend:   {config.choose_backend()}")
        print(f"api key:   {'from ' + creds.source if creds.api_key else 'not configured'}")
        print(f"registry:  {os.environ.get('RUNPOD_JUPYTER_REGISTRY') or 'not set (needed for --cloud)'}")
        cloud = config.cloud_settings()
        print(f"REST:      {cloud.rest_base}")
        print(f"GraphQL:   {cloud.graphql_url}")

    def _deployment(self, name: str, backend: str | None) -> Any:
        from .deployment import Deployment

        bound = self.shell.user_ns.get(name)
        if isinstance(bound, Deployment) and (backend is None or bound.backend == backend):
            return bound
        return Deployment.attach(name, backend=backend)


def endpoint_table(backend: str | None) -> Table:
    """Endpoints of one backend with their workers and queue, as a table."""
    from . import config
    from .api import Client, RunpodError

    settings = connect(backend)
    rows = []
    with Client(settings) as client:
        for spec in client.list_endpoints():
            try:
                h = client.endpoint(spec.id).health()
                workers = f"{h.workers.idle} idle / {h.workers.running} running / {h.workers.initializing} init"
                if h.workers.unhealthy or h.workers.throttled:
                    workers += f" / {h.workers.unhealthy} unhealthy / {h.workers.throttled} throttled"
                queue = f"{h.jobs.in_queue} queued, {h.jobs.in_progress} running"
            except RunpodError as exc:
                workers, queue = "?", exc.message[:60]
            rows.append([spec.name, spec.id, settings.backend, ",".join(spec.gpu_ids),
                         f"{spec.workers_min}-{spec.workers_max}", workers, queue])
    return Table(["name", "id", "backend", "gpus", "workers min-max", "workers", "queue"], rows,
                 f"No endpoints on the {settings.backend} backend.")


def recent_jobs(*, endpoint_name: str | None = None, limit: int = 20) -> JobList:
    """Journal entries as Job handles; unfinished ones are asked for their state now."""
    from . import config, journal
    from .api import RunpodError
    from .api.models import JobState, JobStatus
    from .deployment import Deployment, Job

    deployments: dict[tuple[str, str], Deployment] = {}
    out = JobList()
    for entry in journal.shared().jobs(limit=limit * 5 if endpoint_name else limit):
        if endpoint_name and entry.endpoint_name != endpoint_name:
            continue
        key = (entry.backend, entry.endpoint_id)
        if key not in deployments:
            deployments[key] = Deployment(
                name=entry.endpoint_name, endpoint_id=entry.endpoint_id, backend=entry.backend,
                settings=connect(entry.backend),
            )
        state = JobState(
            id=entry.id, status=JobStatus(entry.status), reason=entry.reason,
            execution_time_ms=entry.execution_ms, delay_time_ms=entry.delay_ms, worker_id=entry.worker_id,
        )
        job = Job(deployments[key], entry.id, state=state)
        if not entry.final:
            try:
                job.refresh()
            except RunpodError:
                pass  # shown with its last known state
        out.append(job)
        if len(out) >= limit:
            break
    return out


class _DeployProgress:
    """One short line per deploy step, so a long cloud build never looks frozen."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell

    def __call__(self, phase: str, detail: str) -> None:
        print(f"runpod: {detail}", flush=True)

    def finish(self, seconds: float, *, dry_run: bool) -> None:
        print(f"runpod: {'written' if dry_run else 'deployed'} in {seconds:.1f} s", flush=True)


def register(ipython: Any) -> None:
    ipython.register_magics(RunpodMagics)
