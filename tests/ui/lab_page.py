"""What the browser tests ask of a JupyterLab page, in one place."""
from __future__ import annotations

from playwright.sync_api import Page

# JupyterLab exposes ``window.jupyterapp`` only once it has started, which can be after the page
# has loaded: until then (and until the notebook's kernel is up) the answer is "not yet", not an error.
KERNEL_IDLE = """() => {
  const app = window.jupyterapp;
  const widget = app && app.shell && app.shell.currentWidget;
  const session = widget && widget.sessionContext && widget.sessionContext.session;
  const kernel = session && session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""


def wait_for_kernel_idle(page: Page, timeout_ms: int = 60_000) -> None:
    """Wait until the current notebook's kernel is up and idle."""
    page.wait_for_function(KERNEL_IDLE, timeout=timeout_ms)


def run_next_cell(page: Page) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell-and-select-next')")
