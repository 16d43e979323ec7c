"""What the job view costs while a job streams 10,000 chunks, against a naive widget that sends
one update per chunk, in the same kernel and run; and what the endpoint poller costs when idle.

A real kernel (jupyter_client) and the embedded RunPod with a real SDK worker: the handler yields
10,000 chunks as fast as the SDK posts them. Comm messages are counted on the wire: a second
client on the kernel's IOPub channel counts ``comm_msg`` messages per widget (what a browser
receives); the peak rate uses the kernel's send time in each message header. Widget CPU is the
thread CPU time spent in the widget's own code (the naive widget's per-chunk update; the job
view's chunk listener and its flushes). Kernel CPU is ``time.process_time()`` inside the kernel
(all threads, so it includes reading the stream, which both pay) from submitting the job until
the view is final.
Idle poller CPU: an endpoint view of an idle endpoint, 30 s, the kernel's whole process time.

Targets: at most 1/20 of the naive widget's messages; idle poller under 1% of one core.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "widgets"))

from _common import create_endpoint, embedded_runpod, note, result, scratch, wait_idle, worker_project  # noqa: E402
from kernel_tap import IOPubTap  # noqa: E402

CHUNKS = 10_000
IDLE_WINDOW = 30.0
IDLE_SETTLE = 8.0

HANDLER = f"""
import runpod

def handler(job):
    for i in range({CHUNKS}):
        if i % 1000 == 999:
            yield {{"step": i, "note": "a JSON chunk among the text"}}
        else:
            yield f"tok{{i}} "

runpod.serverless.start({{"handler": handler, "return_aggregate_stream": False}})
"""

SETUP = """
import json, time
from pathlib import Path
from runpod_jupyter import embedded
from runpod_jupyter.deployment import Deployment
instance = embedded.find(Path({state!r}))
dep = Deployment(name="bench", endpoint_id={endpoint!r}, backend="local", settings=instance.settings())
def timed(fn, spent):
    # fn, adding the CPU time its calls take (in their own thread) to spent[0]
    def call(*args):
        t = time.thread_time()
        try:
            return fn(*args)
        finally:
            spent[0] += time.thread_time() - t
    return call
def wait(predicate, limit=180.0):
    deadline = time.monotonic() + limit
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()
"""

NAIVE = """
import anywidget, traitlets
from IPython.display import display
class Naive(anywidget.AnyWidget):
    _esm = ("export default { render({ model, el }) { "
            "model.on('change:chunk', () => { el.textContent += model.get('chunk'); }); } }")
    chunk = traitlets.Unicode().tag(sync=True)
    count = traitlets.Int().tag(sync=True)
naive = Naive()
display(naive)
def on_chunk(chunk):
    with naive.hold_sync():
        naive.count += 1
        naive.chunk = chunk if isinstance(chunk, str) else json.dumps(chunk)
spent = [0.0]
cpu0, t0 = time.process_time(), time.monotonic()
job = dep.run({"n": 1})
feed = job.feed()
feed.listeners.append(timed(on_chunk, spent))
done = wait(lambda: feed.done)
print("RUN", json.dumps({"cpu": time.process_time() - cpu0, "widget_cpu": spent[0], "wall": time.monotonic() - t0,
                         "done": done, "chunks": len(feed.chunks), "shown": naive.count, "comm": naive.comm.comm_id}))
"""

OURS = """
from IPython.display import display
from runpod_jupyter.widgets import views_of
spent = [0.0]
cpu0, t0 = time.process_time(), time.monotonic()
job = dep.run({"n": 1})
display(job)
view = views_of(job)[0]
feed = job.feed()
feed.listeners[:] = [timed(listener, spent) for listener in feed.listeners]
view._coalescer._flush = timed(view._coalescer._flush, spent)
done = wait(lambda: view.final)
print("RUN", json.dumps({"cpu": time.process_time() - cpu0, "widget_cpu": spent[0], "wall": time.monotonic() - t0,
                         "done": done, "chunks": len(job.chunks), "shown": view.tail.get("chunks"), "comm": view.comm.comm_id}))
"""

IDLE = """
display(dep)
endpoint_view = views_of(dep)[0]
time.sleep({settle})
cpu0, t0 = time.process_time(), time.monotonic()
time.sleep({window})
print("RUN", json.dumps({{"cpu": time.process_time() - cpu0, "wall": time.monotonic() - t0,
                          "interval": endpoint_view.poller.interval, "ticks": endpoint_view.poller.ticks}}))
"""

BASELINE = """
cpu0, t0 = time.process_time(), time.monotonic()
time.sleep({window})
print("RUN", json.dumps({{"cpu": time.process_time() - cpu0, "wall": time.monotonic() - t0}}))
"""


def run_cell(kc: Any, code: str, timeout: float = 240.0) -> dict[str, Any]:
    """Execute ``code``; return the JSON it printed after ``RUN`` (or {} if none)."""
    lines: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            lines.extend(msg["content"]["text"].splitlines())
        elif msg["msg_type"] == "error":
            lines.append("ERROR " + "\n".join(msg["content"]["traceback"])[-2000:])

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    if reply["content"]["status"] != "ok":
        raise RuntimeError("cell failed:\n" + "\n".join(lines)[-3000:])
    found = [line[4:] for line in lines if line.startswith("RUN ")]
    return json.loads(found[-1]) if found else {}


def peak_per_second(times: list[float]) -> int:
    """Most messages in any one-second window [t, t + 1)."""
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def main() -> None:
    from jupyter_client.manager import start_new_kernel

    from runpod_jupyter.api import Client

    with scratch("stream-widget") as root, embedded_runpod(root) as instance, Client(instance.settings()) as client:
        project = worker_project(root, HANDLER)
        spec = create_endpoint(client, project, workers_max=1, idle_timeout=600)
        wait_idle(client.endpoint(spec.id), 1, timeout=90)
        km, kc = start_new_kernel(kernel_name="python3", cwd=str(root))
        tap = IOPubTap(km.connection_file)
        try:
            run_cell(kc, SETUP.format(state=str(instance.state_file), endpoint=spec.id))
            note("naive widget: one update per chunk …")
            naive = run_cell(kc, NAIVE)
            note(f"  {naive}")
            note("job view …")
            ours = run_cell(kc, OURS)
            note(f"  {ours}")
            note(f"kernel baseline {IDLE_WINDOW:.0f} s …")
            baseline = run_cell(kc, BASELINE.format(window=IDLE_WINDOW))
            note(f"idle endpoint view {IDLE_WINDOW:.0f} s …")
            idle = run_cell(kc, IDLE.format(settle=IDLE_SETTLE, window=IDLE_WINDOW))
            note(f"  {idle}")
            time.sleep(0.5)
        finally:
            tap.close()
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    for name, run in (("naive", naive), ("ours", ours)):
        if not run.get("done") or run.get("chunks") != CHUNKS or run.get("shown") != CHUNKS:
            raise SystemExit(f"the {name} run did not see all {CHUNKS} chunks: {run}")
    naive_msgs = tap.comm_msg_count(naive["comm"])
    ours_times = tap.sent_times(ours["comm"])
    ours_msgs = len(ours_times)
    idle_pct = idle["cpu"] / idle["wall"] * 100
    baseline_pct = baseline["cpu"] / baseline["wall"] * 100
    note(f"messages: job view {ours_msgs}, naive {naive_msgs} (target at most 1/20); "
         f"peak {peak_per_second(ours_times)}/s; streams took {ours['wall']:.1f} s and {naive['wall']:.1f} s; "
         f"widget CPU {ours['widget_cpu']:.3f} s vs {naive['widget_cpu']:.3f} s; "
         f"kernel CPU (stream reading included) {ours['cpu']:.2f} s vs {naive['cpu']:.2f} s; "
         f"idle poller {idle_pct:.2f}% of a core (kernel alone {baseline_pct:.2f}%), interval {idle['interval']} s")
    result(
        "stream_widget",
        chunks=CHUNKS,
        msgs=ours_msgs,
        naive_msgs=naive_msgs,
        msg_ratio=f"{ours_msgs / naive_msgs:.4f}",
        peak_msgs_per_s=peak_per_second(ours_times),
        widget_cpu_s=f"{ours['widget_cpu']:.3f}",
        naive_widget_cpu_s=f"{naive['widget_cpu']:.3f}",
        widget_cpu_ratio=f"{ours['widget_cpu'] / naive['widget_cpu']:.3f}",
        kernel_cpu_s=f"{ours['cpu']:.2f}",
        naive_kernel_cpu_s=f"{naive['cpu']:.2f}",
        idle_poller_cpu_pct=f"{idle_pct:.2f}",
        idle_kernel_baseline_cpu_pct=f"{baseline_pct:.2f}",
        msg_target_met=ours_msgs * 20 <= naive_msgs,
        idle_target_met=idle_pct < 1.0,
    )


if __name__ == "__main__":
    main()
