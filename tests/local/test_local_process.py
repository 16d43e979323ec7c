"""The embedded RunPod as a process: `local serve` in the foreground, one shared background
instance found through the state file, bound to 127.0.0.1 only, its key kept out of sight."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import LOCAL_KEY

from runpod_jupyter import embedded

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers


def test_local_serve_in_the_foreground(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "runpod_jupyter.cli", "local", "serve", "--port", "0", "--api-key", LOCAL_KEY,
         "--gpus", "ADA_24=2,AMPERE_80=0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(4)]
        rest = next(line for line in lines if "REST" in line).split()[1]
        graphql = next(line for line in lines if "GraphQL" in line).split()[1]
        assert rest.startswith("http://127.0.0.1:") and rest.endswith("/v2")
        answer = httpx.post(
            graphql, json={"query": "{ myself { clientBalance } }"}, headers={"Authorization": f"Bearer {LOCAL_KEY}"}
        )
        assert answer.json()["data"]["myself"]["clientBalance"] > 0
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0


def test_one_shared_instance(tmp_path):
    state = tmp_path / "state.json"
    first = embedded.start(data_dir=tmp_path / "data", state_file=state)
    try:
        assert embedded.start(data_dir=tmp_path / "data", state_file=state).pid == first.pid
        # Another process (a second kernel, the Lab server) finds the same instance.
        found = subprocess.run(
            [sys.executable, "-c", f"from runpod_jupyter import embedded; print(embedded.find({str(state)!r}).pid)"],
            capture_output=True, text=True, timeout=60,
        )
        assert found.stdout.strip() == str(first.pid)
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o600  # it holds the key
        cmdline = Path(f"/proc/{first.pid}/cmdline").read_bytes()
        assert first.api_key.reveal().encode() not in cmdline
        listening = subprocess.run(["cat", "/proc/net/tcp"], capture_output=True, text=True).stdout
        port_hex = f"{first.port:04X}"
        local_addresses = [line.split()[1] for line in listening.splitlines()[1:] if line.split()[1].endswith(":" + port_hex)]
        assert local_addresses and all(a.startswith("0100007F") for a in local_addresses)  # 127.0.0.1 only
    finally:
        assert embedded.stop(state_file=state)
    assert embedded.find(state) is None
    assert not embedded.stop(state_file=state)
