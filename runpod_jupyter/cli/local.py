"""``runpod-jupyter local serve|stop|status``: the embedded RunPod (local backend) by hand."""

from __future__ import annotations

import argparse
from typing import Any


def serve(args: argparse.Namespace) -> int:
    """Run the embedded RunPod in the foreground until interrupted."""
    from ..local.server import serve_forever

    return serve_forever(port=args.port, api_key=args.api_key, gpus=args.gpus, data_dir=args.data_dir)


def stop(args: argparse.Namespace) -> int:
    """Stop the shared background instance that deploys start."""
    from .. import embedded

    stopped = embedded.stop()
    print("Stopped the embedded RunPod." if stopped else "The embedded RunPod was not running.")
    return 0


def status(args: argparse.Namespace) -> int:
    """Exit 0 and say where it listens when the shared instance runs, else 1."""
    from .. import embedded

    found = embedded.find()
    if found is None:
        print("The embedded RunPod is not running (it starts on first use).")
        return 1
    print(f"Embedded RunPod running (pid {found.pid}): REST {found.rest_base}  GraphQL {found.graphql_url}")
    return 0


def add_parsers(sub: Any) -> None:
    """``local`` and its actions, on the top-level subparsers."""
    local = sub.add_parser("local", help="the embedded RunPod (local backend)")
    actions = local.add_subparsers(dest="local_command", metavar="ACTION")
    run = actions.add_parser("serve", help="run the embedded RunPod in the foreground")
    run.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    run.add_argument("--api-key", default=None, help="key clients must send (default: generated)")
    run.add_argument("--gpus", default=None, help='simulated GPU capacity per pool, e.g. "ADA_24=2,AMPERE_80=0"')
    run.add_argument("--data-dir", default=None, help="where endpoints and jobs are kept (sqlite)")
    run.set_defaults(func=serve)
    actions.add_parser("stop", help="stop the shared background instance").set_defaults(func=stop)
    actions.add_parser("status", help="is the shared instance running?").set_defaults(func=status)
