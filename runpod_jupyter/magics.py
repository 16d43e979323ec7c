"""``%%runpod_deploy`` and the line magics. Thin on purpose: parse, call deploy/handles, display.

User mistakes in arguments raise ``UsageError`` (no traceback); everything the platform or the
packaging step refuses is a ``RunpodError``, which renders in the notebook as two short lines
(what happened, what to do). The deploy flags come from :mod:`runpod_jupyter.deploy_flags`, shared
with ``runpod-jupyter deploy``; the tables shown come from :mod:`runpod_jupyter.listings`.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .deploy_flags import FLAGS, backend_choice, options_from_args
from .errors import FlagError
from .listings import JobList, Table, endpoint_table, recent_jobs
from .names import check_endpoint_name, check_variable_name

_CONFIG_KEYS = ("backend", "api_key", "registry")


def _backend(args: Any) -> str | None:
    """``--local``/``--cloud`` of a line magic; both at once is a usage mistake."""
    try:
        return backend_choice(args.local, args.cloud)
    except FlagError as exc:
        raise UsageError(str(exc)) from None


def _deploy_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """The shared deploy flags as ``@argument`` decorators, in the table's order."""
    for flag in reversed(FLAGS):
        func = argument(flag.option, **flag.spec())(func)
    return func


def _deploy_words(line: str) -> list[str]:
    """The deploy line split as a shell would (quotes removed), a ``{{ RUNPOD_SECRET_name }}``
    written with spaces kept in one word, and a name with a space refused as a name."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%%runpod_deploy {line}: {exc}; close the quote.") from None
    merged: list[str] = []
    for word in words:
        if merged and merged[-1].count("{{") > merged[-1].count("}}") and not word.startswith("-"):
            merged[-1] += " " + word
        else:
            merged.append(word)
    leading = []
    for word in merged:
        if word.startswith("-"):
            break
        leading.append(word)
    if len(leading) > 1:  # argparse would only say "unrecognized arguments"
        check_endpoint_name(" ".join(leading))
    return merged


@magics_class
class RunpodMagics(Magics):
    @no_var_expand  # the line is taken as written: `{{ RUNPOD_SECRET_name }}` must arrive intact
    @magic_arguments()
    @argument("name", help="endpoint name; also the variable the Deployment is bound to")
    @_deploy_flags
    @cell_magic
    def runpod_deploy(self, line: str, cell: str) -> None:
        """Deploy the handler defined in this cell as a RunPod serverless endpoint.

        The cell is packaged with the imports, helpers and constants the handler uses; names it
        takes from other cells are resolved (modules) or reported (move them here, or --capture).
        Binds NAME to a Deployment: NAME.run({...}), NAME.run_sync(...), NAME.map([...]).
        The line is read as written, without IPython's $name and {expression} expansion, so that
        --env KEY={{ RUNPOD_SECRET_name }} reaches the endpoint as RunPod's secret reference.
        """
        args = self.runpod_deploy.parser.parse_args(_deploy_words(line))
        check_endpoint_name(args.name)
        check_variable_name(args.name)
        try:
            options = options_from_args(args, args.name)
        except FlagError as exc:
            raise UsageError(str(exc)) from None
        from .deployer import DryRun, deploy

        started = time.monotonic()
        progress = _DeployProgress(self.shell)
        result = deploy(cell, options=options, user_ns=self._user_ns, first_line=2, on_progress=progress)
        progress.finish(time.monotonic() - started, dry_run=isinstance(result, DryRun))
        from IPython.display import display

        if not isinstance(result, DryRun):
            self._user_ns[args.name] = result
        display(result)

    @magic_arguments()
    @argument("--gpu", default=None, metavar="POOLS", help="GPU pools of the runner, e.g. ADA_24,AMPERE_24")
    @argument("--local", action="store_true", help="run on the embedded RunPod (the kernel's own environment)")
    @argument("--cloud", action="store_true", help="run on RunPod")
    @argument("--out", default=None, metavar="NAME,...", help="bring back only these names")
    @argument("--requirement", action="append", default=None, metavar="SPEC",
              help="extra pip requirement of the runner (a new one makes a new runner image)")
    @argument("--timeout", type=float, default=None, metavar="S", help="cancel the run after S seconds")
    @argument("--workers-max", type=int, default=None, metavar="N", help="runner workers (default: 1)")
    @argument("--idle-timeout", type=int, default=None, metavar="S",
              help="seconds the runner's worker stays warm when idle (default: 600)")
    @argument("--base", default=None, metavar="IMAGE",
              help="cloud: the runner image's base, e.g. a runpod/pytorch image (default: a RunPod base)")
    @cell_magic
    def runpod_run(self, line: str, cell: str) -> Any:
        """Run this cell on a warm worker of this environment's runner endpoint.

        The notebook values the cell reads travel with it; its prints and displays appear here as
        they happen; the names it binds come back (only --out NAME,... if given). Edits never
        redeploy: the runner is created once and reused. Interrupting the kernel cancels the run.
        """
        args = parse_argstring(self.runpod_run, line)
        backend = _backend(args)
        out = [n.strip() for n in args.out.split(",") if n.strip()] if args.out else None
        for name in out or ():
            if not name.isidentifier():
                raise UsageError(f"--out {args.out}: {name!r} is not a Python name.")
        from .api.models import parse_gpu_list
        from .hot import RunnerOptions, run_cell

        gpu = parse_gpu_list(args.gpu) if args.gpu else None
        options = RunnerOptions(
            backend=backend, gpu=gpu, requirements=tuple(args.requirement or ()), workers_max=args.workers_max,
            idle_timeout=args.idle_timeout, timeout=args.timeout, base_image=args.base,
        )
        count = getattr(self.shell, "execution_count", None)
        filename = f"Cell In[{count}]" if count else "<cell>"
        return run_cell(cell, self._user_ns, options=options, out=out, filename=filename, first_line=2)

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
    @argument("--tail", type=int, default=50, help="how many lines so far (default 50)")
    @argument("--follow", action="store_true",
              help="then print new lines as they come, until interrupted (with --job: until the job ends)")
    @argument("--timeout", type=float, default=None, help="with --follow: stop after this many seconds")
    @argument("--local", action="store_true")
    @argument("--cloud", action="store_true")
    @line_magic
    def runpod_logs(self, line: str) -> Any:
        """Worker log lines of an endpoint, each with its job (RunPod's REST API v2 worker logs)."""
        args = parse_argstring(self.runpod_logs, line)
        if args.tail < 0:
            raise UsageError("--tail must be 0 or more.")
        deployment = self._deployment(args.name, _backend(args))
        if not args.follow:
            return deployment.logs(job=args.job, worker=args.worker, tail=args.tail)
        from .deployment import format_log_line

        lines = deployment.logs(job=args.job, worker=args.worker, tail=args.tail, follow=True, timeout=args.timeout)
        try:
            for entry in lines:
                print(format_log_line(entry), flush=True)  # entries come redacted
        except KeyboardInterrupt:
            pass  # interrupting is how a follow ends
        finally:
            close = getattr(lines, "close", None)
            if close is not None:
                close()
        return None

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
        if getattr(self._user_ns.get(args.name), "endpoint_id", None) == deployment.endpoint_id:
            del self._user_ns[args.name]
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

            from .secret import register_secret

            key = getpass.getpass("RunPod API key (kept for this kernel only): ").strip()
            if key:
                register_secret(key)
                os.environ["RUNPOD_API_KEY"] = key
                print("API key set for this kernel.")
            return
        if args.key == "backend":
            if args.value not in ("local", "cloud"):
                raise UsageError("%runpod_config backend local|cloud")
            os.environ[config.BACKEND_ENV] = args.value
        elif args.key == "registry":
            if not args.value:
                raise UsageError("%runpod_config registry REGISTRY/NAMESPACE (e.g. docker.io/me/workers)")
            os.environ[config.REGISTRY_ENV] = args.value
        creds = config.cloud_credentials()
        print(f"backend:   {config.choose_backend()}")
        print(f"api key:   {'from ' + creds.source if creds.api_key else 'not configured'}")
        print(f"registry:  {config.push_registry() or 'not set (needed for --cloud)'}")
        cloud = config.cloud_settings()
        print(f"REST:      {cloud.rest_base}")
        print(f"GraphQL:   {cloud.graphql_url}")

    @property
    def _user_ns(self) -> dict[str, Any]:
        """The notebook's namespace (a magic only ever runs inside a shell)."""
        assert self.shell is not None
        return self.shell.user_ns

    def _deployment(self, name: str, backend: str | None) -> Any:
        from .deployment import Deployment

        bound = self._user_ns.get(name)
        if isinstance(bound, Deployment) and (backend is None or bound.backend == backend):
            return bound
        return Deployment.attach(name, backend=backend)


class _DeployProgress:
    """One short line per deploy step, so a long cloud build never looks frozen; preflight's
    warnings and notes last, under the result, where they are read."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.advice: list[str] = []

    def __call__(self, phase: str, detail: str) -> None:
        if phase == "advice":
            self.advice.append(detail)
        else:
            print(f"runpod: {detail}", flush=True)

    def finish(self, seconds: float, *, dry_run: bool) -> None:
        print(f"runpod: {'written' if dry_run else 'deployed'} in {seconds:.1f} s", flush=True)
        if self.advice:
            print(f"runpod: preflight advice ({len(self.advice)}):", flush=True)
            for text in self.advice:
                print("  " + text.replace("\n", "\n  "), flush=True)


def register(ipython: Any) -> None:
    """Called by ``%load_ext runpod_jupyter``; registering imports nothing heavy."""
    ipython.register_magics(RunpodMagics)
