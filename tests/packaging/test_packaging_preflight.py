"""Preflight: every check, with a case that triggers it and one that must stay quiet."""

from __future__ import annotations

import importlib

import pytest

from runpod_jupyter.api.models import GPU_POOLS
from runpod_jupyter.packaging import Finding, PreflightOptions, has_errors, preflight

preflight_module = importlib.import_module("runpod_jupyter.packaging.preflight")

PLAIN = "def handler(job):\n    return job['input']\n"
SECRET = "hf_" + "Q" * 34  # shaped like a Hugging Face token


def codes(findings: list[Finding], level: str | None = None) -> list[str]:
    return [f.code for f in findings if level is None or f.level == level]


@pytest.fixture
def check(pkg):
    """Package a cell and run preflight on it: check(source, package_options, **preflight_options)."""

    def run(source: str = PLAIN, package_options: dict | None = None, **options) -> list[Finding]:
        project = pkg(source, **(package_options or {}))
        return preflight(project, PreflightOptions(**options))

    return run


# --------------------------------------------------------------------------- start-up work

LOADS_AT_START = """
from json import loads as from_pretrained_stub
import subprocess

class AutoModel:
    @staticmethod
    def from_pretrained(name):
        return name

model = AutoModel.from_pretrained("org/model")
subprocess.run(["true"])

def handler(job):
    return model, subprocess
"""


def test_heavy_startup_work_is_a_warning_with_the_line(check):
    found = [f for f in check(LOADS_AT_START, backend="local") if f.code == "heavy-startup"]
    assert [(f.level, f.line) for f in found] == [("warning", 10), ("warning", 11)]
    assert "loads a model" in found[0].message and "runs a subprocess" in found[1].message
    assert "RUNPOD_INIT_TIMEOUT" in found[0].fix and "lazily" in found[0].fix


def test_heavy_work_inside_the_handler_is_fine(check):
    source = "def handler(job):\n    import subprocess\n    return subprocess.run(['true']).returncode\n"
    assert "heavy-startup" not in codes(check(source))


def test_heavy_work_through_a_helper_called_at_module_level(check):
    source = """
    import time
    def load():
        time.sleep(30)
        return 1
    MODEL = load()
    def handler(job):
        return MODEL
    """
    [finding] = [f for f in check(source) if f.code == "heavy-startup"]
    assert finding.line == 6 and "calls load(), which sleeps" in finding.message


def test_big_and_endless_loops_at_start(check):
    source = """
    TABLE = []
    for i in range(1_000_000):
        TABLE.append(i)
    def handler(job):
        return len(TABLE)
    """
    assert "loops 1,000,000 times" in next(f.message for f in check(source) if f.code == "heavy-startup")
    small = source.replace("1_000_000", "10")
    assert "heavy-startup" not in codes(check(small))


def test_init_timeout_hint_for_slow_cold_starts_on_the_cloud(check):
    assert "init-timeout" in codes(check(LOADS_AT_START, backend="cloud"), "info")
    assert "init-timeout" not in codes(check(LOADS_AT_START, backend="cloud", env={"RUNPOD_INIT_TIMEOUT": "800"}))
    assert "init-timeout" not in codes(check(LOADS_AT_START, backend="local"))
    assert "init-timeout" not in codes(check(PLAIN, backend="cloud"))
    assert "init-timeout" in codes(check(PLAIN, backend="cloud", model_size_gb=30))


def test_an_invalid_init_timeout_is_an_error(check):
    assert "init-timeout-invalid" in codes(check(PLAIN, env={"RUNPOD_INIT_TIMEOUT": "ten minutes"}), "error")


def test_serverless_start_inside_a_function_is_an_error(check):
    source = """
    import runpod
    def handler(job):
        runpod.serverless.start({"handler": handler})
    """
    [finding] = [f for f in check(source) if f.code == "serverless-start"]
    assert finding.level == "error" and finding.line == 4


def test_a_top_level_serverless_start_is_removed_and_said(check):
    source = """
    import runpod
    def handler(job):
        return 1
    runpod.serverless.start({"handler": handler})
    """
    findings = check(source)
    assert "serverless-start" not in codes(findings)
    assert "serverless-start-removed" in codes(findings, "info")


# --------------------------------------------------------------------------- secrets


def test_plain_secret_env_values_are_errors_without_showing_the_value(check):
    env = {"HF_TOKEN": "plain-value-123", "AWS_SECRET_ACCESS_KEY": "abc123xyz", "API_KEY": "k-999"}
    options = PreflightOptions(env=env)
    found = [f for f in check(env=env) if f.code == "secret-in-env"]
    assert sorted(f.message.split()[3] for f in found) == ["API_KEY", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN"]
    assert all(f.level == "error" for f in found)
    assert "{{ RUNPOD_SECRET_hf_token }}" in next(f.fix for f in found if "HF_TOKEN" in f.message)
    shown = "\n".join(str(f) for f in found) + repr(options)
    for value in env.values():
        assert value not in shown


def test_secret_references_and_ordinary_vars_pass(check):
    env = {"HF_TOKEN": "{{ RUNPOD_SECRET_hf_token }}", "TOKENIZERS_PARALLELISM": "false",
           "AWS_REGION": "us-east-1", "MAX_TOKENS": "512", "EMPTY_KEY": ""}
    assert "secret-in-env" not in codes(check(env=env))


def test_a_token_shaped_value_is_caught_whatever_the_name(check):
    found = [f for f in check(env={"MODEL_ACCESS": SECRET}) if f.code == "secret-in-env"]
    assert found and "Hugging Face token" in found[0].message and SECRET not in str(found[0])


def test_a_broken_secret_reference_is_a_warning_with_the_form_to_write(check):
    for value in ("{ RUNPOD_SECRET_hf }", "RUNPOD_SECRET_hf", "{{RUNPOD_SECRET_hf}"):
        [found] = [f for f in check(env={"HF_TOKEN": value}) if f.code.startswith("secret")]
        assert (found.code, found.level) == ("secret-reference", "warning")
        assert "{{ RUNPOD_SECRET_hf }}" in found.fix
    assert "secret-reference" not in codes(check(env={"HF_TOKEN": "{{ RUNPOD_SECRET_hf }}", "JSON": '{"a": {"b": 1}}'}))


def test_secrets_on_the_local_backend_are_warnings(check):
    assert codes(check(env={"HF_TOKEN": "plain"}, backend="local"), "warning") == ["secret-in-env"]


def test_secrets_in_docker_args(check):
    args = f"bash -c 'git clone https://{SECRET}@github.com/me/repo && python handler.py'"
    found = check(docker_args=args)
    [secret] = [f for f in found if f.code == "secret-in-docker-args"]
    assert secret.level == "error" and SECRET not in str(secret)
    assert "docker-args-override" in codes(found, "warning")
    assert "secret-in-docker-args" not in codes(check(docker_args="bash -c 'HF_TOKEN=$HF_TOKEN python x.py'"))
    assert "secret-in-docker-args" in codes(check(docker_args="env GH_TOKEN=abc123 python x.py"))


def test_empty_docker_args_say_nothing(check):
    assert not {"docker-args-override", "secret-in-docker-args"} & set(codes(check(docker_args="")))


def test_a_credential_in_the_code_would_be_baked_into_the_image(check):
    source = f"TOKEN = '{SECRET}'\ndef handler(job):\n    return TOKEN\n"
    [finding] = [f for f in check(source) if f.code == "secret-in-code"]
    assert finding.line == 1 and finding.level == "error" and SECRET not in str(finding)
    assert "secret-in-code" not in codes(check("TOKEN = 'hf_short'\ndef handler(job):\n    return TOKEN\n"))


# --------------------------------------------------------------------------- storage

WRITES = """
import os
OUT = "/workspace/outputs"
def handler(job):
    os.makedirs(OUT, exist_ok=True)
    return OUT
"""


def test_workspace_paths_with_a_volume_attached(check):
    found = [f for f in check(WRITES, volume="vol-1", env={"HF_HOME": "/workspace/hf"}) if f.code == "workspace-path"]
    assert [f.line for f in found] == [3, None]
    assert "/runpod-volume" in found[0].fix and "The env var HF_HOME" in found[1].message
    assert "workspace-path" not in codes(check(WRITES))  # no volume: nothing to confuse


def test_runpod_volume_paths_without_a_volume(check):
    source = WRITES.replace("/workspace", "/runpod-volume")
    assert "no-volume" in codes(check(source), "warning")
    assert "no-volume" not in codes(check(source, volume="vol-1"))


def test_container_disk_sizing(check):
    too_small = check(image_size_gb=8, container_disk_gb=30)
    [finding] = [f for f in too_small if f.code == "container-disk"]
    assert finding.level == "error" and "40 GB" in finding.message and "40" in finding.fix
    assert "container-disk" not in codes(check(image_size_gb=8, container_disk_gb=40))
    with_models = [f for f in check(image_size_gb=8, model_size_gb=28, container_disk_gb=60)
                   if f.code == "container-disk"]
    assert with_models and "68 GB" in with_models[0].message
    assert "container-disk" not in codes(check(image_size_gb=8, model_size_gb=28, container_disk_gb=60, volume="v"))
    assert codes(check(image_size_gb=8), "info").count("container-disk") == 1
    assert "container-disk" not in codes(check(image_size_gb=8, container_disk_gb=10, backend="local"))
    assert "container-disk" not in codes(check())


def test_model_placement_hint_for_hugging_face_models(check):
    source = LOADS_AT_START
    [finding] = [f for f in check(source) if f.code == "model-placement"]
    assert finding.level == "info" and "org/model" in finding.message and "cached" in finding.message
    assert "slowest" in next(f.message for f in check(source, volume="v") if f.code == "model-placement")
    assert "model-placement" not in codes(check(PLAIN))
    assert "model-placement" not in codes(check(source, backend="local"))


# --------------------------------------------------------------------------- GPUs


def test_unknown_gpu_ids_list_the_valid_ones(check):
    [finding] = [f for f in check(gpu_ids=["ADA24", "AMPERE_24"]) if f.code == "gpu-unknown"]
    assert finding.level == "error" and "Did you mean ADA_24?" in finding.message
    assert all(pool in finding.fix for pool in GPU_POOLS)
    assert "gpu-unknown" not in codes(check(gpu_ids="ADA_24,AMPERE_24"))


def test_a_single_gpu_pool_suggests_more(check):
    [finding] = [f for f in check(gpu_ids=["AMPERE_48"]) if f.code == "gpu-single-tier"]
    suggested = finding.fix.split("--gpu ")[1].rstrip(".").split(",")
    assert suggested[0] == "AMPERE_48" and len(suggested) > 1
    assert all(GPU_POOLS[g].memory_gb >= 48 for g in suggested)
    assert "gpu-single-tier" not in codes(check(gpu_ids=["AMPERE_48", "ADA_48_PRO"]))
    assert "gpu-single-tier" not in codes(check(gpu_ids=["AMPERE_48"], backend="local"))


# --------------------------------------------------------------------------- jobs


def test_base64_inputs_get_a_payload_hint(check):
    source = "import base64\ndef handler(job):\n    return len(base64.b64decode(job['input']['image']))\n"
    [finding] = [f for f in check(source) if f.code == "payload-base64"]
    assert finding.line == 3 and "10 MB" in finding.message and "URL" in finding.fix
    assert "payload-base64" not in codes(check(PLAIN))


@pytest.mark.parametrize("source, expected", [
    (PLAIN, "a sync function"),
    ("def handler(job):\n    yield 1\n", "a sync generator"),
    ("async def handler(job):\n    return 1\n", None),
    ("async def handler(job):\n    yield 1\n", None),
])
def test_concurrency_only_helps_async_handlers(check, source, expected):
    found = [f for f in check(source, {"concurrency": 4}) if f.code == "concurrency-sync"]
    if expected is None:
        assert not found
    else:
        assert found[0].level == "warning" and expected in found[0].message
    assert "concurrency-sync" not in codes(check(source))


def test_large_captures_are_flagged(check, monkeypatch):
    monkeypatch.setattr(preflight_module, "LARGE_CAPTURE_BYTES", 1000)
    source = "def handler(job):\n    return len(BLOB)\n"
    options = {"user_ns": {"BLOB": b"x" * 5000}, "capture": ["BLOB"]}
    assert "captured-large" in codes(check(source, options), "warning")
    options["user_ns"] = {"BLOB": b"x"}
    assert "captured-large" not in codes(check(source, options))


# --------------------------------------------------------------------------- the whole


def test_findings_come_errors_first_and_include_packaging_notes(check):
    source = "import numpy\ndef handler(job):\n    return np.pi\nif __name__ == '__main__':\n    numpy.show_config()\n"
    import numpy as np

    findings = check(source, {"user_ns": {"np": np}}, gpu_ids=["NOPE"], env={"HF_TOKEN": "x"})
    levels = [f.level for f in findings]
    assert levels == sorted(levels, key=["error", "warning", "info"].index)
    assert {"gpu-unknown", "secret-in-env", "main-block-dropped", "import-added"} <= set(codes(findings))
    assert has_errors(findings)
    assert not has_errors(check())


def test_keyword_options_work_too(pkg):
    project = pkg(PLAIN)
    assert codes(preflight(project, gpu_ids=["NOPE"])) == ["gpu-unknown"]
    assert codes(preflight(project, PreflightOptions(backend="local"), gpu_ids="NOPE")) == ["gpu-unknown"]


def test_every_check_is_covered_here():
    tested = {"check_heavy_startup", "check_init_timeout", "check_serverless_start", "check_secret_env",
              "check_secret_reference",
              "check_secret_docker_args", "check_docker_args_override", "check_secret_in_code",
              "check_workspace_paths", "check_volume_paths", "check_container_disk",
              "check_model_placement", "check_gpu_ids", "check_gpu_tiers", "check_payload_base64",
              "check_concurrency", "check_captured_size",
              "check_gpu_stock"}  # in test_packaging_stock_check.py
    assert {c.__name__ for c in preflight_module.CHECKS} == tested
