"""``runpod-jupyter doctor``: what this machine has, which backend would be used, where the key
comes from (never the key), and whether the API answers."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any, TextIO

from .. import config
from .._version import __version__

_PACKAGES = ("runpod", "jupyterlab", "jupyter_server", "ipykernel", "ipywidgets", "anywidget", "httpx")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def run_doctor(backend: str | None = None, out: TextIO | None = None) -> int:
    """Print the report; exit status 0 when the chosen backend answers, 1 otherwise."""
    out = out or sys.stdout

    def say(label: str, value: str) -> None:
        print(f"  {label:<22} {value}", file=out)

    print(f"runpod-jupyter {__version__}", file=out)
    say("python", f"{platform.python_version()} ({sys.executable})")
    say("platform", platform.platform(terse=True))
    for dist in _PACKAGES:
        say(dist, _version(dist))

    creds = config.cloud_credentials()
    say("cloud API key", f"from {creds.source}" if creds.api_key else "not configured")
    try:
        chosen = config.choose_backend(backend)
    except Exception as exc:  # a bad RUNPOD_JUPYTER_BACKEND value
        say("backend", f"error: {exc}")
        return 1
    why = "chosen explicitly" if backend else (
        f"from {config.BACKEND_ENV}" if _env(config.BACKEND_ENV) else
        ("a cloud key is configured" if chosen == "cloud" else "no cloud key configured")
    )
    say("backend", f"{chosen} ({why})")
    return _check_cloud(say) if chosen == "cloud" else _check_local(say)


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name) or None


def _check_cloud(say) -> int:
    settings = config.cloud_settings()
    say("REST base", settings.rest_base)
    say("GraphQL", settings.graphql_url)
    if settings.api_key is None:
        say("API", "not checked: no key (set RUNPOD_API_KEY or use --local)")
        return 1
    return _check_api(say, settings, "balance")


def _check_local(say) -> int:
    from .. import embedded

    found = embedded.find()
    if found is None:
        say("embedded RunPod", "not running (starts on first use, or: runpod-jupyter local serve)")
        return 0
    say("embedded RunPod", f"running, pid {found.pid}")
    say("REST base", found.rest_base)
    say("GraphQL", found.graphql_url)
    return _check_api(say, found.settings(), "simulated balance")


def _check_api(say, settings: config.Settings, balance: str) -> int:
    """One real request (the account query) says whether the API answers and takes the key."""
    from ..api import Client, RunpodError

    try:
        with Client(settings) as client:
            account = client.account()
    except RunpodError as exc:
        say("API", f"does not answer: {exc.message}")
        return 1
    say("API", f"answers; {balance} ${account.client_balance:.2f}, spend ${account.current_spend_per_hr:.3f}/h")
    return 0


def add_parsers(sub: Any) -> None:
    """``doctor [--local|--cloud]``, on the top-level subparsers."""
    doctor = sub.add_parser("doctor", help="check the environment, credentials and API reachability")
    doctor.add_argument("--local", dest="backend", action="store_const", const="local")
    doctor.add_argument("--cloud", dest="backend", action="store_const", const="cloud")
    doctor.set_defaults(func=lambda args: run_doctor(backend=args.backend))
