"""``runpod-jupyter deploy`` and ``runpod-jupyter endpoints``: the same pipeline as the magic,
from a file, for terminals and CI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .deployer import DEFAULT_GPUS, DeployOptions, DryRun, deploy


def deploy_file(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_file():
        print(f"runpod-jupyter: {path} is not a file.", file=sys.stderr)
        return 2
    options = DeployOptions(
        name=args.name,
        backend=args.backend,
        handler=args.handler,
        gpu=tuple(g.strip() for g in args.gpu.split(",") if g.strip()) if args.gpu else DEFAULT_GPUS,
        workers_min=args.workers_min if args.workers_min is not None else 0,
        workers_max=args.workers_max if args.workers_max is not None else 3,
        dry_run=args.dry_run,
    )
    result = deploy(path, options=options, on_progress=lambda phase, detail: print(f"runpod: {detail}", flush=True))
    if isinstance(result, DryRun):
        print(repr(result))
        return 0
    print(f"Deployed {result.name} ({result.endpoint_id}) on the {result.backend} backend.")
    print(f"  run a job:  curl -X POST {result.settings.rest_base}/{result.endpoint_id}/runsync "
          "-H 'Authorization: Bearer $RUNPOD_API_KEY' -d '{\"input\": {}}'")
    return 0


def list_endpoints(args: argparse.Namespace) -> int:
    from .magics import endpoint_table

    print(repr(endpoint_table(args.backend)))
    return 0
