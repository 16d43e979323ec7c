"""Fixtures shared by the whole suite: isolated user dirs, a real embedded RunPod per module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import embedded_runpod  # noqa: E402

#: Fixtures that start a registry, JupyterLab or a browser: a test that asks for one is slow. Tests
#: that start workers or kernels carry the marker themselves. `pytest -m "not slow"` is the fast tier.
SLOW_FIXTURES = frozenset({"registry", "token_registry", "basic_registry", "lab", "page", "ui_runpod"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


_SCRUBBED = (
    "RUNPOD_API_KEY", "RUNPOD_JUPYTER_BACKEND", "RUNPOD_ENDPOINT_BASE_URL", "RUNPOD_API_BASE_URL",
    "RUNPOD_WEBHOOK_GET_JOB",
)


@pytest.fixture(scope="session", autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory):
    """Nothing the tests do touches the real user's data dir, runtime dir or RunPod key."""
    root = tmp_path_factory.mktemp("user")
    saved = {k: os.environ.get(k) for k in (*_SCRUBBED, "RUNPOD_JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR")}
    for key in _SCRUBBED:
        os.environ.pop(key, None)
    os.environ["RUNPOD_JUPYTER_DATA_DIR"] = str(root / "data")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(root / "runtime")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def local_runpod(tmp_path_factory: pytest.TempPathFactory):
    """A real embedded RunPod process for this module, stopped (with its workers) afterwards."""
    with embedded_runpod(tmp_path_factory.mktemp("local")) as instance:
        yield instance


@pytest.fixture()
def client(local_runpod):
    from runpod_jupyter.api import Client

    with Client(local_runpod.settings()) as api:
        yield api
