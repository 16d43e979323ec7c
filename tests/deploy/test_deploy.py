"""Deploying through the magics (an IPython shell, no kernel): bad input gets a short, clear
message and nothing is half-created; failed deploys undo exactly what they created."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from runpod_jupyter import embedded, journal
from runpod_jupyter.api import ConfigError, JobStatus, MissingApiKeyError, PayloadTooLargeError
from runpod_jupyter.endpoints import find_endpoint
from runpod_jupyter.errors import DeployError

HANDLER = """
import runpod
VERSION = {version}
def handler(job):
    return {{"version": VERSION, "echo": job["input"]}}
"""


def _deploy(ip, line: str, body: str):
    return ip.run_cell_magic("runpod_deploy", line, textwrap.dedent(body))


def _names(api) -> set[str]:
    return {e.name for e in api.list_endpoints()}


@pytest.mark.slow
def test_deploy_update_and_delete(ip, api):
    _deploy(ip, "first --local --gpu ADA_24", HANDLER.format(version=1))
    first = ip.user_ns["first"]
    job = first.run({"x": 1})
    assert job.result(timeout=60) == {"version": 1, "echo": {"x": 1}}
    assert journal.shared().get(job.id).status == "COMPLETED"
    image_before = api.get_endpoint(first.endpoint_id).image
    _deploy(ip, "first --local --gpu ADA_24", HANDLER.format(version=2))
    second = ip.user_ns["first"]
    assert second.endpoint_id == first.endpoint_id
    assert second.run_sync({"x": 2}, timeout=60)["version"] == 2
    # One PATCH through REST v2: the endpoint carries the new image itself, a new release says so.
    spec = api.get_endpoint(first.endpoint_id)
    assert spec.image != image_before and spec.image == f"local:{second.project.path}"
    assert spec.request_urls["run"].endswith(f"/v2/{first.endpoint_id}/run")
    newest = api.releases(first.endpoint_id).latest
    assert newest is not None and "image" in newest.fields
    assert not any(t.name.startswith(f"first-{first.project.content_hash[:10]}") for t in api.list_templates())
    ip.run_line_magic("runpod_delete", "first")
    assert "first" not in _names(api) and "first" not in ip.user_ns


@pytest.mark.slow
def test_rerunning_an_unchanged_cell_changes_nothing(ip, api):
    _deploy(ip, "same --local --gpu ADA_24", HANDLER.format(version=1))
    release = api.get_endpoint(ip.user_ns["same"].endpoint_id)
    with capture_output() as out:
        _deploy(ip, "same --local --gpu ADA_24", HANDLER.format(version=1))
    assert "already up to date" in out.stdout
    assert api.get_endpoint(ip.user_ns["same"].endpoint_id) == release
    ip.run_line_magic("runpod_delete", "same")


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        ("def handler(job):\n    return job[\n", "CellSyntaxError", "line"),
        ("def main(job):\n    return 1\n", "HandlerNotFoundError", "main"),
        ("def handler():\n    return 1\n", "HandlerSignatureError", "job"),
    ],
)
def test_bad_cells_are_refused_before_anything_is_created(ip, api, body, error, words):
    before = _names(api)
    result = ip.run_cell(f"%%runpod_deploy broken --local\n{body}")
    assert type(result.error_in_exec).__name__ == error
    assert words in str(result.error_in_exec)
    assert _names(api) == before
    rendered = result.error_in_exec._render_traceback_()
    assert len(rendered) <= 6 and not any("Traceback" in line for line in rendered)


def test_bad_arguments(ip):
    with pytest.raises(DeployError, match="Invalid variable name 'not-an-identifier'"):
        ip.run_cell_magic("runpod_deploy", "not-an-identifier --local", HANDLER.format(version=1))
    with pytest.raises(UsageError, match="Choose one of --local and --cloud"):
        ip.run_cell_magic("runpod_deploy", "both --local --cloud", HANDLER.format(version=1))
    with pytest.raises(DeployError) as caught:
        ip.run_cell_magic("runpod_deploy", "gpus --local --gpu RTX_9090", HANDLER.format(version=1))
    assert "AMPERE_16" in str(caught.value) and "RTX_9090" in str(caught.value)
    with pytest.raises(DeployError):
        ip.run_cell_magic("runpod_deploy", "scale --local --workers-min 3 --workers-max 1", HANDLER.format(version=1))
    with pytest.raises(UsageError):
        ip.run_cell_magic("runpod_deploy", "env --local --env NOEQUALS", HANDLER.format(version=1))


def test_cloud_without_a_key(ip, monkeypatch, tmp_path):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MissingApiKeyError) as caught:
        ip.run_cell_magic("runpod_deploy", "nokey --cloud", HANDLER.format(version=1))
    assert "--local" in str(caught.value)


@pytest.mark.slow
def test_bad_inputs_are_refused_before_sending(ip, api):
    _deploy(ip, "inputs --local --gpu ADA_24", HANDLER.format(version=1))
    dep = ip.user_ns["inputs"]
    recorded = len(journal.shared().jobs(endpoint_id=dep.endpoint_id))
    with pytest.raises(ConfigError) as caught:
        dep.run({"when": object()})
    assert "JSON" in str(caught.value)
    with pytest.raises(PayloadTooLargeError):
        dep.run({"blob": "x" * 10_500_000})
    assert len(journal.shared().jobs(endpoint_id=dep.endpoint_id)) == recorded  # nothing sent, nothing recorded
    ip.run_line_magic("runpod_delete", "inputs")


@pytest.mark.slow
def test_crash_on_first_deploy_is_undone(ip, api):
    with pytest.raises(DeployError) as caught:
        _deploy(ip, "crashy --local --gpu ADA_24", """
            import runpod
            def load_weights():
                raise RuntimeError("model weights missing")
            WEIGHTS = load_weights()
            def handler(job):
                return WEIGHTS
        """)
    message = str(caught.value)
    assert "crash" in message and "model weights missing" in message  # the worker's own log line
    assert "deleted endpoint" in message
    assert "crashy" not in _names(api)
    assert not any(t.name.startswith("crashy-") for t in api.list_templates())  # nothing orphaned


@pytest.mark.slow
def test_failed_update_restores_the_previous_release(ip, api):
    _deploy(ip, "stable --local --gpu ADA_24", HANDLER.format(version=1))
    endpoint_id = ip.user_ns["stable"].endpoint_id
    with pytest.raises(DeployError) as caught:
        _deploy(ip, "stable --local --gpu ADA_24", """
            import runpod
            def load_weights():
                raise ImportError("broken release")
            WEIGHTS = load_weights()
            def handler(job):
                return WEIGHTS
        """)
    assert "put endpoint" in str(caught.value) and "previous release" in str(caught.value)
    restored = ip.user_ns["stable"]
    assert restored.endpoint_id == endpoint_id
    assert restored.run_sync({}, timeout=60)["version"] == 1  # the old code still answers
    # The rollback is a PATCH back to the earlier values: a release of its own, newest first.
    history = api.releases(endpoint_id).releases
    assert len(history) >= 3 and "image" in history[0].fields
    assert history[0].diff[history[0].fields.index("image")][2] == history[1].diff[history[1].fields.index("image")][1]
    assert api.get_endpoint(endpoint_id).image == f"local:{restored.project.path}"
    ip.run_line_magic("runpod_delete", "stable")


def test_dry_run_writes_but_deploys_nothing(ip, api):
    before = _names(api)
    with capture_output() as out:
        _deploy(ip, "dry --local --dry-run", HANDLER.format(version=1))
    shown = out.outputs[0].data["text/plain"]
    assert "--- handler.py ---" in shown and "runpod.serverless.start" in shown
    from runpod_jupyter import deploy

    dry = deploy(HANDLER.format(version=1), "dry", backend="local", dry_run=True)
    assert "```python" in dry._repr_markdown_() and dry.project.handler_path.exists()
    assert _names(api) == before and "dry" not in ip.user_ns


def test_cloud_preflight_errors_stop_the_deploy(ip, api, monkeypatch):
    """The embedded RunPod stands in for the cloud here (its URLs through the SDK variables)."""
    instance = embedded.find()
    monkeypatch.setenv("RUNPOD_API_KEY", instance.api_key.reveal())
    monkeypatch.setenv("RUNPOD_API_BASE_URL", instance.url)
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", instance.rest_base)
    plain_secret = "hf_plainSecretValue123456789"
    with pytest.raises(DeployError) as caught:
        ip.run_cell_magic("runpod_deploy", f"leaky --cloud --env HF_TOKEN={plain_secret}", HANDLER.format(version=1))
    assert "RUNPOD_SECRET" in str(caught.value) and plain_secret not in str(caught.value)
    assert "leaky" not in _names(api)


@pytest.mark.slow
def test_cli_deploy_from_a_file(tmp_path, ip, api):
    source = tmp_path / "worker.py"
    source.write_text(HANDLER.format(version=7))
    env = {**os.environ}
    result = subprocess.run(
        [sys.executable, "-m", "runpod_jupyter.cli", "deploy", str(source), "--name", "from_cli", "--local", "--gpu", "ADA_24"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Deployed from_cli" in result.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "runpod_jupyter.cli", "endpoints", "--local"], capture_output=True, text=True, timeout=60, env=env,
    )
    assert "from_cli" in listed.stdout
    endpoint = find_endpoint(api, "from_cli")
    assert api.endpoint(endpoint.id).runsync({}, wait_ms=60_000).output["version"] == 7
    bad = subprocess.run(
        [sys.executable, "-m", "runpod_jupyter.cli", "deploy", str(tmp_path / "missing.py"), "--name", "x"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert bad.returncode == 2 and "not a file" in bad.stderr and "Traceback" not in bad.stderr
    from runpod_jupyter.endpoints import delete_endpoint

    delete_endpoint(api, endpoint.id)


@pytest.mark.slow
def test_job_states_reach_the_journal(ip, api):
    _deploy(ip, "journaled --local --gpu ADA_24", """
        import asyncio, runpod
        async def handler(job):
            await asyncio.sleep(job["input"])
            return "ok"
    """)
    dep = ip.user_ns["journaled"]
    slow, fast = dep.run(30), dep.run(0)
    assert fast.result(timeout=60) == "ok"
    assert slow.cancel() is JobStatus.CANCELLED
    entries = {e.id: e for e in journal.shared().jobs(endpoint_id=dep.endpoint_id)}
    assert entries[fast.id].status == "COMPLETED" and entries[fast.id].execution_ms is not None
    assert entries[slow.id].status == "CANCELLED"
    jobs = ip.run_line_magic("runpod_jobs", "journaled")
    assert {j.id for j in jobs} == {slow.id, fast.id}
    assert "COMPLETED" in jobs._repr_html_()
    ip.run_line_magic("runpod_delete", "journaled")
