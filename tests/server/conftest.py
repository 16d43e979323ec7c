"""The sidebar API on a real jupyter_server (pytest-jupyter) against real embedded RunPods.

Run with ``-p pytest_jupyter.jupyter_server`` (scripts/test.sh does). ``local`` is the module's
embedded RunPod; ``cloud`` is a second one that stands in for RunPod itself: it is reached
through ``RUNPOD_API_KEY`` / ``RUNPOD_ENDPOINT_BASE_URL`` / ``RUNPOD_API_BASE_URL`` exactly as
the cloud is, with a marker key that must never reach the browser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import embedded_runpod

MARKER_KEY = "marker-cloud-key-5Hq8ZtV2"
PLUGIN = "pytest_jupyter.jupyter_server"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the plugin there is no server to test: say how to run these, do not error."""
    if config.pluginmanager.has_plugin(PLUGIN):
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=f"run with -p {PLUGIN} (scripts/test.sh does)")
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def cloud_runpod(tmp_path_factory: pytest.TempPathFactory):
    with embedded_runpod(tmp_path_factory.mktemp("cloud"), api_key=MARKER_KEY) as instance:
        yield instance


@pytest.fixture()
def cloud_env(monkeypatch: pytest.MonkeyPatch, cloud_runpod):
    """Point the cloud backend at the stand-in, with the marker key."""
    monkeypatch.setenv("RUNPOD_API_KEY", MARKER_KEY)
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", cloud_runpod.rest_base)
    monkeypatch.setenv("RUNPOD_API_BASE_URL", cloud_runpod.url)
    return cloud_runpod


@pytest.fixture()
def sidebar_options(local_runpod) -> dict[str, Any]:
    return {"local_state_file": str(local_runpod.state_file), "overview_ttl": 0.0, "request_timeout": 5.0}


@pytest.fixture()
def local_off(sidebar_options, tmp_path):
    """Point the extension at a state file no embedded RunPod wrote (request before ``api``)."""
    path = tmp_path / "no-local-runpod.json"
    sidebar_options["local_state_file"] = str(path)
    return path


@pytest.fixture()
def jp_server_config(sidebar_options):
    return {"ServerApp": {"jpserver_extensions": {"runpod_jupyter": True}}, "RunpodSidebar": sidebar_options}


class Api:
    """Calls the sidebar API; every answer is checked for the keys before it is returned."""

    def __init__(self, fetch: Any, secrets: list[str]) -> None:
        self._fetch = fetch
        self.secrets = secrets

    async def call(self, method: str, path: str, body: Any = None, *, params: dict | None = None,
                   headers: dict | None = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"method": method, "raise_error": False, "params": params, "headers": headers}
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = b""
        response = await self._fetch("runpod-jupyter", "api", *path.split("/"), **kwargs)
        text = response.body.decode()
        for secret in self.secrets:
            assert secret not in text, f"a key reached the browser in {method} {path}"
        assert "Traceback" not in text
        return response.code, json.loads(text) if text else None

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("POST", path, body)

    async def delete(self, path: str) -> tuple[int, Any]:
        return await self.call("DELETE", path)


@pytest.fixture()
def marker_key() -> str:
    return MARKER_KEY


@pytest.fixture()
def api(jp_fetch, local_runpod) -> Api:
    return Api(jp_fetch, [MARKER_KEY, local_runpod.api_key.reveal()])
