"""``runpod-jupyter demo``: the quickstart notebook, run headless against an embedded RunPod of its
own, with a short summary. Everything it starts, it stops; it never touches the user's own
embedded RunPod, journal or key."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from .. import config

QUICKSTART = "quickstart.ipynb"


def notebooks_dir() -> Path:
    """The repository's notebooks/ (a clone), else the copy shipped inside the package."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "notebooks", package / "notebooks"):
        if (candidate / QUICKSTART).is_file():
            return candidate
    raise FileNotFoundError("the quickstart notebook is not installed with this copy of runpod-jupyter")


@contextmanager
def _isolated_env(root: Path) -> Iterator[dict[str, str]]:
    """Own runtime and data dirs (inherited by the kernel), and no cloud key: the demo is local."""
    changes = {"JUPYTER_RUNTIME_DIR": str(root / "runtime"), "RUNPOD_JUPYTER_DATA_DIR": str(root / "data")}
    saved = {k: os.environ.get(k) for k in (*changes, "RUNPOD_API_KEY", config.BACKEND_ENV)}
    os.environ.update(changes)
    os.environ.pop("RUNPOD_API_KEY", None)
    os.environ[config.BACKEND_ENV] = "local"
    try:
        yield changes
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _first_line(source: str) -> str:
    line = source.strip().splitlines()[0] if source.strip() else ""
    return line if len(line) <= 60 else line[:57] + "..."


def run_demo(output_dir: str | Path = "demo-output", out: TextIO | None = None) -> int:
    """Execute the quickstart cell by cell, print progress and a summary; 0 when every cell ran."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from .. import embedded, journal

    out = out or sys.stdout
    target = Path(output_dir).resolve()
    target.mkdir(parents=True, exist_ok=True)
    book = nbformat.read(notebooks_dir() / QUICKSTART, as_version=4)
    code_cells = [c for c in book.cells if c.cell_type == "code"]
    started = time.monotonic()
    failed: str | None = None
    timings: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="runpod-jupyter-demo-") as tmp, _isolated_env(Path(tmp)):
        print("runpod-jupyter demo: the quickstart against an embedded RunPod (no account needed)", file=out)
        instance = embedded.start()
        print(f"  embedded RunPod up at {instance.url} in {time.monotonic() - started:.1f} s", file=out)
        client = NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp}})
        try:
            if not _has_python_kernel():
                failed = ("starting a kernel: no Jupyter kernel named 'python3' is installed for "
                          f"{sys.executable} (pip install ipykernel)")
                raise _Stop
            with client.setup_kernel():
                for number, cell in enumerate(code_cells, 1):
                    index = book.cells.index(cell)
                    t0 = time.monotonic()
                    try:
                        client.execute_cell(cell, index)
                    except CellExecutionError as exc:
                        failed = f"cell {number} ({_first_line(cell.source)}): {str(exc).strip().splitlines()[-1]}"
                        break
                    seconds = time.monotonic() - t0
                    timings.append((_first_line(cell.source), seconds))
                    print(f"  [{number:>2}/{len(code_cells)}] {seconds:5.1f} s  {_first_line(cell.source)}", file=out)
        except _Stop:
            pass
        finally:
            entries = journal.Journal().jobs(limit=1000)
            embedded.stop()
    notebook_path = target / QUICKSTART
    nbformat.write(book, notebook_path)
    html_path = _write_html(book, target / "quickstart.html")
    _summary(out, entries, timings, time.monotonic() - started, notebook_path, html_path, failed)
    return 1 if failed else 0


class _Stop(Exception):
    """Nothing more to run; the summary says why."""


def _has_python_kernel() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return False
    return True


def _write_html(book, path: Path) -> Path | None:
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    body, _ = HTMLExporter().from_notebook_node(book)
    path.write_text(body, encoding="utf-8")
    return path


def _summary(out, entries, timings, total: float, notebook: Path, html: Path | None, failed: str | None) -> None:
    by_status: dict[str, int] = {}
    for entry in entries:
        by_status[entry.status] = by_status.get(entry.status, 0) + 1
    endpoints = sorted({f"{e.endpoint_name} ({e.endpoint_id})" for e in entries})
    deploy = next((s for line, s in timings if line.startswith("%%runpod_deploy")), None)
    ran = [e.execution_ms for e in entries if e.execution_ms is not None]
    print("", file=out)
    print("Summary", file=out)
    print(f"  endpoint      {', '.join(endpoints) or '(none)'} on the local backend", file=out)
    print(f"  jobs          {len(entries)}: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())), file=out)
    if deploy is not None:
        print(f"  deploy        {deploy:.1f} s (cell to ready worker)", file=out)
    if ran:
        print(f"  job run time  median {sorted(ran)[len(ran) // 2] / 1000:.2f} s", file=out)
    print(f"  total         {total:.1f} s", file=out)
    print(f"  notebook      {notebook}", file=out)
    if html is not None:
        print(f"  html          {html}", file=out)
    print_next_step(out, failed=failed)


def lab_command(cwd: Path | None = None) -> str:
    """The command that opens the quickstart in JupyterLab from this environment (where the
    server extension and the sidebar are installed), with paths relative to ``cwd`` when inside it."""
    import shlex

    here = (cwd or Path.cwd()).resolve()

    def shown(path: Path) -> str:
        try:
            return str(path.relative_to(here))
        except ValueError:
            return str(path)

    jupyter = Path(sys.executable).absolute().parent.resolve() / "jupyter"  # the bin dir, not the python it links to
    notebook = notebooks_dir() / QUICKSTART
    return f"{shlex.quote(shown(jupyter))} lab {shlex.quote(shown(notebook))}"


def print_next_step(out: TextIO, cwd: Path | None = None, failed: str | None = None) -> None:
    """The demo's closing lines: where it stopped, or how to see the same notebook live in JupyterLab."""
    if failed:
        print(f"\nThe demo stopped at {failed}", file=out)
        return
    print(f"\nAll cells ran ({datetime.now():%H:%M:%S}). To see the live widgets and the RunPod sidebar, "
          "open the quickstart in JupyterLab (the extension is already enabled there):", file=out)
    print(f"\n    {lab_command(cwd)}\n", file=out)


def add_parsers(sub: Any) -> None:
    """``demo [--output DIR]``, on the top-level subparsers."""
    demo = sub.add_parser("demo", help="run the quickstart notebook headless against the embedded RunPod")
    demo.add_argument("--output", default="demo-output", help="where the executed notebook and HTML go")
    demo.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_demo(output_dir=args.output)
