"""`local serve`'s options: the key without showing it in `ps`, the header-only client auth, and
the account's worker quota."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import termios
from pathlib import Path

import httpx
import pytest
from support import FAST, LOCAL_KEY, wait_for

from runpod_jupyter import embedded
from runpod_jupyter.api import ApiError, Client, EndpointSpec
from runpod_jupyter.cli import build_parser

BALANCE = {"query": "{ myself { clientBalance } }"}


def _serve(data_dir: Path, *args: str, env: dict[str, str] | None = None, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runpod_jupyter.cli", "local", "serve", "--data-dir", str(data_dir), *args],
        stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, **(env or {})}, start_new_session=True,
    )


def _graphql_url(process: subprocess.Popen[str]) -> str:
    for _ in range(6):
        line = process.stdout.readline()
        if "GraphQL" in line:
            return line.split()[1]
    raise AssertionError("local serve printed no GraphQL URL")


def _accepts(url: str, key: str) -> bool:
    answer = httpx.post(url, json=BALANCE, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return answer.status_code == 200


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0


def test_the_key_from_the_environment_never_shows_in_ps(tmp_path):
    key = "from-the-environment-5d1c"
    process = _serve(tmp_path, env={"RUNPOD_JUPYTER_LOCAL_KEY": key})
    try:
        assert _accepts(_graphql_url(process), key)
        assert key.encode() not in Path(f"/proc/{process.pid}/cmdline").read_bytes()
    finally:
        _stop(process)


def test_the_key_from_a_prompt_without_echo(tmp_path):
    key = "typed-at-the-prompt-93ab"
    leader, follower = pty.openpty()
    process = _serve(tmp_path, "--api-key", "-", stdin=follower)
    os.close(follower)
    try:
        # Type only once the prompt has turned echo off, as a person would after seeing it.
        wait_for(lambda: not termios.tcgetattr(leader)[3] & termios.ECHO, timeout=60, what="echo turned off")
        os.write(leader, f"{key}\n".encode())
        assert _accepts(_graphql_url(process), key)
        ready, _, _ = select.select([leader], [], [], 0.5)
        assert not ready or key.encode() not in os.read(leader, 4096)  # the terminal never showed it
    finally:
        _stop(process)
        os.close(leader)


def test_help_says_how_to_pass_the_key_and_the_quota():
    text = subprocess.run(
        [sys.executable, "-m", "runpod_jupyter.cli", "local", "serve", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    flat = " ".join(text.split())
    assert "RUNPOD_JUPYTER_LOCAL_KEY" in flat and "--api-key -" in flat and "--worker-quota" in flat


def test_client_routes_refuse_the_key_in_the_url(local_runpod):
    key = local_runpod.api_key.reveal()
    for path in ("/v2/nope/health", "/local/jobs"):
        answer = httpx.get(f"{local_runpod.url}{path}", params={"api_key": key}, timeout=10)
        assert answer.status_code == 401
        assert "Authorization: Bearer" in answer.json()["error"] and key not in answer.text
    graphql = httpx.post(f"{local_runpod.url}/graphql", params={"api_key": key}, json=BALANCE, timeout=10)
    assert graphql.status_code == 401
    # The header alone still works.
    assert _accepts(f"{local_runpod.url}/graphql", key)


def test_the_worker_quota_can_be_changed_locally(tmp_path):
    root = tmp_path
    instance = embedded.start(
        data_dir=root / "data", state_file=root / "state.json", api_key=LOCAL_KEY,
        tuning={**FAST, "worker_limit": 5}, worker_quota=2,
    )
    try:
        with Client(instance.settings()) as api:
            with pytest.raises(ApiError) as caught:
                api.save_endpoint(EndpointSpec(name="q", image=f"local:{root}", gpu_ids=("ADA_24",), workers_max=3))
            message = str(caught.value)
            assert "quota of 2" in message
            assert "workersMax" in message and "--workers-max" in message
            assert "delete" in message and "--worker-quota" in message
    finally:
        embedded.stop(state_file=instance.state_file)
    wait_for(lambda: embedded.find(root / "state.json") is None, timeout=10)
    args = build_parser().parse_args(["local", "serve", "--worker-quota", "12"])
    assert args.worker_quota == 12
