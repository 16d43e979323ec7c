"""Every kind of handler the platform supports, run by real SDK workers in the embedded RunPod,
seen through the project's own client."""

from __future__ import annotations

import asyncio
import json

import pytest
from support import deploy, final, local_get, wait_for

from runpod_jupyter.api import AsyncClient, JobStatus, Policy

pytestmark = pytest.mark.slow  # starts workers, kernels or browsers


def test_sync_handler_with_progress(client, tmp_path, local_runpod):
    _, ep = deploy(client, tmp_path, """
        import runpod, time
        def handler(job):
            for i in range(3):
                runpod.serverless.progress_update(job, f"{i + 1}/3")
                time.sleep(0.3)
            return {"sum": sum(job["input"]["values"])}
        runpod.serverless.start({"handler": handler})
    """)
    job = ep.run({"values": [1, 2, 3]})
    assert job.status is JobStatus.IN_QUEUE
    seen = set()

    def done():
        snap = ep.status(job.id)
        if snap.status is JobStatus.IN_PROGRESS and snap.output:
            seen.add(snap.output)
        return snap if snap.status.is_final else None

    final = wait_for(done, what="the job to finish")
    assert final.status is JobStatus.COMPLETED
    assert final.output == {"sum": 6}
    assert final.worker_id and final.execution_time_ms >= 800
    assert seen and seen <= {"1/3", "2/3", "3/3"}  # progress arrived as output while IN_PROGRESS
    detail = local_get(local_runpod, f"/local/jobs/{job.id}")
    assert [p[1] for p in detail["progressLog"]][:1] == ["1/3"]
    assert [e[1] for e in detail["events"]] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]


def test_async_handler_and_runsync(client, tmp_path):
    _, ep = deploy(client, tmp_path, """
        import asyncio, runpod
        async def handler(job):
            await asyncio.sleep(0.1)
            return {"echo": job["input"], "id": job["id"]}
        runpod.serverless.start({"handler": handler})
    """)
    job = ep.runsync({"text": 'quotes " and \\\\ backslash\nnewline'}, wait_ms=30_000)
    assert job.status is JobStatus.COMPLETED
    assert job.output["echo"] == {"text": 'quotes " and \\\\ backslash\nnewline'}
    assert job.output["id"] == job.id and job.id.startswith("sync-")


@pytest.mark.parametrize("aggregate", [True, False])
def test_generator_streams_in_order(client, tmp_path, aggregate):
    _, ep = deploy(client, tmp_path, f"""
        import runpod, time
        def handler(job):
            for i in range(job["input"]["n"]):
                time.sleep(0.05)
                yield {{"token": i}}
        runpod.serverless.start({{"handler": handler, "return_aggregate_stream": {aggregate}}})
    """)
    job = ep.run({"n": 12})
    chunks = list(ep.stream(job.id, timeout=60))
    assert chunks == [{"token": i} for i in range(12)]
    final = ep.status(job.id)
    assert final.status is JobStatus.COMPLETED
    assert final.output == (chunks if aggregate else [])


def test_async_generator_handler(client, tmp_path):
    _, ep = deploy(client, tmp_path, """
        import asyncio, runpod
        async def handler(job):
            for word in job["input"].split():
                await asyncio.sleep(0.02)
                yield word
        runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
    """)
    job = ep.run("the quick brown fox")
    assert list(ep.stream(job.id, timeout=60)) == ["the", "quick", "brown", "fox"]


def test_handler_errors_fail_the_job(client, tmp_path):
    _, ep = deploy(client, tmp_path, """
        import runpod
        def handler(job):
            if job["input"] == "raise":
                raise ValueError("bad input: raise")
            return {"error": "refused politely"}
        runpod.serverless.start({"handler": handler})
    """)
    raised = ep.runsync("raise", wait_ms=30_000)
    assert raised.status is JobStatus.FAILED
    assert "ValueError" in raised.reason and "bad input: raise" in raised.reason
    assert "error_traceback" in json.loads(raised.error)
    soft = ep.runsync("soft", wait_ms=30_000)
    assert soft.status is JobStatus.FAILED and soft.error == "refused politely"
    assert ep.health().jobs.failed == 2


def test_generator_error_keeps_streamed_chunks(client, tmp_path):
    _, ep = deploy(client, tmp_path, """
        import runpod
        def handler(job):
            yield "a"
            yield "b"
            raise RuntimeError("gen crashed")
        runpod.serverless.start({"handler": handler})
    """)
    job = ep.run({})
    assert list(ep.stream(job.id, timeout=60)) == ["a", "b"]
    final = ep.status(job.id)
    assert final.status is JobStatus.FAILED and "gen crashed" in final.error


def test_refresh_worker_recycles_the_process(client, tmp_path, local_runpod):
    spec, ep = deploy(client, tmp_path, """
        import os, runpod
        def handler(job):
            return {"pid": os.getpid(), "refresh_worker": True}
        runpod.serverless.start({"handler": handler})
    """, workers_min=1)
    first = ep.runsync({}, wait_ms=30_000)
    assert first.status is JobStatus.COMPLETED
    second = wait_for(lambda: (lambda j: j if j.status.is_final else None)(ep.runsync({}, wait_ms=30_000)))
    assert second.output["pid"] != first.output["pid"]  # a fresh worker process answered
    workers = local_get(local_runpod, f"/local/endpoints/{spec.id}/workers")["workers"]
    assert any(w["reason"] == "refresh_worker requested" for w in workers)


def test_concurrency_modifier_runs_jobs_side_by_side(client, tmp_path):
    _, ep = deploy(client, tmp_path, """
        import asyncio, os, runpod, time
        async def handler(job):
            start = time.time()
            await asyncio.sleep(1.0)
            return {"pid": os.getpid(), "start": start, "end": time.time()}
        runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda current: 3})
    """, workers_max=1)
    # The SDK applies concurrency_modifier when nothing is in flight: one job first, as on RunPod.
    assert ep.runsync({"warm": True}, wait_ms=30_000).status is JobStatus.COMPLETED
    jobs = [ep.run({"i": i}) for i in range(3)]
    results = [final(ep, j.id) for j in jobs]
    assert {r.output["pid"] for r in results} == {results[0].output["pid"]}  # one worker
    first, second = sorted((r.output for r in results), key=lambda o: o["start"])[:2]
    assert second["start"] < first["end"]  # two jobs ran at the same moment on one worker


def test_cancel_stops_an_async_job(client, tmp_path):
    _, ep = deploy(client, tmp_path, """
        import asyncio, runpod
        async def handler(job):
            for _ in range(300):
                await asyncio.sleep(0.1)
            return "finished anyway"
        runpod.serverless.start({"handler": handler})
    """)
    job = ep.run({})
    wait_for(lambda: ep.status(job.id).status is JobStatus.IN_PROGRESS)
    assert ep.cancel(job.id).status is JobStatus.CANCELLED
    # The worker stops the job (job-stop) and becomes idle again; the job stays CANCELLED.
    wait_for(lambda: ep.health().workers.idle >= 1 and ep.health().workers.running == 0, what="the worker to free up")
    assert ep.status(job.id).status is JobStatus.CANCELLED
    assert list(ep.stream(job.id, timeout=10)) == []


def test_s3_config_and_policy_pass_through(client, tmp_path):
    _, ep = deploy(client, tmp_path, """
        import runpod
        def handler(job):
            return {"s3": job.get("s3Config"), "keys": sorted(job)}
        runpod.serverless.start({"handler": handler})
    """)
    s3 = {"accessId": "id", "accessSecret": "secret-value", "bucketName": "b", "endpointUrl": "http://127.0.0.1:1"}
    job = ep.runsync({}, wait_ms=30_000, s3_config=s3, policy=Policy(execution_timeout=60_000, low_priority=False))
    assert job.output["s3"] == s3


def test_async_client_runs_and_streams(client, tmp_path, local_runpod):
    spec, _ = deploy(client, tmp_path, """
        import runpod
        def handler(job):
            for i in range(job["input"]):
                yield i
        runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
    """)

    async def main():
        async with AsyncClient(local_runpod.settings()) as api:
            ep = api.endpoint(spec.id)
            job = await ep.run(5)
            chunks = [c async for c in ep.stream(job.id, timeout=60)]
            return chunks, await ep.status(job.id), await ep.health()

    chunks, final, health = asyncio.run(main())
    assert chunks == [0, 1, 2, 3, 4]
    assert final.output == chunks
    assert health.jobs.completed >= 1


def test_template_env_reaches_a_worker_with_a_private_home(client, tmp_path, monkeypatch):
    (tmp_path / "home" / ".runpod").mkdir(parents=True)
    (tmp_path / "home" / ".runpod" / "config.toml").write_text('[default]\napi_key = "rpa_USERSREALKEY000000"\n')
    _, ep = deploy(client, tmp_path, """
        import os, pathlib, runpod
        def handler(job):
            home = pathlib.Path(os.environ["HOME"])
            return {"greeting": os.environ.get("GREETING"), "home": str(home),
                    "user_key_visible": (home / ".runpod" / "config.toml").exists(),
                    "cloud_key": os.environ.get("RUNPOD_API_KEY")}
        runpod.serverless.start({"handler": handler})
    """, template_env={"GREETING": "hello from the template"})
    out = ep.runsync({}, wait_ms=30_000).output
    assert out["greeting"] == "hello from the template"
    assert out["user_key_visible"] is False and out["cloud_key"] is None
    assert out["home"] != str(tmp_path / "home") and "/workers/" in out["home"]


def test_a_cloud_image_is_stored_but_explained(client, local_runpod):
    from runpod_jupyter.api import EndpointSpec, TemplateSpec
    from runpod_jupyter.diagnose import diagnose, gather

    template = client.save_template(TemplateSpec(name="cloud-only", image_name="docker.io/me/worker:1"))
    spec = client.save_endpoint(EndpointSpec(name="cloud-only", template_id=template.id, gpu_ids=("ADA_24",), workers_max=1))
    assert client.get_endpoint(spec.id).image == "docker.io/me/worker:1"  # copied from the template
    problem = local_get(local_runpod, f"/local/endpoints/{spec.id}/workers")["problem"]
    assert "can only run in the cloud" in problem and "local:" in problem
    assert [f.code for f in diagnose(gather(client, spec.id))][:1] == ["cloud-only-image"]
    client.delete_endpoint(spec.id)
    client.delete_template(template.id)
