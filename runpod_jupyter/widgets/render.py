"""Values a job produces, turned into display items: streamed chunks, progress, results, errors.

Pure functions, no Jupyter imports: the live views send these items to the browser (which only
ever sets ``textContent`` and ``img.src``, never ``innerHTML``), and :mod:`.snapshot` turns the
same items into escaped HTML for the saved notebook. An item is a small dict:

* ``{"k": "text", "t": str}``: streamed text, appended to the text before it;
* ``{"k": "json", "t": str}``: a value pretty-printed as JSON;
* ``{"k": "img", "src": "data:image/...;base64,...", "bytes": int}``: an image.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

#: Longest text kept for one JSON item or for the streamed text, per item (characters).
MAX_ITEM_CHARS = 20_000
#: Largest image shown (bytes of base64 text).
MAX_IMAGE_CHARS = 8_000_000

_DATA_URI = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=\s]+)$")
#: How a bare base64 image begins, by the format's magic number.
_MAGIC = {"iVBORw0KGgo": "image/png", "/9j/": "image/jpeg", "R0lGOD": "image/gif", "UklGR": "image/webp"}
_SPACE = re.compile(r"\s")
_B64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}$")
_RATIO = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/|of)\s*(\d+(?:\.\d+)?)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def image_src(value: Any) -> str | None:
    """A data URI when ``value`` is an image (a data URI, or bare base64 PNG/JPEG/GIF/WebP)."""
    if not isinstance(value, str) or len(value) < 16 or len(value) > MAX_IMAGE_CHARS:
        return None
    text = value.strip()
    match = _DATA_URI.match(text)
    if match:
        return f"data:{match.group(1)};base64," + _SPACE.sub("", match.group(2))
    mime = next((m for prefix, m in _MAGIC.items() if text.startswith(prefix)), None)
    if mime is None or not _B64.match(text[:4096]):
        return None
    compact = _SPACE.sub("", text)
    try:
        base64.b64decode(compact[:64] + "=" * (-len(compact[:64]) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return f"data:{mime};base64,{compact}"


def pretty(value: Any) -> str:
    """JSON with indentation (anything JSON cannot hold is shown with ``str``), capped."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)
    except (TypeError, ValueError):
        text = repr(value)
    return _cap(text)


def _cap(text: str, limit: int = MAX_ITEM_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit:,} more characters not shown)"


def _size(src: str) -> int:
    return len(src) - src.index(",") - 1


def items(chunk: Any) -> list[dict[str, Any]]:
    """The display items for one streamed chunk (or a result)."""
    src = image_src(chunk)
    if src is not None:
        return [{"k": "img", "src": src, "bytes": _size(src)}]
    if isinstance(chunk, str):
        return [{"k": "text", "t": chunk}]
    if isinstance(chunk, dict):
        images: list[dict[str, Any]] = []
        shown: dict[str, Any] = {}
        for key, value in chunk.items():
            found = image_src(value)
            if found is None:
                shown[str(key)] = value
            else:
                images.append({"k": "img", "src": found, "bytes": _size(found), "alt": str(key)})
                shown[str(key)] = f"<image, {_size(found) * 3 // 4:,} bytes>"
        head = [{"k": "json", "t": pretty(shown)}] if shown and (len(shown) > len(images)) else []
        return head + images
    if isinstance(chunk, list):
        srcs = [image_src(v) for v in chunk]
        if chunk and all(srcs):
            return [{"k": "img", "src": s, "bytes": _size(s)} for s in srcs if s]
    return [{"k": "json", "t": pretty(chunk)}]


def merge(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive text items joined into one, so a token stream is one message part."""
    out: list[dict[str, Any]] = []
    for item in batch:
        if item["k"] == "text" and out and out[-1]["k"] == "text":
            out[-1] = {"k": "text", "t": out[-1]["t"] + item["t"]}
        else:
            out.append(dict(item))
    return out


def progress(value: Any) -> dict[str, Any] | None:
    """What a ``progress_update`` value says: its text and, when it reads as a number or as
    "i/n" or "42%", the fraction done (0..1)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else pretty(value) if isinstance(value, (dict, list)) else str(value)
    fraction: float | None = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, (int, float)):
        number = float(value)
        fraction = number if 0 <= number <= 1 else number / 100 if 1 < number <= 100 else None
    elif isinstance(value, dict):
        for key in ("progress", "fraction", "percent", "pct"):
            if isinstance(value.get(key), (int, float)) and not isinstance(value.get(key), bool):
                number = float(value[key])
                fraction = number / 100 if key in ("percent", "pct") or number > 1 else number
                break
    elif isinstance(value, str):
        ratio, percent = _RATIO.search(value), _PERCENT.search(value)
        if ratio and float(ratio.group(2)) > 0:
            fraction = float(ratio.group(1)) / float(ratio.group(2))
        elif percent:
            fraction = float(percent.group(1)) / 100
    if fraction is not None:
        fraction = min(1.0, max(0.0, fraction))
    return {"text": _cap(text, 500), "fraction": fraction}


def error(value: Any) -> dict[str, str] | None:
    """A worker error split into type, message and traceback. RunPod sends handler errors as a
    JSON string with ``error_type``/``error_message``/``error_traceback``; anything else is a
    message on its own."""
    if value is None or value == "":
        return None
    parsed: Any = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
    if isinstance(parsed, dict) and ("error_message" in parsed or "error_type" in parsed):
        kind = str(parsed.get("error_type") or "").removeprefix("<class '").removesuffix("'>")
        return {
            "type": kind,
            "message": _cap(str(parsed.get("error_message") or ""), 4000),
            "traceback": _cap(str(parsed.get("error_traceback") or "")),
        }
    text = parsed if isinstance(parsed, str) else pretty(parsed)
    return {"type": "", "message": _cap(text, 4000), "traceback": ""}


def money(value: float | None, digits: int = 4) -> str:
    """Dollars, with more digits for the small amounts per-second billing produces."""
    if value is None:
        return "n/a"
    return f"${value:,.{digits if abs(value) < 1 else 2}f}"
