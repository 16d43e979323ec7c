"""Find, start and stop the one shared embedded RunPod (the ``local`` backend) process.

It runs as its own process (``python -m runpod_jupyter.local.server``), found through a state
file in Jupyter's runtime dir, so several kernels and the Lab sidebar share it and a kernel
restart loses nothing. Its key is generated once and kept in its data dir; the state file that
carries it is readable by the user only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Settings, runtime_dir
from .config import data_dir as default_data_dir
from .errors import ConfigError
from .secret import Secret

STATE_NAME = "runpod-jupyter-local.json"
START_TIMEOUT = 30.0
#: How the key reaches the server process: in its environment, never in argv, where `ps` shows it.
LOCAL_KEY_ENV = "RUNPOD_JUPYTER_LOCAL_KEY"


@dataclass(frozen=True)
class LocalInstance:
    """A running embedded RunPod: where it listens and the key it expects."""

    pid: int
    port: int
    api_key: Secret
    data_dir: Path
    state_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest_base(self) -> str:
        return f"{self.url}/v2"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def settings(self) -> Settings:
        return Settings(
            backend="local", rest_base=self.rest_base, graphql_url=self.graphql_url,
            api_key=self.api_key, key_source="embedded RunPod",
        )


def default_state_file() -> Path:
    return runtime_dir() / STATE_NAME


def write_state(path: Path, *, pid: int, port: int, api_key: str, data_dir: Path) -> None:
    """Written by the server once it listens; 0600 because it carries the local key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{pid}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"pid": pid, "port": port, "api_key": api_key, "data_dir": str(data_dir)}, handle)
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(port: int, pid: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
            return json.loads(response.read()).get("pid") == pid
    except (OSError, ValueError, urllib.error.URLError):
        return False


def find(state_file: Path | str | None = None) -> LocalInstance | None:
    """The running instance described by the state file, if it is alive and answers."""
    path = Path(state_file) if state_file else default_state_file()
    state = read_state(path)
    if not state:
        return None
    pid, port = int(state.get("pid", 0)), int(state.get("port", 0))
    if not pid or not port or not _alive(pid) or not _answers(port, pid):
        return None
    return LocalInstance(
        pid=pid, port=port, api_key=Secret(state["api_key"]), data_dir=Path(state["data_dir"]), state_file=path
    )


def start(
    *,
    data_dir: Path | str | None = None,
    state_file: Path | str | None = None,
    port: int = 0,
    api_key: str | None = None,
    gpus: str | None = None,
    tuning: dict[str, Any] | None = None,
    worker_quota: int | None = None,
) -> LocalInstance:
    """Reuse the running instance, or start one in the background and wait until it answers.
    ``worker_quota`` is the account's worker quota across endpoints (5, as on RunPod)."""
    path = Path(state_file) if state_file else default_state_file()
    found = find(path)
    if found is not None:
        return found
    with _lock(path):
        found = find(path)
        if found is not None:
            return found
        directory = Path(data_dir) if data_dir else default_data_dir() / "local"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "runpod_jupyter.local.server", "--state-file", str(path),
                "--data-dir", str(directory), "--port", str(port)]
        if gpus:
            argv += ["--gpus", gpus]
        if tuning:
            argv += ["--tuning", json.dumps(tuning)]
        if worker_quota is not None:
            argv += ["--worker-quota", str(worker_quota)]
        env = dict(os.environ)
        if api_key:
            env[LOCAL_KEY_ENV] = api_key  # not in argv, where `ps` would show it
        log_path = directory / "server.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        began = os.fstat(fd).st_size  # where this start's output begins
        with os.fdopen(fd, "ab") as log:  # Popen keeps its own copy of the descriptor
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = find(path)
            if found is not None and found.pid == process.pid:
                return found
            if process.poll() is not None:
                break
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
            reason, hint = f"it did not answer within {START_TIMEOUT:g} s", None
        else:
            reason, hint = _why_not_started(log_path, began)
        raise ConfigError(
            f"The embedded RunPod did not start: {reason}",
            hint=f"{hint + chr(10) if hint else ''}Its output is in {log_path}.",
        )


def _why_not_started(log_path: Path, began: int) -> tuple[str, str | None]:
    """What the server said when it gave up: its ``runpod-jupyter: ...`` line and the lines after
    it (the hint); else the last line it printed."""
    try:
        with open(log_path, "rb") as log:
            log.seek(began)
            lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    said = [i for i, line in enumerate(lines) if line.startswith("runpod-jupyter: ")]
    if said:
        first = said[-1]
        rest = "\n".join(lines[first + 1:])
        return lines[first].removeprefix("runpod-jupyter: "), rest or None
    if lines:
        return f"it exited after printing: {lines[-1]}", "Run `runpod-jupyter local serve` in a terminal to see more."
    return "it exited without a word", "Run `runpod-jupyter local serve` in a terminal to see why."


def stop(state_file: Path | str | None = None, timeout: float = 15.0) -> bool:
    """Stop the shared instance (it stops its workers first). True if one was running."""
    path = Path(state_file) if state_file else default_state_file()
    state = read_state(path)
    if not state or not _alive(int(state.get("pid", 0))):
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    path.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class _lock:
    """An exclusive file lock, so two kernels starting at once share one instance."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_suffix(".lock")

    def __enter__(self) -> _lock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
