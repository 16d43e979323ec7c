"""Names from the notebook: generated imports, --capture (stdlib pickle), and clear refusals."""

from __future__ import annotations

import importlib.metadata
import json
import pickle
import sys
import threading
import types

import numpy as np
import pytest

from runpod_jupyter.packaging import CaptureError, UnresolvedNamesError


def load_captured(project) -> dict:
    blobs = pickle.loads((project.path / "captured.pkl").read_bytes())
    return {name: pickle.loads(blob) for name, blob in blobs.items()}


def test_a_module_from_the_notebook_becomes_an_import_and_a_pin(pkg):
    project = pkg("""
        def handler(job):
            return float(np.sum(job["input"]))
        """, user_ns={"np": np})
    text = project.handler_path.read_text()
    assert "import numpy as np" in text
    assert f"numpy=={importlib.metadata.version('numpy')}" in project.requirements
    assert any(n.code == "import-added" for n in project.notes)


def test_an_importable_function_from_the_notebook_becomes_a_from_import(pkg):
    project = pkg("""
        def handler(job):
            return to_text(job["input"])
        """, user_ns={"to_text": json.dumps})
    assert "from json import dumps as to_text" in project.handler_path.read_text()


def test_values_from_the_notebook_are_reported_with_how_to_ship_them(pkg):
    with pytest.raises(UnresolvedNamesError) as info:
        pkg("""
            def handler(job):
                return THRESHOLD, labels, missing
            """, user_ns={"THRESHOLD": 0.5, "labels": ["a", "b"]})
    error = info.value
    assert error.names == ("THRESHOLD", "labels", "missing")
    assert "THRESHOLD: a float value from the notebook: ship it with --capture THRESHOLD" in error.hint
    assert "missing: defined nowhere" in error.hint
    assert "pickle" in error.hint


def test_a_function_from_another_cell_must_move_into_the_cell(pkg):
    helper = types.FunctionType((lambda x: x).__code__, {}, "helper")
    helper.__module__ = "__main__"
    with pytest.raises(UnresolvedNamesError, match="helper") as info:
        pkg("""
            def handler(job):
                return helper(job)
            """, user_ns={"helper": helper})
    assert "move `def helper` into this cell" in info.value.hint


def test_captured_values_are_pickled_next_to_the_handler(pkg):
    project = pkg("""
        def handler(job):
            return THRESHOLD, labels
        """, user_ns={"THRESHOLD": 0.5, "labels": ["a", "b"], "unused": 1},
        capture=["labels", "THRESHOLD", "unused"])
    assert load_captured(project) == {"THRESHOLD": 0.5, "labels": ["a", "b"]}
    text = project.handler_path.read_text()
    assert "THRESHOLD = _captured['THRESHOLD']  # float" in text
    assert "labels = _captured['labels']  # list" in text
    assert "captured.pkl" in project.files
    assert [c.name for c in project.captured] == ["THRESHOLD", "labels"]
    assert any(n.code == "capture-unneeded" and "unused" in n.message for n in project.notes)


def test_a_captured_array_pins_the_library_needed_to_unpickle_it(pkg):
    project = pkg("""
        def handler(job):
            return len(weights)
        """, user_ns={"weights": np.arange(4)}, capture=["weights"])
    assert any(r.startswith("numpy==") for r in project.requirements)
    assert "numpy.ndarray" in project.handler_path.read_text()


def test_a_captured_value_used_at_module_level_is_loaded_before_that_use(pkg):
    project = pkg("""
        DOUBLED = BASE * 2
        def handler(job):
            return DOUBLED
        """, user_ns={"BASE": 21}, capture=["BASE"])
    text = project.handler_path.read_text()
    assert text.index("BASE = _captured['BASE']") < text.index("DOUBLED = BASE * 2")


def test_unpicklable_values_are_refused_with_the_reason(pkg):
    with pytest.raises(CaptureError, match=r"cannot be pickled with the standard pickle module.*lock") as info:
        pkg("""
            def handler(job):
                return lock
            """, user_ns={"lock": threading.Lock()}, capture=["lock"])
    assert "Create it inside the cell" in info.value.hint


def test_capturing_a_module_imports_it_instead(pkg):
    project = pkg("""
        def handler(job):
            return np.pi
        """, user_ns={"np": np}, capture=["np"])
    assert "import numpy as np" in project.handler_path.read_text()
    assert not project.captured and "captured.pkl" not in project.files
    assert any("modules are imported, not captured" in n.message for n in project.notes)


class Point:  # stands in for a class defined in a notebook cell
    def __init__(self, x):
        self.x = x


@pytest.fixture
def notebook_point(monkeypatch):
    monkeypatch.setattr(Point, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "Point", Point, raising=False)
    return Point(3)


def test_a_value_of_a_class_from_another_cell_is_refused(pkg, notebook_point):
    with pytest.raises(CaptureError, match=r"refer to `Point`, defined in another notebook cell"):
        pkg("""
            def handler(job):
                return origin.x
            """, user_ns={"origin": notebook_point}, capture=["origin"])


def test_a_value_of_a_class_defined_in_the_cell_loads_after_the_class(pkg, notebook_point):
    project = pkg("""
        class Point:
            def __init__(self, x):
                self.x = x
        def handler(job):
            return origin.x
        """, user_ns={"origin": notebook_point}, capture=["origin"])
    text = project.handler_path.read_text()
    assert text.index("class Point") < text.index("origin = _captured['origin']")


def test_captured_value_repr_never_shows_the_value(pkg):
    project = pkg("""
        def handler(job):
            return SECRET_PHRASE
        """, user_ns={"SECRET_PHRASE": "open sesame 1234"}, capture=["SECRET_PHRASE"])
    assert "open sesame" not in repr(project)
    assert "open sesame" not in project.handler_path.read_text()
