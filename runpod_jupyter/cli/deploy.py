"""``runpod-jupyter deploy`` and ``runpod-jupyter endpoints``: the same pipeline as the magic,
from a file, for terminals and CI. The flags are the magic's (:mod:`runpod_jupyter.deploy_flags`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..deploy_flags import add_flags, options_from_args


def deploy_file(args: argparse.Namespace) -> int:
    """Deploy the handler in ``args.path``; print where to send jobs, or the dry run."""
    path = Path(args.path)
    if not path.is_file():
        print(f"runpod-jupyter: {path} is not a file.", file=sys.stderr)
        return 2
    options = options_from_args(args, args.name)
    from ..deployer import DryRun, deploy

    result = deploy(path, options=options, on_progress=lambda phase, detail: print(f"runpod: {detail}", flush=True))
    if isinstance(result, DryRun):
        print(repr(result))
        return 0
    print(f"Deployed {result.name} ({result.endpoint_id}) on the {result.backend} backend.")
    print(f"  run a job:  curl -X POST {result.settings.rest_base}/{result.endpoint_id}/runsync "
          "-H 'Authorization: Bearer $RUNPOD_API_KEY' -d '{\"input\": {}}'")
    return 0


def list_endpoints(args: argparse.Namespace) -> int:
    """Print the endpoint table ``%runpod_endpoints`` shows."""
    from ..listings import endpoint_table

    print(repr(endpoint_table(args.backend)))
    return 0


def add_parsers(sub: Any) -> None:
    """``deploy`` (every flag of ``%%runpod_deploy``) and ``endpoints``, on the top-level subparsers."""
    deploy = sub.add_parser("deploy", help="deploy a handler file as an endpoint")
    deploy.add_argument("path", help="a Python file defining handler(job)")
    deploy.add_argument("--name", required=True, help="endpoint name")
    add_flags(deploy)
    deploy.set_defaults(func=deploy_file)

    endpoints = sub.add_parser("endpoints", help="list endpoints")
    endpoints.add_argument("--local", dest="backend", action="store_const", const="local")
    endpoints.add_argument("--cloud", dest="backend", action="store_const", const="cloud")
    endpoints.set_defaults(func=list_endpoints)
