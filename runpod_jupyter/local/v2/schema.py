"""Request bodies checked against RunPod's own OpenAPI document (the part shipped as
``openapi-subset.json``, written by ``scripts/extract_openapi_subset.py``), as RunPod checks them:
unknown fields are refused by name, other violations name their JSON path; both are 422s.

OpenAPI 3.1 schemas are JSON Schema 2020-12; ``$ref``s resolve inside the shipped document.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .http import problem

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

SUBSET = Path(__file__).with_name("openapi-subset.json")
_BASE = "urn:runpod:rest-v2"
_ECHOES = ("unevaluatedProperties", "additionalProperties")


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The shipped part of RunPod's OpenAPI document."""
    loaded: dict[str, Any] = json.loads(SUBSET.read_text())
    return loaded


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    # Imported on first use: jsonschema takes over a second to import, which every server start
    # (and every background start that waits for it) would pay.
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource: Resource[Any] = DRAFT202012.create_resource(document())
    registry: Registry[Any] = Registry().with_resource(_BASE, resource)
    return Draft202012Validator({"$ref": f"{_BASE}#/components/schemas/{name}"}, registry=registry)


def check(name: str, body: Any) -> dict[str, Any]:
    """``body`` if it is a valid ``components.schemas[name]``; else a 422 naming what is wrong."""
    unknown = sorted(set(unknown_fields(document()["components"]["schemas"][name], body)))
    if unknown:
        raise problem(
            422, f"Unknown field(s): {', '.join(unknown)}.", errors=[f"{u}: unknown field" for u in unknown],
            hint=f"Send only the fields of {name} in RunPod's REST API v2 document.",
        )
    found = sorted(_validator(name).iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    # Unknown fields were answered above: what these say is only the echo of another error.
    errors = list(dict.fromkeys(f"{e.json_path}: {e.message}" for e in found if e.validator not in _ECHOES))
    if errors:
        raise problem(422, f"The body is not a valid {name}: {errors[0]}.", errors=errors,
                      hint="Fix the fields named in errors (see RunPod's REST API v2 document).")
    assert isinstance(body, dict)  # every request schema served is an object
    return body


def _resolve(schema: Any) -> Any:
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        schema = document()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _branches(schema: Any) -> list[dict[str, Any]]:
    """The schema and every subschema that may add properties at the same level."""
    schema = _resolve(schema)
    if not isinstance(schema, dict):
        return []
    out = [schema]
    for word in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(word, ()):
            out.extend(_branches(sub))
    for word in ("then", "else"):
        if word in schema:
            out.extend(_branches(schema[word]))
    return out


def unknown_fields(schema: Any, value: Any, path: str = "$") -> list[str]:
    """JSON paths of the object keys in ``value`` that no branch of ``schema`` declares (maps, whose
    schema declares no properties but a value schema, take any key)."""
    branches = _branches(schema)
    if isinstance(value, list):
        items = [b["items"] for b in branches if isinstance(b.get("items"), dict)]
        return [u for i, v in enumerate(value) for s in items[:1] for u in unknown_fields(s, v, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    known: dict[str, list[Any]] = {}
    for branch in branches:
        for key, sub in (branch.get("properties") or {}).items():
            known.setdefault(key, []).append(sub)
    if not known and any(isinstance(b.get("additionalProperties"), dict) for b in branches):
        return []  # a map such as env
    out: list[str] = []
    for key, item in value.items():
        if key not in known:
            out.append(f"{path}.{key}")
            continue
        out.extend(unknown_fields({"allOf": known[key]}, item, f"{path}.{key}"))
    return out
