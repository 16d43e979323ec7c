"""Starting worker processes in the embedded RunPod: a template whose environment no process can
be started with is refused when it is saved, and a worker that cannot be started for any reason
fails with that reason and gives its GPU back instead of staying Initializing."""

from __future__ import annotations

import asyncio

import pytest
from support import add_endpoint, engine_on_disk, worker_project

from runpod_jupyter.api import ApiError, TemplateSpec
from runpod_jupyter.local.workers import HOLDS_GPU, WorkerPhase


@pytest.mark.parametrize(
    ("env", "named"),
    [({"A=B": "1"}, "A=B"), ({"NUL\x00KEY": "1"}, "NUL"), ({"GOOD": "bad\x00value"}, "GOOD")],
)
def test_template_env_no_process_can_take_is_refused_on_save(client, tmp_path, env, named):
    with pytest.raises(ApiError) as caught:
        client.save_template(TemplateSpec(name=f"bad-env-{len(named)}", image_name=f"local:{tmp_path}", env=env))
    assert named in str(caught.value) and "env" in str(caught.value)
    assert not any(t.name.startswith("bad-env") for t in client.list_templates())


def test_a_worker_that_cannot_be_started_fails_with_the_reason_and_frees_its_gpu(tmp_path):
    """A template saved before it was checked (read back from the store) still reaches spawn."""
    project = worker_project(tmp_path, "import runpod\n")
    engine = engine_on_disk(tmp_path, gpus={"ADA_24": 1})
    ep = add_endpoint(engine, "ep-spawn", gpuIds="ADA_24", workersMax=1)
    ep.template = {"imageName": f"local:{project}", "env": [{"key": "A=B", "value": "1"}]}

    async def start_one():
        worker = engine.fleet.new_worker(ep)
        deadline = asyncio.get_running_loop().time() + 10
        while worker.state == WorkerPhase.INITIALIZING and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        engine.shared.cancel_tasks()
        return worker

    worker = asyncio.run(start_one())
    try:
        assert worker.state in (WorkerPhase.UNHEALTHY, WorkerPhase.EXITED)
        assert worker.state not in HOLDS_GPU and worker.pool is None
        assert "could not start the worker" in (worker.reason or "") and "ValueError" in worker.reason
        assert any("could not start the worker" in line["message"] for line in worker.logs)
    finally:
        engine.store.close()
