"""requirements.txt: pinned to what the kernel has, canonical, sorted; stdlib out; local modules in."""

from __future__ import annotations

import importlib.metadata

import pytest

from runpod_jupyter.packaging import RequirementError
from runpod_jupyter.packaging.imports import ImportRef
from runpod_jupyter.packaging.requirements import resolve_requirements


def installed(dist: str) -> str:
    return importlib.metadata.version(dist)


def test_imports_are_pinned_to_the_installed_versions_and_stdlib_left_out(pkg):
    project = pkg("""
        import json, os.path, collections
        import numpy as np
        def handler(job):
            return json.dumps(np.zeros(1).tolist()), os.path.sep, collections.Counter()
        """)
    assert project.requirements == (f"numpy=={installed('numpy')}", f"runpod=={installed('runpod')}")
    text = (project.path / "requirements.txt").read_text()
    assert text == "\n".join(project.requirements) + "\n"


def test_runpod_is_always_pinned_even_without_an_import(pkg):
    project = pkg("def handler(job):\n    return 1\n")
    assert project.requirements == (f"runpod=={installed('runpod')}",)


def test_names_are_canonical_and_sorted(tmp_path):
    result = resolve_requirements([ImportRef("yaml"), ImportRef("numpy"), ImportRef("aiohttp")],
                                  local_dir=tmp_path)
    assert result.lines == (f"aiohttp=={installed('aiohttp')}", f"numpy=={installed('numpy')}",
                            f"pyyaml=={installed('PyYAML')}", f"runpod=={installed('runpod')}")


def test_only_imports_of_kept_code_count(pkg):
    project = pkg("""
        import numpy
        import yaml
        def handler(job):
            return yaml.safe_dump(job)
        """)
    assert not any(r.startswith("numpy") for r in project.requirements)
    assert f"pyyaml=={installed('PyYAML')}" in project.requirements


def test_a_local_module_is_copied_and_its_imports_pinned(pkg, nbdir):
    (nbdir / "mylib.py").write_text("import yaml\n\ndef double(x):\n    return 2 * x\n")
    project = pkg("""
        import mylib
        def handler(job):
            return mylib.double(job["input"])
        """)
    assert (project.path / "mylib.py").read_bytes() == (nbdir / "mylib.py").read_bytes()
    assert project.local_modules == ("mylib",)
    assert f"pyyaml=={installed('PyYAML')}" in project.requirements
    assert "COPY mylib.py /app/mylib.py" in project.dockerfile_path.read_text()


def test_a_local_package_is_copied_without_caches(pkg, nbdir):
    package = nbdir / "tools"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .sub.impl import VALUE\n")
    (package / "sub" / "impl.py").write_text("VALUE = 7\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    project = pkg("""
        from tools import VALUE
        def handler(job):
            return VALUE
        """)
    assert (project.path / "tools" / "sub" / "impl.py").read_text() == "VALUE = 7\n"
    assert not (project.path / "tools" / "__pycache__").exists()
    assert "COPY tools /app/tools" in project.dockerfile_path.read_text()


def test_a_local_module_named_like_a_generated_file_is_refused(pkg, nbdir):
    (nbdir / "handler.py").write_text("X = 1\n")
    with pytest.raises(RequirementError, match="clash with a generated file"):
        pkg("""
            import handler as h
            def handler(job):
                return h.X
            """)


def test_a_module_not_installed_cannot_be_pinned(pkg):
    expected = r"`surely_not_installed_xyz` \(line 3 of the cell\) is not installed"
    with pytest.raises(RequirementError, match=expected) as info:
        pkg("""
            def handler(job):
                import surely_not_installed_xyz
                return 1
            """)
    assert "%pip install" in info.value.hint and "requirements=" in info.value.hint


def test_an_optional_import_that_is_not_installed_is_only_noted(pkg):
    project = pkg("""
        try:
            import surely_not_installed_xyz as fast
        except ImportError:
            fast = None
        def handler(job):
            return fast is None
        """)
    assert any(n.code == "optional-import" for n in project.notes)
    assert project.requirements == (f"runpod=={installed('runpod')}",)


def test_explicit_requirements_win_and_cover_missing_modules(pkg):
    project = pkg("""
        import numpy
        def handler(job):
            import surely_not_installed_xyz
            return numpy.pi
        """, requirements=["NumPy>=1.26", "surely-not-installed-xyz==1.0"])
    assert "numpy>=1.26" in project.requirements
    assert "surely-not-installed-xyz==1.0" in project.requirements
    assert not any(r.startswith("numpy==") for r in project.requirements)


def test_an_invalid_requirement_line_is_refused(pkg):
    with pytest.raises(RequirementError, match="Invalid requirement"):
        pkg("def handler(job):\n    return 1\n", requirements=["numpy=>1"])
