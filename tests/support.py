"""Helpers for tests that drive the embedded RunPod with real workers."""

from __future__ import annotations

import contextlib
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LOCAL_KEY = "local-test-key-0f9d8c7b6a"
#: Faster clocks for tests; every value is a real setting of the embedded RunPod.
FAST: dict[str, Any] = {
    "ping_interval_ms": 1000,
    "heartbeat_timeout": 6.0,
    "hold": 3.0,
    "stream_hold": 2.0,
    "crash_backoff_base": 0.5,
    "crash_backoff_max": 4.0,
    "drain_grace": 3.0,
    "tick": 0.2,
    "worker_limit": 30,
}



@contextlib.contextmanager
def embedded_runpod(root: Path, api_key: str = LOCAL_KEY) -> Iterator[Any]:
    """A real embedded RunPod keeping its data under ``root``, with the fast test clocks; stopped
    (with its workers) on the way out."""
    from runpod_jupyter import embedded

    instance = embedded.start(data_dir=root / "data", state_file=root / "state.json", api_key=api_key, tuning=FAST)
    try:
        yield instance
    finally:
        embedded.stop(state_file=instance.state_file)
def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last value: {last!r})")


def worker_project(root: Path, source: str) -> Path:
    """A worker project dir holding ``handler.py`` with ``source`` (dedented)."""
    directory = root / f"project-{uuid.uuid4().hex[:8]}"
    directory.mkdir(parents=True)
    (directory / "handler.py").write_text(textwrap.dedent(source))
    return directory


def deploy(client, root: Path, source: str, *, wait_idle: bool = True, template_env: dict | None = None, **settings: Any):
    """An endpoint (REST v2: it carries its image and env) for a handler source; returns
    (EndpointSpec, Endpoint API)."""
    from runpod_jupyter.api import EndpointSpec

    project = worker_project(root, source)
    name = f"t-{uuid.uuid4().hex[:8]}"
    fields = {"gpu_ids": ("ADA_24",), "workers_max": 2, **settings}
    spec = client.save_endpoint(EndpointSpec(name=name, image=f"local:{project}", env=template_env or {}, **fields))
    api = client.endpoint(spec.id)
    if wait_idle:
        wait_for(lambda: api.health().workers.idle >= 1, what="an idle worker")
    return spec, api


@contextlib.contextmanager
def deployed(settings, root: Path, source: str, **fields: Any) -> Iterator[Any]:
    """An endpoint for a handler source with an idle worker (its EndpointSpec), deleted after
    (a module's fixture shares one)."""
    from runpod_jupyter.api import Client
    from runpod_jupyter.endpoints import delete_endpoint

    with Client(settings) as client:
        spec, _ = deploy(client, root, source, **fields)
        try:
            yield spec
        finally:
            delete_endpoint(client, spec.id)


def deployment_on(settings, spec, backend: str):
    """A :class:`Deployment` handle on ``spec`` through ``backend``'s code path: for "cloud", the
    cloud's, with the embedded RunPod behind ``settings`` standing in for RunPod."""
    from runpod_jupyter.config import Settings
    from runpod_jupyter.deployment import Deployment

    if backend == "cloud":
        settings = Settings(backend="cloud", rest_base=settings.rest_base, graphql_url=settings.graphql_url,
                            api_key=settings.api_key, key_source="test")
    return Deployment(name=spec.name, endpoint_id=spec.id, backend=backend, settings=settings)


def local_get(instance, path: str, **params: Any) -> Any:
    """GET a local-only route of the embedded RunPod."""
    import httpx

    response = httpx.get(
        f"{instance.url}{path}", params=params, headers={"Authorization": f"Bearer {instance.api_key.reveal()}"}
    )
    response.raise_for_status()
    return response.json()


def local_post(instance, path: str, body: Any) -> Any:
    import httpx

    response = httpx.post(
        f"{instance.url}{path}", json=body, headers={"Authorization": f"Bearer {instance.api_key.reveal()}"}
    )
    response.raise_for_status()
    return response.json()


def final(endpoint, job_id: str, timeout: float = 60.0):
    """Wait for a job to reach a final state; return its last snapshot."""
    return wait_for(
        lambda: (lambda snap: snap if snap.status.is_final else None)(endpoint.status(job_id)),
        timeout=timeout, what=f"job {job_id} to finish",
    )


# -- the embedded RunPod's engine on its own (no HTTP, no worker processes) ----------------------
def engine_on_disk(root: Path, **options: Any):
    """An Engine over a sqlite store in ``root``, loaded as at server start."""
    from runpod_jupyter.local.engine import Engine
    from runpod_jupyter.local.model import Options
    from runpod_jupyter.local.store import Store

    engine = Engine(Options(api_key="engine-test", data_dir=root, **options), Store(root / "local.sqlite"))
    engine.load()
    return engine


def add_endpoint(engine, endpoint_id: str = "ep-1", **data: Any):
    """An endpoint record, kept in the store as saveEndpoint would."""
    from runpod_jupyter.local.model import EndpointRuntime

    ep = EndpointRuntime(data={"id": endpoint_id, "name": endpoint_id, **data}, template={})
    engine.endpoints[ep.id] = ep
    engine.store.put("endpoints", ep.id, ep.to_row())
    return ep


def add_worker(engine, ep, worker_id: str, *, state: str = "idle", pool: str | None = None):
    """A worker record in ``state`` for the endpoint's current release (no process behind it)."""
    from runpod_jupyter.local import workers as wk

    worker = wk.WorkerRecord(id=worker_id, endpoint_id=ep.id, release=ep.release, pool=pool, state=state)
    engine.workers[worker.id] = worker
    return worker
