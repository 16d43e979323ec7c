"""What a view reads from the thing it shows: the part of ``Deployment``, ``Job``, ``Batch`` and a
job's stream feed that the widgets use.

The views are typed against these protocols, not against :mod:`runpod_jupyter.deployment`, so the
widgets never import the handles: displaying a handle (IPython's display hook) is the only way from
there to here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..api import Client
    from ..api.models import Health, JobState, JobStatus
    from ..config import Settings
    from ..findings import Finding


class ShownEndpoint(Protocol):
    """A deployed endpoint (:class:`~runpod_jupyter.deployment.Deployment`)."""

    name: str
    endpoint_id: str
    backend: str
    settings: Settings
    view_kind: str
    findings: tuple[Finding, ...]  # what preflight said when it was deployed from here

    @property
    def client(self) -> Client: ...

    def health(self) -> Health: ...

    def purge_queue(self) -> Any: ...

    def scale(self, *, min: int | None = None, max: int | None = None) -> Any: ...

    def delete(self) -> Any: ...


class ShownFeed(Protocol):
    """A job's streamed output as it arrives."""

    chunks: list[Any]
    done: bool
    error: BaseException | None
    listeners: list[Callable[[Any], None]]


class ShownJob(Protocol):
    """One job (:class:`~runpod_jupyter.deployment.Job`)."""

    id: str
    view_kind: str

    @property
    def deployment(self) -> ShownEndpoint: ...

    @property
    def state(self) -> JobState: ...

    def refresh(self) -> JobState: ...

    def feed(self) -> ShownFeed: ...

    def cancel(self) -> JobStatus: ...


class ShownBatch(Protocol):
    """Jobs sent together (:class:`~runpod_jupyter.deployment.Batch`)."""

    id: str
    view_kind: str
    last_calls: int

    @property
    def deployment(self) -> ShownEndpoint: ...

    @property
    def jobs(self) -> Sequence[ShownJob]: ...

    @property
    def done(self) -> int: ...

    def refresh(self) -> Any: ...


Shown = ShownEndpoint | ShownJob | ShownBatch
