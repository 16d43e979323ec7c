"""The deploy flags, defined once for ``%%runpod_deploy`` and ``runpod-jupyter deploy``.

Each :class:`Flag` names the :class:`~runpod_jupyter.deploy_options.DeployOptions` field it sets and
takes its default from there, so the magic, the CLI and ``deploy()`` cannot drift apart. The magic
adds them with IPython's ``@argument`` and the CLI with argparse's ``add_argument`` (same keyword
arguments, from :meth:`Flag.spec`); :func:`options_from_args` turns either's parsed arguments into
``DeployOptions``.

Light on purpose (stdlib, :mod:`~runpod_jupyter.deploy_options` and the errors only): both front ends build their
parsers from this table at import time.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import config
from .deploy_options import BUILDERS, SCALERS, DeployOptions, default
from .errors import FlagError


def parse_env_pairs(pairs: Sequence[str] | None) -> dict[str, str]:
    """``--env KEY=VALUE`` (repeated) → a dict; secrets are passed as references, never values."""
    env: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FlagError(f"--env {pair!r}: use KEY=VALUE (for secrets: KEY={{{{ RUNPOD_SECRET_name }}}}).")
        env[key.strip()] = value
    return env


def backend_choice(local: bool, cloud: bool) -> str | None:
    """``--local``/``--cloud`` → the backend asked for; None leaves the choice to the environment."""
    if local and cloud:
        raise FlagError("Choose one of --local and --cloud.")
    return "local" if local else ("cloud" if cloud else None)


def _gpus(text: str) -> tuple[str, ...]:
    from .api.models import parse_gpu_list  # the wire's package: imported when a deploy is built

    return parse_gpu_list(text)


def _registry(value: str | None) -> str | None:
    return config.push_registry(value)


@dataclass(frozen=True)
class Flag:
    """One ``--flag``: the option field it sets, how its text becomes that value, its help."""

    option: str
    help: str
    field: str | None = None  # None: --local/--cloud, read together by backend_choice
    type: Callable[[str], Any] | None = None
    action: str | None = None  # "store_true" or "append"
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    convert: Callable[[Any], Any] | None = None  # parsed value → the DeployOptions field's value

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")

    @property
    def default(self) -> Any:
        """The parser's default: the field's own, as the flag's text (a GPU tuple as "A,B")."""
        if self.action == "store_true":
            return False
        if self.action == "append" or self.field is None:
            return None
        value = default(self.field)
        return ",".join(value) if isinstance(value, tuple) else value

    def spec(self) -> dict[str, Any]:
        """Keyword arguments for ``add_argument`` (IPython's ``@argument`` takes the same)."""
        shown = self.default is not None and self.default is not False  # 0 is a default worth showing
        spec: dict[str, Any] = {"default": self.default, "help": self.help + (f" (default: {self.default})" if shown else "")}
        extra = {"type": self.type, "action": self.action, "metavar": self.metavar,
                 "choices": list(self.choices) if self.choices else None}
        spec.update({k: v for k, v in extra.items() if v is not None})
        return spec


def _tuple(values: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(values or ())


FLAGS: tuple[Flag, ...] = (
    Flag("--local", "deploy to the embedded RunPod (no account needed)", action="store_true"),
    Flag("--cloud", "deploy to RunPod (needs an API key and a registry)", action="store_true"),
    Flag("--handler", "name of the handler function", "handler"),
    Flag("--gpu", "GPU pools, comma-separated, e.g. ADA_24,AMPERE_24", "gpu", metavar="POOLS", convert=_gpus),
    Flag("--workers-min", "always-on workers (billed while running)", "workers_min", type=int),
    Flag("--workers-max", "upper bound of workers", "workers_max", type=int),
    Flag("--idle-timeout", "seconds an idle worker is kept", "idle_timeout", type=int),
    Flag("--scaler", "how workers are scaled", "scaler", choices=SCALERS),
    Flag("--scaler-value", "seconds (QUEUE_DELAY) or jobs per worker (REQUEST_COUNT)", "scaler_value", type=int),
    Flag("--volume", "network volume id (mounted at /runpod-volume)", "volume"),
    Flag("--env", "endpoint env; secrets as {{ RUNPOD_SECRET_name }}", "env", action="append",
         metavar="KEY=VALUE", convert=parse_env_pairs),
    Flag("--container-disk", "container disk in GB (default: sized to the image and models, at least 20)",
         "container_disk", type=int),
    Flag("--capture", "ship a picklable value defined in another cell", "capture", action="append",
         metavar="NAME", convert=_tuple),
    Flag("--requirement", "extra pip requirement (overrides the pin)", "requirements", action="append",
         metavar="SPEC", convert=_tuple),
    Flag("--base", "base image (default: a RunPod base for this Python)", "base_image"),
    Flag("--concurrency", "jobs per worker at once (async handlers)", "concurrency", type=int),
    Flag("--stream-only", "generator handlers: the final result does not repeat the streamed chunks "
         "(for clients that read /stream)", "aggregate_stream", action="store_true", convert=lambda v: not v),
    Flag("--execution-timeout", "seconds a job may run", "execution_timeout", type=int),
    Flag("--registry", f"cloud: where to push the image, e.g. docker.io/me/workers (default: ${config.REGISTRY_ENV})",
         "registry", convert=_registry),
    Flag("--builder", "cloud image builder", "builder", choices=BUILDERS),
    Flag("--dry-run", "write and show the worker project; deploy nothing", "dry_run", action="store_true"),
    Flag("--no-wait", "do not wait for a worker to be ready", "wait", action="store_true", convert=lambda v: not v),
)


def add_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every deploy flag to an argparse parser (the CLI's ``deploy``)."""
    for flag in FLAGS:
        parser.add_argument(flag.option, **flag.spec())
    return parser


def options_from_args(args: argparse.Namespace, name: str) -> DeployOptions:
    """Parsed flags (the magic's or the CLI's) → the options of a deploy of endpoint ``name``.

    Raises :class:`FlagError` for values that parse but mean nothing (``--env X``, both backends).
    """
    values = {}
    for flag in FLAGS:
        if flag.field is not None:
            raw = getattr(args, flag.dest)
            values[flag.field] = flag.convert(raw) if flag.convert else raw
    return DeployOptions(name=name, backend=backend_choice(args.local, args.cloud), **values)
