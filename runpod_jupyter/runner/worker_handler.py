"""The runner's worker: runs a notebook cell (or one function call) shipped by runpod-jupyter and
streams back what it prints and displays, then the names it bound.

Self-contained on purpose (the standard library, cloudpickle and runpod only): on RunPod the
runner image holds this file and nothing of runpod-jupyter. The worker process lives on between
jobs, so modules the cells import (and what they cache) stay loaded; each job gets a fresh
namespace built from the values shipped with it.

Per job: the versions the kernel pickled with are compared with this worker's before anything is
unpickled (a mismatch ends the job as a ``failed`` chunk with error_type "VersionMismatch", and
nothing runs); the code runs in a thread while this async generator yields ``output`` and
``display`` chunks as they come (about every 50 ms while output flows); the last chunk is ``done``
or ``failed``. A cancelled job interrupts the code with KeyboardInterrupt and keeps its slot until
the code has stopped (at most ``SETTLE_S``), so the next job never runs beside it.

In a worker process the SDK 1.x loop is changed in two ways before it starts: a job starts as soon
as the job-take hands it over, as in SDK 2.0, not at the loop's next look at its queue (every
0.1 s, most of a warm cell's time); and the next job-take goes out as soon as the job ends, not a
second later (a ``map`` ran one item a second).
"""

from __future__ import annotations

import ast
import asyncio
import base64
import builtins
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import inspect
import io
import linecache
import os
import queue
import sys
import threading
import time
import traceback
import types
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

FORMAT = 1
KIND_CELL = "runpod_jupyter.runner.cell"
KIND_CALL = "runpod_jupyter.runner.call"
RETURN_BUDGET = 8_000_000
FLUSH_S = 0.05
SETTLE_S = 10.0  # seconds a cancelled job's code is given to stop before the next job may start
BACKEND = "runpod_runner_backend"  # matplotlib backend module served by _Finder
# Imported only once a cell imports matplotlib itself (names kept out of the image's requirements).
MPL_AGG, MPL_BASES = "matplotlib.backends.backend_agg", "matplotlib.backend_bases"
GPU_LIBRARIES = ("torch", "cupy", "jax", "jaxlib", "tensorflow")
UNCHECKED = ("__main__", "__mp_main__", "builtins", "cloudpickle")
REPR_METHODS = (
    ("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_"), ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"), ("image/jpeg", "_repr_jpeg_"), ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"), ("application/javascript", "_repr_javascript_"),
)
ADVICE = (
    (("TextIOWrapper", "BufferedReader", "BufferedWriter", "FileIO", "_io."), "an open file"),
    (("lock", "RLock", "Condition", "_thread"), "a lock or another threading object"),
    (("socket", "SSLContext", "Connection", "Session"), "a live connection"),
    (("generator", "coroutine"), "a generator: turn it into a list to bring it back"),
)

_ACTIVE: Any = None  # the job whose code is running, if any
_INSTALLED: list[bool] = []
_DISTRIBUTIONS: dict[str, list[str]] = {}
_ORIGINAL_DISPLAY: dict[str, Any] = {}


# --------------------------------------------------------------------------- the handler


async def handler(job: dict[str, Any]) -> Any:
    """One runner job: refuse it (wrong format or versions), or run it and stream its events."""
    global _ACTIVE
    worker_id = os.environ.get("RUNPOD_POD_ID", "")
    request = job.get("input")
    refusal = _refusal(request, worker_id)
    if refusal is not None or not isinstance(request, dict):
        yield refusal
        return
    _install()
    run = _Run(request, worker_id, asyncio.get_running_loop())
    thread = threading.Thread(target=run.main, name="runpod-runner-job", daemon=True)
    _ACTIVE = run
    thread.start()
    try:
        while True:
            await run.event.wait()
            run.event.clear()
            run.signalled = False
            pause = FLUSH_S - (time.monotonic() - run.flushed)
            if pause > 0 and not run.finished:
                await asyncio.sleep(pause)  # coalesce a burst of prints into one chunk
            run.flushed = time.monotonic()
            for chunk in run.drain():
                yield chunk
            if run.finished and run.queue.empty():
                break
        yield run.final
    finally:
        if not run.finished and thread.is_alive():  # cancelled, or the generator was closed
            _interrupt(thread)
            await _settle(thread)
        if _ACTIVE is run:
            _ACTIVE = None


def _refusal(request: Any, worker_id: str) -> dict[str, Any] | None:
    if not isinstance(request, dict) or request.get("kind") not in (KIND_CELL, KIND_CALL):
        return _failed_chunk("BadRequest", "This endpoint runs cells sent by runpod-jupyter's "
                             "%%runpod_run and remote(); the input is not one.", "", worker_id)
    if request.get("format") != FORMAT:
        return _failed_chunk("VersionMismatch", f"The kernel speaks wire format {request.get('format')!r}, "
                             f"this worker {FORMAT}. Nothing ran.", "", worker_id)
    found = _differences(request.get("versions") or {})
    if found:
        return _failed_chunk("VersionMismatch", "The worker's versions differ from the kernel's, so "
                             "nothing was unpickled and nothing ran: " + "; ".join(found) + ".", "", worker_id)
    return None


def _python_minor() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def _differences(theirs: dict[str, Any]) -> list[str]:
    found = []
    if theirs.get("python") != _python_minor():
        found.append(f"Python {theirs.get('python')} in the kernel, {_python_minor()} on the worker")
    if theirs.get("cloudpickle") != cloudpickle.__version__:
        found.append(f"cloudpickle {theirs.get('cloudpickle')} in the kernel, {cloudpickle.__version__} on the worker")
    for dist, version in sorted((theirs.get("packages") or {}).items()):
        mine = _installed(dist)
        if mine != version:
            found.append(f"{dist} {version} in the kernel, "
                         f"{'not installed' if mine is None else mine} on the worker")
    return found


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _failed_chunk(error_type: str, message: str, text: str, worker_id: str) -> dict[str, Any]:
    return {"kind": "failed", "format": FORMAT, "error_type": error_type, "message": message,
            "traceback": text, "worker_id": worker_id}


async def _settle(thread: threading.Thread) -> None:
    """Keep the job's slot until its interrupted code has stopped, so the next job never runs
    beside it; bounded, since code blocked in a C call sees the interrupt only when that returns.
    RunPod repeats its stop signal meanwhile: the repeats are waited through."""
    deadline = time.monotonic() + SETTLE_S
    while thread.is_alive() and time.monotonic() < deadline:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.01)


def _interrupt(thread: threading.Thread) -> None:
    """Raise KeyboardInterrupt in the code's thread (at its next Python instruction)."""
    import ctypes

    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(KeyboardInterrupt))


# --------------------------------------------------------------------------- one job's run


class _Run:
    """A job's code, run in its own thread; what it prints and displays queues up in order."""

    def __init__(self, request: dict[str, Any], worker_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.request, self.worker_id, self.loop = request, worker_id, loop
        self.queue: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()
        self.event = asyncio.Event()
        self.signalled = False
        self.finished = False
        self.flushed = 0.0
        self.final: dict[str, Any] = {}
        # Threads alive now (the SDK's among them) keep writing to the real streams.
        self.outside = {t.ident for t in threading.enumerate()}

    def captures(self) -> bool:
        return threading.get_ident() not in self.outside

    def put(self, kind: str, first: Any, second: Any) -> None:
        self.queue.put((kind, first, second))
        self._signal()

    def _signal(self) -> None:
        if not self.signalled:
            self.signalled = True
            with contextlib.suppress(RuntimeError):  # the loop is gone: the worker is shutting down
                self.loop.call_soon_threadsafe(self.event.set)

    def drain(self) -> list[dict[str, Any]]:
        """Queued output as chunks, consecutive text of one stream merged."""
        chunks: list[dict[str, Any]] = []
        while True:
            try:
                kind, first, second = self.queue.get_nowait()
            except queue.Empty:
                return chunks
            if kind == "text":
                last = chunks[-1] if chunks else None
                if last is not None and last["kind"] == "output" and last["name"] == first:
                    last["text"] += second
                else:
                    chunks.append({"kind": "output", "format": FORMAT, "name": first, "text": second})
            else:
                chunks.append({"kind": "display", "format": FORMAT, "data": first, "metadata": second})

    def main(self) -> None:
        try:
            if self.request["kind"] == KIND_CELL:
                self.final = _run_cell(self.request, self.worker_id)
            else:
                self.final = _run_call(self.request, self.worker_id)
        except BaseException as exc:  # everything the code raises ends up in the notebook
            self.final = _failed(exc, self.worker_id)
        finally:
            _show_figures()
            self.finished = True
            self._signal()


def _failed(exc: BaseException, worker_id: str) -> dict[str, Any]:
    """A failed chunk whose traceback starts at the user's code (the runner's frames removed)."""
    tb = exc.__traceback__
    mine = globals()
    while tb is not None and (tb.tb_frame.f_globals is mine
                              or tb.tb_frame.f_code.co_filename == getattr(threading, "__file__", None)):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return _failed_chunk(type(exc).__qualname__, str(exc), text, worker_id)


def _register_sources(sources: dict[str, str]) -> None:
    for filename, text in (sources or {}).items():
        _register_source(filename, text, 1)


def _register_source(filename: str, text: str, first_line: int) -> None:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    linecache.cache[filename] = (len(text), None, ["\n"] * (first_line - 1) + lines, filename)


def _namespace(request: dict[str, Any]) -> dict[str, Any]:
    """The cell's fresh namespace: the notebook values unpickled (functions from the notebook
    share one globals dict, which becomes the namespace), then the imports redone."""
    values: dict[str, Any] = {}
    if request.get("values"):
        try:
            values = cloudpickle.loads(base64.b64decode(request["values"]))
        except BaseException as exc:
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note("(loading the notebook's values on the worker: a module they come from "
                             "may be missing here; add it to the runner's requirements)")
            raise
    ns: dict[str, Any] | None = None
    for value in values.values():
        if isinstance(value, types.FunctionType) and value.__module__ in ("__main__", "__mp_main__"):
            ns = value.__globals__
            break
    if ns is None:
        ns = {}
    ns.update({"__name__": "__main__", "__builtins__": builtins, "__doc__": None, "__package__": None,
               "__spec__": None, "__loader__": None})
    for item in request.get("imports") or []:
        try:
            found: Any = importlib.import_module(item["module"])
            for attr in (item.get("qualname") or "").split(".") if item.get("qualname") else ():
                found = getattr(found, attr)
        except BaseException as exc:
            what = item["module"] + (f".{item['qualname']}" if item.get("qualname") else "")
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(f"(redoing the notebook's import of `{item['name']}` = {what} on the worker)")
            raise
        ns[item["name"]] = found
    ns.update(values)
    return ns


def _await(value: Any, loop_box: list[asyncio.AbstractEventLoop]) -> Any:
    """Run a coroutine (top-level ``await`` in the cell, an async function) to its end."""
    if not inspect.iscoroutine(value):
        return value
    if not loop_box:
        loop_box.append(asyncio.new_event_loop())
    return loop_box[0].run_until_complete(value)


def _run_cell(request: dict[str, Any], worker_id: str) -> dict[str, Any]:
    code, filename = request["code"], request.get("filename") or "<cell>"
    first_line = int(request.get("first_line") or 1)
    _register_sources(request.get("sources") or {})
    _register_source(filename, code, first_line)
    ns = _namespace(request)
    tree = ast.parse(code, filename=filename)
    ast.increment_lineno(tree, first_line - 1)
    last: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    body = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
    tail = compile(last, filename, "eval", flags=flags, dont_inherit=True) if last is not None else None
    before = dict(ns)
    loop_box: list[asyncio.AbstractEventLoop] = []
    try:
        _await(eval(body, ns), loop_box)
        value = _await(eval(tail, ns), loop_box) if tail is not None else None
    finally:
        for loop in loop_box:
            loop.close()
    _show_figures()
    out = request.get("out")
    if out is not None:
        names = list(out)
    else:
        changed = {k for k, v in ns.items() if k not in before or before[k] is not v}
        names = sorted((set(request.get("binds") or ()) | changed) & set(ns))
        names = [n for n in names if not (n.startswith("__") and n.endswith("__"))]
    done = _pack_back({n: ns[n] for n in names if n in ns}, worker_id)
    for name in names:
        if name not in ns:
            done["refused"][name] = "the cell did not bind it"
    if value is not None and not request.get("silent"):
        done["result"] = _bundle(value)
        try:
            blob, _ = _dumps(value)
            if len(blob) * 4 // 3 <= RETURN_BUDGET // 4:
                done["value"] = base64.b64encode(blob).decode("ascii")
        except BaseException:  # the display is what matters; the value stays on the worker
            pass
    return done


def _run_call(request: dict[str, Any], worker_id: str) -> dict[str, Any]:
    _register_sources(request.get("sources") or {})
    fn = cloudpickle.loads(base64.b64decode(request["function"]))
    args, kwargs = cloudpickle.loads(base64.b64decode(request["arguments"]))
    loop_box: list[asyncio.AbstractEventLoop] = []
    try:
        value = _await(fn(*args, **kwargs), loop_box)
    finally:
        for loop in loop_box:
            loop.close()
    _show_figures()
    done = _pack_back({}, worker_id)
    try:
        blob, modules = _dumps(value)
    except BaseException as exc:
        done["refused"]["return"] = _why_not(value, exc)
        return done
    if len(blob) * 4 // 3 > RETURN_BUDGET:
        done["refused"]["return"] = _too_large(len(blob))
        return done
    done["value"] = base64.b64encode(blob).decode("ascii")
    needs = _packages(modules)
    done["versions"]["packages"].update(needs)
    done["needs"]["return"] = sorted(needs)
    return done


# --------------------------------------------------------------------------- values back


class _Recorder(cloudpickle.Pickler):
    """cloudpickle noting the top-level module of everything pickled; refuses device memory."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=cloudpickle.DEFAULT_PROTOCOL)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        root = (type(obj).__module__ or "").split(".")[0]
        self.modules.add(root)
        if isinstance(obj, types.ModuleType):
            self.modules.add(obj.__name__.split(".")[0])
        elif isinstance(obj, type) or callable(obj):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str) and module:
                self.modules.add(module.split(".")[0])
        if root in GPU_LIBRARIES:
            _refuse_device(obj, root)
        return super().reducer_override(obj)


class _DeviceValue(Exception):
    pass


def _refuse_device(obj: Any, library: str) -> None:
    try:
        device = "cuda" if getattr(obj, "is_cuda", False) else getattr(getattr(obj, "device", None), "type", None)
        if library == "cupy" and type(obj).__name__ == "ndarray":
            device = "cuda"
    except Exception:
        return
    if device in ("cuda", "mps", "xpu"):
        fix = "x.get()" if library == "cupy" else "x.cpu()"
        raise _DeviceValue(f"it lives in the worker's {device} memory: bring back a copy in host memory "
                           f"({fix}) or what you need from it")


def _dumps(value: Any) -> tuple[bytes, set[str]]:
    buffer = io.BytesIO()
    pickler = _Recorder(buffer)
    pickler.dump(value)
    return buffer.getvalue(), pickler.modules


def _packages(modules: set[str]) -> dict[str, str]:
    """Distribution → version for the top-level modules given (standard library left out)."""
    if not _DISTRIBUTIONS and any(m not in sys.stdlib_module_names and m not in UNCHECKED for m in modules):
        _DISTRIBUTIONS.update(importlib.metadata.packages_distributions())
    found: dict[str, str] = {}
    for top in modules:
        if not top or top in UNCHECKED or top in sys.stdlib_module_names or top.startswith("_"):
            continue
        for dist in _DISTRIBUTIONS.get(top, []):
            version = _installed(dist)
            if version is not None:
                found[dist] = version
    return found


def _importable(value: Any) -> tuple[str, str] | None:
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    if module_name in ("__main__", "__mp_main__", "builtins"):
        return None
    parts = module_name.split(".")
    for end in range(1, len(parts) + 1):
        found: Any = sys.modules.get(".".join(parts[:end]))
        for attr in qualname.split("."):
            found = getattr(found, attr, None)
        if found is value:
            return ".".join(parts[:end]), qualname
    return None


def _why_not(value: Any, exc: BaseException) -> str:
    if isinstance(exc, _DeviceValue):
        return str(exc)
    kind = type(value)
    shown = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    detail = f"{type(exc).__name__}: {exc}"
    for needles, what in ADVICE:
        if any(n in f"{shown} {detail}" for n in needles):
            return f"{what} ({shown}) cannot leave the worker ({detail})"
    return f"a {shown} that cannot be pickled ({detail}); bring back something simpler made from it"


def _too_large(size: int) -> str:
    return (f"too large to come back: {size / 1e6:.1f} MB pickled; a job's result may carry at most "
            f"{RETURN_BUDGET / 1e6:.1f} MB. Save it on the worker (a network volume) or bring back a summary")


def _pack_back(values: dict[str, Any], worker_id: str) -> dict[str, Any]:
    """The done chunk for these values: imports for modules and importable objects, a pickle per
    name for the rest (refused one by one, largest first when over the budget)."""
    imports: list[dict[str, Any]] = []
    blobs: dict[str, bytes] = {}
    needs: dict[str, list[str]] = {}
    refused: dict[str, str] = {}
    packages: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, types.ModuleType):
            imports.append({"name": name, "module": value.__name__, "qualname": None})
            continue
        found = _importable(value)
        if found is not None:
            imports.append({"name": name, "module": found[0], "qualname": found[1]})
            continue
        try:
            blob, modules = _dumps(value)
        except BaseException as exc:
            refused[name] = _why_not(value, exc)
            continue
        blobs[name] = blob
        mine = _packages(modules)
        needs[name] = sorted(mine)
        packages.update(mine)
    total = sum(len(b) * 4 // 3 for b in blobs.values())
    for name in sorted(blobs, key=lambda n: -len(blobs[n])):
        if total <= RETURN_BUDGET:
            break
        total -= len(blobs[name]) * 4 // 3
        refused[name] = _too_large(len(blobs.pop(name)))
        needs.pop(name, None)
    return {
        "kind": "done", "format": FORMAT, "worker_id": worker_id,
        "versions": {"python": _python_minor(), "cloudpickle": cloudpickle.__version__, "packages": packages},
        "imports": imports,
        "values": {n: base64.b64encode(b).decode("ascii") for n, b in blobs.items()},
        "needs": needs, "refused": refused, "result": None, "value": None,
    }


# --------------------------------------------------------------------------- output capture


class _Stream:
    """Stands in for sys.stdout / sys.stderr: text written by the job's code (its thread, and
    threads it starts) is queued for the notebook; everything else (the SDK's own logs) goes
    to the real stream."""

    def __init__(self, name: str, real: Any) -> None:
        self.name, self.real = name, real

    def write(self, text: str) -> int:
        run = _ACTIVE
        if run is not None and run.captures():
            if text:
                run.put("text", self.name, str(text))
            return len(text)
        return int(self.real.write(text) or 0)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        run = _ACTIVE
        if run is None or not run.captures():
            self.real.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _install() -> None:
    """Once per worker process: the stream routers, ``display`` as a builtin (as in IPython),
    matplotlib's figures as images, IPython's display functions routed here."""
    if not _INSTALLED:
        _INSTALLED.append(True)
        sys.stdout = _Stream("stdout", sys.stdout)
        sys.stderr = _Stream("stderr", sys.stderr)
        builtins.display = _display  # type: ignore[attr-defined]
        sys.meta_path.insert(0, _Finder())
    _patch_ipython()


def _patch_ipython() -> None:
    for name in ("IPython.core.display_functions", "IPython.core.display", "IPython.display", "IPython"):
        module = sys.modules.get(name)
        current = getattr(module, "display", None)
        if module is not None and callable(current) and current is not _display:
            _ORIGINAL_DISPLAY.setdefault(name, current)
            module.display = _display  # type: ignore[attr-defined]


class _Finder:
    """Serves the matplotlib backend module; once matplotlib is imported, makes that backend its
    default (unless MPLBACKEND says otherwise; no env var, so subprocesses are left alone); once
    IPython's display functions are imported, routes them here."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name == BACKEND:
            return importlib.machinery.ModuleSpec(name, _BackendLoader())
        if name not in ("IPython.core.display_functions", "matplotlib"):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        if module.__name__ == "matplotlib":
            if "MPLBACKEND" not in os.environ:
                module.rcParams["backend"] = f"module://{BACKEND}"
        else:
            module.display = _display  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class _BackendLoader(importlib.abc.Loader):
    """A matplotlib backend: Agg rendering, and ``show()`` sends each open figure as a PNG."""

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        agg = importlib.import_module(MPL_AGG)
        bases = importlib.import_module(MPL_BASES)
        module.FigureCanvas = agg.FigureCanvasAgg  # type: ignore[attr-defined]
        module.FigureManager = bases.FigureManagerBase  # type: ignore[attr-defined]
        module.show = _show_figures  # type: ignore[attr-defined]


def _show_figures(*args: Any, **kwargs: Any) -> None:
    """Display every open matplotlib figure, then close them (what the inline backend does)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    try:
        for number in list(pyplot.get_fignums()):
            _display(pyplot.figure(number))
        pyplot.close("all")
    except Exception as exc:  # a broken figure must not hide the cell's own outcome
        print(f"(a figure could not be shown: {type(exc).__name__}: {exc})", file=sys.stderr)


def _display(*objs: Any, include: Any = None, exclude: Any = None, metadata: Any = None,
             raw: bool = False, **kwargs: Any) -> None:
    """``display()`` as IPython has it: each object's mimebundle becomes a display chunk."""
    for obj in objs:
        if raw:
            data, meta = dict(obj), dict(metadata or {})
        else:
            data, meta = _bundle_and_metadata(obj, include, exclude)
            meta.update(metadata or {})
        if not data:
            continue
        run = _ACTIVE
        if run is not None and run.captures():
            run.put("display", data, meta)
        else:
            print(data.get("text/plain", ""))


def _bundle(obj: Any) -> dict[str, Any]:
    return _bundle_and_metadata(obj, None, None)[0]


def _bundle_and_metadata(obj: Any, include: Any, exclude: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The object's representations by MIME type (bytes as base64 text), IPython's way."""
    data: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    if not isinstance(obj, type):
        method = getattr(obj, "_repr_mimebundle_", None)
        if callable(method):
            try:
                found = method(include=include, exclude=exclude)
                if isinstance(found, tuple):
                    found, found_meta = found
                    meta.update(found_meta or {})
                data.update(found or {})
            except Exception:
                pass
        for mime, name in REPR_METHODS:
            method = getattr(obj, name, None)
            if mime in data or not callable(method):
                continue
            try:
                found = method()
            except Exception:
                continue
            if isinstance(found, tuple):
                found, meta[mime] = found
            if found is not None:
                data[mime] = found
        if "image/png" not in data and type(obj).__module__ == "matplotlib.figure":
            buffer = io.BytesIO()
            obj.savefig(buffer, format="png", bbox_inches="tight")
            data["image/png"] = buffer.getvalue()
    if "text/plain" not in data:
        try:
            data["text/plain"] = repr(obj)
        except Exception as exc:
            data["text/plain"] = f"<{type(obj).__qualname__} object; repr failed: {exc}>"
    for mime, value in list(data.items()):
        if isinstance(value, (bytes, bytearray)):
            data[mime] = base64.b64encode(bytes(value)).decode("ascii")
    if include:
        data = {k: v for k, v in data.items() if k in include}
    if exclude:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data, meta


class _ArrivalQueue(asyncio.Queue):
    """The SDK's job queue, which also says when a job was put in it."""

    def __init__(self, maxsize: int, arrived: asyncio.Event) -> None:
        super().__init__(maxsize)
        self.arrived = arrived

    def put_nowait(self, item: Any) -> None:  # Queue.put ends here too
        super().put_nowait(item)
        self.arrived.set()


def _prompt_scaler(base: type) -> type:
    """The SDK 1.x worker loop, except that jobs start and are taken without pauses.

    SDK 1.x looks at its job queue every 0.1 s while idle: 50 ms on average added to every cell,
    most of a warm run (SDK 2.0 waits for the job instead, as this does). And with its one job
    slot taken it sleeps a whole second before asking for the next: a ``map`` ran one item a
    second. Here the next job-take goes out as soon as the slot is free. Everything else
    (job-take, heartbeat, stop signals, result posts) stays the SDK's own.
    """

    class PromptJobScaler(base):
        starts_promptly = True

        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config)
            self._arrived = asyncio.Event()
            self._room = asyncio.Event()
            self.jobs_queue = _ArrivalQueue(self.current_concurrency, self._arrived)

        async def set_scale(self) -> None:
            """Called by the job-take loop before each take: also waits there for a free slot
            (the loop would sleep a second instead)."""
            await super().set_scale()
            if not isinstance(self.jobs_queue, _ArrivalQueue):  # resized: empty, so safe to swap
                self.jobs_queue = _ArrivalQueue(self.jobs_queue.maxsize, self._arrived)
            while self.is_alive() and self.current_occupancy() >= self.current_concurrency:
                self._room.clear()
                with contextlib.suppress(asyncio.TimeoutError):  # the timeout bounds a shutdown's wait
                    await asyncio.wait_for(self._room.wait(), timeout=1.0)

        async def handle_job(self, session: Any, job: dict[str, Any]) -> None:
            try:
                await super().handle_job(session, job)
            finally:
                self._room.set()  # its slot is free: the job-take loop may ask for the next

        async def run_jobs(self, session: Any) -> None:
            tasks: set[asyncio.Task[Any]] = set()
            while self.is_alive() or not self.jobs_queue.empty():
                self._arrived.clear()  # before taking: a job put after this sets it again
                while len(tasks) < self.current_concurrency and not self.jobs_queue.empty():
                    job = await self.jobs_queue.get()
                    task = asyncio.create_task(self.handle_job(session, job))
                    tasks.add(task)
                    self.jobs_tasks[job["id"]] = task
                waiter = asyncio.create_task(self._arrived.wait())
                try:  # the timeout bounds how late a shutdown is seen
                    done, _ = await asyncio.wait({*tasks, waiter}, return_when=asyncio.FIRST_COMPLETED, timeout=0.5)
                finally:
                    waiter.cancel()
                tasks.difference_update(done)
            await asyncio.gather(*tasks, return_exceptions=True)

    return PromptJobScaler


def _start_jobs_promptly() -> None:
    """Have the SDK's worker loop start each job as it arrives (SDK 1.x; 2.0 already does)."""
    from runpod.serverless.modules import rp_scale  # type: ignore[import-untyped]

    base = rp_scale.JobScaler
    polls = not hasattr(base, "_wait_for_dispatch_event") and all(
        hasattr(base, name) for name in ("run_jobs", "set_scale", "handle_job", "is_alive")
    )
    if polls and not getattr(base, "starts_promptly", False):
        rp_scale.JobScaler = _prompt_scaler(base)


# In a worker process (RunPod gives it the job-take URL) this runs before the SDK's loop starts;
# the generated handler.py's own start follows it. Importing this file elsewhere changes nothing.
if os.environ.get("RUNPOD_WEBHOOK_GET_JOB"):  # runpod: keep
    _start_jobs_promptly()


if __name__ == "__main__":
    import runpod  # type: ignore[import-untyped]

    runpod.serverless.start({"handler": handler, "return_aggregate_stream": False})
