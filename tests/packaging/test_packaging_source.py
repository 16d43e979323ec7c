"""Reading a cell: what is kept, what is dropped (and why), the handler, its kind and signature."""

from __future__ import annotations

import ast
import textwrap

import pytest

from runpod_jupyter.packaging import CellSyntaxError, HandlerNotFoundError, HandlerSignatureError, PackagingError
from runpod_jupyter.packaging.source import analyze


def run(source: str, **options):
    return analyze(textwrap.dedent(source), **options)


def kept_text(analysis) -> str:
    return "\n".join(analysis.rewritten.get(i, ast.unparse(analysis.tree.body[i])) for i in analysis.kept)


def dropped_by_line(analysis) -> dict[int, str]:
    return {d.line: d.kind for d in analysis.dropped}


def test_keeps_what_the_handler_reaches_transitively_and_drops_the_rest():
    a = run("""
        import json
        import os
        from collections import Counter, OrderedDict
        BASE = 10
        SCALE = BASE * 2
        UNUSED = 3

        def inner(x):
            return x * SCALE

        def outer(x):
            return inner(x) + len(Counter("ab"))

        def orphan():
            return json.dumps({})

        class Box:
            def open(self):
                return outer(1)

        def handler(job):
            return {"v": Box().open(), "cwd": os.getcwd()}
        """)
    kept = kept_text(a)
    for expected in ("import os", "from collections import Counter", "BASE = 10", "SCALE = BASE * 2",
                     "def inner", "def outer", "class Box", "def handler"):
        assert expected in kept
    for gone in ("import json", "UNUSED", "def orphan", "OrderedDict"):
        assert gone not in kept
    reasons = {d.code: d.reason for d in a.dropped}
    assert "not used by the handler" in reasons["import json"]
    assert "`orphan` is not used" in reasons["def orphan():"]
    assert "kept as `from collections import Counter`" in reasons["from collections import Counter, OrderedDict"]
    assert a.free_names == ()


def test_drops_test_calls_prints_and_display_expressions_with_reasons():
    a = run("""
        def handler(job):
            return job["input"]

        result = handler({"input": 1})
        print(result)
        handler({"input": 2})
        result
        "a note"
        """)
    assert [i for i in a.kept] == [0]
    kinds = dropped_by_line(a)
    assert kinds == {5: "test-call", 6: "output", 7: "test-call", 8: "output", 9: "output"}


def test_async_test_call_with_top_level_await_is_dropped_not_an_error():
    a = run("""
        async def handler(job):
            return 1
        await handler({"input": {}})
        """)
    assert a.handler_kind == "async"
    assert dropped_by_line(a) == {4: "test-call"}


def test_main_block_and_serverless_start_are_dropped_and_extra_work_reported():
    a = run("""
        import runpod
        def ensure_models():
            pass
        def handler(job):
            return 1
        runpod.serverless.start({"handler": handler})
        if __name__ == "__main__":
            ensure_models()
            runpod.serverless.start({"handler": handler})
        """)
    kinds = dropped_by_line(a)
    assert kinds[7] == "serverless-start"
    assert kinds[8] == "main-block"
    [note] = [n for n in a.notes if n.code == "main-block-dropped"]
    assert note.level == "warning" and "ensure_models()" in note.message


def test_a_main_block_binding_a_needed_name_is_an_error():
    with pytest.raises(PackagingError, match=r"binds `model`.*__main__") as info:
        run("""
            def handler(job):
                return model
            if __name__ == "__main__":
                model = 1
            """)
    assert "Move the assignment out" in info.value.hint


def test_changes_to_kept_objects_and_global_initialisers_are_kept():
    a = run("""
        CONFIG = {}
        CONFIG["k"] = 1
        class M:
            pass
        model = M()
        model.ready = True
        def init():
            global TABLE
            TABLE = [1, 2]
        init()
        other = []
        other.append(1)
        def handler(job):
            return CONFIG, model, TABLE
        """)
    kept = kept_text(a)
    assert "CONFIG['k'] = 1" in kept and "model.ready = True" in kept
    assert "init()" in kept and "def init" in kept
    assert "other" not in kept
    assert a.free_names == ()


def test_process_configuration_is_kept_even_when_the_handler_never_names_it():
    a = run("""
        import os
        import sys
        os.environ["HF_HUB_ENABLE_HF_TRANSFER"] = "1"
        sys.path.insert(0, "/opt/lib")
        token = os.environ.get("HF_TOKEN")
        def handler(job):
            return 1
        """)
    kept = kept_text(a)
    assert "os.environ['HF_HUB_ENABLE_HF_TRANSFER'] = '1'" in kept
    assert "sys.path.insert" in kept
    assert "token" not in kept


def test_keep_and_skip_marks():
    a = run("""
        import warnings
        warm_up = [1]  # runpod: keep
        LIMIT = 5  # runpod: skip
        def handler(job):
            return 1
        """)
    kept = kept_text(a)
    assert "warm_up" in kept and "LIMIT" not in kept
    assert dropped_by_line(a)[4] == "skip-mark"


def test_lazy_and_optional_imports_are_collected():
    a = run("""
        try:
            import orjson as json
        except ImportError:
            import json
        def handler(job):
            import numpy
            return json.dumps(numpy.zeros(1).tolist())
        """)
    refs = {(r.module, r.optional) for r in a.imports}
    assert ("orjson", True) in refs and ("json", False) in refs and ("numpy", False) in refs


def test_free_names_exclude_builtins_locals_and_comprehension_variables():
    a = run("""
        def handler(job):
            total = sum(x * FACTOR for x in job["input"])
            def inner(y):
                return y + total + OFFSET
            return inner(len(str(total)))
        """)
    assert a.free_names == ("FACTOR", "OFFSET")


def test_ipython_only_names_are_never_builtins():
    a = run("""
        def handler(job):
            display(job)
            return 1
        """)
    assert a.free_names == ("display",)


# --------------------------------------------------------------------------- magics


def test_top_level_magics_and_shell_escapes_are_stripped_with_a_note():
    a = run("""
        %pip install numpy
        !nvidia-smi
        files = !ls
        label = "100% sure"
        label.upper?
        def handler(job):
            return label
        """)
    kinds = dropped_by_line(a)
    assert kinds == {2: "magic", 3: "magic", 4: "magic", 6: "magic"}
    pip_reason = next(d.reason for d in a.dropped if d.line == 2)
    assert "requirements come from the imports" in pip_reason
    assert "'100% sure'" in kept_text(a)


def test_a_magic_inside_a_function_is_an_error():
    with pytest.raises(CellSyntaxError, match=r"Line 3 .*shell command inside a block") as info:
        run("""
            def handler(job):
                !ls
                return 1
            """)
    assert "subprocess.run" in info.value.hint


def test_syntax_error_names_the_line_and_shows_it():
    source = "import os\n\ndef handler(job)\n    return 1\n"
    with pytest.raises(CellSyntaxError) as info:
        analyze(source)
    assert info.value.line == 3
    assert "line 3 of the cell" in info.value.message
    assert "def handler(job)" in info.value.hint and "^" in info.value.hint


def test_syntax_error_line_counts_from_first_line():
    with pytest.raises(CellSyntaxError) as info:
        analyze("x = (\n", first_line=2)
    assert info.value.line == 2
    rendered = "\n".join(info.value._render_traceback_())
    assert rendered.startswith("CellSyntaxError: Syntax error on line")


# --------------------------------------------------------------------------- the handler


def test_no_handler_lists_the_functions_found():
    with pytest.raises(HandlerNotFoundError) as info:
        run("""
            def predict(job):
                return 1
            def preprocess(x):
                return x
            """)
    assert info.value.functions == ("predict", "preprocess")
    assert "predict, preprocess" in info.value.message
    assert "--handler predict" in info.value.hint


def test_no_functions_at_all():
    with pytest.raises(HandlerNotFoundError, match="defines no functions"):
        run("x = 1\n")


def test_handler_bound_by_something_else_than_def():
    with pytest.raises(HandlerNotFoundError, match=r"bound at line 1 .*not by a `def`"):
        run("handler = lambda job: 1\n")


def test_custom_handler_name():
    a = run("""
        def predict(job):
            return 1
        def handler(job):
            return 2
        """, handler="predict")
    assert a.handler == "predict" and "def handler" not in kept_text(a)


@pytest.mark.parametrize("signature, problem", [
    ("()", "takes no argument"),
    ("(job, extra)", "needs 2 arguments"),
    ("(job, *, debug)", "required keyword-only"),
])
def test_wrong_signature(signature, problem):
    with pytest.raises(HandlerSignatureError, match=problem) as info:
        analyze(f"def handler{signature}:\n    return 1\n")
    assert f"def handler{signature}" in info.value.message
    assert "def handler(job):" in info.value.hint


@pytest.mark.parametrize("signature", ["(job)", "(job, debug=False)", "(*args)", "(job, /)", "(job, *, opt=1)"])
def test_signatures_callable_with_one_argument_are_accepted(signature):
    assert analyze(f"def handler{signature}:\n    return 1\n").handler == "handler"


@pytest.mark.parametrize("source, kind", [
    ("def handler(job):\n    return 1\n", "plain"),
    ("async def handler(job):\n    return 1\n", "async"),
    ("def handler(job):\n    yield 1\n", "generator"),
    ("def handler(job):\n    yield from range(3)\n", "generator"),
    ("async def handler(job):\n    yield 1\n", "async_generator"),
    ("def handler(job):\n    def gen():\n        yield 1\n    return list(gen())\n", "plain"),
])
def test_handler_kinds(source, kind):
    assert analyze(source).handler_kind == kind


def test_kept_top_level_await_is_an_error():
    with pytest.raises(PackagingError, match="`await` at the top level") as info:
        run("""
            import asyncio
            VALUE = await asyncio.sleep(0, result=3)
            def handler(job):
                return VALUE
            """)
    assert "asyncio.run" in info.value.hint


def test_relative_import_in_a_cell_is_an_error():
    with pytest.raises(PackagingError, match="relative import"):
        run("""
            from . import sibling
            def handler(job):
                return sibling.x
            """)


def test_invalid_handler_name():
    with pytest.raises(PackagingError, match="not a valid Python function name"):
        analyze("def handler(job):\n    return 1\n", handler="my-handler")


def test_a_main_block_rebinding_a_name_bound_at_top_level_is_fine():
    a = run("""
        import runpod
        def handler(job):
            runpod.serverless.progress_update(job, "x")
            return 1
        if __name__ == "__main__":
            import runpod
            runpod.serverless.start({"handler": handler})
        """)
    assert "import runpod" in kept_text(a)
    assert dropped_by_line(a) == {6: "main-block"}


def test_statements_sharing_a_line_are_reported_one_by_one():
    a = run("""
        def handler(job):
            return 1
        x = 1; y = handler({"input": 1})
        """)
    assert [(d.line, d.code, d.kind) for d in a.dropped] == [
        (4, "x = 1", "unused"), (4, 'y = handler({"input": 1})', "test-call")]
