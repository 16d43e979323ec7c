"""What a build reports while it runs (:class:`Progress`) and when it is done (:class:`BuildResult`).

Both are plain frozen dataclasses so widgets, the CLI and tests can read them without knowing
which builder ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: Phases in the order a daemonless build goes through them; engine builders use build/push.
PHASES = ("resolve", "dependencies", "layers", "upload", "manifest", "build", "push", "done")


@dataclass(frozen=True)
class Progress:
    """One progress report: ``done`` of ``total`` units (bytes while uploading) in ``phase``."""

    phase: str
    done: int = 0
    total: int = 0
    message: str = ""

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class BlobReport:
    """What happened to one blob of the image during the push."""

    digest: str
    size: int
    kind: str  # "base", "dependencies", "handler", "config"
    action: str  # "existing", "mounted", "uploaded", "streamed"


@dataclass(frozen=True)
class BuildResult:
    """A pushed worker image. ``image`` is digest-pinned: what a RunPod template should reference."""

    image: str
    digest: str
    tagged: str | None
    builder: str
    base: str
    media_type: str = ""
    bytes_uploaded: int | None = None
    requests: int | None = None
    deps_cached: bool | None = None
    timings: dict[str, float] = field(default_factory=dict)
    blobs: tuple[BlobReport, ...] = ()
    source_hash: str = ""

    def __str__(self) -> str:
        return self.image

    def summary(self) -> str:
        """One line for logs and the CLI."""
        total = self.timings.get("total")
        parts = [self.image, f"builder={self.builder}"]
        if self.bytes_uploaded is not None:
            parts.append(f"uploaded={_human(self.bytes_uploaded)}")
        if total is not None:
            parts.append(f"in {total:.2f}s")
        return " ".join(parts)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover
