"""How long ``import runpod_jupyter`` takes next to ``import runpod`` (the SDK a user would
otherwise load in the kernel), each timed inside a fresh interpreter so no module is cached.

Target: runpod_jupyter at least 10x faster. Also reports the cost of ``%load_ext runpod_jupyter``
in a bare IPython shell, when the magics module exists.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import IMPORT_PROBE, load1, median, ms, note, result, scratch  # noqa: E402
from _common import time_in_fresh_interpreter as probe

RUNS = 7

# The shell is built before the clock starts: only the extension's own cost is measured.
LOAD_EXT_PROBE = """
import time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
t = time.perf_counter()
shell.run_line_magic("load_ext", "runpod_jupyter")
print(time.perf_counter() - t)
"""


def main() -> None:
    load_at_start = load1()
    with scratch("import") as home:
        ours: list[float] = []
        sdk: list[float] = []
        for i in range(RUNS):  # interleaved, so drift in machine load hits both alike
            ours.append(probe(IMPORT_PROBE.format(module="runpod_jupyter"), home))
            sdk.append(probe(IMPORT_PROBE.format(module="runpod"), home))
            note(f"run {i + 1}/{RUNS}: runpod_jupyter {ms(ours[-1], 2)} ms, runpod {ms(sdk[-1], 0)} ms")
        figures = {
            "runpod_jupyter_ms": ms(median(ours), 2),
            "runpod_ms": ms(median(sdk), 0),
            "speedup": f"{median(sdk) / median(ours):.0f}x",
            "target": ">=10x",
        }
        if importlib.util.find_spec("runpod_jupyter.magics") is not None:
            load_ext = [probe(LOAD_EXT_PROBE, home) for _ in range(RUNS)]
            figures["load_ext_ms"] = ms(median(load_ext), 2)
        else:
            figures["load_ext_ms"] = "skipped(no_runpod_jupyter.magics)"
        figures["runs"] = RUNS
        figures["load1_at_start"] = load_at_start
    result("import_time", **figures)


if __name__ == "__main__":
    main()
