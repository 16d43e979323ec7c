"""The embedded RunPod's front door: what a request body, a query parameter or a job's policy must
be before anything behind the door sees it.

Bodies are read as RunPod's Go decoder reads them: invalid UTF-8 and lone surrogate escapes
(``"\\ud800"``) become U+FFFD, so no input can reach a worker that the worker then cannot post
back. ``NaN``/``Infinity`` and numbers too big for a float are not JSON and are refused, as is
nesting deeper than :data:`MAX_DEPTH` (Python's parsers and encoders recurse). Every refusal is a
:class:`ControlPlaneError` whose message the routes answer with a 400.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ControlPlaneError

#: Deepest nesting of arrays and objects accepted in a body (far beyond any real input, well
#: within what the parsers, the store and the SDK worker can recurse through).
MAX_DEPTH = 256
#: Largest time a policy may give, in milliseconds (the largest whole number a float holds exactly).
MAX_POLICY_MS = 2**53
#: RunPod's per-job policy fields that hold milliseconds.
POLICY_MS = ("executionTimeout", "ttl")

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_CONTAINERS = (dict, list)
_POLICY_HINT = 'Send e.g. "policy": {"executionTimeout": 600000, "ttl": 86400000, "lowPriority": false}.'


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def parse_json(raw: bytes, *, empty: Any = None) -> Any:
    """The JSON in ``raw`` (``empty`` when there is none), or :class:`ControlPlaneError` saying why not."""
    if not raw.strip():
        return empty
    text = raw.decode("utf-8", errors="replace")
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        raise ControlPlaneError(
            f"The body is not valid JSON: {exc}.",
            hint="Send one JSON value (NaN and Infinity are not JSON; numbers must fit a double).",
        ) from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:  # else it cannot be too deep
        _check_depth(value)
    if _SURROGATE_ESCAPE.search(raw):
        value = _without_surrogates(value)
    return value


def _too_deep() -> ControlPlaneError:
    return ControlPlaneError(
        f"The body is nested more than {MAX_DEPTH} levels deep.",
        hint="Flatten the input, or send it as a string (e.g. JSON text) for the handler to parse.",
    )


def _clean(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def _check_depth(root: Any) -> None:
    """Refuse ``root`` if nested past :data:`MAX_DEPTH`: level by level, so a deep value cannot
    exhaust the stack here, and at C speed per level."""
    level = [root] if type(root) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise _too_deep()
        below: list[Any] = []
        for node in level:
            below.extend([c for c in (node.values() if type(node) is dict else node) if type(c) in _CONTAINERS])
        level = below


def _without_surrogates(root: Any) -> Any:
    """``root`` with lone surrogates in its strings (keys too) replaced by U+FFFD, as Go reads them."""
    if isinstance(root, str):
        return _clean(root)
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if any(_SURROGATE.search(key) for key in node):
                items = [(_clean(key), child) for key, child in node.items()]
                node.clear()
                node.update(items)
            pairs: Any = node.items()
        elif isinstance(node, list):
            pairs = enumerate(node)
        else:
            continue
        for key, child in list(pairs):
            if isinstance(child, str):
                if _SURROGATE.search(child):
                    node[key] = _clean(child)
            elif isinstance(child, (dict, list)):
                stack.append(child)
    return root


def submission(raw: bytes) -> dict[str, Any]:
    """A /run or /runsync body: an object with ``input``, its ``policy`` checked and normalised."""
    body = parse_json(raw)
    if not isinstance(body, dict) or "input" not in body:
        raise ControlPlaneError('The body must be a JSON object with an "input" key.')
    body["policy"] = policy(body.get("policy"))
    return body


def policy(given: Any) -> dict[str, Any]:
    """A job's ``policy`` as the queue applies it: ``executionTimeout`` and ``ttl`` in milliseconds
    (numbers, or strings holding one; 0 or more), ``lowPriority`` a boolean; null means unset.
    Other keys pass through untouched. :class:`ControlPlaneError` says what is wrong."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise ControlPlaneError(f"policy must be a JSON object, not {_kind(given)}.", hint=_POLICY_HINT)
    problems = policy_problems(given)
    if problems:
        raise ControlPlaneError("Invalid policy: " + "; ".join(problems.values()) + ".", hint=_POLICY_HINT)
    out = dict(given)
    for key in POLICY_MS:
        if out.get(key) is not None:
            out[key] = _milliseconds(out[key])
    if out.get("lowPriority") is not None:
        out["lowPriority"] = bool(out["lowPriority"])
    return out


def policy_problems(given: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with each policy field, by field (empty when the policy is valid)."""
    problems: dict[str, str] = {}
    for key in POLICY_MS:
        value = given.get(key)
        if value is not None and _milliseconds(value) is None:
            problems[key] = f"{key} must be a number of milliseconds from 0 to {MAX_POLICY_MS}, not {_shown(value)}"
    low = given.get("lowPriority")
    if low is not None and not isinstance(low, bool) and low not in (0, 1):
        problems["lowPriority"] = f"lowPriority must be true or false, not {_shown(low)}"
    return problems


def sanitized_policy(given: Any) -> tuple[dict[str, Any], list[str]]:
    """A stored job's policy with the fields the queue cannot apply dropped, and what was dropped
    (for a job kept before the door checked policies)."""
    if not isinstance(given, dict):
        return {}, ([] if given is None else [f"policy must be an object, not {_kind(given)}"])
    problems = policy_problems(given)
    kept = {k: v for k, v in given.items() if k not in problems}
    return policy(kept), list(problems.values())


def _milliseconds(value: Any) -> int | float | None:
    """``value`` as a number of milliseconds within range, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not 0 <= value <= MAX_POLICY_MS or value != value:
        return None
    return int(value) if float(value).is_integer() else float(value)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return _kind(value)
    return text if len(text) <= 40 else _kind(value)


def query_number(query: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A numeric query parameter clamped to [low, high]; ``default`` when absent. Anything that is
    not a finite number is refused."""
    text = query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ControlPlaneError(f"{name} must be a number, not {text[:40]!r}.")
    return min(max(value, low), high)


def query_int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter clamped to [low, high]; ``default`` when absent."""
    text = query.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"\s*[+-]?\d{1,30}\s*", text):
        raise ControlPlaneError(f"{name} must be a whole number, not {text[:40]!r}.")
    return min(max(int(text), low), high)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a header's text with a key; a header that is not valid text
    (bytes that are not UTF-8) simply does not match."""
    import secrets

    try:
        given_bytes = given.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return False
    return secrets.compare_digest(given_bytes, expected.encode())
