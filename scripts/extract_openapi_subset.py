"""Write the part of RunPod's REST API v2 OpenAPI document the embedded RunPod serves: the paths
below and every component they reference, transitively. The embedded RunPod validates request
bodies against it at run time, and the tests check responses against it, on a fresh clone too.

    python scripts/extract_openapi_subset.py /path/to/runpod-rest-v2-openapi.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: The paths the embedded RunPod answers (pods only to say that it has none).
PATHS = (
    "/v2/serverless", "/v2/serverless/{id}", "/v2/templates", "/v2/templates/{id}",
    "/v2/serverless/{id}/workers", "/v2/serverless/{id}/releases", "/v2/serverless/{id}/workers/{workerId}/logs",
    "/v2/pods", "/v2/pods/{id}", "/v2/pods/{id}/logs", "/v2/pods/{id}/action",
    "/v2/catalog/gpus", "/v2/catalog/gpus/{id}", "/v2/catalog/datacenters", "/v2/catalog/datacenters/{id}",
    "/v2/billing/serverless", "/v2/registries", "/v2/registries/{id}", "/v2/network-volumes", "/v2/network-volumes/{id}",
    "/v2/account/ssh-keys",
)
SOURCE = "https://api.runpod.io/v2/openapi.json"
DATED = "2026-08-20"
TARGET = Path(__file__).resolve().parent.parent / "runpod_jupyter" / "local" / "v2" / "openapi-subset.json"


def _refs(node: Any) -> set[str]:
    """Every ``$ref`` inside ``node``."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def subset(document: dict[str, Any]) -> dict[str, Any]:
    """The served paths and the components they need, with the document's header kept."""
    paths = {p: document["paths"][p] for p in PATHS}
    components: dict[str, dict[str, Any]] = {"securitySchemes": document["components"]["securitySchemes"]}
    todo, seen = _refs(paths), set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, section, name = ref.removeprefix("#/").split("/", 2)
        node = document["components"][section][name]
        components.setdefault(section, {})[name] = node
        todo |= _refs(node)
    for section in components.values():
        section_sorted = dict(sorted(section.items()))
        section.clear()
        section.update(section_sorted)
    # Sections in the document's own order, so that the output does not depend on set order.
    components = {k: components[k] for k in document["components"] if k in components}
    info = dict(document["info"])
    info["description"] = (
        f"{info.get('description', '')} (subset served by the embedded RunPod, extracted from "
        f"{SOURCE} as published on {DATED})"
    ).strip()
    info["x-source"] = SOURCE
    info["x-source-date"] = DATED
    tags = {t for p in paths.values() for op in p.values() if isinstance(op, dict) for t in op.get("tags", ())}
    return {
        "openapi": document["openapi"], "info": info, "servers": document["servers"],
        "security": document["security"], "tags": [t for t in document.get("tags", []) if t["name"] in tags],
        "components": components, "paths": paths,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", type=Path, help="RunPod's full OpenAPI document (JSON)")
    parser.add_argument("--out", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    out = subset(json.loads(args.document.read_text()))
    args.out.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.out} ({len(out['paths'])} paths, "
          f"{sum(len(s) for s in out['components'].values())} components)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
