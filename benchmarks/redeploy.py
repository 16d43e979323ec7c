"""Redeploy after a handler edit: the daemonless builder against ``buildah bud`` + ``buildah push``.

Both build the same worker (for buildah, the Dockerfile: base + ``COPY . /app`` + ``CMD``) on the
same base in the same local registry, in this run. The base defaults to 512 MiB in 8192 files,
which is smaller than any real RunPod base (several GB): buildah's redeploy time grows with the
base (it materialises the base's root filesystem to add a layer), the daemonless redeploy does not
(it only checks that the base's blobs are there). Bytes are counted on the wire by a TCP proxy in
front of the registry (client → registry, HTTP headers included), so both are measured the same way.
Each side deploys once first (buildah pulls the base into its store), then the handler is edited
and redeployed ``--rounds`` times; the medians are compared.

    python benchmarks/redeploy.py [--rounds 3] [--base-mib 512] [--base-files 8192]

Starts and stops its own ``docker-registry`` (by PID). Ends with one line:
``RESULT redeploy speedup=<x> daemonless_s=… daemonless_bytes=… buildah_s=… buildah_bytes=… base_mib=… target=…``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from runpod_jupyter.image import BaseImage, build_and_push
from runpod_jupyter.image.layers import tree, write_layer
from runpod_jupyter.image.manifest import DOCKER_CONFIG, DOCKER_LAYER, canonical_json
from runpod_jupyter.image.registry import DOCKER_MANIFEST, Registry, sha256_digest

TARGET_SPEEDUP = 50.0
TARGET_BYTES = 8 * 1024
HANDLER = (
    "import runpod\n\ndef handler(job):\n    return {{'version': {n}}}\n\n"
    "runpod.serverless.start({{'handler': handler}})\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRegistry:
    """docker-registry on a free port with its own config and storage; stopped by PID."""

    def __init__(self, root: Path) -> None:
        exe = shutil.which("docker-registry")
        if not exe:
            raise SystemExit("RESULT redeploy error=docker-registry-not-installed")
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": "benchmark-only"},
        }
        (root / "config.yml").write_text(json.dumps(config))
        with open(root / "registry.log", "wb") as log:  # Popen keeps its own copy of the descriptor
            self.proc = subprocess.Popen([exe, "serve", str(root / "config.yml")], stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        for _ in range(1500):
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/v2/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                break
            time.sleep(0.01)
        self.stop()
        raise SystemExit("RESULT redeploy error=registry-did-not-start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class CountingProxy:
    """A TCP forwarder that counts bytes each way; what both builders' traffic passes through."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.up = self.down = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with self.lock:
            self.up = self.down = 0

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for sock in (client, upstream):  # forward small writes at once, as a direct connection would
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "down"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return
            with self.lock:
                if direction == "up":
                    self.up += len(data)
                else:
                    self.down += len(data)
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.running = False
        self.server.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.close()


def push_base(port: int, workdir: Path, mib: int, files: int) -> str:
    """A base image: a small OS layer and a bulk layer of ``files`` files holding ``mib`` MiB of
    incompressible bytes in all (the shape of a Python/CUDA base, though far smaller)."""
    rng = random.Random(2024)
    bulk = workdir / "bulk"
    per_file = max(1, mib * 1024 * 1024 // files)
    for index in range(files):
        path = bulk / f"lib{index % 64:02d}" / f"part{index:05d}.so"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(per_file))
    layers = [
        write_layer({"etc/os-release": "ID=bench\n", "usr/local/bin/python3.11": "#!/bin/sh\n"}, workdir / "os.tar.gz"),
        write_layer(tree(bulk, "usr/lib/bulk"), workdir / "bulk.tar.gz", level=1),
    ]
    shutil.rmtree(bulk)
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
              "history": [{"created": "2024-01-01T00:00:00Z", "created_by": what} for what in ("os", "bulk")],
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}}
    raw_config = canonical_json(config)
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": sha256_digest(raw_config), "size": len(raw_config)},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": layer.digest, "size": layer.size} for layer in layers],
    })
    with Registry(f"127.0.0.1:{port}") as reg:
        for layer in layers:
            reg.upload_blob("base/bench", layer.digest, layer.size, layer.chunks)
        reg.upload_blob("base/bench", sha256_digest(raw_config), len(raw_config), lambda: iter([raw_config]))
        reg.put_manifest("base/bench", "1", manifest, DOCKER_MANIFEST)
    return "base/bench:1"


def write_project(project: Path, host: str, n: int) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "handler.py").write_text(HANDLER.format(n=n))
    (project / "Dockerfile").write_text(
        f"FROM {host}/base/bench:1\nWORKDIR /app\nCOPY . /app\nENV PYTHONUNBUFFERED=1\n"
        'CMD ["python3.11", "-u", "/app/handler.py"]\n'
    )


def measure(proxy: CountingProxy, action) -> tuple[float, int, int]:
    proxy.reset()
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    time.sleep(0.05)  # let the pump threads count the last bytes
    with proxy.lock:
        return elapsed, proxy.up, proxy.down


def run_buildah(store: Path, runroot: str, project: Path, tag: str) -> None:
    exe = shutil.which("buildah")
    common = [exe, "--root", str(store), "--runroot", runroot, "--storage-driver", "vfs"]
    env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
    for cmd in (
        [*common, "bud", "--tls-verify=false", "--layers", "-q", "-f", str(project / "Dockerfile"), "-t", tag,
         str(project)],
        [*common, "push", "--tls-verify=false", "-q", tag, f"docker://{tag}"],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:6])}… failed: {proc.stderr[-800:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="redeploys per builder (median reported)")
    parser.add_argument("--base-mib", type=int, default=512,
                        help="size of the base's bulk layer (RunPod's real bases are several GB)")
    parser.add_argument("--base-files", type=int, default=8192, help="number of files in the bulk layer")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 50))

    tmp = Path(tempfile.mkdtemp(prefix="rpj-bench-"))
    runroot = tempfile.mkdtemp(prefix="rpj-run-")  # podman/buildah want a short runroot path
    registry = LocalRegistry(tmp / "registry")
    proxy = CountingProxy(registry.port)
    host = f"127.0.0.1:{proxy.port}"
    results: dict[str, dict[str, float]] = {}
    try:
        push_base(registry.port, tmp, args.base_mib, max(1, args.base_files))
        base = BaseImage(image=f"{host}/base/bench:1", python="3.11", python_exe="python3.11")
        os.environ.setdefault("RUNPOD_JUPYTER_DATA_DIR", str(tmp / "data"))

        project = tmp / "daemonless"
        write_project(project, host, 0)
        first = measure(proxy, lambda: build_and_push(project, base, f"{host}/bench/daemonless:v0"))
        times, ups = [], []
        for n in range(1, rounds + 1):
            write_project(project, host, n)
            tag = f"{host}/bench/daemonless:v{n}"
            elapsed, up, _down = measure(proxy, lambda: build_and_push(project, base, tag))  # noqa: B023
            times.append(elapsed)
            ups.append(up)
        results["daemonless"] = {"first_s": first[0], "first_up": first[1], "s": statistics.median(times),
                                 "up": statistics.median(ups)}

        buildah_note = ""
        if shutil.which("buildah"):
            bproject = tmp / "buildah"
            store = tmp / "buildah-store"
            write_project(bproject, host, 0)
            try:
                first = measure(proxy, lambda: run_buildah(store, runroot, bproject, f"{host}/bench/buildah:v0"))
                times, ups = [], []
                for n in range(1, rounds + 1):
                    write_project(bproject, host, n)
                    tag = f"{host}/bench/buildah:v{n}"
                    elapsed, up, _down = measure(proxy, lambda: run_buildah(store, runroot, bproject, tag))  # noqa: B023
                    times.append(elapsed)
                    ups.append(up)
                results["buildah"] = {"first_s": first[0], "first_up": first[1], "s": statistics.median(times),
                                      "up": statistics.median(ups)}
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                buildah_note = f"buildah_failed={type(exc).__name__}"
                print(f"buildah could not run here: {exc}", file=sys.stderr)
        else:
            buildah_note = "buildah=not-installed"
    finally:
        proxy.close()
        registry.stop()
        subprocess.run(["umount", "-R", runroot], capture_output=True)  # buildah may leave mounts behind
        shutil.rmtree(runroot, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"base: {args.base_mib} MiB in {args.base_files} files; {rounds} handler-only redeploys per builder (median)")
    print(f"{'builder':<12}{'first deploy':>16}{'first up':>14}{'redeploy':>12}{'redeploy up':>14}")
    for name, r in results.items():
        print(f"{name:<12}{r['first_s']:>15.3f}s{int(r['first_up']):>13}B{r['s']:>11.3f}s{int(r['up']):>13}B")
    d = results["daemonless"]
    if "buildah" in results:
        b = results["buildah"]
        speedup = b["s"] / d["s"]
        met = speedup >= TARGET_SPEEDUP and d["up"] < TARGET_BYTES
        print(f"RESULT redeploy speedup={speedup:.1f}x daemonless_s={d['s']:.4f} daemonless_bytes={int(d['up'])} "
              f"buildah_s={b['s']:.3f} buildah_bytes={int(b['up'])} base_mib={args.base_mib} "
              f"target={'met' if met else 'missed'}")
    else:
        print(f"RESULT redeploy speedup=n/a daemonless_s={d['s']:.4f} daemonless_bytes={int(d['up'])} {buildah_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
