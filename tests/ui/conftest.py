"""A real JupyterLab (subprocess) in a real browser (Debian chromium through Playwright),
against a real embedded RunPod. The notebook kernels Lab starts share that RunPod and the job
journal with this process: same ``JUPYTER_RUNTIME_DIR`` and ``RUNPOD_JUPYTER_DATA_DIR``.

Run as its own pytest invocation (scripts/test.sh does): Playwright's sync API and the
pytest-jupyter event loop do not share a session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import FAST, LOCAL_KEY

TOKEN = "ui-test-token-4c1d"
LAB_START_TIMEOUT = 60.0
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Debian chromium is missing: apt-get install chromium fonts-liberation (scripts/setup.sh test does)")
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": _chromium(),
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}}


@pytest.fixture(scope="module")
def ui_runpod():
    """The embedded RunPod at the default state file, where Lab and its kernels look for it."""
    from runpod_jupyter import embedded

    state_file = embedded.default_state_file()
    if embedded.find(state_file) is not None:
        pytest.fail(f"an embedded RunPod already runs for {state_file}; the UI test needs its own")
    instance = embedded.start(state_file=state_file, api_key=LOCAL_KEY, tuning=FAST)
    yield instance
    embedded.stop(state_file=state_file)


@dataclass(frozen=True)
class Lab:
    url: str
    root: Path
    log: Path

    def page_url(self, path: str = "lab") -> str:
        return f"{self.url}/{path}?token={TOKEN}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _extension_installed() -> bool:
    return (Path(sys.prefix) / "share/jupyter/labextensions/runpod-jupyter/package.json").is_file()


@pytest.fixture(scope="module")
def lab(ui_runpod, tmp_path_factory):
    """``jupyter lab`` on a free port with a private HOME and config; stopped (with its kernels).
    One per test module, so workspaces and settings (the theme) do not leak between modules."""
    if not _extension_installed():
        pytest.fail("the runpod-jupyter lab extension is not installed in this environment: "
                    "run `bash scripts/setup.sh test` (it builds js/ with node)")
    base = tmp_path_factory.mktemp("lab")
    root, home = base / "notebooks", base / "home"
    root.mkdir()
    (home / ".jupyter" / "labconfig").mkdir(parents=True)
    # No "official Jupyter news?" toast over the panel.
    (home / ".jupyter" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    port = _free_port()
    env = {
        **os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "IPYTHONDIR": str(home / ".ipython"), "PYTHONUNBUFFERED": "1",
    }
    argv = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={base / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--RunpodSidebar.overview_ttl=0.5",
    ]
    log = base / "lab.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, f"{url}/api/status?token={TOKEN}", log)
        yield Lab(url=url, root=root, log=log)
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen, status_url: str, log: Path) -> None:
    deadline = time.monotonic() + LAB_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(status_url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"jupyter lab did not answer within {LAB_START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM lets Lab shut its kernels down; SIGKILL only if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture()
def docs_dir() -> Path:
    DOCS.mkdir(exist_ok=True)
    return DOCS


@pytest.fixture()
def console_errors(page) -> list[str]:
    """Every console error and uncaught exception of the page; a test ends asserting it is empty."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors
