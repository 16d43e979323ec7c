"""Workers forked by the embedded RunPod's fork server: the SDK's real worker loop, with exactly the
env, cwd, HOME, session and exit codes of a worker started as a new process, and the plain path
when the fork server is off, cannot be used, or was killed."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest
from support import deploy, embedded_runpod, local_get, wait_for

from runpod_jupyter.api import Client
from runpod_jupyter.local.forkserver import MARKER_ENV, ForkServer

USER_KEY = "rpa_MARKER_forkserver_user"
SECRET = "hf-secret-value-7d1c9e"

ENV_PROBE = """
import os, sys, pathlib, runpod
from runpod.serverless.modules import worker_state
print("the secret is", os.environ["HF_TOKEN"], flush=True)
def handler(job):
    environ = pathlib.Path("/proc/self/environ").read_bytes()
    return {
        "cwd": os.getcwd(), "home": os.environ["HOME"], "argv": sys.argv, "file": __file__,
        "path0": sys.path[0], "greeting": os.environ.get("GREETING"),
        "secret_ok": os.environ.get("HF_TOKEN") == "SECRET",
        "cloud_key": os.environ.get("RUNPOD_API_KEY"), "sdk_key": runpod.api_key,
        "key_in_proc": b"USER_KEY" in environ, "env_keys": sorted(os.environ),
        "worker_id": worker_state.WORKER_ID, "pod_id": os.environ["RUNPOD_POD_ID"],
        "session_leader": os.getsid(0) == os.getpid(), "main": __name__,
    }
runpod.serverless.start({"handler": handler})
""".replace("SECRET", SECRET).replace("USER_KEY", USER_KEY)

ECHO = """
import runpod
runpod.serverless.start({"handler": lambda job: {"echo": job["input"]}})
"""


@pytest.fixture(scope="module")
def user_runpod(tmp_path_factory):
    """An embedded RunPod started by a user whose environment holds a RunPod key, a key in
    ``~/.runpod/config.toml`` and a secret the templates refer to."""
    root = tmp_path_factory.mktemp("fork")
    home = root / "user-home"
    (home / ".runpod").mkdir(parents=True)
    (home / ".runpod" / "config.toml").write_text(f'[default]\napi_key = "{USER_KEY}"\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("RUNPOD_API_KEY", USER_KEY)
        patch.setenv("hf_token", SECRET)
        (root / "server").mkdir()
        with embedded_runpod(root / "server") as instance:
            patch.undo()
            yield instance


@pytest.fixture()
def user_client(user_runpod):
    with Client(user_runpod.settings()) as api:
        yield api


def _workers(instance, endpoint_id: str) -> list[dict]:
    return local_get(instance, f"/local/endpoints/{endpoint_id}/workers")["workers"]


def _logs(instance, worker_id: str) -> list[dict]:
    return local_get(instance, "/local/logs", worker_id=worker_id)["lines"]


def _started_how(instance, worker_id: str) -> str:
    line = next(line["message"] for line in _logs(instance, worker_id) if "worker started" in line["message"])
    return "forked" if "forked by the fork server" in line else "new process"


def _group(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry.name)) == pgid and _state(int(entry.name)) != "Z":
                    members.append(int(entry.name))
    return members


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _fork_server_pid(instance) -> int | None:
    """The zygote: a child of the server whose environment names the server's data dir."""
    marker = f"{MARKER_ENV}={instance.data_dir}".encode() + b"\0"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == instance.pid and stat[0] != "Z" and (environ.startswith(marker) or b"\0" + marker in environ):
            return int(entry.name)
    return None


def test_only_the_default_command_is_forked(tmp_path):
    forks = ForkServer(home=tmp_path / "home", log_file=tmp_path / "fork.log", marker=str(tmp_path))
    env = {**forks.env, "PYTHONUNBUFFERED": "1", "GREETING": "hi"}
    assert forks.script_argv([sys.executable, "-u", "handler.py", "--x"], env) == ["handler.py", "--x"]
    assert forks.script_argv([sys.executable, "handler.py"], env) == ["handler.py"]  # unbuffered by env
    assert forks.script_argv(["/bin/sh", "-c", "python -u handler.py"], env) is None
    assert forks.script_argv([sys.executable, "-m", "handler"], env) is None
    assert forks.script_argv([sys.executable, "-u", "handler.py"], {**env, "PYTHONPATH": "/x"}) is None
    assert forks.script_argv([sys.executable, "-u", "handler.py"], {**env, "LC_ALL": "xx_XX.bogus"}) is None


@pytest.mark.slow
def test_a_forked_worker_runs_a_job_with_exactly_its_env(user_client, user_runpod, tmp_path):
    spec, ep = deploy(user_client, tmp_path, ENV_PROBE, workers_max=1, template_env={
        "GREETING": "hello from the template", "HF_TOKEN": "{{ RUNPOD_SECRET_hf_token }}",
    })
    out = ep.runsync({}, wait_ms=30_000).output
    worker = next(w for w in _workers(user_runpod, spec.id) if w["state"] in ("idle", "running"))
    assert _started_how(user_runpod, worker["id"]) == "forked"
    project = str(Path(out["file"]).parent)
    assert out["cwd"] == project and out["path0"] == project and out["argv"] == ["handler.py"]
    assert out["main"] == "__main__" and out["session_leader"]
    assert out["home"].endswith(f"/workers/{worker['id']}/home")
    assert out["greeting"] == "hello from the template" and out["secret_ok"]
    assert out["cloud_key"] is None and out["sdk_key"] is None and not out["key_in_proc"]
    assert out["worker_id"] == out["pod_id"] == worker["id"]  # the SDK read the worker's env, not the zygote's
    assert MARKER_ENV not in out["env_keys"] and "hf_token" not in out["env_keys"]
    said = [line["message"] for line in _logs(user_runpod, worker["id"]) if "the secret is" in line["message"]]
    assert said and SECRET not in said[0]


@pytest.mark.slow
def test_stopping_a_forked_worker_ends_its_whole_group(user_client, user_runpod, tmp_path):
    spec, ep = deploy(user_client, tmp_path, """
        import subprocess, runpod
        subprocess.Popen(["sleep", "300"])  # a child of the worker, in its group
        runpod.serverless.start({"handler": lambda job: 1})
    """, workers_max=1)
    worker = next(w for w in _workers(user_runpod, spec.id) if w["state"] == "idle")
    assert _started_how(user_runpod, worker["id"]) == "forked"
    wait_for(lambda: len(_group(worker["pid"])) >= 3, what="the worker, its heartbeat process and its child")
    user_client.delete_endpoint(spec.id)
    wait_for(lambda: not _group(worker["pid"]), what="the worker's whole process group to end")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "code", "logged"),
    [
        ("import runpod\nraise RuntimeError('weights missing')\n", 1, "RuntimeError: weights missing"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", 139, None),
        ("import sys\nsys.exit(3)\n", 3, None),
        (None, 2, "can't open file"),
    ],
    ids=["exception", "segfault", "sys-exit", "no-handler-file"],
)
def test_a_forked_worker_exits_with_the_code_a_process_would(user_client, user_runpod, tmp_path, source, code, logged):
    from runpod_jupyter.api import EndpointSpec, TemplateSpec

    project = tmp_path / "project"
    project.mkdir()
    if source is not None:
        (project / "handler.py").write_text(source)
    template = user_client.save_template(TemplateSpec(name=f"exit-{code}", image_name=f"local:{project}"))
    spec = user_client.save_endpoint(
        EndpointSpec(name=f"exit-{code}", template_id=template.id, gpu_ids=("ADA_24",), workers_max=1)
    )
    worker = wait_for(
        lambda: next((w for w in _workers(user_runpod, spec.id) if w["state"] == "unhealthy"), None),
        what="the crashed worker",
    )
    assert f"exit code {code}" in worker["reason"]
    assert _started_how(user_runpod, worker["id"]) == "forked"
    lines = [line["message"] for line in _logs(user_runpod, worker["id"])]
    if logged:
        assert any(logged in line for line in lines)
    if code == 1:  # the traceback starts in handler.py, as python's own would
        traceback = [line for line in lines if 'File "' in line]
        assert traceback and "handler.py" in traceback[0] and not any("forkserver" in line for line in lines)
    user_client.delete_endpoint(spec.id)


@pytest.mark.slow
def test_a_killed_fork_server_loses_no_worker(user_client, user_runpod, tmp_path):
    spec, ep = deploy(user_client, tmp_path, ECHO, workers_min=1, workers_max=1)
    first = next(w for w in _workers(user_runpod, spec.id) if w["state"] == "idle")
    zygote = _fork_server_pid(user_runpod)
    assert zygote is not None
    os.kill(zygote, signal.SIGKILL)
    # Its worker is ended with that reason (exit 137, not "out of memory"), and replaced.
    ended = wait_for(
        lambda: next((w for w in _workers(user_runpod, spec.id) if w["id"] == first["id"] and w["exitCode"]), None),
        what="the fork server's worker to be ended",
    )
    assert "fork server" in ended["reason"] and "memory" not in ended["reason"]
    assert not _group(first["pid"])
    assert ep.runsync({"n": 1}, wait_ms=60_000).output == {"echo": {"n": 1}}
    # The fork server is started again for later workers.
    wait_for(lambda: _fork_server_pid(user_runpod) not in (None, zygote), what="a new fork server")
    user_client.delete_endpoint(spec.id)


@pytest.mark.slow
def test_with_the_fork_server_off_workers_start_as_new_processes(tmp_path):
    from support import FAST

    from runpod_jupyter import embedded

    instance = embedded.start(
        data_dir=tmp_path / "data", state_file=tmp_path / "state.json", api_key="fork-off-key",
        tuning={**FAST, "fork_server": False},
    )
    try:
        assert _fork_server_pid(instance) is None
        with Client(instance.settings()) as client:
            spec, ep = deploy(client, tmp_path, ECHO, workers_max=1)
            assert ep.runsync({"n": 2}, wait_ms=30_000).output == {"echo": {"n": 2}}
            worker = next(w for w in _workers(instance, spec.id) if w["state"] in ("idle", "running"))
            assert _started_how(instance, worker["id"]) == "new process"
    finally:
        embedded.stop(state_file=instance.state_file)


@pytest.mark.slow
def test_the_fork_server_and_its_workers_never_outlive_the_server(tmp_path):
    from support import FAST

    from runpod_jupyter import embedded

    instance = embedded.start(
        data_dir=tmp_path / "data", state_file=tmp_path / "state.json", api_key="fork-crash-key", tuning=FAST,
    )
    try:
        with Client(instance.settings()) as client:
            spec, _ = deploy(client, tmp_path, ECHO, workers_max=1)
            worker = next(w for w in _workers(instance, spec.id) if w["state"] == "idle")
        zygote = _fork_server_pid(instance)
        assert zygote is not None and _started_how(instance, worker["id"]) == "forked"
    finally:
        os.kill(instance.pid, signal.SIGKILL)  # a crash: nothing is stopped in order
    wait_for(lambda: _state(zygote) == "Z" or not Path(f"/proc/{zygote}").exists(), what="the fork server to exit")
    wait_for(lambda: not _group(worker["pid"]), what="its worker's group to end")


def test_local_serve_can_turn_the_fork_server_off():
    from runpod_jupyter.cli import build_parser

    assert build_parser().parse_args(["local", "serve", "--no-fork-server"]).no_fork_server is True
    assert build_parser().parse_args(["local", "serve"]).no_fork_server is False
