"""Secrets: a key that never shows itself, and redaction of every known secret from text.

The bottom of the package: errors, logs and reprs all pass text through :func:`redact`. Which env
values are secrets is decided here too (:func:`secret_env_values`), once: preflight warns about
them, and worker logs and job errors are scrubbed of them (:func:`redact_values`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping

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


# -- which env values are secrets (preflight warns about them; logs are scrubbed of them) ------

_REFERENCE = re.compile(r"^\{\{\s*RUNPOD_SECRET_[A-Za-z0-9_.-]+\s*\}\}$")
_SECRET_PARTS = {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PWD", "KEY", "APIKEY", "CREDENTIALS",
                 "CREDENTIAL", "PRIVATE"}
_AWS_PUBLIC = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL",
               "AWS_DEFAULT_OUTPUT", "AWS_S3_ENDPOINT"}
_TOKEN_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("a RunPod API key", re.compile(r"\brpa_[A-Za-z0-9]{20,}")),
    ("a GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
    ("an API secret key (sk-…)", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")),
    ("an AWS access key id", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a password in a URL", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"$]+@", re.I)),
)


def looks_secret(key: str) -> bool:
    """Whether an env var's *name* says it holds a secret (HF_TOKEN, *_KEY, AWS_*, PASSWORD…)."""
    upper = key.upper()
    if upper.startswith("AWS_"):
        return upper not in _AWS_PUBLIC
    return any(part in _SECRET_PARTS for part in re.split(r"[_\-.]", upper))


def is_secret_reference(value: str) -> bool:
    """``{{ RUNPOD_SECRET_name }}``: RunPod substitutes the secret at start; safe to store."""
    return bool(_REFERENCE.match(value.strip()))


def token_kind(text: str) -> str | None:
    """What kind of credential ``text`` contains, if any (never the credential itself)."""
    for kind, pattern in _TOKEN_SHAPES:
        if pattern.search(text):
            return kind
    return None


def secret_env_values(env: Mapping[str, str]) -> list[str]:
    """The values of ``env`` that are secrets: those of secret-looking names and those shaped like
    tokens (references excluded: they are safe to show)."""
    out = []
    for key, value in env.items():
        text = str(value or "")
        if len(text) >= 4 and not is_secret_reference(text) and (looks_secret(key) or token_kind(text)):
            out.append(text)
    return out


def redact_values(text: str, values: Iterable[str]) -> str:
    """:func:`redact`, and every one of ``values`` (e.g. an endpoint's secret env) too."""
    if not isinstance(text, str) or not text:
        return text
    for value in sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, "****")
    return redact(text)
