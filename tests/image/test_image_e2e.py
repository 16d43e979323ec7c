"""End to end: push a worker image made by the daemonless builder, unpack it with independent tools
(skopeo + umoci), run its ``Cmd`` in a chroot, and have it answer a job — first in the runpod SDK's
one-shot test mode, then as a real worker of the embedded RunPod."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from image_support import SKOPEO, local_index, make_project, push_image, unique
from support import embedded_runpod, wait_for

from runpod_jupyter.api import Client, EndpointSpec, JobStatus, TemplateSpec
from runpod_jupyter.image import VENDOR_DIR, BaseImage, build_and_push

pytestmark = pytest.mark.slow

HANDLER = """\
import os
import runpod
import rpj_pure


def handler(job):
    n = job["input"]["n"]
    return {"sum": sum(range(n)), "vendored": rpj_pure.VERSION, "cwd": os.getcwd(),
            "from": rpj_pure.__file__}


runpod.serverless.start({"handler": handler})
"""


def _need_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("running an unpacked image in a chroot needs root")
    for tool in ("umoci", "chroot"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install {tool if tool != 'chroot' else 'coreutils'})")
    if not SKOPEO:
        pytest.skip("skopeo is not installed")


@pytest.fixture(scope="module")
def worker_image(registry, wheelhouse, tmp_path_factory):
    """The worker image pushed, then unpacked into a runtime bundle (rootfs + OCI runtime config)."""
    _need_tools()
    from image_hostbase import host_base_layers

    layers, packages, config = host_base_layers()
    push_image(registry, "base/hostpy", "3.11", layers, config, family="oci")
    base = BaseImage(image=f"{registry.host}/base/hostpy:3.11", python="3.11", python_exe="python3.11",
                     glibc="2.36", packages=packages)
    root = tmp_path_factory.mktemp("e2e")
    project = make_project(root / "project", HANDLER, requirements="runpod\nrpj-pure\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UV_CACHE_DIR", str(root / "uv-cache"))
        result = build_and_push(project, base, f"{registry.host}/{unique('e2e/worker')}:v1",
                                index=local_index(wheelhouse), cache_dir=root / "cache")
    assert {b.kind: b.action for b in result.blobs}["dependencies"] == "uploaded"
    layout, bundle = root / "layout", root / "bundle"
    copy = subprocess.run([SKOPEO, "copy", "--src-tls-verify=false", f"docker://{result.image}", f"oci:{layout}:worker"],
                          capture_output=True, text=True, timeout=300)
    assert copy.returncode == 0, copy.stderr
    unpack = subprocess.run(["umoci", "unpack", "--image", f"{layout}:worker", str(bundle)],
                            capture_output=True, text=True, timeout=300)
    assert unpack.returncode == 0, unpack.stderr
    runtime = json.loads((bundle / "config.json").read_text())
    return result, bundle, runtime["process"]


def container_command(bundle: Path, process: dict) -> list[str]:
    """A minimal container runtime: a private mount namespace with /dev and /proc, then a chroot
    into the unpacked rootfs running the image's Cmd in its WorkingDir with its Env (added to the
    caller's environment, as a runtime does with the platform's RUNPOD_* variables). Extra
    arguments are appended to the Cmd."""
    rootfs = shlex.quote(str(bundle / "rootfs"))
    inner = "cd {} && exec /usr/bin/env {} {} \"$@\"".format(
        shlex.quote(process["cwd"]), " ".join(shlex.quote(e) for e in process["env"]),
        " ".join(shlex.quote(a) for a in process["args"]))
    script = (f"set -e; mount --rbind /dev {rootfs}/dev; mount -t proc proc {rootfs}/proc; "
              f"exec chroot {rootfs} /bin/sh -c {shlex.quote(inner)} sh \"$@\"")
    return ["unshare", "--mount", "--propagation", "private", "--fork", "/bin/sh", "-c", script, "sh"]


def test_the_image_runs_its_handler_in_a_chroot(worker_image):
    result, bundle, process = worker_image
    env = dict(item.split("=", 1) for item in process["env"])
    assert process["args"] == ["python3.11", "-u", "/app/handler.py"] and process["cwd"] == "/app"
    assert env["PYTHONPATH"] == VENDOR_DIR
    argv = container_command(bundle, process) + ["--test_input", json.dumps({"input": {"n": 10}})]
    run = subprocess.run(argv, env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    line = next(text for text in output.splitlines() if "Job result" in text)
    assert "'sum': 45" in line and "'vendored': '1.0'" in line and "'cwd': '/app'" in line
    assert f"'from': '{VENDOR_DIR}/rpj_pure/__init__.py'" in line


def test_the_image_answers_a_job_from_the_embedded_runpod(worker_image, tmp_path):
    result, bundle, process = worker_image
    with embedded_runpod(tmp_path) as instance, Client(instance.settings()) as client:
        name = f"e2e-{uuid.uuid4().hex[:8]}"
        template = client.save_template(TemplateSpec(name=name, image_name=f"local:{bundle}",
                                                     docker_args=shlex.join(container_command(bundle, process))))
        spec = client.save_endpoint(EndpointSpec(name=name, template_id=template.id, gpu_ids=("ADA_24",),
                                                 workers_max=1))
        endpoint = client.endpoint(spec.id)
        job = endpoint.run({"n": 100})
        status = wait_for(lambda: (lambda j: j if j.status.is_final else None)(endpoint.status(job.id)),
                          timeout=90, what="the job to finish in the image's worker")
        assert status.status is JobStatus.COMPLETED, status
        assert status.output["sum"] == 4950 and status.output["vendored"] == "1.0"
        assert status.output["from"] == f"{VENDOR_DIR}/rpj_pure/__init__.py"
