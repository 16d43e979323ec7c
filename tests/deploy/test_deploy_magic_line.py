"""What ``%%runpod_deploy`` makes of its line and what it tells: preflight advice shown when a
deploy succeeds, secret references that arrive as written, a bad name named as such. Endpoints
here have ``--workers-max 0``: nothing starts a worker."""

from __future__ import annotations

import pytest
from IPython.utils.capture import capture_output

from runpod_jupyter.deployment import Deployment
from runpod_jupyter.endpoints import find_endpoint
from runpod_jupyter.errors import DeployError, RunpodError
from runpod_jupyter.names import ENDPOINT_NAME_HINT

HANDLER = "import runpod\ndef handler(job):\n    return job['input']\n"
PLAIN = "plainvalue123456"


def test_preflight_advice_is_shown_when_the_deploy_succeeds(ip, api):
    with capture_output() as out:
        ip.run_cell_magic("runpod_deploy", f"advised --local --gpu ADA_24 --workers-max 0 --env HF_TOKEN={PLAIN}",
                          HANDLER)
    dep = ip.user_ns["advised"]
    assert any(f.code == "secret-in-env" for f in dep.findings)
    assert "warning:" in out.stdout and "HF_TOKEN" in out.stdout and "RUNPOD_SECRET" in out.stdout
    shown = out.outputs[-1].data
    for mime in ("text/plain", "text/html"):
        assert "HF_TOKEN" in shown[mime], mime  # the endpoint view (its static snapshot) too
    everything = out.stdout + "".join(shown.values())
    assert PLAIN not in everything
    ip.run_line_magic("runpod_delete", "advised")


def test_secret_references_reach_the_endpoint_as_written(ip, api):
    line = ("secretive --local --gpu ADA_24 --workers-max 0 --env HF_TOKEN={{ RUNPOD_SECRET_hf }} "
            "--env 'DB_PASSWORD={{ RUNPOD_SECRET_db }}' --env PLAIN=$HOME")
    with capture_output() as out:
        ip.run_cell_magic("runpod_deploy", line, HANDLER)
    dep = ip.user_ns["secretive"]
    assert api.get_endpoint(dep.endpoint_id).env == {
        "HF_TOKEN": "{{ RUNPOD_SECRET_hf }}", "DB_PASSWORD": "{{ RUNPOD_SECRET_db }}", "PLAIN": "$HOME",
    }
    assert not any(f.code.startswith("secret") for f in dep.findings), dep.findings
    assert "RUNPOD_SECRET" not in out.stdout
    ip.run_line_magic("runpod_delete", "secretive")


@pytest.mark.parametrize("value", ["{ RUNPOD_SECRET_hf }", "RUNPOD_SECRET_hf", "{{RUNPOD_SECRET_hf}", "{{ hf }}"])
def test_a_broken_secret_reference_is_warned_about(ip, value):
    with capture_output() as out:
        ip.run_cell_magic("runpod_deploy", f"broken_ref --local --dry-run --env 'HF_TOKEN={value}'", HANDLER)
    shown = out.outputs[-1].data["text/plain"]
    assert "secret-reference" in shown or "{{ RUNPOD_SECRET_" in shown
    from runpod_jupyter import deploy

    dry = deploy(HANDLER, "broken_ref", backend="local", dry_run=True, env={"HF_TOKEN": value})
    assert [f.level for f in dry.findings if f.code == "secret-reference"] == ["warning"]


@pytest.mark.parametrize("line", ["my endpoint --local", '"my endpoint" --local', "'my endpoint' --local --gpu ADA_24"])
def test_a_name_with_a_space_is_an_invalid_name(ip, line):
    with pytest.raises(DeployError) as caught:
        ip.run_cell_magic("runpod_deploy", line, HANDLER)
    assert (caught.value.message, caught.value.hint) == ("Invalid endpoint name 'my endpoint'.", ENDPOINT_NAME_HINT)


def test_a_deleted_endpoint_says_so(ip, api):
    ip.run_cell_magic("runpod_deploy", "goner --local --gpu ADA_24 --workers-max 0", HANDLER)
    dep = ip.user_ns["goner"]
    other = Deployment.attach("goner", backend="local")  # e.g. a handle from before a restart
    dep.delete()
    for call in (lambda: dep.run({}), lambda: dep.run_sync({}), dep.health, dep.purge_queue, lambda: other.run({})):
        with pytest.raises(RunpodError) as caught:
            call()
        text = str(caught.value)
        assert "deleted" in caught.value.message and "balance" not in text, text
        assert "%%runpod_deploy" in (caught.value.hint or "")
    assert find_endpoint(api, "goner") is None
