"""The package's public surface: lazy, typed, and small."""

from __future__ import annotations

import inspect
import subprocess
import sys

import runpod_jupyter.image as build
from runpod_jupyter.errors import RunpodError


def test_import_runpod_jupyter_does_not_load_the_builder():
    code = "import sys, runpod_jupyter; print(sorted(m for m in sys.modules if m.startswith('runpod_jupyter.image')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_exist_and_errors_share_the_root():
    for name in build.__all__:
        assert hasattr(build, name), name
    for error in (build.ImageError, build.RegistryAuthError, build.RegistryUnreachableError, build.DependencyError,
                  build.NoBuilderError, build.ImageReferenceError):
        assert issubclass(error, RunpodError)


def test_entry_point_signature():
    params = inspect.signature(build.build_and_push).parameters
    assert list(params)[:3] == ["project_dir", "base", "target"]
    assert params["builder"].default == "auto" and params["progress"].kind is inspect.Parameter.KEYWORD_ONLY
    assert inspect.signature(build.build_and_push).return_annotation in ("BuildResult", build.BuildResult)
