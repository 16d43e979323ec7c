"""Live views of endpoints, jobs and batches.

Displaying a :class:`~runpod_jupyter.deployment.Deployment`, ``Job`` or ``Batch`` in a kernel shows
its live widget; elsewhere (terminal IPython, a kernel without a browser-capable widget stack)
it shows a static snapshot as HTML and text. ipywidgets and anywidget are imported only when a
live view is made, never by ``import runpod_jupyter`` or ``%load_ext runpod_jupyter``.

Headless runs (nbclient, nbconvert ``--execute``, papermill) keep a view's final snapshot in the
saved notebook only if it is sent while a cell runs: end such notebooks with :func:`settle`.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import LiveView
    from .subjects import ShownEndpoint

__all__ = ["show", "make_view", "static_bundle", "settle", "views_of"]

_WARNED = False
log = logging.getLogger(__name__)


VIEW_KINDS = ("endpoint", "job", "batch")


def _kind(obj: object) -> str:
    """Which view shows ``obj``: handles name theirs (``view_kind``), so widgets need not import them."""
    kind = getattr(type(obj), "view_kind", None)
    if kind not in VIEW_KINDS:
        raise TypeError(f"No view for {type(obj).__name__}: expected a Deployment, Job or Batch.")
    return kind


def _live_capable() -> bool:
    """A kernel whose front end can show widgets (not a terminal), with the widget packages."""
    global _WARNED
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import anywidget  # noqa: F401
    except ImportError:
        if not _WARNED:
            _WARNED = True
            warnings.warn("Live views need anywidget and ipywidgets: pip install 'anywidget>=0.9' 'ipywidgets>=8'. "
                          "Showing a static snapshot instead.", stacklevel=3)
        return False
    return True


def _deployment(obj: Any) -> ShownEndpoint:
    return obj if _kind(obj) == "endpoint" else obj.deployment


def make_view(obj: Any) -> LiveView:
    """A live view of ``obj`` with its first state read (not displayed yet)."""
    from .poller import Tick

    kind = _kind(obj)
    view: LiveView
    if kind == "endpoint":
        from .endpoint import EndpointView

        view = EndpointView(obj)
    elif kind == "job":
        from .job import JobView

        view = JobView(obj)
    else:
        from .batch import BatchView

        view = BatchView(obj)
    view.on_tick(Tick(_deployment(obj)))
    view.flush()
    return view


def show(obj: Any) -> LiveView | None:
    """Display ``obj``: its live view when possible (returned), else its snapshot (None)."""
    from IPython.display import display

    if not _live_capable():
        display(static_bundle(obj), raw=True)
        return None
    try:
        view = make_view(obj)
    except Exception as exc:  # the cell's work is done; never lose its output to a view's bug
        log.exception("runpod-jupyter: making the live view failed")
        warnings.warn(f"runpod-jupyter: the live view failed ({type(exc).__name__}: {exc}); showing a snapshot.",
                      stacklevel=3)
        display(static_bundle(obj), raw=True)
        return None
    view.show()
    view.start()
    return view


def static_bundle(obj: Any) -> dict[str, str]:
    """``text/plain`` and ``text/html`` of ``obj`` as it is now (one read; no widget)."""
    from . import snapshot
    from .poller import Tick
    from .readers import BatchReader, EndpointReader, JobReader

    kind = _kind(obj)
    if kind == "endpoint":
        state = EndpointReader(obj).read(Tick(obj))
        return {"text/plain": snapshot.endpoint_text(state, time.time()), "text/html": snapshot.endpoint_html(state, time.time())}
    if kind == "job":
        reader = JobReader(obj, stream=False)
        reader.refresh()
        reader.take_items()
        state = reader.state()
        return {"text/plain": snapshot.job_text(state, reader.items, reader.logs),
                "text/html": snapshot.job_html(state, reader.items, reader.logs)}
    batch_reader = BatchReader(obj)
    batch_reader.refresh(force=True)
    state = batch_reader.state()
    return {"text/plain": snapshot.batch_text(state), "text/html": snapshot.batch_html(state)}


def views_of(obj: object) -> list[LiveView]:
    """The live views made in this kernel for ``obj`` (a Deployment, Job or Batch)."""
    import sys

    if "runpod_jupyter.widgets.base" not in sys.modules:
        return []
    from .base import registry

    _kind(obj)
    return [view for view in list(registry) if view.subject is obj]


def settle(timeout: float = 60.0) -> dict[str, int]:
    """Wait (at most ``timeout`` seconds) until every job and batch view in this kernel has
    reached its final state, then send every view's snapshot from this cell, so a notebook run
    without a browser saves them. Returns ``{"final": n, "live": n}``."""
    import sys

    if "runpod_jupyter.widgets.base" not in sys.modules:
        return {"final": 0, "live": 0}
    from .base import registry
    from .endpoint import EndpointView

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = [v for v in list(registry) if not isinstance(v, EndpointView) and not v.final and v.wants_updates()]
        if not waiting:
            break
        time.sleep(0.1)
    final = live = 0
    for view in list(registry):
        view.flush()
        view.publish_snapshot(final=view.final)
        final, live = (final + 1, live) if view.final else (final, live + 1)
    return {"final": final, "live": live}
