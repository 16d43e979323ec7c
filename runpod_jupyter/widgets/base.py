"""What every live view shares: coalesced updates, the display with its saved snapshot, the
count of browser views that decides whether it is polled, and actions run off the kernel's
main thread.

A view's output is one display with a ``display_id``: the widget for a live front end, plus
``text/html`` and ``text/plain`` for everything else (nbviewer, GitHub, a notebook reopened
without a kernel). The snapshot is refreshed with ``update_display``; at a final state the
widget part is dropped, so the notebook keeps plain, readable output.
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ..errors import RunpodError
from ..secret import redact
from .coalesce import Coalescer
from .poller import EndpointPoller, Tick, poller_for

if TYPE_CHECKING:
    from .subjects import ShownBatch, ShownEndpoint, ShownJob

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


def view_module(name: str) -> str:
    """A view's ES module: the shared helpers, then the view (anywidget modules cannot import
    their siblings)."""
    return (STATIC / "common.js").read_text(encoding="utf-8") + "\n" + (STATIC / f"{name}.js").read_text(encoding="utf-8")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

#: Every live view in this kernel (for :func:`runpod_jupyter.widgets.settle`).
registry: weakref.WeakSet[LiveView] = weakref.WeakSet()

_actions: ThreadPoolExecutor | None = None
_actions_lock = threading.Lock()


def _run_action(fn: Callable[[], None]) -> None:
    """Actions (purge, scale, delete, cancel) call RunPod; never on the kernel's main thread."""
    global _actions
    with _actions_lock:
        if _actions is None:
            _actions = ThreadPoolExecutor(max_workers=2, thread_name_prefix="runpod-widget-action")
    _actions.submit(fn)


class LiveView(anywidget.AnyWidget):
    """Base of the endpoint, job and batch views. Subclasses fill :meth:`on_tick` (poll),
    :meth:`static_html`/:meth:`static_text` (snapshot) and may extend :meth:`_collect`."""

    _css = STATIC / "widgets.css"
    state = traitlets.Dict().tag(sync=True)

    def __init__(self, subject: ShownEndpoint | ShownJob | ShownBatch, deployment: ShownEndpoint) -> None:
        super().__init__()
        self.subject = subject
        self.deployment = deployment
        self.display_id = f"runpod-{uuid.uuid4().hex}"
        self._lock = threading.RLock()
        self._next_state: dict[str, Any] | None = None
        self._overlay: dict[str, Any] = {"live": "starting"}
        self._dirty = False
        self._coalescer = Coalescer(self._flush)
        self._views = 0
        self._ever_viewed = False
        self._shown = False
        self._final = False
        self._finishing = False
        self._notice: dict[str, str] | None = None
        self._busy: str | None = None
        self.poller: EndpointPoller = poller_for(deployment)
        self.on_msg(self._on_front_end)
        registry.add(self)

    # -- polling ----------------------------------------------------------------------------
    def wants_updates(self) -> bool:
        """Polled while not final or closed, and while some browser shows it (or none ever
        connected: a headless run, where the saved snapshot is the point)."""
        if self._final or self.comm is None:
            return False
        return self._views > 0 or not self._ever_viewed

    def on_tick(self, tick: Tick) -> bool:  # pragma: no cover - abstract
        """Read the new state and queue it; return whether something is in flight."""
        raise NotImplementedError

    def on_paused(self) -> None:
        self.push(live="paused")

    def start(self) -> None:
        """Begin live updates (after the first state is in place and displayed)."""
        self.poller.subscribe(self)

    # -- updates ----------------------------------------------------------------------------
    def push(self, state: dict[str, Any] | None = None, **fields: Any) -> None:
        """Queue a change; any thread. ``state`` replaces the view's state dict; ``fields``
        (e.g. ``live``) are kept on top of every later state until changed again."""
        with self._lock:
            if state is not None:
                self._next_state = state
            self._overlay.update(fields)
            self._dirty = True
        self._coalescer.poke()

    def _collect(self) -> dict[str, Any]:
        """The trait values to send now (called under the lock). One flush, one message."""
        if not self._dirty:
            return {}
        self._dirty = False
        base = self._next_state if self._next_state is not None else self.state
        self._next_state = None
        return {"state": {**base, **self._overlay, "notice": self._notice, "busy": self._busy}}

    def _flush(self) -> None:
        with self._lock:  # held while sending, so replies to the browser stay in order
            changes = self._collect()
            if not changes or self.comm is None:
                return
            with self.hold_sync():
                for name, value in changes.items():
                    setattr(self, name, value)

    def flush(self) -> None:
        self._coalescer.flush_now()

    # -- display ----------------------------------------------------------------------------
    def static_html(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def static_text(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def bundle(self, *, live: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": self.static_text(), "text/html": self.static_html()}
        widget_bundle = super()._repr_mimebundle_() if live else None
        if widget_bundle is not None:  # None only for a widget without a view (never for these)
            widget, _ = widget_bundle
            data[WIDGET_MIME] = widget[WIDGET_MIME]
        return data

    def show(self) -> None:
        from IPython.display import display

        display(self.bundle(), raw=True, display_id=self.display_id)
        self._shown = True

    def publish_snapshot(self, *, final: bool = False) -> None:
        """Refresh the notebook's saved snapshot of this view (any thread)."""
        if not self._shown:
            return
        from IPython.display import update_display

        with self._lock:
            data = self.bundle(live=not final)
        update_display(data, raw=True, display_id=self.display_id)

    def finish(self) -> None:
        """The subject reached its final state: send it, keep it as the static output, and stop
        polling for this view. ``final`` turns true only once all of it is out."""
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
        self.push(live="final")
        self.flush()
        self.publish_snapshot(final=True)
        self._final = True

    @property
    def final(self) -> bool:
        return self._final

    # -- messages from the browser ----------------------------------------------------------
    def _on_front_end(self, _widget: object, content: Any, _buffers: object) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "view":
            self._on_view(content.get("event"))
        elif kind == "action" and content.get("name") == "refresh":
            if not self._final:  # also resumes a poller that paused
                self.poller.subscribe(self)
                self.poller.wake(fresh=True)
        elif kind == "action" and isinstance(content.get("name"), str):
            self.on_action(content["name"], content)

    def _on_view(self, event: object) -> None:
        with self._lock:
            if event == "open":
                self._views += 1
                self._ever_viewed = True
            elif event == "close":
                self._views = max(0, self._views - 1)
        if event in ("open", "replay"):
            self.on_view_open()
        if event == "open" and not self._final:
            self.poller.subscribe(self)

    def on_view_open(self) -> None:
        """A browser view appeared (first render, page reload, notebook reopened)."""

    def on_action(self, name: str, content: dict[str, Any]) -> None:
        """A button in the view was pressed (subclasses)."""

    def act(self, label: str, fn: Callable[[], str]) -> None:
        """Run ``fn`` off the main thread; its return value (or its error) becomes the notice."""
        with self._lock:
            if self._busy:
                return
            self._busy = label
        self.push()

        def run() -> None:
            try:
                notice = {"level": "info", "text": fn()}
            except RunpodError as exc:
                text = exc.message + (f" {exc.hint}" if getattr(exc, "hint", None) else "")
                notice = {"level": "error", "text": redact(text)}
            except Exception as exc:  # shown to the user, not lost in a thread
                log.exception("runpod-jupyter: widget action %s failed", label)
                notice = {"level": "error", "text": redact(f"{label} failed: {type(exc).__name__}: {exc}")}
            with self._lock:
                self._busy, self._notice = None, notice
            self.push()
            self.poller.wake(fresh=True)

        _run_action(run)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.display_id}>"
