"""runpod-jupyter: a notebook function becomes a RunPod serverless endpoint, watched live.

Importing this package is cheap on purpose: nothing heavy (``runpod``, ``httpx``, widgets) is
imported until it is used. ``%load_ext runpod_jupyter`` registers the magics the same way.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

# Public names resolved on first use (PEP 562), so `import runpod_jupyter` stays fast.
_LAZY = {
    "deploy": ("runpod_jupyter.deployer", "deploy"),
    "Deployment": ("runpod_jupyter.deployment", "Deployment"),
    "Job": ("runpod_jupyter.deployment", "Job"),
    "Client": ("runpod_jupyter.api", "Client"),
    "AsyncClient": ("runpod_jupyter.api", "AsyncClient"),
    "RunpodError": ("runpod_jupyter.errors", "RunpodError"),
    "remote": ("runpod_jupyter.hot", "remote"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'runpod_jupyter' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext runpod_jupyter``: register the magics (their modules load lazily)."""
    from .magics import register

    register(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "runpod-jupyter"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "runpod_jupyter.server"}]
