"""Stand-ins at the transport edge for in-process view tests: an endpoint API whose job states
and stream the test drives, and a comm that records what would be sent to the browser. The
handles (Deployment, Job, ChunkFeed) and the views themselves are the real ones."""

from __future__ import annotations

import queue
import threading
from dataclasses import replace
from typing import Any

from comm.base_comm import BaseComm

from runpod_jupyter.api.models import EndpointSpec, Health, JobCounts, JobState, JobStatus, WorkerCounts
from runpod_jupyter.config import Settings
from runpod_jupyter.deployment import Deployment
from runpod_jupyter.secret import Secret

KEY = "rpa_FAKEKEY01234"
_END = object()


class RecordingComm(BaseComm):
    """A comm that keeps every message instead of sending it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[str, Any]] = []  # before BaseComm publishes comm_open
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any) -> None:
        self.sent.append((msg_type, data))

    def updates(self) -> list[dict[str, Any]]:
        return [d["state"] for t, d in list(self.sent) if t == "comm_msg" and d.get("method") == "update"]

    def customs(self) -> list[dict[str, Any]]:
        return [d["content"] for t, d in list(self.sent) if t == "comm_msg" and d.get("method") == "custom"]


class FakeEndpointApi:
    """The REST calls the handles make, answered from state the test sets."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.streams: dict[str, queue.Queue[Any]] = {}
        self.cancelled: list[str] = []

    def add_job(self, job_id: str, status: JobStatus = JobStatus.IN_QUEUE) -> None:
        self.jobs[job_id] = JobState(id=job_id, status=status)
        self.streams[job_id] = queue.Queue()

    def set(self, job_id: str, **changes: Any) -> None:
        self.jobs[job_id] = replace(self.jobs[job_id], **changes)

    def emit(self, job_id: str, *chunks: Any) -> None:
        for chunk in chunks:
            self.streams[job_id].put(chunk)

    def end_stream(self, job_id: str) -> None:
        self.streams[job_id].put(_END)

    # -- what Job and ChunkFeed call ------------------------------------------------------------
    def status(self, job_id: str) -> JobState:
        return self.jobs[job_id]

    def cancel(self, job_id: str) -> JobState:
        self.cancelled.append(job_id)
        self.set(job_id, status=JobStatus.CANCELLED)
        self.end_stream(job_id)
        return self.jobs[job_id]

    def stream(self, job_id: str):
        source = self.streams[job_id]
        for _ in range(1_000_000):
            chunk = source.get(timeout=30)
            if chunk is _END:
                return
            yield chunk


class FakeDeployment(Deployment):
    """A Deployment whose API is :class:`FakeEndpointApi` and whose endpoint actions are
    recorded; the rest is the real handle."""

    def __init__(self, endpoint_id: str = "ep-fake", name: str = "fake") -> None:
        settings = Settings(backend="cloud", rest_base=f"https://fake.invalid/{endpoint_id}/v2",
                            graphql_url="https://fake.invalid/graphql", api_key=Secret(KEY), key_source="test")
        super().__init__(name=name, endpoint_id=endpoint_id, backend="cloud", settings=settings)
        self.fake = FakeEndpointApi()
        self.health_value = Health(jobs=JobCounts(), workers=WorkerCounts(idle=1))
        self.spec = EndpointSpec(name=name, gpu_ids=("ADA_24",), workers_min=0, workers_max=1, id=endpoint_id)
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def api(self) -> FakeEndpointApi:  # type: ignore[override]
        return self.fake

    def health(self) -> Health:
        return self.health_value

    def purge_queue(self) -> int:
        self.calls.append(("purge", None))
        return 2

    def scale(self, min: int | None = None, max: int | None = None) -> EndpointSpec:  # noqa: A002
        self.calls.append(("scale", (min, max)))
        self.spec = replace(self.spec, workers_min=min, workers_max=max)
        return self.spec

    def delete(self) -> list[str]:
        self.calls.append(("delete", None))
        return ["scaled to zero", "deleted endpoint"]
