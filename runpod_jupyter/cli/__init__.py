"""The ``runpod-jupyter`` command: doctor, local serve/stop/status, demo, deploy, endpoints.

Argument parsing is stdlib argparse so ``--help`` is instant: each subcommand's module adds its
parser here and imports what it needs only when it runs. User mistakes print one clear line (no
traceback) and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .._version import __version__
from . import demo, deploy, doctor, local


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each subcommand module adds its own parsers."""
    parser = argparse.ArgumentParser(
        prog="runpod-jupyter",
        description="Deploy notebook functions to RunPod serverless, or run an embedded RunPod locally.",
    )
    parser.add_argument("--version", action="version", version=f"runpod-jupyter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (doctor, local, demo, deploy):
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from ..errors import RunpodError

    try:
        return func(args)
    except RunpodError as exc:  # what happened and what to do, without a traceback
        print(f"runpod-jupyter: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
