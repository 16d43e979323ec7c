"""Layers are reproducible: the same files give the same bytes, whatever the disk says."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile

import pytest

from runpod_jupyter.image.layers import Dir, Symlink, read_entries, tree, write_layer


def _project(root, mtime: int) -> None:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("A = 1\n")
    (root / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0\1")
    (root / "stray.pyc").write_bytes(b"\0")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o700)
    (root / "data.txt").write_text("x" * 1000)
    (root / "data.txt").chmod(0o600)
    os.symlink("data.txt", root / "link")
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (mtime, mtime))


def test_same_files_same_digest_whatever_mtimes_and_modes(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _project(a, 1_000_000)
    _project(b, 2_000_000)
    (b / "data.txt").chmod(0o644)  # permission bits other than exec do not matter
    one = write_layer(tree(a, "app"), tmp_path / "one.tar.gz")
    two = write_layer(tree(b, "app"), tmp_path / "two.tar.gz")
    assert (one.digest, one.diff_id, one.size) == (two.digest, two.diff_id, two.size)

    (b / "data.txt").write_text("y" * 1000)
    three = write_layer(tree(b, "app"), tmp_path / "three.tar.gz")
    assert three.diff_id != one.diff_id and three.digest != one.digest


def test_hashes_sizes_and_header(tmp_path):
    layer = write_layer({"app/x.txt": b"hello"}, tmp_path / "l.tar.gz")
    raw = layer.path.read_bytes()
    assert layer.size == len(raw)
    assert layer.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert layer.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(raw)).hexdigest()
    assert raw[3] & 0x08 == 0  # no file name in the gzip header
    assert raw[4:8] == b"\0\0\0\0"  # no time in the gzip header
    assert b"".join(layer.chunks(7)) == raw


def test_entries_are_sorted_with_parents_root_owned_and_normalised(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    (tmp_path / "src").mkdir()
    _project(tmp_path / "src", 5)
    layer = write_layer(tree(tmp_path / "src", "/app/"), tmp_path / "l.tar.gz")
    members = read_entries(layer.path)
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names == ["app", "app/data.txt", "app/link", "app/pkg", "app/pkg/__init__.py", "app/run.sh"]
    by = {m.name: m for m in members}
    assert by["app"].isdir() and by["app"].mode == 0o755
    assert by["app/run.sh"].mode == 0o755 and by["app/data.txt"].mode == 0o644
    assert by["app/link"].issym() and by["app/link"].linkname == "data.txt"
    assert all((m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 0) for m in members)


def test_source_date_epoch_sets_every_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    layer = write_layer({"a/b.txt": "x", "tmp": Dir(0o1777), "a/l": Symlink("b.txt")}, tmp_path / "l.tar.gz")
    members = {m.name: m for m in read_entries(layer.path)}
    assert {m.mtime for m in members.values()} == {1700000000}
    assert members["tmp"].mode == 0o1777 and members["a"].isdir()


def test_paths_outside_the_root_are_refused(tmp_path):
    with pytest.raises(ValueError):
        write_layer({"../etc/passwd": b"x"}, tmp_path / "l.tar.gz")


def test_large_file_is_streamed_and_round_trips(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    layer = write_layer({"data/big.bin": big}, tmp_path / "l.tar.gz", level=1)
    with tarfile.open(layer.path) as archive:
        assert archive.extractfile("data/big.bin").read() == big.read_bytes()
