"""The deploy flags and the two name rules, defined once: ``%%runpod_deploy``, ``runpod-jupyter
deploy``, ``deploy()`` and packaging agree on defaults and refuse a bad name with the same words.
Nothing here starts a RunPod: every refusal comes before anything is written or sent."""

from __future__ import annotations

import argparse

import pytest
from IPython.core.error import UsageError

from runpod_jupyter import deploy
from runpod_jupyter.api.models import parse_gpu_list
from runpod_jupyter.cli import build_parser, main
from runpod_jupyter.deploy_flags import FLAGS, options_from_args
from runpod_jupyter.deploy_options import DEFAULT_GPUS, DeployOptions
from runpod_jupyter.errors import DeployError, PackagingError
from runpod_jupyter.magics import RunpodMagics
from runpod_jupyter.names import ENDPOINT_NAME_HINT, VARIABLE_NAME_HINT
from runpod_jupyter.packaging import package_cell

HANDLER = "import runpod\ndef handler(job):\n    return job['input']\n"
BAD_ENDPOINT_NAMES = ["9lives", "a" * 41, "has.dot", "_private", "café"]
BAD_VARIABLE_NAMES = ["with-dash", "class", "None"]


def _magic_parser() -> argparse.ArgumentParser:
    return RunpodMagics.runpod_deploy.parser


def _cli_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["deploy"]


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.option_strings[-1]: a for a in parser._actions if a.option_strings and a.dest != "help"}


def test_the_cli_accepts_every_flag_of_the_magic_with_the_same_defaults():
    magic, cli = _options(_magic_parser()), _options(_cli_parser())
    assert set(magic) == {f.option for f in FLAGS}
    assert set(cli) == set(magic) | {"--name"}
    for option, action in magic.items():
        theirs = cli[option]
        assert (theirs.default, theirs.type, theirs.choices, theirs.nargs) == (
            action.default, action.type, action.choices, action.nargs), option


def test_no_flags_means_the_options_defaults(monkeypatch):
    monkeypatch.delenv("RUNPOD_JUPYTER_REGISTRY", raising=False)
    from_magic = options_from_args(_magic_parser().parse_args(["echo"]), "echo")
    from_cli = options_from_args(_cli_parser().parse_args(["worker.py", "--name", "echo"]), "echo")
    assert from_magic == from_cli == DeployOptions(name="echo")
    assert from_cli.gpu == DEFAULT_GPUS


def test_the_same_flags_give_the_same_options(monkeypatch):
    monkeypatch.setenv("RUNPOD_JUPYTER_REGISTRY", "docker.io/me/workers")
    flags = ["--local", "--gpu", "ADA_24, AMPERE_24", "--workers-max", "2", "--env", "A=1", "--env", "B=x=y",
             "--capture", "model", "--requirement", "torch==2.3", "--base", "img:1", "--no-wait",
             "--scaler", "REQUEST_COUNT", "--concurrency", "4", "--stream-only"]
    from_magic = options_from_args(_magic_parser().parse_args(["echo", *flags]), "echo")
    from_cli = options_from_args(_cli_parser().parse_args(["worker.py", "--name", "echo", *flags]), "echo")
    assert from_magic == from_cli
    assert from_cli.backend == "local" and from_cli.gpu == ("ADA_24", "AMPERE_24") and from_cli.workers_max == 2
    assert dict(from_cli.env) == {"A": "1", "B": "x=y"} and from_cli.capture == ("model",)
    assert from_cli.requirements == ("torch==2.3",) and from_cli.base_image == "img:1" and not from_cli.wait
    assert from_cli.registry == "docker.io/me/workers"  # the environment's, for both front ends
    assert from_cli.aggregate_stream is False and DeployOptions(name="echo").aggregate_stream is True


def test_one_gpu_list_parser():
    assert parse_gpu_list(" ADA_24, ,AMPERE_24 ") == ("ADA_24", "AMPERE_24")
    with pytest.raises(DeployError, match="RTX_9090"):
        deploy(HANDLER, "gpus", backend="local", gpu="ADA_24,RTX_9090", dry_run=True)


@pytest.mark.parametrize("name", BAD_ENDPOINT_NAMES)
def test_a_bad_endpoint_name_gets_one_message_everywhere(ip, name, tmp_path, capsys):
    message = f"Invalid endpoint name {name!r}."
    with pytest.raises(DeployError) as from_magic:
        ip.run_cell_magic("runpod_deploy", f"{name} --local", HANDLER)
    with pytest.raises(DeployError) as from_deploy:
        deploy(HANDLER, name, backend="local")
    with pytest.raises(PackagingError) as from_packaging:
        package_cell(HANDLER, name=name, output_root=tmp_path)
    for caught in (from_magic, from_deploy, from_packaging):
        assert (caught.value.message, caught.value.hint) == (message, ENDPOINT_NAME_HINT)
    source = tmp_path / "worker.py"
    source.write_text(HANDLER)
    assert main(["deploy", str(source), "--name", name, "--local"]) == 2
    assert capsys.readouterr().err == f"runpod-jupyter: {message}\n{ENDPOINT_NAME_HINT}\n"


@pytest.mark.parametrize("name", BAD_VARIABLE_NAMES)
def test_the_magic_needs_a_python_variable_name(ip, name):
    with pytest.raises(DeployError) as caught:
        ip.run_cell_magic("runpod_deploy", f"{name} --local", HANDLER)
    assert (caught.value.message, caught.value.hint) == (f"Invalid variable name {name!r}.", VARIABLE_NAME_HINT)
    assert name not in ip.user_ns


def test_flag_mistakes_are_usage_errors(ip, tmp_path, capsys):
    with pytest.raises(UsageError, match="KEY=VALUE"):
        ip.run_cell_magic("runpod_deploy", "env --local --env NOEQUALS", HANDLER)
    source = tmp_path / "worker.py"
    source.write_text(HANDLER)
    assert main(["deploy", str(source), "--name", "env", "--local", "--cloud"]) == 2
    assert "Choose one of --local and --cloud" in capsys.readouterr().err
