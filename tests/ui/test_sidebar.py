"""The RunPod sidebar in a real JupyterLab: endpoints deployed from Python and from a notebook
appear live, with worker states, queue counts and jobs; purge, scale and delete work from it."""

from __future__ import annotations

import json
import re
import time

import nbformat
import pytest
from lab_page import run_next_cell, wait_for_kernel_idle
from playwright.sync_api import Page, expect
from support import deploy, wait_for

from runpod_jupyter import journal
from runpod_jupyter.api import Client

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers

ECHO = """
import runpod
def handler(job):
    return {"echo": job["input"]}
runpod.serverless.start({"handler": handler})
"""

NOTEBOOK = [
    "%load_ext runpod_jupyter",
    "%%runpod_deploy nbecho --local --gpu ADA_24 --workers-max 1 --idle-timeout 300\n"
    "def handler(job):\n"
    "    return {'echo': job['input'], 'from': 'a notebook'}",
    "job = nbecho.run({'greeting': 'hello'})\n"
    "print('RESULT', job.result(timeout=60))",
]

def count(row, key: str):
    return row.locator(f'.rp-Count[data-count="{key}"] b')


def confirm_dialog(page: Page, label: str) -> None:
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=label).click()
    expect(dialog).to_have_count(0)


def scale(page: Page, row, low: int, high: int) -> None:
    row.locator('[data-action="scale"]').click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator('input[name="workersMin"]').fill(str(low))
    dialog.locator('input[name="workersMax"]').fill(str(high))
    confirm_dialog(page, "Scale")
    expect(row.locator(".rp-Scale")).to_have_text(f"{low}–{high} workers")


def test_sidebar_follows_endpoints_jobs_and_acts(page: Page, lab, ui_runpod, console_errors, tmp_path, docs_dir):
    expect.set_options(timeout=30_000)
    with Client(ui_runpod.settings()) as client:
        spec, endpoint = deploy(client, tmp_path, ECHO, workers_max=1, idle_timeout=300)
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, lab.root / "runpod.ipynb")

        page.goto(lab.page_url("lab/tree/runpod.ipynb"))
        tab = page.locator('.jp-SideBar li[data-id="runpod-jupyter-sidebar"]')
        expect(tab).to_be_visible(timeout=60_000)
        tab.click()
        panel = page.locator("#runpod-jupyter-sidebar")
        expect(panel).to_be_visible()

        # The endpoint deployed from Python, with its idle worker; the account of the local backend.
        row = panel.locator(f'[data-endpoint-id="{spec.id}"]')
        expect(row.locator(".rp-Badge")).to_have_text("LOCAL")
        expect(row.locator('.rp-WorkerSegment[data-state="idle"]')).to_have_attribute("data-count", "1")
        expect(row.locator(".rp-WorkerSummary")).to_have_text("1 idle")
        expect(panel.locator('.rp-Backend[data-backend="local"] .rp-Balance')).to_have_text(re.compile(r"^\$\d+\.\d\d$"))
        expect(panel.locator('.rp-Backend[data-backend="cloud"]')).to_contain_text("No RunPod API key")

        # The palette command that opens an endpoint highlights its row.
        page.evaluate("id => window.jupyterapp.commands.execute('runpod-jupyter:open-endpoint', {id})", spec.id)
        expect(row).to_have_class(re.compile(r"\brp-mod-focused\b"))

        # The notebook deploys its own endpoint; it appears, idle, with nothing done yet.
        wait_for_kernel_idle(page)
        run_next_cell(page)
        run_next_cell(page)
        nb_row = panel.locator(".rp-Endpoint", has=page.locator(".rp-EndpointName", has_text="nbecho"))
        expect(nb_row.locator('.rp-WorkerSegment[data-state="idle"]')).to_have_attribute("data-count", "1", timeout=60_000)
        expect(count(nb_row, "completed")).to_have_text("0")

        # A job run from the notebook: its row appears and the endpoint's counts change.
        started = time.time()
        run_next_cell(page)
        mine = wait_for(
            lambda: [e for e in journal.shared().jobs(limit=50) if e.endpoint_name == "nbecho" and e.submitted_at >= started],
            timeout=60, what="the notebook's job in the journal",
        )
        job_id = mine[0].id
        job_row = panel.locator(f'[data-job-id="{job_id}"]')
        expect(job_row).to_have_attribute("data-status", "COMPLETED")
        expect(count(nb_row, "completed")).to_have_text("1")
        expect(page.locator(".jp-OutputArea-output", has_text="RESULT")).to_contain_text("a notebook")

        # Its detail: output and the timeline from the embedded RunPod.
        job_row.locator(".rp-JobRow").click()
        detail = job_row.locator(".rp-JobDetail")
        expect(detail.locator(".rp-Output")).to_contain_text('"greeting": "hello"')
        expect(detail.locator('.rp-Timeline li[data-event="COMPLETED"]')).to_have_count(1)
        panel.locator(".rp-Jobs").screenshot(path=str(docs_dir / "sidebar-job.png"))
        job_row.locator(".rp-JobRow").click()

        # Scale the Python endpoint to zero from the panel: its worker goes away.
        scale(page, row, 0, 0)
        expect(row.locator(".rp-WorkerSummary")).to_have_text("no workers")
        queued = [endpoint.run({"n": i}) for i in range(2)]
        expect(count(row, "inQueue")).to_have_text("2")
        expect(row.locator('.rp-Finding[data-code="workers-max-zero"]')).to_contain_text("Fix:")
        page.screenshot(path=str(docs_dir / "sidebar.png"))

        # Purge (confirmed): the queue empties, the jobs are gone.
        row.locator('[data-action="purge"]').click()
        confirm_dialog(page, "Purge")
        expect(count(row, "inQueue")).to_have_text("0")
        assert all(endpoint.status(j.id).status.value == "GONE" for j in queued)
        expect(panel.locator(".rp-Banner[role=status]")).to_contain_text("Purged 2 queued job(s)")

        # Scale back up: a worker starts and becomes idle again.
        scale(page, row, 0, 1)
        expect(row.locator('.rp-WorkerSegment[data-state="idle"]')).to_have_attribute("data-count", "1")

        # Delete (confirmed): scaled to zero, deleted with its template, gone from the panel.
        row.locator('[data-action="delete"]').click()
        confirm_dialog(page, "Delete")
        expect(row).to_have_count(0)
        assert client.get_endpoint(spec.id) is None
        expect(nb_row).to_have_count(1)

        # The dark theme: colours come from JupyterLab's variables.
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        expect(page.locator('body[data-jp-theme-light="false"]')).to_have_count(1)
        expect(page.locator("#jupyterlab-splash")).to_have_count(0)  # shown while themes switch
        panel.screenshot(path=str(docs_dir / "sidebar-dark.png"))

    assert console_errors == [], json.dumps(console_errors, indent=1)
