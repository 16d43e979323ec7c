"""Package-level promises: light imports, credentials and backend choice, the key never shown,
the async client's fan-out, the CLI's doctor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runpod_jupyter import config
from runpod_jupyter.api import ApiError, AsyncClient, Client, ConfigError
from runpod_jupyter.config import Settings
from runpod_jupyter.secret import Secret, redact

MARKER = "rpa_MARKERKEY0001"
ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, **env}, cwd=ROOT,
    )


def test_import_is_light():
    result = _python(
        "import sys, runpod_jupyter\n"
        "heavy = [m for m in ('runpod', 'httpx', 'ipywidgets', 'anywidget', 'aiohttp', 'graphql') if m in sys.modules]\n"
        "print(heavy)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_credentials_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    assert config.cloud_credentials().source == "none"
    assert config.choose_backend() == "local"
    (tmp_path / ".runpod").mkdir()
    (tmp_path / ".runpod" / "config.toml").write_text('[default]\napi_key = "rpa_FROMFILE000000000"\n')
    assert config.cloud_credentials().source == "~/.runpod/config.toml"
    assert config.choose_backend() == "cloud"
    monkeypatch.setenv("RUNPOD_API_KEY", MARKER)
    creds = config.cloud_credentials()
    assert creds.source == "RUNPOD_API_KEY" and creds.api_key.reveal() == MARKER
    assert config.cloud_credentials("rpa_EXPLICIT000000000").source == "argument"
    monkeypatch.setenv("RUNPOD_JUPYTER_BACKEND", "local")
    assert config.choose_backend() == "local"
    assert config.choose_backend("cloud") == "cloud"
    monkeypatch.setenv("RUNPOD_JUPYTER_BACKEND", "moon")
    with pytest.raises(ConfigError) as caught:
        config.choose_backend()
    assert "local" in str(caught.value) and "cloud" in str(caught.value)


def test_base_urls_follow_the_sdk_variables(monkeypatch):
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", "http://127.0.0.1:1/v2/")
    monkeypatch.setenv("RUNPOD_API_BASE_URL", "http://127.0.0.1:2")
    settings = config.cloud_settings(api_key=MARKER)
    assert settings.rest_base == "http://127.0.0.1:1/v2"
    assert settings.graphql_url == "http://127.0.0.1:2/graphql"


def test_the_key_never_shows(monkeypatch):
    secret = Secret(MARKER)
    settings = Settings(
        backend="cloud", rest_base="http://127.0.0.1:9/v2", graphql_url="http://127.0.0.1:9/graphql", api_key=secret
    )
    client = Client(settings)
    for text in (repr(secret), str(secret), f"{secret}", repr(settings), repr(client)):
        assert MARKER not in text
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)
    # A server that echoes the key back in an error body: the exception still hides it.
    error = ApiError(f"server said: bad key {MARKER}", status=400, hint=f"use {MARKER}")
    assert MARKER not in str(error) and "****" in str(error)
    assert redact(f"Authorization: Bearer {MARKER}") == "Authorization: Bearer ****"
    client.close()


@pytest.mark.slow
def test_doctor_never_prints_the_key(local_runpod):
    env = {
        "RUNPOD_API_KEY": MARKER,
        "RUNPOD_ENDPOINT_BASE_URL": local_runpod.rest_base,
        "RUNPOD_API_BASE_URL": local_runpod.url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "runpod_jupyter.cli", "doctor"], capture_output=True, text=True,
        timeout=60, env={**os.environ, **env},
    )
    output = result.stdout + result.stderr
    assert MARKER not in output
    assert "from RUNPOD_API_KEY" in output
    assert "backend                cloud" in output
    assert "refused the API key" in output  # the embedded RunPod does not know this key
    assert result.returncode == 1


def test_doctor_local(local_runpod):
    result = subprocess.run(
        [sys.executable, "-m", "runpod_jupyter.cli", "doctor", "--local"], capture_output=True, text=True,
        timeout=60, env={**os.environ, "JUPYTER_RUNTIME_DIR": str(local_runpod.state_file.parent)},
    )
    assert "backend                local (chosen explicitly)" in result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_async_client_keeps_500_requests_in_flight():
    from aiohttp import web

    state = {"now": 0, "peak": 0, "served": 0}
    all_in = asyncio.Event()

    async def slow_health(request: web.Request) -> web.Response:
        """Held until all 500 are in flight (at most 10 s), however long they take to connect: a
        client that holds fewer at once never gets there."""
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        if state["now"] == 500:
            all_in.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_in.wait(), timeout=10)
        state["now"] -= 1
        state["served"] += 1
        return web.json_response({"jobs": {}, "workers": {"idle": 1}})

    ready = threading.Event()
    holder: dict = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        holder["loop"] = loop
        app = web.Application()
        app.router.add_get("/v2/{ep}/health", slow_health)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        loop.run_until_complete(site.start())
        holder["port"] = site._server.sockets[0].getsockname()[1]
        holder["runner"] = runner
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    base = f"http://127.0.0.1:{holder['port']}/v2"
    settings = Settings(backend="local", rest_base=base, graphql_url=base + "/graphql", api_key=Secret("local-key-123"))

    async def fan_out():
        async with AsyncClient(settings) as api:
            ep = api.endpoint("ep1")
            return await asyncio.gather(*(ep.health() for _ in range(500)), return_exceptions=True)

    try:
        results = asyncio.run(fan_out())
    finally:
        holder["loop"].call_soon_threadsafe(holder["loop"].stop)
        thread.join(10)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert state["served"] == 500
    assert state["peak"] == 500  # all 500 were in flight at once, on one pool


def test_load_ext_is_light():
    result = _python(
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_line_magic('load_ext', 'runpod_jupyter')\n"
        "assert 'runpod_deploy' in shell.magics_manager.magics['cell']\n"
        "heavy = [m for m in ('runpod', 'httpx', 'ipywidgets', 'anywidget', 'aiohttp', 'graphql') if m in sys.modules]\n"
        "print(heavy)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
