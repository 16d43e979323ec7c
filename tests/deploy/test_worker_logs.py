"""Worker log lines through REST API v2 on both backends (the cloud one is the embedded RunPod
standing in for api.runpod.io): a handler's prints belong to the job that printed them, a
follow sees a line while its job runs, ``%runpod_logs`` prints them, and the API key never
comes back in clear."""

from __future__ import annotations

import uuid

import pytest
from support import deployed, deployment_on, wait_for

from runpod_jupyter import embedded
from runpod_jupyter.api import JobStatus
from runpod_jupyter.deployment import LogLines

pytestmark = pytest.mark.slow  # starts workers

PRINTS = """
import os, time, runpod

def handler(job):
    given = job["input"]
    print(f"hello from {given['tag']}", flush=True)
    marker = given.get("wait_for")
    for _ in range(600 if marker else 0):  # at most a minute
        if os.path.exists(marker):
            break
        time.sleep(0.1)
    if given.get("echo"):
        print("echo", given["echo"], flush=True)
    print(f"bye from {given['tag']}", flush=True)
    return given["tag"]

runpod.serverless.start({"handler": handler})
"""


@pytest.fixture(scope="module")
def endpoint(ip, tmp_path_factory):
    with deployed(embedded.start().settings(), tmp_path_factory.mktemp("logs"), PRINTS, workers_max=1,
                  idle_timeout=120) as spec:
        yield spec


def _tag() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def _messages(lines) -> list[str]:
    return [line["message"] for line in lines]


@pytest.fixture(scope="module")
def two_jobs(endpoint):
    """Two jobs run one after the other on the endpoint's one worker."""
    dep = deployment_on(embedded.start().settings(), endpoint, "local")
    tags = [_tag(), _tag()]
    jobs = []
    for tag in tags:
        job = dep.run({"tag": tag})
        assert job.result(timeout=120) == tag
        jobs.append(job)
    assert jobs[0].state.worker_id == jobs[1].state.worker_id  # the same worker ran both
    return list(zip(tags, jobs, strict=True))


@pytest.mark.parametrize("backend", ["local", "cloud"])
def test_prints_belong_to_the_job_that_printed_them(backend, endpoint, two_jobs):
    dep = deployment_on(embedded.start().settings(), endpoint, backend)
    (tag_a, job_a), (tag_b, job_b) = two_jobs
    for tag, job, other in ((tag_a, job_a, tag_b), (tag_b, job_b, tag_a)):
        lines = wait_for(lambda job=job, tag=tag: (found := dep.logs(job=job)) and
                         f"bye from {tag}" in _messages(found) and found, what=f"the log of {tag}")
        assert isinstance(lines, LogLines)
        shown = _messages(lines)
        assert f"hello from {tag}" in shown and f"bye from {tag}" in shown
        assert not any(other in message for message in shown)
        assert all(line["job"] == job.id for line in lines)
        assert "Started." in shown  # the SDK's own tagged line, shown as its message
        assert not any(message.startswith("{") for message in shown)
    everything = dep.logs(tail=500)
    owner = {line["message"]: line["job"] for line in everything}
    assert owner[f"hello from {tag_a}"] == job_a.id and owner[f"hello from {tag_b}"] == job_b.id
    times = [line["t"] for line in everything]
    assert times == sorted(times)
    assert f"hello from {tag_a}" in repr(everything)


def test_follow_sees_a_line_while_the_job_runs(endpoint, tmp_path):
    dep = deployment_on(embedded.start().settings(), endpoint, "local")
    tag, marker = _tag(), tmp_path / "go"
    job = dep.run({"tag": tag, "wait_for": str(marker)})
    lines = dep.logs(job=job, follow=True, timeout=90)
    seen: list[str] = []
    for line in lines:
        seen.append(line["message"])
        if line["message"] == f"hello from {tag}":
            # The handler waits for the marker: the job is still running.
            assert dep.client.endpoint(dep.endpoint_id).status(job.id).status is JobStatus.IN_PROGRESS
            marker.touch()
    assert f"hello from {tag}" in seen and f"bye from {tag}" in seen  # and it ended with the job
    assert job.refresh().status is JobStatus.COMPLETED


def test_the_magic_prints_lines_and_never_the_key(ip, endpoint, capsys):
    dep = deployment_on(embedded.start().settings(), endpoint, "local")
    key = dep.settings.api_key.reveal()
    tag = _tag()
    job = dep.run({"tag": tag, "echo": key})
    assert job.result(timeout=120) == tag
    shown = wait_for(lambda: (found := ip.run_line_magic("runpod_logs", f"{endpoint.name} --job {job.id}"))
                     and f"bye from {tag}" in repr(found) and found, what="the magic's lines")
    assert "echo ****" in repr(shown) and key not in repr(shown)
    capsys.readouterr()
    ip.run_line_magic("runpod_logs", f"{endpoint.name} --job {job.id} --follow --timeout 60")
    printed = capsys.readouterr().out
    assert f"hello from {tag}" in printed and "echo ****" in printed and key not in printed
    assert job.id[:8] in printed
    everything = repr(dep.logs(tail=500)) + repr(deployment_on(embedded.start().settings(), endpoint, "cloud").logs(job=job.id))
    assert "echo ****" in everything and key not in everything


def test_a_job_without_a_worker_yet_has_no_lines(endpoint):
    dep = deployment_on(embedded.start().settings(), endpoint, "local")
    assert repr(dep.logs(job="no-such-job-" + uuid.uuid4().hex[:6])) == "(no log lines)"
