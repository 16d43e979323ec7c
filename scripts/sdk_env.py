"""A clean virtual environment holding one release of the ``runpod`` SDK, cached by version, so the
tests can run the unmodified SDK of another release (its management helpers, its worker, its job
client) against the embedded RunPod beside the release installed in .venv.

    python scripts/sdk_env.py 2.0.0rc2      # prints the environment's python (creates it once)

The environment lives under the user cache dir (``~/.cache/runpod-jupyter/sdk-<version>``, or
``$RUNPOD_JUPYTER_SDK_CACHE/sdk-<version>``); a stamp written after a complete install makes a
second call cost nothing, and a half-built one is rebuilt. uv builds it when available (seconds),
else ``python -m venv`` and pip. It never sees .venv's packages (no ``--system-site-packages``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

#: The SDK release the conformance tests run besides the one in .venv.
DEFAULT_VERSION = "2.0.0rc2"
STAMP = ".runpod-jupyter-sdk-ready"


def cache_root() -> Path:
    given = os.environ.get("RUNPOD_JUPYTER_SDK_CACHE")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runpod-jupyter"


def _python(env: Path) -> Path:
    return env / "bin" / "python"


def _want(version: str) -> str:
    """What the stamp must say: the SDK release and the interpreter it was built for."""
    return f"runpod=={version} python={sys.version_info.major}.{sys.version_info.minor} base={sys.base_prefix}\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time (two test runs may ask at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _uv() -> str | None:
    here = Path(sys.executable).with_name("uv")
    return str(here) if here.exists() else shutil.which("uv")


def _build(env: Path, version: str) -> None:
    interpreter = sys._base_executable if hasattr(sys, "_base_executable") else sys.executable  # noqa: SLF001
    uv = _uv()
    if uv is not None:
        subprocess.run([uv, "venv", "--quiet", "--python", interpreter, str(env)], check=True)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(_python(env)), "--prerelease=allow",
                        f"runpod=={version}"], check=True)
        return
    subprocess.run([interpreter, "-m", "venv", str(env)], check=True)
    subprocess.run([str(_python(env)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--pre", f"runpod=={version}"], check=True)


def ensure(version: str = DEFAULT_VERSION) -> Path:
    """The python of a clean environment with ``runpod==version``; built on the first call only."""
    env = cache_root() / f"sdk-{version}"
    stamp = env / STAMP
    want = _want(version)
    if stamp.exists() and stamp.read_text() == want and _python(env).exists():
        return _python(env)
    with _locked(cache_root() / f"sdk-{version}.lock"):
        if stamp.exists() and stamp.read_text() == want and _python(env).exists():
            return _python(env)  # another builder finished meanwhile
        shutil.rmtree(env, ignore_errors=True)
        _build(env, version)
        found = subprocess.run([str(_python(env)), "-c", "import runpod; print(runpod.__version__)"],
                               check=True, capture_output=True, text=True).stdout.strip()
        if found != version:
            raise RuntimeError(f"{env} holds runpod {found}, not {version}")
        stamp.write_text(want)
    return _python(env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version", nargs="?", default=DEFAULT_VERSION, help=f"runpod release (default {DEFAULT_VERSION})")
    args = parser.parse_args(argv)
    print(ensure(args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
