"""Terminal IPython: displaying a Deployment, a Job or a Batch prints plain text (no widget
library is imported), and ``_repr_mimebundle_`` offers the same snapshot as HTML."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from test_widgets_kernel import _delete_endpoints

from runpod_jupyter import embedded

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers

SCRIPT = textwrap.dedent('''
    import sys
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    shell = TerminalInteractiveShell.instance()
    shell.run_line_magic("load_ext", "runpod_jupyter")
    shell.run_cell_magic("runpod_deploy", "term --local --gpu ADA_24 --workers-max 1", """
    import runpod
    def handler(job):
        runpod.serverless.progress_update(job, "1/1")
        yield "streamed text"
    """)
    shell.run_cell("job = term.run({}); job.stream(timeout=60) and None; print('RESULT', job.result(timeout=60))")
    print("=== job")
    shell.run_cell("job")
    print("=== endpoint")
    shell.run_cell("term")
    print("=== batch")
    shell.run_cell("batch = term.map([{}, {}]); batch.wait(60) and None; batch")
    bundle = shell.user_ns["job"]._repr_mimebundle_()
    print("=== bundle", sorted(bundle), "<details>" in bundle["text/html"] or "<p>" in bundle["text/html"])
    print("WIDGETS_IMPORTED", "ipywidgets" in sys.modules or "anywidget" in sys.modules)
    shell.run_line_magic("runpod_delete", "term")
''')


def test_terminal_shows_text_snapshots_without_widgets(tmp_path):
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    finally:
        _delete_endpoints(("term",))  # normally the script's last line did
        embedded.stop()  # the instance the script started (shared runtime dir)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    job = out.split("=== job")[1].split("=== endpoint")[0]
    assert "[LOCAL] job" in job and "COMPLETED" in job and "streamed text" in job
    endpoint = out.split("=== endpoint")[1].split("=== batch")[0]
    assert "[LOCAL] endpoint 'term'" in endpoint and "workers:" in endpoint and "ADA_24" in endpoint
    batch = out.split("=== batch")[1].split("=== bundle")[0]
    assert "[LOCAL] batch of 2 on 'term': 2/2 done (2 COMPLETED)" in batch
    assert "=== bundle ['text/html', 'text/plain'] True" in out
    assert "WIDGETS_IMPORTED False" in out
    assert "<div" not in out.split("=== bundle")[0]  # the terminal prints text, not HTML
