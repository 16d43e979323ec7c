"""Request bodies checked against RunPod's own OpenAPI document (the part shipped as
``openapi-subset.json``, written by ``scripts/extract_openapi_subset.py``), as RunPod checks them:
unknown fields are refused by name, other violations name their JSON path; both are 422s.

OpenAPI 3.1 schemas are JSON Schema 2020-12; ``$ref``s resolve inside the shipped document.
"""

from __future__ import annotations

import functools
import json
import re
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
    return _validator_at(f"/components/schemas/{name}")


#: ECMA-262's white space and line terminators: what ``\s`` means in a JSON Schema pattern.
ECMA_SPACE = " \t\n\x0b\f\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def ecma_regex(pattern: str) -> re.Pattern[str]:
    r"""A JSON Schema ``pattern`` (ECMA-262) as a Python regex: ``\d`` and ``\w`` ASCII only, ``\s``
    ECMA's spaces (Python's also counts the separators U+001C-U+001F, so a valid key was refused)."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            pair = pattern[i:i + 2]
            if pair == "\\s":
                out.append(ECMA_SPACE if in_class else f"[{ECMA_SPACE}]")
            elif pair == "\\S" and not in_class:
                out.append(f"[^{ECMA_SPACE}]")
            else:
                out.append(pair)
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return re.compile("".join(out), re.ASCII)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    from jsonschema import ValidationError

    if isinstance(instance, str) and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return ecma_regex(pattern)


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


# -- query parameters ----------------------------------------------------------------------------
@functools.cache
def _parameters(template: str, method: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(JSON pointer to its schema, parameter) for each query parameter the document declares."""
    path = document()["paths"].get(template)
    if not isinstance(path, dict) or not isinstance(path.get(method), dict):
        return ()
    escaped = template.replace("~", "~0").replace("/", "~1")
    out = []
    for where, listed in (("", path.get("parameters") or []), (f"/{method}", path[method].get("parameters") or [])):
        for index, parameter in enumerate(listed):
            pointer = f"/paths/{escaped}{where}/parameters/{index}"
            if isinstance(parameter.get("$ref"), str):
                name = parameter["$ref"].rsplit("/", 1)[1]
                pointer, parameter = f"/components/parameters/{name}", document()["components"]["parameters"][name]
            if parameter.get("in") == "query":
                out.append((f"{pointer}/schema", parameter))
    return tuple(out)


@functools.cache
def _validator_at(pointer: str) -> Draft202012Validator:
    """A validator of the schema at ``pointer`` in the document (patterns read as ECMA-262)."""
    # Imported on first use: jsonschema takes over a second to import, which every server start
    # (and every background start that waits for it) would pay.
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource: Resource[Any] = DRAFT202012.create_resource(document())
    registry: Registry[Any] = Registry().with_resource(_BASE, resource)
    ecma = validators.extend(Draft202012Validator, {"pattern": _pattern})
    validator: Draft202012Validator = ecma({"$ref": f"{_BASE}#{pointer}"}, registry=registry)
    return validator


def _typed(text: str, schema: Any) -> Any:
    """A query string as the JSON value its schema's type reads it as (left as text if it is not one)."""
    resolved = _resolve(schema)
    kind = resolved.get("type") if isinstance(resolved, dict) else None
    if kind == "integer" and text.lstrip("-").isdigit() and len(text) < 20:
        return int(text)
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def warm() -> None:
    """Import jsonschema and build the validators a deploy needs first, off the event loop, right
    after the server starts: the import alone takes over a second, which the first request that
    checks a body or a query would otherwise wait for."""
    for name in ("CreateEndpointRequest", "UpdateEndpointRequest"):
        _validator(name)
    for pointer, _parameter in _parameters("/v2/catalog/gpus", "get"):
        _validator_at(pointer)


def check_query(template: str, method: str, query: Any) -> None:
    """The request's query parameters against the operation's declared ones (style form: an array
    is one comma-separated value); undeclared parameters are left alone. A violation is a 400,
    as the handlers answer a query value they cannot use."""
    errors: list[str] = []
    for pointer, parameter in _parameters(template, method.lower()):
        name = parameter["name"]
        if name not in query:
            continue
        raw = ",".join(query.getall(name))
        schema = _resolve(parameter.get("schema") or {})
        if isinstance(schema, dict) and schema.get("type") == "array":
            value: Any = [_typed(part, schema.get("items") or {}) for part in raw.split(",")] if raw else []
        else:
            value = _typed(raw, schema)
        errors.extend(f"{name}: {e.message}" for e in _validator_at(pointer).iter_errors(value))
    if errors:
        raise problem(400, f"A query parameter is not valid: {errors[0]}.", errors=errors,
                      hint="Send the values RunPod's REST API v2 document lists for these parameters.")
