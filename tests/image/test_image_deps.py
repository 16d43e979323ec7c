"""The dependencies layer: installed for the image's platform, base packages left out, cached.

Every install uses ``--no-index --find-links`` on distributions made by the test (no index)."""

from __future__ import annotations

import pytest
from image_support import local_index

from runpod_jupyter.image import VENDOR_DIR, BaseImage, DependencyError
from runpod_jupyter.image import deps as deps_module
from runpod_jupyter.image.deps import build_deps_layer, find_uv, pip_platforms, plan, uv_platform
from runpod_jupyter.image.layers import read_entries

TOOLS = ["pip", pytest.param("uv", marks=pytest.mark.skipif(find_uv() is None, reason="uv is not installed"))]
PREFIX = VENDOR_DIR.lstrip("/")
BASE = BaseImage(image="127.0.0.1:1/base/x:1", python="3.11", python_exe="python3.11", glibc="2.35")
DIGEST = "sha256:" + "1" * 64


def names_in(layer) -> set[str]:
    return {m.name[len(PREFIX) + 1:] for m in read_entries(layer.path) if m.name.startswith(PREFIX + "/")}


def top_level(layer) -> set[str]:
    return {name.split("/", 1)[0] for name in names_in(layer)}


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_wheels_for_the_image_platform_into_one_layer(tool, wheelhouse, isolated_env, tmp_path):
    got = build_deps_layer("rpj-pure\nrpj-tool  # a comment\n", BASE, DIGEST, cache_dir=tmp_path / "c", tool=tool,
                           index=local_index(wheelhouse))
    assert got.tool == tool and got.cached is False
    assert top_level(got.layer) >= {"rpj_pure", "rpj_native", "rpj_tool", "rpj_pure-1.0.dist-info"}
    assert "bin" not in top_level(got.layer)  # console scripts carry this machine's interpreter path
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names_in(got.layer))
    assert sorted(got.installed) == ["rpj_native==1.2", "rpj_pure==1.0", "rpj_tool==1.0"]
    members = read_entries(got.layer.path)
    assert all(m.uid == 0 and m.mtime == 0 for m in members)
    assert [m.name for m in members] == sorted(m.name for m in members)


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_packages_the_base_provides_are_left_out_with_their_own_dependencies(tool, wheelhouse, isolated_env, tmp_path):
    base = BaseImage(image="x/y:1", python="3.11", glibc="2.35", packages={"rpj-torchish": "1.0"},
                     package_prefixes=("nvidia-",))
    got = build_deps_layer("rpj-usestorch\n", base, DIGEST, cache_dir=tmp_path / "c", tool=tool,
                           index=local_index(wheelhouse))
    assert {"rpj_usestorch"} <= top_level(got.layer)
    assert not {"rpj_torchish", "nvidia_fake"} & top_level(got.layer)
    assert "rpj-torchish" in got.excluded


def test_a_direct_requirement_the_base_does_not_satisfy_is_vendored(wheelhouse, isolated_env, tmp_path):
    base = BaseImage(image="x/y:1", python="3.11", glibc="2.35", packages={"rpj-pure": "0.9", "rpj-native": "1.2"})
    chosen = plan("rpj-pure>=1.0\nrpj-native>=1\n", base)
    assert chosen.excluded == ["rpj-native"]
    assert [str(r) for r in chosen.direct] == ["rpj-pure>=1.0"]
    got = build_deps_layer("rpj-pure>=1.0\n", base, DIGEST, cache_dir=tmp_path / "c", index=local_index(wheelhouse))
    assert "rpj_pure" in top_level(got.layer) and "rpj_native" not in top_level(got.layer)


def test_nothing_to_vendor_gives_no_layer(isolated_env, tmp_path):
    base = BaseImage(image="x/y:1", python="3.11", packages={"runpod": "1.12.0"})
    assert build_deps_layer("# only comments\n\n", base, DIGEST, cache_dir=tmp_path).layer is None
    assert build_deps_layer("runpod>=1.10\n", base, DIGEST, cache_dir=tmp_path).layer is None


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_pure_python_sdist_is_built_and_allowed(tool, wheelhouse, isolated_env, tmp_path):
    got = build_deps_layer("rpj-sdist==0.5\n", BASE, DIGEST, cache_dir=tmp_path / "c", tool=tool,
                           index=local_index(wheelhouse))
    assert "rpj_sdist" in top_level(got.layer)


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_native_sdist_is_refused_with_the_ways_out(tool, wheelhouse, isolated_env, tmp_path):
    with pytest.raises(DependencyError) as info:
        build_deps_layer("rpj-csdist\n", BASE, DIGEST, cache_dir=tmp_path / "c", tool=tool,
                         index=local_index(wheelhouse))
    assert "rpj-csdist" in info.value.message and "only-binary" in info.value.message
    assert "builder='docker'" in info.value.hint and "manylinux wheels" in info.value.hint


def test_a_host_only_linux_wheel_is_refused(wheelhouse, isolated_env, tmp_path):
    if find_uv() is None:
        pytest.skip("uv is not installed")
    with pytest.raises(DependencyError, match="rpj-linux"):
        build_deps_layer("rpj-linux\n", BASE, DIGEST, cache_dir=tmp_path / "c", tool="uv",
                         index=local_index(wheelhouse))


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_wheel_newer_than_the_base_glibc(tool, wheelhouse, isolated_env, tmp_path):
    with pytest.raises(DependencyError) as info:
        build_deps_layer("rpj-new\n", BASE, DIGEST, cache_dir=tmp_path / "c", tool=tool, index=local_index(wheelhouse))
    assert "rpj-new" in info.value.message
    newer = BaseImage(image="x/y:1", python="3.11", glibc="2.39")
    got = build_deps_layer("rpj-new\n", newer, DIGEST, cache_dir=tmp_path / "c", tool=tool, index=local_index(wheelhouse))
    assert "rpj_new" in top_level(got.layer)


def test_unknown_package_error_names_it(wheelhouse, isolated_env, tmp_path):
    with pytest.raises(DependencyError) as info:
        build_deps_layer("no-such-package-rpj\n", BASE, DIGEST, cache_dir=tmp_path / "c", index=local_index(wheelhouse))
    assert "no-such-package-rpj" in info.value.message and info.value.hint


def test_cached_layer_is_reused_without_running_the_installer(wheelhouse, isolated_env, tmp_path, monkeypatch):
    first = build_deps_layer("rpj-pure\n", BASE, DIGEST, cache_dir=tmp_path / "c", index=local_index(wheelhouse))

    def refuse(*args, **kwargs):
        raise AssertionError("the installer ran although the layer was cached")

    monkeypatch.setattr(deps_module, "_run", refuse)
    again = build_deps_layer("rpj-pure\n", BASE, DIGEST, cache_dir=tmp_path / "c", index=local_index(wheelhouse))
    assert again.cached and again.layer.digest == first.layer.digest and again.layer.path == first.layer.path
    with pytest.raises(AssertionError, match="installer ran"):  # another base digest is another key
        build_deps_layer("rpj-pure\n", BASE, "sha256:" + "2" * 64, cache_dir=tmp_path / "c",
                         index=local_index(wheelhouse))


def test_same_requirements_give_the_same_layer_digest_in_fresh_caches(wheelhouse, isolated_env, tmp_path):
    one = build_deps_layer("rpj-pure\nrpj-sdist\n", BASE, DIGEST, cache_dir=tmp_path / "a", index=local_index(wheelhouse))
    two = build_deps_layer("rpj-pure\nrpj-sdist\n", BASE, DIGEST, cache_dir=tmp_path / "b", index=local_index(wheelhouse))
    assert one.layer.digest == two.layer.digest and one.layer.diff_id == two.layer.diff_id
    assert not two.cached


def test_default_cache_lives_under_the_data_dir(wheelhouse, isolated_env, tmp_path):
    got = build_deps_layer("rpj-pure\n", BASE, DIGEST, index=local_index(wheelhouse))
    assert got.layer.path.is_relative_to(tmp_path / "data" / "cache" / "build" / "deps")


def test_platform_tags():
    tags = pip_platforms("2.35")
    assert tags[0] == "manylinux_2_35_x86_64" and "manylinux_2_17_x86_64" in tags
    assert tags[-3:] == ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    assert len(tags) == 35 - 17 + 1 + 3
    assert uv_platform("2.35") == "x86_64-manylinux_2_35"
    assert uv_platform("2.30") == "x86_64-manylinux_2_28"  # uv has no 2_29/2_30
    assert uv_platform("2.17") == "x86_64-manylinux_2_17"


@pytest.mark.parametrize("line", ["-r other.txt", "-e .", "./local/pkg", "--constraint c.txt"])
def test_requirements_that_point_at_local_files_are_refused(line, isolated_env, tmp_path):
    with pytest.raises(DependencyError) as info:
        build_deps_layer(f"rpj-pure\n{line}\n", BASE, DIGEST, cache_dir=tmp_path)
    assert line in info.value.message and "find_links" in info.value.hint
