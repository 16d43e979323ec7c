"""What ``%runpod_endpoints``, ``%runpod_jobs`` and ``runpod-jupyter endpoints`` show: endpoints
with their workers and queue, and the journal's jobs with fresh states.

Apart from the magics so the CLI lists endpoints without IPython, and so the magics stay parse,
call, display. Everything heavy (the HTTP client, handles) is imported when a listing is made.
"""

from __future__ import annotations

import contextlib
import html
from typing import Any


class Table:
    """Rows shown as an HTML table in Jupyter and as aligned text elsewhere."""

    def __init__(self, columns: list[str], rows: list[list[Any]], empty: str) -> None:
        self.columns, self.rows, self.empty = columns, rows, empty

    def __repr__(self) -> str:
        if not self.rows:
            return self.empty
        cells = [self.columns] + [[str(c) for c in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<p>{html.escape(self.empty)}</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in self.rows
        )
        return f"<table class='runpod-jupyter-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class JobList(list):
    """``jobs = %runpod_jobs``: a list of Job handles that displays as a table."""

    def _table(self) -> Table:
        rows = []
        for job in self:
            s = job.state
            rows.append([
                job.id, job.deployment.name, job.deployment.backend, s.status.value,
                "" if s.execution_time_ms is None else f"{s.execution_time_ms / 1000:.2f} s",
                (s.reason or "")[:80],
            ])
        return Table(["job", "endpoint", "backend", "status", "ran", "reason"], rows, "No jobs recorded yet.")

    def __repr__(self) -> str:
        return repr(self._table())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        return self._table()._repr_html_()


def endpoint_table(backend: str | None) -> Table:
    """Endpoints of one backend with their workers and queue, as a table."""
    from .api import Client, RunpodError
    from .connect import connect

    settings = connect(backend)
    rows = []
    with Client(settings) as client:
        for spec in client.list_endpoints():
            try:
                h = client.endpoint(spec.id, request_urls=spec.request_urls).health()
                workers = f"{h.workers.idle} idle / {h.workers.running} running / {h.workers.initializing} init"
                if h.workers.unhealthy or h.workers.throttled:
                    workers += f" / {h.workers.unhealthy} unhealthy / {h.workers.throttled} throttled"
                queue = f"{h.jobs.in_queue} queued, {h.jobs.in_progress} running"
            except RunpodError as exc:
                workers, queue = "?", exc.message[:60]
            rows.append([spec.name, spec.id, settings.backend, ",".join(spec.gpu_ids),
                         f"{spec.workers_min}-{spec.workers_max}", workers, queue])
    return Table(["name", "id", "backend", "gpus", "workers min-max", "workers", "queue"], rows,
                 f"No endpoints on the {settings.backend} backend.")


def recent_jobs(*, endpoint_name: str | None = None, limit: int = 20) -> JobList:
    """Journal entries as Job handles; unfinished ones are asked for their state now."""
    from . import journal
    from .api import RunpodError
    from .api.models import JobState, JobStatus
    from .connect import connect
    from .deployment import Deployment, Job

    deployments: dict[tuple[str, str], Deployment] = {}
    out = JobList()
    for entry in journal.shared().jobs(limit=limit * 5 if endpoint_name else limit):
        if endpoint_name and entry.endpoint_name != endpoint_name:
            continue
        key = (entry.backend, entry.endpoint_id)
        if key not in deployments:
            deployments[key] = Deployment(
                name=entry.endpoint_name, endpoint_id=entry.endpoint_id, backend=entry.backend,
                settings=connect(entry.backend),
            )
        state = JobState(
            id=entry.id, status=JobStatus(entry.status), reason=entry.reason,
            execution_time_ms=entry.execution_ms, delay_time_ms=entry.delay_ms, worker_id=entry.worker_id,
        )
        job = Job(deployments[key], entry.id, state=state)
        if not entry.final:
            with contextlib.suppress(RunpodError):  # else shown with its last known state
                job.refresh()
        out.append(job)
        if len(out) >= limit:
            break
    return out
