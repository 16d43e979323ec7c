"""Cell run → first job result on the local backend, vs the SDK's own local path: write the same
handler to a file, start ``python handler.py --rp_serve_api``, send one request.

Both sides start from nothing but a warm disk cache; ours is measured with the embedded RunPod
already running (as after the first use in a session) and also from cold (server start included).
Prints one ``RESULT deploy_first_result ...`` line.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

ROUNDS = 3
HANDLER = """
import runpod

def handler(job):
    return {"echo": job["input"], "ok": True}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sdk_first_result(workdir: Path) -> float:
    """File + `--rp_serve_api` + one POST /runsync, until the answer arrives."""
    started = time.perf_counter()
    (workdir / "handler.py").write_text(HANDLER + "\nrunpod.serverless.start({'handler': handler})\n")
    port = _free_port()
    env = {**os.environ, "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true", "RUNPOD_SKIP_GPU_CHECK": "true", "HOME": str(workdir)}
    process = subprocess.Popen(
        [sys.executable, "handler.py", "--rp_serve_api", "--rp_api_port", str(port), "--rp_api_host", "127.0.0.1"],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/runsync", data=json.dumps({"input": {"x": 1}}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    body = json.loads(response.read())
                assert body["output"]["ok"] is True
                return time.perf_counter() - started
            except (OSError, ValueError):
                time.sleep(0.02)
        raise RuntimeError("the SDK's --rp_serve_api server never answered")
    finally:
        process.terminate()
        process.wait(10)


def ours_first_result(shell, name: str) -> float:
    """`%%runpod_deploy NAME --local` then NAME.run_sync(...), until the answer arrives."""
    started = time.perf_counter()
    shell.run_cell_magic("runpod_deploy", f"{name} --local --gpu ADA_24", textwrap.dedent(HANDLER))
    result = shell.user_ns[name].run_sync({"x": 1}, timeout=60)
    elapsed = time.perf_counter() - started
    assert result["ok"] is True
    shell.user_ns[name].delete()
    return elapsed


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    os.environ["RUNPOD_JUPYTER_DATA_DIR"] = str(root / "data")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(root / "runtime")
    os.environ.pop("RUNPOD_API_KEY", None)
    import contextlib
    import io

    from IPython.testing.globalipapp import start_ipython

    from runpod_jupyter import embedded

    shell = start_ipython()
    shell.run_line_magic("load_ext", "runpod_jupyter")
    quiet = contextlib.redirect_stdout(io.StringIO())
    try:
        with quiet:
            cold = ours_first_result(shell, "bench_cold")  # starts the embedded RunPod too
            warm = [ours_first_result(shell, f"bench_warm_{i}") for i in range(ROUNDS)]
        sdk = [sdk_first_result(Path(tempfile.mkdtemp(dir=root))) for _ in range(ROUNDS)]
    finally:
        embedded.stop()
    ours_median, sdk_median = statistics.median(warm), statistics.median(sdk)
    print(f"ours (embedded RunPod running): {', '.join(f'{t:.2f}' for t in warm)} s; cold start {cold:.2f} s")
    print(f"SDK --rp_serve_api:             {', '.join(f'{t:.2f}' for t in sdk)} s")
    print(
        f"RESULT deploy_first_result ours_s={ours_median:.2f} ours_cold_s={cold:.2f} "
        f"sdk_serve_api_s={sdk_median:.2f} ratio_sdk_over_ours={sdk_median / ours_median:.2f} "
        f"target_under_3s={'yes' if ours_median < 3 else 'no'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
