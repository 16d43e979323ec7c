"""``runpod-jupyter local serve|stop|status``: the embedded RunPod (local backend) by hand."""

from __future__ import annotations

import argparse
from typing import Any


def serve(args: argparse.Namespace) -> int:
    """Run the embedded RunPod in the foreground until interrupted."""
    from ..local.server import serve_forever

    api_key = args.api_key
    if api_key == "-":  # typed at a prompt, without echo, so it shows neither on screen nor in `ps`
        import getpass

        api_key = getpass.getpass("Key clients must send to the embedded RunPod: ").strip() or None
    return serve_forever(
        port=args.port, api_key=api_key, gpus=args.gpus, data_dir=args.data_dir, worker_quota=args.worker_quota,
        fork_server=not getattr(args, "no_fork_server", False),
    )


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


def positive_int(text: str) -> int:
    """argparse type for ``--worker-quota``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def add_parsers(sub: Any) -> None:
    """``local`` and its actions, on the top-level subparsers."""
    local = sub.add_parser("local", help="the embedded RunPod (local backend)")
    actions = local.add_subparsers(dest="local_command", metavar="ACTION")
    run = actions.add_parser("serve", help="run the embedded RunPod in the foreground")
    run.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    run.add_argument(
        "--api-key", default=None, metavar="KEY",
        help=(
            "key clients must send; `--api-key -` reads it from a prompt without echo. A key given here "
            "shows in `ps`: prefer $RUNPOD_JUPYTER_LOCAL_KEY or the prompt. Default: $RUNPOD_JUPYTER_LOCAL_KEY, "
            "else the key kept in the data dir, else a new one"
        ),
    )
    run.add_argument("--gpus", default=None, help='simulated GPU capacity per pool, e.g. "ADA_24=2,AMPERE_80=0"')
    run.add_argument("--data-dir", default=None, help="where endpoints and jobs are kept (sqlite); one server at a time")
    run.add_argument(
        "--worker-quota", type=positive_int, default=None, metavar="N",
        help="the account's worker quota: workersMax summed over all endpoints (default 5, as on RunPod)",
    )
    run.add_argument(
        "--no-fork-server", action="store_true",
        help="start every worker as a new Python process instead of forking it from a warm one (slower starts)",
    )
    run.set_defaults(func=serve)
    actions.add_parser("stop", help="stop the shared background instance").set_defaults(func=stop)
    actions.add_parser("status", help="is the shared instance running?").set_defaults(func=status)
