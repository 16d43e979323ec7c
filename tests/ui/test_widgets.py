"""The live views in a real JupyterLab and browser: a notebook deploys an endpoint and runs a
streaming job; the page shows the chunks as they arrive and the image chunk as an <img>, the
endpoint's actions work from the view, and each view leaves a readable static snapshot."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import nbformat
import pytest
from lab_page import run_next_cell, wait_for_kernel_idle
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers


def _png(width: int = 120, height: int = 48) -> str:
    """A small gradient PNG, base64: a real image for the stream to carry."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, 90 + y * 3, 255 - x * 255 // width)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def _cells() -> list[str]:
    return [
        f"%load_ext runpod_jupyter\nIMAGE = 'data:image/png;base64,{_png()}'",
        "%%runpod_deploy painter --local --gpu ADA_24 --workers-max 1 --idle-timeout 300 --capture IMAGE\n"
        "import time\n"
        "import runpod\n"
        "def handler(job):\n"
        "    n = job['input']['n']\n"
        "    for i in range(n):\n"
        "        runpod.serverless.progress_update(job, f'{i + 1}/{n}')\n"
        "        time.sleep(job['input']['delay'])\n"
        "        yield f'chunk {i}\\n'\n"
        "        if i == 2:\n"
        "            yield {'image': IMAGE, 'step': i}\n",
        "job = painter.run({'n': 10, 'delay': 0.7})\njob",
        "painter.map([{'n': 'x', 'delay': 0}, {'n': 2, 'delay': 1.5}, {'n': 2, 'delay': 1.5}])",
    ]


def _luminance(page: Page, selector: str, prop: str) -> float:
    """0 (black) to 1 (white): the computed colour of ``prop`` on the first match."""
    rgb = page.evaluate(
        "([sel, prop]) => getComputedStyle(document.querySelector(sel))[prop].match(/[0-9.]+/g).slice(0, 3).map(Number)",
        [selector, prop],
    )
    return (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255


def test_views_stream_live_and_leave_a_snapshot(page: Page, lab, ui_runpod, console_errors, docs_dir):
    expect.set_options(timeout=60_000)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in _cells()])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, lab.root / "widgets.ipynb")

    page.set_viewport_size({"width": 1280, "height": 1500})
    page.goto(lab.page_url("lab/tree/widgets.ipynb"))
    wait_for_kernel_idle(page)
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    run_next_cell(page)
    run_next_cell(page)

    # The deploy cell shows the endpoint view: backend, an idle worker, settings, no problems.
    endpoint = page.locator(".rpj-endpoint")
    expect(endpoint.locator(".rpj-badge")).to_have_text("LOCAL")
    expect(endpoint.locator(".rpj-title")).to_have_text("painter")
    expect(endpoint.locator('.rpj-chip[data-state="idle"] b')).to_have_text("1")
    expect(endpoint).to_contain_text("ADA_24")
    expect(endpoint.locator(".rpj-ok-text")).to_have_text("No problems found.")
    expect(endpoint.locator(".rpj-confirm")).to_be_hidden()  # asks only once Delete… is pressed

    # The job streams: early chunks are on the page while later ones are still to come.
    run_next_cell(page)
    job = page.locator(".rpj-job")
    stream = job.locator(".rpj-stream")
    expect(stream).to_contain_text("chunk 1")
    assert "chunk 9" not in stream.inner_text()
    expect(job.locator(".rpj-status")).to_have_text("IN_PROGRESS")
    expect(endpoint.locator('.rpj-chip[data-state="running"] b')).to_have_text("1")

    # The image chunk is an <img>, shown while the stream goes on.
    image = stream.locator("img")
    expect(image).to_be_visible()
    assert image.get_attribute("src").startswith("data:image/png;base64,iVBOR")
    assert page.evaluate("img => img.naturalWidth", image.element_handle()) == 120
    expect(job.locator(".rpj-progress-text")).to_contain_text("/10")
    expect(stream).to_contain_text("chunk 4")
    assert "chunk 9" not in stream.inner_text()
    page.locator(".jp-Notebook .jp-Cell").nth(1).scroll_into_view_if_needed()
    top = page.locator(".jp-Notebook .jp-Cell").nth(1).bounding_box()
    bottom = job.bounding_box()
    page.screenshot(path=str(docs_dir / "widgets.png"), clip={
        "x": top["x"] - 40, "y": top["y"] - 8, "width": top["width"] + 48,
        "height": bottom["y"] + bottom["height"] - top["y"] + 16})

    # Final: the live view gives way to a static snapshot that keeps the stream and the image.
    snapshot = page.locator(".runpod-jupyter-static[data-kind='job']")
    expect(snapshot).to_contain_text("COMPLETED")
    expect(snapshot).to_contain_text("chunk 9")
    expect(snapshot.locator("img")).to_have_count(1)
    expect(job).to_have_count(0)
    expect(endpoint.locator('.rpj-chip[data-job="completed"] b')).to_have_text("1")

    # A batch: counts by status, and its failure listed while the other jobs still run; then its snapshot.
    run_next_cell(page)
    batch = page.locator(".rpj-batch")
    expect(batch.locator(".rpj-title")).to_have_text("Batch of 3")
    expect(batch.locator('.rpj-chip[data-status="FAILED"] b')).to_have_text("1")
    expect(batch.locator(".rpj-failures")).to_contain_text("#0")
    expect(page.locator(".runpod-jupyter-static[data-kind='batch']")).to_contain_text("3/3 done")
    expect(batch).to_have_count(0)

    # The dark theme: the views take their colours from JupyterLab's variables.
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    expect(page.locator('body[data-jp-theme-light="false"]')).to_have_count(1)
    expect(page.locator("#jupyterlab-splash")).to_have_count(0)
    assert _luminance(page, ".rpj-endpoint", "backgroundColor") < 0.3
    assert _luminance(page, ".rpj-endpoint .rpj-title", "color") > 0.6
    endpoint.screenshot(path=str(docs_dir / "widgets-dark.png"))

    # Actions: scale from the view, then delete after confirming.
    inputs = endpoint.locator("input[type=number]")
    inputs.nth(1).fill("2")
    endpoint.get_by_role("button", name="Scale").click()
    expect(endpoint.locator(".rpj-notice")).to_contain_text("Workers now 0-2")
    expect(endpoint).to_contain_text("min 0 · max 2")
    endpoint.get_by_role("button", name="Delete…").click()
    expect(endpoint.locator(".rpj-confirm")).to_contain_text("Delete endpoint painter")
    endpoint.locator(".rpj-confirm").get_by_role("button", name="Delete").click()
    static = page.locator(".runpod-jupyter-static[data-kind='endpoint']")
    expect(static).to_contain_text("Deleted")
    expect(endpoint).to_have_count(0)

    assert console_errors == [], json.dumps(console_errors, indent=1)
