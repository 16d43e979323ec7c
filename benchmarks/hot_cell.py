"""Edit → result: ``%%runpod_run`` on a warm runner vs ``%%runpod_deploy`` (a new release, workers
roll) → first result, both on the local backend, measured in the same run.

Each round edits the cell (a new constant), so neither side can reuse the previous run's work.
Runs are spaced as a person edits: at least ``SPACING`` seconds apart, so the SDK worker's
one-second pacing between jobs is not counted against the runner, plus a random part. A fixed gap
would lock onto the stock SDK 1.x loop's 0.1 s look at its job queue, whose phase is set by the
end of the previous job, and measure its worst phase every time (the deploy side's worker has that
loop; the runner's starts a job as it arrives). The runner is created before the first timed round
(its creation is a one-off, printed apart). Prints one ``RESULT hot_cell ...`` line; the target is
``speedup`` of at least 10.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_KEY, SCRUBBED, load1, median, ms, note, result, scratch  # noqa: E402

ROUNDS = 7
SPACING = 1.5  # seconds at least between the end of one run and the start of the next
JITTER = 1.0  # plus up to this many seconds, at random, as a person's edits are

HOT_CELL = """
import math
value = math.sqrt({n}) * scale
value
"""

DEPLOY_CELL = """
import math
def handler(job):
    return math.sqrt({n}) * job["input"]["scale"]
"""


def hot_round(shell, n: int) -> float:
    """Edit → ``%%runpod_run`` → the result bound in the notebook."""
    started = time.perf_counter()
    shell.run_cell_magic("runpod_run", "--local --gpu ADA_24", HOT_CELL.format(n=n))
    elapsed = time.perf_counter() - started
    assert abs(shell.user_ns["value"] - n ** 0.5 * 3) < 1e-9
    return elapsed


def deploy_round(shell, n: int) -> float:
    """Edit → ``%%runpod_deploy`` (same endpoint: a new release) → the first result."""
    started = time.perf_counter()
    shell.run_cell_magic("runpod_deploy", "bench_edit --local --gpu ADA_24 --workers-max 1", DEPLOY_CELL.format(n=n))
    value = shell.user_ns["bench_edit"].run_sync({"scale": 3}, timeout=120)
    elapsed = time.perf_counter() - started
    assert abs(value - n ** 0.5 * 3) < 1e-9
    return elapsed


def main() -> int:
    with scratch("hot-cell") as root:
        os.environ["RUNPOD_JUPYTER_DATA_DIR"] = str(root / "user-data")
        os.environ["JUPYTER_RUNTIME_DIR"] = str(root / "runtime")
        for key in SCRUBBED:
            os.environ.pop(key, None)
        from IPython.testing.globalipapp import start_ipython

        from runpod_jupyter import embedded

        embedded.start(data_dir=root / "data", api_key=BENCH_KEY)  # the one the magics find
        shell = start_ipython()
        shell.run_line_magic("load_ext", "runpod_jupyter")
        shell.user_ns["scale"] = 3
        hot: list[float] = []
        deployed: list[float] = []
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                began = time.perf_counter()
                hot_round(shell, 1)  # creates the runner and waits for its worker
                created = time.perf_counter() - began
                deploy_round(shell, 1)  # the endpoint exists: every timed round is an update
                last = time.perf_counter()
                for n in range(2, 2 + ROUNDS):
                    for side, run in ((hot, hot_round), (deployed, deploy_round)):
                        gap = SPACING + random.uniform(0.0, JITTER)
                        time.sleep(max(0.0, gap - (time.perf_counter() - last)))
                        side.append(run(shell, n))
                        last = time.perf_counter()
            note(f"runner created in {created:.2f} s (once)")
            note(f"hot:    {', '.join(ms(t, 0) for t in hot)} ms")
            note(f"deploy: {', '.join(f'{t:.2f}' for t in deployed)} s")
        finally:
            with contextlib.suppress(Exception):
                shell.user_ns["bench_edit"].delete()
            embedded.stop()
    speedup = median(deployed) / median(hot)
    result(
        "hot_cell", hot_ms=ms(median(hot)), deploy_ms=ms(median(deployed)), runner_created_s=f"{created:.2f}",
        rounds=ROUNDS, spacing_s=f"{SPACING}-{SPACING + JITTER}", speedup=f"{speedup:.1f}",
        target_10x="yes" if speedup >= 10 else "no",
        load1=load1(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
