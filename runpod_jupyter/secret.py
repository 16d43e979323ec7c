"""Secrets: a key that never shows itself, and redaction of every known secret from text.

The bottom of the package: errors, logs and reprs all pass text through :func:`redact`.
"""

from __future__ import annotations

import re
import threading

_secrets_lock = threading.Lock()
_known_secrets: set[str] = set()
_SECRET_SHAPE = re.compile(r"rpa_[A-Za-z0-9]{8,}")


class Secret:
    """A credential that never shows itself in ``str``, ``repr``, f-strings or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The raw value, for the one place that needs it: an Authorization header."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # pickling would write the key to disk: refuse
        raise TypeError("a Secret cannot be pickled")


def register_secret(value: str) -> None:
    """Remember a secret so that :func:`redact` scrubs it wherever it turns up."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _known_secrets.add(value)


def redact(text: str) -> str:
    """Replace every known secret, and anything shaped like a RunPod key, with ``****``."""
    if not isinstance(text, str) or not text:
        return text
    with _secrets_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for value in secrets:
        if value in text:
            text = text.replace(value, "****")
    return _SECRET_SHAPE.sub("rpa_****", text)
