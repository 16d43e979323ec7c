"""Shipping a cell to a runner: which names travel, how (imports, cloudpickle), what is refused
by name before anything is sent, the payload budget, and the version checks on both sides. The
worker's handler runs here in-process (its own module, its SDK-free generator) where a test
needs the worker side."""

from __future__ import annotations

import ast
import asyncio
import builtins
import importlib.metadata
import importlib.util
import json
import math
import sys
import threading
import types
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from runpod_jupyter import runner
from runpod_jupyter.errors import CellSyntaxError, ConfigError, FlagError, ShippingError, VersionMismatchError
from runpod_jupyter.runner import wire
from runpod_jupyter.runner.analysis import cell_names
from runpod_jupyter.runner.events import Display, Done, Failed, Output, read_event
from runpod_jupyter.secret import Secret

LOADED: list[str] = []


def _record(tag: str) -> str:
    """Unpickling a (_record, (tag,)) reduce calls this: proof that a pickle was loaded."""
    LOADED.append(tag)
    return tag


class _Loud:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __reduce__(self):
        return (_record, (self.tag,))


def notebook(**values) -> dict:
    """A namespace as a notebook's: functions and classes defined by `exec` belong to __main__."""
    ns: dict = {"__name__": "__main__", "__builtins__": builtins}
    ns.update(values)
    return ns


def define(ns: dict, source: str) -> None:
    exec(compile(source, "/tmp/ipykernel_0/123.py", "exec"), ns)


def merged(events: list) -> list:
    """Output events with consecutive text of one stream joined (how it is split is timing)."""
    found: list = []
    for event in events:
        if isinstance(event, Output) and found and isinstance(found[-1], Output) and found[-1].name == event.name:
            found[-1] = Output(event.name, found[-1].text + event.text)
        else:
            found.append(event)
    return found


def names(code: str):
    found = cell_names(ast.parse(code))
    return set(found.reads), set(found.binds)


# --------------------------------------------------------------------------- name analysis


def test_reads_exclude_names_bound_before_they_are_read():
    reads, binds = names("x = 1\nprint(x)\ny = z + 1\n")
    assert reads == {"print", "z"}
    assert binds == {"x", "y"}


def test_augmented_assignment_reads_its_target_and_branches_may_not_bind():
    reads, _ = names("total += 1\nif flag:\n    seen = 1\nprint(seen)\n")
    assert {"total", "flag", "seen"} <= reads


def test_every_binding_form_at_the_top_level_is_a_bind():
    code = """
import os, json as j
from math import sqrt as root, pi
a = b = 1
c, (d, *e) = 1, (2, 3, 4)
f += 1
g: int = 2
h: int
def fn(): pass
async def afn(): pass
class K: inner = 1
for i in range(2): pass
with open(p) as fh: pass
try:
    pass
except Exception as err:
    pass
if (w := 5): pass
squares = [q * q for q in range(3) if (last := q)]
match a:
    case {"k": mk, **rest}: pass
    case [first, *others]: pass
def setter():
    global set_by_call
    set_by_call = 1
"""
    _, binds = names(code)
    assert {"os", "j", "root", "pi", "a", "b", "c", "d", "e", "f", "g", "fn", "afn", "K", "i", "fh", "err",
            "w", "squares", "last", "mk", "rest", "first", "others", "setter", "set_by_call"} <= binds
    assert not {"h", "q", "inner"} & binds


def test_function_bodies_read_globals_the_cell_does_not_bind():
    reads, _ = names("def f(a):\n    b = a + helper(a)\n    return b + LIMIT\nLIMIT = 3\nlam = lambda v: v + offset\n")
    assert {"helper", "offset"} <= reads
    assert not {"a", "b", "LIMIT", "v"} & reads


def test_comprehension_variables_are_local_and_class_bodies_read_globals():
    reads, binds = names("out = [x * scale for x in items]\nclass C:\n    size = base\n    other = size\n")
    assert {"scale", "items", "base"} <= reads
    assert not {"x", "size"} & reads
    assert "size" not in binds


# --------------------------------------------------------------------------- packing


def test_modules_and_importable_objects_travel_as_imports_the_rest_by_value():
    ns = notebook(np=np, sqrt=math.sqrt, loads=json.loads, data=[1, 2, 3], unused=object())
    define(ns, "SCALE = 2\ndef double(v):\n    return v * SCALE\n")
    payload = runner.pack_cell("r = double(sqrt(sum(data))) + np.pi\nprint(loads('1'))\n", ns)
    imports = {i["name"]: (i["module"], i["qualname"]) for i in payload["imports"]}
    assert imports == {"np": ("numpy", None), "sqrt": ("math", "sqrt"), "loads": ("json", "loads")}
    values = cloudpickle.loads(__import__("base64").b64decode(payload["values"]))
    assert set(values) == {"data", "double"}  # `unused` is not read; SCALE travels inside `double`
    assert values["double"](3) == 6
    assert payload["binds"] == ["r"]
    assert payload["kind"] == wire.KIND_CELL and payload["format"] == wire.FORMAT
    assert json.loads(json.dumps(payload)) == payload
    assert payload["sources"] == {"/tmp/ipykernel_0/123.py": "SCALE = 2\ndef double(v):\n    return v * SCALE\n"} or \
        payload["sources"] == {}  # linecache knows only files IPython registered


def test_values_refused_by_name_with_why_and_what_to_do(tmp_path):
    fh = open(tmp_path / "f.txt", "w")  # noqa: SIM115 - an open file is the point
    try:
        ns = notebook(fh=fh, lock=threading.Lock(), gen=(i for i in range(3)), ok=[1])
        with pytest.raises(ShippingError) as info:
            runner.pack_cell("print(fh, lock, list(gen), ok)\n", ns)
    finally:
        fh.close()
    err = info.value
    assert isinstance(err, ConfigError)
    assert set(err.refused) == {"fh", "lock", "gen"}
    assert "open file" in err.refused["fh"] and "path" in err.refused["fh"]
    assert "lock" in err.refused["lock"]
    assert "list(gen)" in err.refused["gen"]
    assert "nothing was sent" in err.message
    assert "fh:" in err.hint and "lock:" in err.hint


def test_a_notebook_function_using_an_unpicklable_global_names_that_global():
    ns = notebook(LOCK=threading.Lock())
    define(ns, "def guarded():\n    with LOCK:\n        return 1\n")
    with pytest.raises(ShippingError) as info:
        runner.pack_cell("guarded()\n", ns)
    assert "`LOCK`" in info.value.refused["guarded"]


def test_the_api_key_never_travels(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", "rk_live_not_a_real_key_0123456789")
    holder = types.SimpleNamespace(settings={"key": "rk_live_not_a_real_key_0123456789"})
    with pytest.raises(ShippingError) as info:
        runner.pack_cell("print(cfg, n)\n", notebook(cfg=holder, n=1))
    assert set(info.value.refused) == {"cfg"} and "secret" in info.value.refused["cfg"]
    assert "rk_live" not in str(info.value)
    with pytest.raises(ShippingError) as info:
        runner.pack_cell("print(key)\n", notebook(key=Secret("another-secret-value-42")))
    assert "key" in info.value.refused
    with pytest.raises(ShippingError):
        runner.pack_call(len, ("rk_live_not_a_real_key_0123456789",), {})
    payload = runner.pack_cell("print(n)\n", notebook(n=1))
    assert "rk_live" not in json.dumps(payload)


def test_the_budget_refuses_the_largest_values_first():
    ns = notebook(big=np.zeros(200_000), small=list(range(10)))
    assert runner.pack_cell("print(big.sum(), small)\n", ns, budget=5_000_000)["values"]
    with pytest.raises(ShippingError) as info:
        runner.pack_cell("print(big.sum(), small)\n", ns, budget=1_000_000)
    assert list(info.value.refused) == ["big"]
    assert "MB" in info.value.refused["big"] and "1.0 MB" in info.value.message
    assert "network volume" in info.value.hint


def test_syntax_errors_and_bad_out_names_are_refused_before_sending():
    with pytest.raises(CellSyntaxError) as info:
        runner.pack_cell("x = 1\ny = (\n", {}, first_line=10)
    assert info.value.line in (11, 12)
    with pytest.raises(FlagError):
        runner.pack_cell("x = 1\n", {}, out=["x", "not a name"])


def test_a_trailing_semicolon_silences_the_last_expression():
    assert runner.pack_cell("1 + 1;\n", {})["silent"] is True
    assert runner.pack_cell("1 + 1\n", {})["silent"] is False


def test_pack_call_ships_a_notebook_function_by_value_and_names_bad_arguments():
    ns = notebook()
    define(ns, "def add(a, b=0):\n    return a + b\n")
    payload = runner.pack_call(ns["add"], (1,), {"b": 2})
    assert payload["kind"] == wire.KIND_CALL
    fn = cloudpickle.loads(__import__("base64").b64decode(payload["function"]))
    args, kwargs = cloudpickle.loads(__import__("base64").b64decode(payload["arguments"]))
    assert fn(*args, **kwargs) == 3
    with pytest.raises(ShippingError) as info:
        runner.pack_call(ns["add"], (threading.Lock(),), {"b": threading.Lock()})
    assert set(info.value.refused) == {"argument 0", "argument `b`"}


def test_packages_of_pickled_values_are_pinned_in_the_versions():
    payload = runner.pack_cell("print(arr)\n", notebook(arr=np.arange(3)))
    assert payload["versions"]["packages"] == {"numpy": importlib.metadata.version("numpy")}
    assert payload["versions"]["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert payload["versions"]["cloudpickle"] == cloudpickle.__version__


def test_requirements_for_pins_the_kernels_versions():
    lines = runner.requirements_for(runner.packed_cell("import numpy\nx = numpy.zeros(2)\n", {}))
    assert f"numpy=={importlib.metadata.version('numpy')}" in lines
    assert any(line.startswith("runpod==") for line in lines)
    assert runner.RUNNER_REQUIREMENTS[0] == f"cloudpickle=={cloudpickle.__version__}"


def test_a_cloud_runner_needs_what_a_calls_arguments_and_a_cells_values_come_from():
    """A function that never names numpy, called with an array, needs numpy on the worker all the
    same; so does a cell that only reads a notebook array. Each in its input's versions too."""
    numpy_pin = f"numpy=={importlib.metadata.version('numpy')}"
    ns = notebook()
    define(ns, "def total(xs):\n    return sum(xs)\n")
    call = runner.packed_call(ns["total"], (np.arange(3),), {})
    assert numpy_pin in runner.requirements_for(call)
    assert "numpy" in call.payload["versions"]["packages"]
    cell = runner.packed_cell("print(arr.sum())\n", notebook(arr=np.arange(3)))
    assert numpy_pin in runner.requirements_for(cell)
    both = runner.requirements_for(runner.packed_cell("import json\n", {}), call)
    assert numpy_pin in both and not any(line.startswith("json") for line in both)


# --------------------------------------------------------------------------- reading events


def _done_chunk(**changes) -> dict:
    chunk = {
        "kind": "done", "format": wire.FORMAT, "worker_id": "w-1",
        "versions": {"python": f"{sys.version_info[0]}.{sys.version_info[1]}",
                     "cloudpickle": cloudpickle.__version__, "packages": {}},
        "imports": [{"name": "np", "module": "numpy", "qualname": None}],
        "values": {"loud": __import__("base64").b64encode(cloudpickle.dumps(_Loud("loaded"))).decode()},
        "needs": {}, "refused": {"gpu": "lives on the worker's GPU"}, "result": {"text/plain": "3"}, "value": None,
    }
    chunk.update(changes)
    return chunk


def test_read_event_loads_values_only_when_versions_match():
    LOADED.clear()
    # A stand-in for a worker on another Python and numpy: the kernel must refuse its pickles.
    other = _done_chunk(versions={"python": "2.7", "cloudpickle": cloudpickle.__version__,
                                  "packages": {"numpy": "0.0.1"}})
    with pytest.raises(VersionMismatchError) as info:
        read_event(other)
    assert LOADED == []
    assert any("Python 2.7" in d for d in info.value.differences)
    assert any("numpy 0.0.1" in d for d in info.value.differences)
    done = read_event(_done_chunk())
    assert isinstance(done, Done) and LOADED == ["loaded"]
    assert done.values["np"] is np and done.values["loud"] == "loaded"
    assert done.refused == {"gpu": "lives on the worker's GPU"}
    assert done.result == {"text/plain": "3"} and done.worker_id == "w-1"


def test_read_event_refuses_a_value_whose_package_the_kernel_lacks():
    LOADED.clear()
    done = read_event(_done_chunk(needs={"loud": ["surely-not-installed-dist"]}))
    assert "loud" not in done.values and LOADED == []
    assert "surely-not-installed-dist" in done.refused["loud"]


def test_read_event_plain_events_and_foreign_chunks():
    assert read_event({"kind": "output", "format": 1, "name": "stderr", "text": "x"}) == Output("stderr", "x")
    assert read_event({"kind": "display", "format": 1, "data": {"text/html": "<b>"}, "metadata": {}}) == \
        Display({"text/html": "<b>"}, {})
    failed = read_event({"kind": "failed", "format": 1, "error_type": "ValueError", "message": "m",
                         "traceback": "tb", "worker_id": "w"})
    assert failed == Failed("ValueError", "m", "tb", "w")
    with pytest.raises(VersionMismatchError):
        read_event({"kind": "output", "format": 99})
    with pytest.raises(VersionMismatchError):
        read_event({"echo": 1})


# --------------------------------------------------------------------------- the worker, in-process


@pytest.fixture()
def worker(monkeypatch):
    """The handler file loaded as its own module; whatever it installs is undone afterwards."""
    saved = (sys.stdout, sys.stderr, list(sys.meta_path), getattr(builtins, "display", None))
    monkeypatch.setenv("RUNPOD_POD_ID", "inproc-worker")
    monkeypatch.setenv("MPLBACKEND", "agg")
    spec = importlib.util.spec_from_file_location("runner_worker_under_test", runner.HANDLER_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(payload: dict) -> list:
        async def collect():
            return [chunk async for chunk in module.handler({"id": "job-1", "input": json.loads(json.dumps(payload))})]
        return [read_event(chunk) if chunk["kind"] != "done" else chunk for chunk in asyncio.run(collect())]

    yield run
    sys.stdout, sys.stderr = saved[0], saved[1]
    sys.meta_path[:] = saved[2]
    if saved[3] is None:
        builtins.__dict__.pop("display", None)
    else:
        builtins.display = saved[3]


def test_the_wire_constants_agree_with_the_worker():
    tree = ast.parse(Path(runner.HANDLER_FILE).read_text())
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    assert constants["FORMAT"] == wire.FORMAT
    assert constants["KIND_CELL"] == wire.KIND_CELL and constants["KIND_CALL"] == wire.KIND_CALL
    assert constants["RETURN_BUDGET"] == wire.RETURN_BUDGET
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - set(sys.stdlib_module_names) == {"cloudpickle", "runpod"}  # self-contained


def test_a_worker_with_other_versions_refuses_and_runs_nothing(worker, tmp_path):
    marker = tmp_path / "ran"
    payload = runner.pack_cell(f"open({str(marker)!r}, 'w').close()\nvalue = arr\n", notebook(arr=np.arange(2)))
    # Stand-in for a kernel on another Python and numpy than this worker's.
    payload["versions"] = {"python": "3.0", "cloudpickle": "0.1", "packages": {"numpy": "0.0.1"}}
    [event] = worker(payload)
    assert isinstance(event, Failed) and event.error_type == "VersionMismatch"
    assert "Python 3.0 in the kernel" in event.message and "numpy 0.0.1" in event.message
    assert event.worker_id == "inproc-worker"
    assert not marker.exists()


def test_the_worker_streams_output_in_order_and_returns_bound_names(worker):
    ns = notebook(base=10)
    define(ns, "class Box:\n    def __init__(self, v):\n        self.v = v\n")
    code = ("import sys\nprint('one')\nprint('err', file=sys.stderr)\n"
            "display({'k': 1})\nbox = Box(base + 1)\nlock = __import__('threading').Lock()\nbox.v * 2\n")
    events = worker(runner.pack_cell(code, ns))
    done = read_event(events[-1], user_ns=ns)
    shown = [(type(e).__name__, getattr(e, "text", None) or getattr(e, "data", None)) for e in merged(events[:-1])]
    assert shown == [("Output", "one\n"), ("Output", "err\n"), ("Display", {"text/plain": "{'k': 1}"})]
    assert isinstance(done, Done) and done.worker_id == "inproc-worker"
    assert isinstance(done.values["box"], ns["Box"]) and done.values["box"].v == 11
    assert done.values["sys"] is sys
    assert "lock" in done.refused and "lock" in done.refused["lock"]
    assert done.result == {"text/plain": "22"} and done.value == 22


def test_out_names_only_and_a_missing_one_is_named(worker):
    done = read_event(worker(runner.pack_cell("a = 1\nb = 2\n", {}, out=["b", "c"]))[-1])
    assert done.values == {"b": 2}
    assert set(done.refused) == {"c"}


def test_a_remote_traceback_points_at_the_cells_own_lines(worker):
    ns = notebook()
    define(ns, "def inner(v):\n    return 1 / v\n")
    [failed] = worker(runner.pack_cell("x = 0\ny = inner(x)\n", ns, filename="<cell In[7]>", first_line=20))
    assert isinstance(failed, Failed) and failed.error_type == "ZeroDivisionError"
    assert 'File "<cell In[7]>", line 21, in <module>' in failed.traceback
    assert "y = inner(x)" in failed.traceback
    assert "worker_handler" not in failed.traceback and "threading" not in failed.traceback


def test_a_call_returns_its_value_and_functions_come_back_bound_to_the_notebook(worker):
    ns = notebook(OFFSET=5)
    define(ns, "async def shifted(v):\n    print('computing')\n    return v + OFFSET\n")
    events = worker(runner.pack_call(ns["shifted"], (1,), {}))
    assert merged(events[:-1]) == [Output("stdout", "computing\n")]
    assert read_event(events[-1]).value == 6
    done = read_event(worker(runner.pack_cell("def twice(v):\n    return v * 2 + OFFSET\n", ns))[-1], user_ns=ns)
    ns["OFFSET"] = 100
    assert done.values["twice"](1) == 102  # reads the notebook's OFFSET now, as a local def would


def test_threads_the_cell_starts_are_captured_and_top_level_await_runs(worker):
    code = ("import asyncio, threading\nt = threading.Thread(target=print, args=('from a thread',))\n"
            "t.start(); t.join()\nawait asyncio.sleep(0)\nvalue = 7\nvalue;\n")
    events = worker(runner.pack_cell(code, {}))
    assert merged(events[:-1]) == [Output("stdout", "from a thread\n")]
    done = read_event(events[-1])
    assert done.values["value"] == 7 and done.result is None


def test_a_value_whose_module_the_worker_lacks_fails_with_a_note(worker, monkeypatch):
    module = types.ModuleType("kernel_only_module")
    exec("class Thing:\n    pass\n", module.__dict__)
    monkeypatch.setitem(sys.modules, "kernel_only_module", module)
    payload = runner.pack_cell("print(thing)\n", notebook(thing=module.Thing()))
    monkeypatch.delitem(sys.modules, "kernel_only_module")  # the worker has no such module
    [failed] = worker(payload)
    assert isinstance(failed, Failed) and failed.error_type == "ModuleNotFoundError"
    assert "kernel_only_module" in failed.message
    assert "runner's requirements" in failed.traceback
