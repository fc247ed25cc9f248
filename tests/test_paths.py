"""Atomic writes and path handling: a failed save leaves the old file and no litter."""

from __future__ import annotations

import io
import os
import stat

import pytest

from modelpack._paths import atomic_writer, describe, open_for_reading


def test_atomic_writer_replaces_on_success(tmp_path):
    target = tmp_path / "x-file"
    target.write_bytes(b"old")
    with atomic_writer(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["x-file"]


def test_atomic_writer_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "x-file"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_writer(str(target)) as handle:
            handle.write(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x-file"]


def test_atomic_writer_keeps_existing_permissions(tmp_path):
    target = tmp_path / "model.mpk"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    with atomic_writer(target) as handle:
        handle.write(b"new")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_new_file_gets_umask_permissions_not_private(tmp_path):
    target = tmp_path / "fresh"
    with atomic_writer(target) as handle:
        handle.write(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~umask


def test_file_objects_pass_through():
    buffer = io.BytesIO()
    with atomic_writer(buffer) as handle:
        handle.write(b"abc")
    assert buffer.getvalue() == b"abc"
    buffer.seek(0)
    with open_for_reading(buffer) as handle:
        assert handle.read() == b"abc"
    assert not buffer.closed
    assert describe(buffer) == "<file object>"


def test_describe_path_as_given(tmp_path):
    assert describe(tmp_path / "a.b") == str(tmp_path / "a.b")
    assert describe("x-file") == "x-file"
