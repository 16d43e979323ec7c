"""The embedded RunPod's data dir: one server at a time, readable by its user only, and a store
that cannot be read is named with what to do, never a traceback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import FAST, LOCAL_KEY, deploy, embedded_runpod, local_get

from runpod_jupyter import embedded
from runpod_jupyter.api import Client
from runpod_jupyter.errors import ConfigError

HELLO = """
import runpod
def handler(job):
    return {"ok": True}
runpod.serverless.start({"handler": handler})
"""


def _serve(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``local serve`` expected to refuse and exit at once."""
    return subprocess.run(
        [sys.executable, "-m", "runpod_jupyter.cli", "local", "serve", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.slow
def test_a_second_server_on_the_same_data_dir_refuses_and_touches_nothing(tmp_path):
    with embedded_runpod(tmp_path) as first, Client(first.settings()) as api:
        spec, _ = deploy(api, tmp_path, HELLO, workers_max=1)
        before = local_get(first, f"/local/endpoints/{spec.id}/workers")["workers"]
        # On the port the first one holds, as well as on a free one: either way nothing is touched.
        for port in (str(first.port), "0"):
            refused = _serve(first.data_dir, "--port", port)
            assert refused.returncode == 1, refused.stderr
            message = refused.stderr
            assert "Traceback" not in message
            assert f"pid {first.pid}" in message and first.url in message
            assert "connect(\"local\")" in message and "--data-dir" in message
        after = local_get(first, f"/local/endpoints/{spec.id}/workers")["workers"]
        assert [(w["id"], w["pid"], w["state"]) for w in after] == [(w["id"], w["pid"], w["state"]) for w in before]
        os.kill(before[0]["pid"], 0)  # still alive
        # The background start on the same data dir says the same.
        with pytest.raises(ConfigError) as caught:
            embedded.start(data_dir=first.data_dir, state_file=tmp_path / "other-state.json", tuning=FAST)
        assert f"pid {first.pid}" in str(caught.value)


def test_the_data_dir_is_readable_by_its_user_only(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    with embedded_runpod(tmp_path):
        pass
    # An existing data dir with loose modes (an older version's) is tightened on start.
    data.chmod(0o755)
    for path in data.iterdir():
        if path.is_file():
            path.chmod(0o644)
    with embedded_runpod(tmp_path) as instance:
        assert _mode(instance.data_dir) == 0o700
        files = [p for p in instance.data_dir.iterdir() if p.is_file()]
        names = {p.name for p in files}
        assert {"local.sqlite", "local.sqlite-wal", "local.sqlite-shm", "server.log"} <= names
        assert {p.name: _mode(p) for p in files} == dict.fromkeys(names, 0o600)


@pytest.mark.parametrize("content", [b"", b"this is not a database, it is a text file\n" * 200])
def test_a_store_that_cannot_be_read_is_named_with_what_to_do(tmp_path, content):
    data = tmp_path / "data"
    data.mkdir()
    store = data / "local.sqlite"
    store.write_bytes(content)
    refused = _serve(data, "--api-key", LOCAL_KEY)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert str(store) in refused.stderr and f"mv {store} " in refused.stderr
    assert store.read_bytes() == content  # nothing was written to it
    # The background start says the same to the kernel.
    with pytest.raises(ConfigError) as caught:
        embedded.start(data_dir=data, state_file=tmp_path / "state.json", api_key=LOCAL_KEY, tuning=FAST)
    assert str(store) in str(caught.value) and "server.log" in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_a_truncated_store_is_named_with_what_to_do(tmp_path):
    with embedded_runpod(tmp_path) as instance, Client(instance.settings()) as api:
        for i in range(30):
            api.save_template(_template(tmp_path, i))
    store = tmp_path / "data" / "local.sqlite"
    assert not (tmp_path / "data" / "local.sqlite-wal").exists()  # a clean stop checkpointed it
    store.write_bytes(store.read_bytes()[: store.stat().st_size // 2])
    refused = _serve(tmp_path / "data", "--api-key", LOCAL_KEY)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr and str(store) in refused.stderr


def _template(root: Path, i: int):
    from runpod_jupyter.api import TemplateSpec

    return TemplateSpec(name=f"t{i}", image_name=f"local:{root}", env={"PADDING": "x" * 2000})
