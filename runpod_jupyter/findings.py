"""One shape for everything worth telling the user: packaging notes, preflight checks before a
deploy, and the diagnosis of a live endpoint all produce :class:`Finding` values, so the magics,
the CLI, the widgets and the sidebar show them the same way. Errors stop a deploy; warnings and
info do not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warning", "info"]

_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """Something about a worker project the user should know, and what to do about it.

    ``code`` is a stable identifier (``"heavy-startup"``, ``"secret-in-env"`` …) that tests and UIs
    can match on; ``message`` says what is wrong in words; ``fix`` says what to change. Neither
    ever contains a secret value: only names of variables.
    """

    level: Level
    code: str
    message: str
    fix: str = ""
    line: int | None = None

    def __post_init__(self) -> None:
        if self.level not in _ORDER:
            raise ValueError(f"level must be one of {sorted(_ORDER)}, not {self.level!r}")

    def to_json(self) -> dict[str, object]:
        return {"level": self.level, "code": self.code, "message": self.message, "fix": self.fix, "line": self.line}

    def __str__(self) -> str:
        text = f"{self.level}: {self.message}"
        return f"{text}\n  fix: {self.fix}" if self.fix else text


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; the order of checks is kept within a level."""
    return sorted(findings, key=lambda f: _ORDER[f.level])


def has_errors(findings: Iterable[Finding]) -> bool:
    """Whether any finding should stop the deploy."""
    return any(f.level == "error" for f in findings)


def format_findings(findings: Iterable[Finding]) -> str:
    """Plain text, one finding per paragraph: for the CLI and for text reprs."""
    return "\n".join(str(f) for f in sort_findings(findings))
