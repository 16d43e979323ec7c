"""Secrets the endpoint's env holds never come back in clear: not through ``Deployment.logs()``
or ``%runpod_logs``, not in the embedded RunPod's worker log files or stored job rows."""

from __future__ import annotations

import pytest
from support import deploy, final, wait_for

from runpod_jupyter.deployment import Deployment

PLAIN = "plain-db-password-7f3a9c"  # secret by its name only
TOKEN = "hf_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7"  # secret by its shape, whatever the name
LEAKY = """
import os, runpod
print("starting with", os.environ["DB_PASSWORD"], os.environ["MODEL_ACCESS"], flush=True)
def handler(job):
    print("using", os.environ["DB_PASSWORD"], flush=True)
    raise RuntimeError("could not log in with " + os.environ["DB_PASSWORD"] + " " + os.environ["MODEL_ACCESS"])
runpod.serverless.start({"handler": handler})
"""


@pytest.mark.slow
def test_worker_logs_and_job_rows_are_redacted(local_runpod, client, tmp_path):
    spec, api = deploy(client, tmp_path, LEAKY, wait_idle=False, workers_max=1,
                       template_env={"DB_PASSWORD": PLAIN, "MODEL_ACCESS": TOKEN, "MODE": "fast"})
    job = api.run({})
    snap = final(api, job.id, timeout=120)
    dep = Deployment(name=spec.name, endpoint_id=spec.id, backend="local", settings=local_runpod.settings())
    lines = wait_for(lambda: [e for e in dep.logs(tail=500) if "using" in e["message"]], timeout=30,
                     what="the handler's log line")
    shown = repr(dep.logs(tail=500)) + repr(dep.logs(job=job.id)) + str(snap.error) + repr(lines)
    assert "****" in shown
    logs = b"".join(p.read_bytes() for p in (local_runpod.data_dir / "logs").rglob("*.log"))
    rows = b"".join(p.read_bytes() for p in local_runpod.data_dir.rglob("*.sqlite*"))
    on_disk = logs + _job_rows(local_runpod.data_dir, job.id)
    assert job.id.encode() in rows and b"using" in logs
    for secret in (PLAIN, TOKEN):
        assert secret not in shown
        assert secret.encode() not in on_disk
    client.delete_endpoint(spec.id)


def _job_rows(data_dir, job_id: str) -> bytes:
    """The stored row of a job, as the embedded RunPod keeps it (the template, with its env, is
    stored as RunPod stores it)."""
    import sqlite3

    [db] = [p for p in data_dir.rglob("*.sqlite") if p.is_file()]
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        found = b""
        for table in tables:
            for row in conn.execute(f"select * from {table}"):  # noqa: S608 (the store's own table names)
                text = repr(row)
                if job_id in text:
                    found += text.encode()
    return found
