"""The ``runpod-jupyter`` command: doctor, local serve, demo, deploy, endpoints.

Argument parsing is stdlib argparse so ``--help`` is instant; each subcommand imports what it
needs when it runs. User mistakes print one clear line (no traceback) and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from ._version import __version__


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    return run_doctor(backend=args.backend)


def _local_serve(args: argparse.Namespace) -> int:
    from .local.server import serve_forever

    return serve_forever(port=args.port, api_key=args.api_key, gpus=args.gpus, data_dir=args.data_dir)


def _local_stop(args: argparse.Namespace) -> int:
    from . import embedded

    stopped = embedded.stop()
    print("Stopped the embedded RunPod." if stopped else "The embedded RunPod was not running.")
    return 0


def _local_status(args: argparse.Namespace) -> int:
    from . import embedded

    found = embedded.find()
    if found is None:
        print("The embedded RunPod is not running (it starts on first use).")
        return 1
    print(f"Embedded RunPod running (pid {found.pid}): REST {found.rest_base}  GraphQL {found.graphql_url}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(output_dir=args.output)


def _deploy(args: argparse.Namespace) -> int:
    from .deploy_cli import deploy_file

    return deploy_file(args)


def _endpoints(args: argparse.Namespace) -> int:
    from .deploy_cli import list_endpoints

    return list_endpoints(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runpod-jupyter",
        description="Deploy notebook functions to RunPod serverless, or run an embedded RunPod locally.",
    )
    parser.add_argument("--version", action="version", version=f"runpod-jupyter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = sub.add_parser("doctor", help="check the environment, credentials and API reachability")
    doctor.add_argument("--local", dest="backend", action="store_const", const="local")
    doctor.add_argument("--cloud", dest="backend", action="store_const", const="cloud")
    doctor.set_defaults(func=_doctor)

    local = sub.add_parser("local", help="the embedded RunPod (local backend)")
    local_sub = local.add_subparsers(dest="local_command", metavar="ACTION")
    serve = local_sub.add_parser("serve", help="run the embedded RunPod in the foreground")
    serve.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    serve.add_argument("--api-key", default=None, help="key clients must send (default: generated)")
    serve.add_argument(
        "--gpus", default=None, help='simulated GPU capacity per pool, e.g. "ADA_24=2,AMPERE_80=0"'
    )
    serve.add_argument("--data-dir", default=None, help="where endpoints and jobs are kept (sqlite)")
    serve.set_defaults(func=_local_serve)
    local_sub.add_parser("stop", help="stop the shared background instance").set_defaults(func=_local_stop)
    local_sub.add_parser("status", help="is the shared instance running?").set_defaults(func=_local_status)

    demo = sub.add_parser("demo", help="run the quickstart notebook headless against the embedded RunPod")
    demo.add_argument("--output", default="demo-output", help="where the executed notebook and HTML go")
    demo.set_defaults(func=_demo)

    deploy = sub.add_parser("deploy", help="deploy a handler file as an endpoint")
    deploy.add_argument("path", help="a Python file defining handler(job)")
    deploy.add_argument("--name", required=True, help="endpoint name")
    deploy.add_argument("--handler", default="handler", help="name of the handler function")
    deploy.add_argument("--local", dest="backend", action="store_const", const="local")
    deploy.add_argument("--cloud", dest="backend", action="store_const", const="cloud")
    deploy.add_argument("--gpu", default=None, help="comma-separated GPU pool ids, e.g. ADA_24,AMPERE_24")
    deploy.add_argument("--workers-min", type=int, default=None)
    deploy.add_argument("--workers-max", type=int, default=None)
    deploy.add_argument("--dry-run", action="store_true", help="write the worker project, do not deploy")
    deploy.set_defaults(func=_deploy)

    endpoints = sub.add_parser("endpoints", help="list endpoints")
    endpoints.add_argument("--local", dest="backend", action="store_const", const="local")
    endpoints.add_argument("--cloud", dest="backend", action="store_const", const="cloud")
    endpoints.set_defaults(func=_endpoints)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from .errors import RunpodError

    try:
        return func(args)
    except RunpodError as exc:
        print(f"runpod-jupyter: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
