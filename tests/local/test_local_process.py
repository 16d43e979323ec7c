"""The embedded RunPod as a process: `local serve` in the foreground, one shared background
instance found through the state file, bound to 127.0.0.1 only, its key kept out of sight."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import FAST, LOCAL_KEY, deploy, local_get, wait_for

from runpod_jupyter import embedded
from runpod_jupyter.api import Client, JobStatus

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


SLEEPY = """
import runpod, time
def handler(job):
    time.sleep(job["input"].get("sleep", 0))
    return {"slept": job["input"].get("sleep", 0)}
runpod.serverless.start({"handler": handler})
"""


def test_stopping_is_quick_and_a_running_job_is_retried_after_a_restart(tmp_path):
    root = tmp_path
    kwargs = dict(data_dir=root / "data", state_file=root / "state.json", api_key=LOCAL_KEY)
    instance = embedded.start(**kwargs)  # the platform's timings: job-take held 15 s
    try:
        with Client(instance.settings()) as api:
            spec, idle = deploy(api, root, SLEEPY, workers_max=1)
            _, busy = deploy(api, root, SLEEPY, workers_max=1)
            job = busy.run({"sleep": 30})
            wait_for(lambda: busy.status(job.id).status is JobStatus.IN_PROGRESS, what="the job to start")
        pids = [w["pid"] for ep in (spec.id, busy.id) for w in local_get(instance, f"/local/endpoints/{ep}/workers")["workers"]]
        started = time.monotonic()
        assert embedded.stop(state_file=instance.state_file)
        took = time.monotonic() - started
        assert took < 8, f"stopping took {took:.1f} s"  # it took about 15 s with one idle worker
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        instance = embedded.start(**{**kwargs, "tuning": {**FAST, "max_job_retries": 0}})
        with Client(instance.settings()) as api:
            events = local_get(instance, f"/local/jobs/{job.id}")["events"]
            assert [e[2] for e in events if e[1] == "RETRY"] == ["the embedded RunPod restarted while the job ran"]
            assert api.endpoint(busy.id).status(job.id).status in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)
    finally:
        embedded.stop(state_file=instance.state_file)
