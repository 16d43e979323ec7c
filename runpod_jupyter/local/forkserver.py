"""Fast worker starts: a fork server (zygote) that has already loaded what ``import runpod`` loads,
and forks each local worker from there instead of starting a new interpreter.

A worker's start is mostly ``import runpod`` (about 1.5 s), and most of that is one CPU probe. The
zygote is a child of the embedded RunPod's server process, started with the server. For each
worker it is sent argv, cwd and env over a Unix socket with the worker's stdout and stderr pipes
(``SCM_RIGHTS``); it forks, and the child makes itself the worker: its own session, the pipes on
fds 1 and 2, the worker's cwd and exactly its environment, ``sys.argv`` and ``sys.path[0]`` as
``python -u handler.py`` would have them, then it runs ``handler.py`` as ``__main__``: the SDK's
own, unmodified ``runpod.serverless.start``. The zygote reports the child's pid, then its exit status.

Only the default command takes this path (this interpreter, ``-u``, a file); anything else, or a
zygote that is not there, starts a plain subprocess. A zygote that dies takes its workers with it
(they are killed and exit 137 with that reason, so their jobs are retried) and is started again.
It never outlives the server: it exits, killing its workers, when its socket closes.

What the SDK needs for this to stay correct (read from runpod 1.12's source):

- State read at import time. Many runpod modules copy env vars into module constants when
  imported: ``worker_state`` (``RUNPOD_POD_ID`` as ``WORKER_ID``, ``RUNPOD_WEBHOOK_GET_JOB``),
  ``rp_job`` (the job-take URL), ``rp_http`` (job-done and job-stream URLs), ``rp_logger``
  (``RUNPOD_LOG_LEVEL``), ``rp_fastapi``, the fitness checks' limits, and ``runpod/__init__``
  (``~/.runpod/config.toml`` under ``HOME``: a key). So no runpod module reaches a worker: the
  zygote imports the whole SDK once, to load its dependencies (aiohttp, requests, urllib3,
  paramiko, IPython, tqdm...), then drops every ``runpod`` module and the atexit hooks they
  registered. The worker's own ``import runpod`` runs the SDK's modules again, in milliseconds,
  under the worker's env.
- The slow part is env-free: ``rp_debugger`` calls ``cpuinfo.get_cpu_info()`` at import (it runs
  a Python subprocess, ~1.2 s). The zygote probes once and makes ``cpuinfo.get_cpu_info`` return a
  copy of that result.
- Dependencies keep what they read when the zygote imported them. The zygote runs with what a
  worker gets but the template's env and ``RUNPOD_*``: PATH, locale, TMPDIR, TZ and a private
  ``HOME`` (never the user's, so never their key). A template variable a dependency reads at
  import (e.g. ``SSL_CERT_FILE`` for aiohttp's default SSL context) is not seen by it; a template
  that sets interpreter settings (``PYTHON*`` but ``PYTHONUNBUFFERED``, or another locale) gets
  the plain path.
- Threads and event loops: the SDK starts none at import; its event loop, threads and heartbeat
  process (a multiprocessing "fork" child, in the worker's process group) start in
  ``serverless.start``. The zygote creates none either, and checks before every fork that it runs
  one thread and holds no event loop (else it refuses, and the worker takes the plain path).
- Per-process state is renewed by fork hooks (``random`` reseeds, ``threading`` resets); the
  string hash seed is the zygote's, shared by its workers.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import contextlib
import copy
import errno
import gc
import importlib
import importlib.machinery
import inspect
import io
import itertools
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Variables of the server's own environment every worker gets (the rest is the template's and ours).
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "TZ")
#: Read by the interpreter as it starts: a worker must start with the zygote's.
_LOCALE_ENV = ("LANG", "LC_ALL", "LC_CTYPE")
#: In the zygote's environment (so in /proc/PID/environ of its workers): the server's data dir.
MARKER_ENV = "RUNPOD_JUPYTER_FORK_SERVER"

MAX_MESSAGE = 1 << 20  # a fork request (its env); the zygote's answers are small
ANSWER_SIZE = 1 << 16
READY_TIMEOUT = 120.0  # the zygote's first start on a loaded machine
SPAWN_WAIT = 30.0  # a worker waits this long for a zygote still starting, then starts plainly
REPLY_TIMEOUT = 10.0
RETRY_AFTER_FAILED_START = 30.0

_BOOT = "import sys; sys.path[0] = {root!r}; from runpod_jupyter.local.forkserver import zygote; zygote(int(sys.argv[1]))"


# -- the server's side ---------------------------------------------------------------------------
class ForkedProcess:
    """A worker forked by the zygote, seen as :class:`asyncio.subprocess.Process` is: pid,
    returncode (``-N`` for death by signal N), ``wait()`` and its output streams."""

    def __init__(self, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader) -> None:
        self.pid = 0
        self.returncode: int | None = None
        self.stdout: asyncio.StreamReader | None = stdout
        self.stderr: asyncio.StreamReader | None = stderr
        #: Set when the worker was killed because its fork server ended.
        self.killed_by: str | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._transports: list[asyncio.BaseTransport] = []

    async def wait(self) -> int:
        """Its exit status, once the zygote has reaped it (the pipes may still be open)."""
        return await asyncio.shield(self._exited)

    def _finish(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
            self._exited.set_result(returncode)

    def _close_pipes(self) -> None:
        for transport in self._transports:
            transport.close()


class ForkServer:
    """The server's handle on its zygote: started in the background, started again after it died
    (after a pause when it could not start), stopped with the server."""

    def __init__(self, home: Path, log_file: Path, marker: str) -> None:
        self.home = home
        self.log_file = log_file
        self.env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
        self.env.update({"HOME": str(home), "PYTHONUNBUFFERED": "1", MARKER_ENV: marker})
        self.pid: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._starting: asyncio.Future[bool] | None = None
        self._reader: asyncio.Future[None] | None = None
        self._retry_at = 0.0
        self._closed = False
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[str | None], ForkedProcess]] = {}
        self._live: dict[int, ForkedProcess] = {}

    @property
    def ready(self) -> bool:
        return self._sock is not None

    def start(self) -> None:
        """Start the zygote in the background, unless it runs, is starting, or failed just now."""
        if self._closed or self.ready or (self._starting is not None and not self._starting.done()):
            return
        if time.monotonic() < self._retry_at:
            return
        self._starting = asyncio.ensure_future(self._start())

    def script_argv(self, argv: list[str], env: Mapping[str, str]) -> list[str] | None:
        """``[script, *args]`` when the command is this interpreter running a file unbuffered with
        the zygote's interpreter settings; None when it needs a new interpreter."""
        if len(argv) < 2 or argv[0] != sys.executable:
            return None
        rest = argv[1:]
        unbuffered = bool(env.get("PYTHONUNBUFFERED"))
        while rest and rest[0] == "-u":
            unbuffered, rest = True, rest[1:]
        if not rest or rest[0].startswith("-") or not unbuffered:
            return None
        if any(key.startswith("PYTHON") and key != "PYTHONUNBUFFERED" for key in env):
            return None
        if any(env.get(key) != self.env.get(key) for key in _LOCALE_ENV):
            return None
        return rest

    async def spawn(self, argv: list[str], cwd: Path, env: Mapping[str, str]) -> ForkedProcess | None:
        """Fork a worker; None when it cannot take this path now (start it as a subprocess then).
        A launch no process could be started with raises as starting a subprocess would."""
        script = self.script_argv(argv, env)
        if script is None or self._closed:
            return None
        _check_launch(script, env)
        self.start()
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._starting), SPAWN_WAIT)
        sock = self._sock
        if sock is None:
            return None
        loop = asyncio.get_running_loop()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        transports: list[asyncio.BaseTransport] = []
        try:
            stdout, out_t = await _reader(out_r)
            transports.append(out_t)
            stderr, err_t = await _reader(err_r)
            transports.append(err_t)
        except BaseException:
            for transport in transports:
                transport.close()
            for fd in (out_w, err_w, *(out_r, err_r)[len(transports):]):
                os.close(fd)
            raise
        handle = ForkedProcess(stdout, stderr)
        handle._transports = transports
        request_id = next(self._ids)
        reply: asyncio.Future[str | None] = loop.create_future()
        self._pending[request_id] = (reply, handle)
        request = {"id": request_id, "argv": script, "cwd": str(cwd), "env": dict(env)}
        unavailable: str | None = None
        try:
            try:
                await _send_with_fds(sock, json.dumps(request).encode(), [out_w, err_w])
            except OSError as exc:
                if exc.errno != errno.EMSGSIZE:  # too big a request is this worker's matter only
                    self._lost(f"{type(exc).__name__}: {exc}")
                unavailable = f"{type(exc).__name__}: {exc}"
            finally:
                os.close(out_w)
                os.close(err_w)
            if unavailable is None:
                unavailable = await asyncio.wait_for(asyncio.shield(reply), REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            self._lost("it did not answer")
            unavailable = "no answer"
        except BaseException:  # the launch's fault (no such cwd...), as a subprocess start would fail
            handle._close_pipes()
            raise
        finally:
            self._pending.pop(request_id, None)
        if unavailable is not None:
            handle._close_pipes()
            return None
        return handle

    async def close(self) -> None:
        """Stop the zygote (by PID: SIGTERM, SIGKILL after a grace); it kills any worker left."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._starting), 5)
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 3)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self._lost("the embedded RunPod stopped")
        if self._reader is not None:
            self._reader.cancel()

    async def _start(self) -> bool:
        loop = asyncio.get_running_loop()
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = str(Path(__file__).resolve().parents[2])
        try:
            with self.log_file.open("ab") as log:
                self._process = await asyncio.create_subprocess_exec(
                    sys.executable, "-u", "-c", _BOOT.format(root=root), str(theirs.fileno()),
                    cwd=str(self.home), env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                    pass_fds=(theirs.fileno(),), start_new_session=True,
                )
            ours.setblocking(False)
            hello = json.loads(await asyncio.wait_for(loop.sock_recv(ours, ANSWER_SIZE), READY_TIMEOUT) or b"{}")
            if not hello.get("ready"):
                raise RuntimeError(hello.get("failed") or "it ended before it was ready")
        except Exception as exc:  # noqa: BLE001 - no zygote: workers start as subprocesses
            ours.close()
            self._stop_process()
            self._retry_at = time.monotonic() + RETRY_AFTER_FAILED_START
            _note(self.log_file, f"fork server unavailable: {type(exc).__name__}: {exc}")
            return False
        finally:
            theirs.close()
        if self._closed:
            ours.close()
            self._stop_process()
            return False
        self.pid = int(hello["pid"])
        self._sock = ours
        self._reader = asyncio.ensure_future(self._read(ours))
        return True

    async def _read(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        why = "its socket closed"
        try:
            while True:
                data = await loop.sock_recv(sock, ANSWER_SIZE)
                if not data:
                    break
                self._on_message(json.loads(data))
        except (OSError, ValueError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        if self._sock is sock:
            self._lost(why)

    def _on_message(self, message: dict[str, Any]) -> None:
        if "exit" in message:
            handle = self._live.pop(int(message["exit"]), None)
            if handle is not None:
                handle._finish(int(message["code"]))
            return
        pending = self._pending.get(int(message.get("id", 0)))
        if pending is None:
            if "pid" in message:  # answered after its requester gave up: nobody watches it
                _kill_group(int(message["pid"]))
            return
        reply, handle = pending
        if reply.done():
            return
        if "pid" in message:
            handle.pid = int(message["pid"])
            self._live[handle.pid] = handle
            reply.set_result(None)
        elif "errno" in message:
            reply.set_exception(OSError(int(message["errno"]), message["error"], message.get("filename")))
        else:
            reply.set_result(str(message.get("unavailable") or "refused"))

    def _lost(self, why: str) -> None:
        """The zygote is gone or broken: its workers are killed and reported, requests answered."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            self._stop_process()
            if not self._closed:
                _note(self.log_file, f"fork server lost: {why}")
        for pid, handle in list(self._live.items()):
            _kill_group(pid)
            handle.killed_by = handle.killed_by or f"its fork server ended ({why})"
            handle._finish(-signal.SIGKILL)
        self._live.clear()
        for reply, _ in self._pending.values():
            if not reply.done():
                reply.set_result(why)

    def _stop_process(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()


async def _reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16, loop=loop)  # as asyncio.subprocess reads
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0)
    )
    return reader, transport


async def _send_with_fds(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    for _ in range(200):
        try:
            socket.send_fds(sock, [data], fds)
            return
        except BlockingIOError:
            await asyncio.sleep(0.01)
    raise OSError(errno.EAGAIN, "the fork server does not read its socket")


def _check_launch(argv: list[str], env: Mapping[str, str]) -> None:
    """Refuse what :func:`os.execve` would refuse, so both paths fail a worker the same way."""
    for key, value in env.items():
        if not key or "=" in key:
            raise ValueError(f"illegal environment variable name: {key!r}")
        if "\x00" in key or "\x00" in value:
            raise ValueError("embedded null byte")
    if any("\x00" in arg for arg in argv):
        raise ValueError("embedded null byte")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _note(log_file: Path, message: str) -> None:
    with contextlib.suppress(OSError), log_file.open("a", encoding="utf-8") as log:
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


# -- the zygote ----------------------------------------------------------------------------------
@dataclass
class _Worker:
    """What a forked child runs once it has become the worker."""

    path: str


def zygote(fd: int) -> None:
    """The zygote's main: load the SDK's dependencies, then serve fork requests until the server
    goes. In a forked child this returns only after running the worker's script."""
    sock = socket.socket(fileno=fd)
    base_path = sys.path[1:]
    try:
        _preload()
    except BaseException as exc:  # noqa: BLE001 - told to the server, which then starts subprocesses
        _send(sock, {"failed": f"{type(exc).__name__}: {exc}"})
        return
    worker = _Zygote(sock, base_path).serve()
    if worker is not None:
        _run_worker(worker)


def _preload() -> None:
    """Import the SDK and its dependencies, keep the CPU probe's result, drop the SDK's own modules."""
    import cpuinfo  # type: ignore[import-untyped]

    probed = cpuinfo.get_cpu_info()

    def get_cpu_info() -> dict[str, Any]:
        return copy.deepcopy(probed)

    cpuinfo.get_cpu_info = get_cpu_info
    if hasattr(cpuinfo, "cpuinfo"):
        cpuinfo.cpuinfo.get_cpu_info = get_cpu_info
    importlib.import_module("runpod")
    for name in [n for n in sys.modules if n == "runpod" or n.startswith("runpod.")]:
        module = sys.modules.pop(name)
        for value in list(vars(module).values()):
            if inspect.isfunction(value):
                atexit.unregister(value)
    gc.collect()
    gc.freeze()  # forked workers then leave the zygote's objects' pages alone


def _send(sock: socket.socket, message: dict[str, Any]) -> bool:
    try:
        sock.send(json.dumps(message).encode())
        return True
    except OSError:
        return False


def _fork_unsafe() -> str | None:
    """Why forking now would hand the worker a broken copy: other threads, an event loop."""
    if threading.active_count() != 1:
        return f"{threading.active_count()} threads run in the fork server"
    policy = getattr(asyncio.events, "_event_loop_policy", None)
    local = getattr(policy, "_local", None)
    if getattr(local, "_loop", None) is not None:
        return "the fork server holds an event loop"
    return None


class _Zygote:
    def __init__(self, sock: socket.socket, base_path: list[str]) -> None:
        self.sock = sock
        self.base_path = base_path
        self.children: set[int] = set()
        self.stopping = False
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector = selectors.DefaultSelector()

    def serve(self) -> _Worker | None:
        """Answer fork requests and report exits until the socket closes or SIGTERM; then kill the
        workers left. Returns in a forked child, as the worker it became."""
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the wakeup fd
        signal.signal(signal.SIGTERM, self._stop)
        self.selector.register(self.sock, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.stopping = not _send(self.sock, {"ready": True, "pid": os.getpid()})
        while not self.stopping:
            for key, _ in self.selector.select():
                if key.fileobj == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 512):
                            pass
                    self._reap()
                    continue
                try:
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 2)
                except OSError:
                    data, fds = b"", []
                if not data:
                    self.stopping = True
                    break
                worker = self._fork(json.loads(data), fds)
                if worker is not None:
                    return worker
        for pid in self.children:
            _kill_group(pid)
        return None

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children.discard(pid)
                if not _send(self.sock, {"exit": pid, "code": os.waitstatus_to_exitcode(status)}):
                    self.stopping = True

    def _fork(self, request: dict[str, Any], fds: list[int]) -> _Worker | None:
        request_id = request.get("id")
        try:
            if not isinstance(request.get("argv"), list) or not isinstance(request.get("env"), dict):
                raise OSError(errno.EINVAL, "a fork request carries argv and env")
            if len(fds) != 2:
                raise OSError(errno.EINVAL, "a fork request carries the worker's stdout and stderr")
            if not os.path.isdir(str(request.get("cwd"))):
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), request.get("cwd"))
            unsafe = _fork_unsafe()
            if unsafe:
                _send(self.sock, {"id": request_id, "unavailable": unsafe})
                return None
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        except OSError as exc:
            _send(self.sock, {"id": request_id, "error": exc.strerror or str(exc), "errno": exc.errno or errno.EIO,
                              "filename": exc.filename})
            pid = -1
        if pid == 0:
            try:
                return self._become_worker(request, fds)
            except BaseException as exc:  # noqa: BLE001 - never back into the zygote's loop
                with contextlib.suppress(OSError):
                    os.write(2, f"could not start the worker: {type(exc).__name__}: {exc}\n".encode())
                os._exit(127)
        for fd in fds:
            os.close(fd)
        if pid > 0:
            self.children.add(pid)
            if not _send(self.sock, {"id": request_id, "pid": pid}):
                self.stopping = True
        return None

    def _become_worker(self, request: dict[str, Any], fds: list[int]) -> _Worker:
        """In the forked child: shed the zygote's signals and fds, then take on the worker's
        session, output, cwd, environment, argv and path."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.selector.close()
        self.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in {null, *fds} - {0, 1, 2}:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        argv = [str(arg) for arg in request["argv"]]
        path = os.path.abspath(argv[0])
        sys.argv = argv
        sys.path[:] = [os.path.dirname(os.path.realpath(path)), *self.base_path]
        importlib.invalidate_caches()
        return _Worker(path=path)


def _run_worker(worker: _Worker) -> None:
    """Run the script as ``python`` runs one: as the ``__main__`` module (which stays, as it does),
    exit 2 when the file cannot be opened, a traceback (from the script's own frames) and exit 1
    on an uncaught exception, its SystemExit as is."""
    try:
        with io.open_code(worker.path) as file:
            source = file.read()
    except OSError as exc:
        print(f"{sys.executable}: can't open file {worker.path!r}: [Errno {exc.errno}] {exc.strerror}", file=sys.stderr)
        sys.exit(2)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=worker.path, __cached__=None, __builtins__=builtins,
        __loader__=importlib.machinery.SourceFileLoader("__main__", worker.path),
    )
    sys.modules["__main__"] = main
    try:
        exec(compile(source, worker.path, "exec", dont_inherit=True), main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != worker.path:
            tb = tb.tb_next
        exc = exc.with_traceback(tb or exc.__traceback__)  # the hook prints the exception's own
        sys.excepthook(type(exc), exc, exc.__traceback__)
        sys.exit(1)
