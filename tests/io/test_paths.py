"""Atomic writes and path handling: a failed save leaves the old file and no litter."""

from __future__ import annotations

import io
import os
import stat
import sys

import pytest

from modelpack.io.paths import atomic_writer, describe, open_for_reading

if sys.platform != "win32":
    import fcntl

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="litter cleanup relies on flock (POSIX)")


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


def _litter(folder, target="model.mpk"):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{target}.") and p.name.endswith(".tmp"))


@posix_only
def test_dead_writers_temporaries_are_removed(tmp_path):
    target = tmp_path / "model.mpk"
    stale = tmp_path / ".model.mpk.k3j9x_a2.tmp"  # what a killed writer leaves: nobody holds its lock
    stale.write_bytes(b"half a model")
    with atomic_writer(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert _litter(tmp_path) == []


@posix_only
def test_live_writers_temporaries_are_kept(tmp_path):
    live = tmp_path / ".model.mpk.abcdefgh.tmp"
    live.write_bytes(b"being written")
    with open(live, "rb") as other_writer:
        fcntl.flock(other_writer, fcntl.LOCK_EX)  # as a writer in another process would
        with atomic_writer(tmp_path / "model.mpk") as handle:
            handle.write(b"new")
        assert _litter(tmp_path) == [live.name]


@posix_only
def test_other_files_are_never_touched(tmp_path):
    keep = [".model.mpk.tmp", ".model.mpk.toolongname.tmp", ".other.mpk.abcdefgh.tmp", "model.mpk.abcdefgh.tmp",
            ".model.mpk.ABCDEFGH.tmp"]
    for name in keep:
        (tmp_path / name).write_bytes(b"x")
    with atomic_writer(tmp_path / "model.mpk") as handle:
        handle.write(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "model.mpk"])


@posix_only
def test_temporary_is_locked_while_writing(tmp_path):
    with atomic_writer(tmp_path / "model.mpk") as handle:
        (temporary,) = _litter(tmp_path)
        with open(tmp_path / temporary, "rb") as probe, pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write(b"x")
    assert _litter(tmp_path) == []


# -- every path problem is a ModelpackError naming the user's path ----------------------------

from fuzzing import time_bound  # noqa: E402
from models import sequential_mlp  # noqa: E402

import modelpack  # noqa: E402
from modelpack.errors import MissingFileError, PathError, UsageError  # noqa: E402


def _no_temporary_named(exc: BaseException) -> None:
    assert ".tmp" not in str(exc), str(exc)


@pytest.mark.parametrize("write", [
    lambda p: modelpack.export(sequential_mlp(3, 2), p),
    lambda p: modelpack.save(p, [1.0]),
    lambda p: sequential_mlp(3, 2).save_parameters(p),
], ids=["export", "save", "save_parameters"])
def test_writing_to_a_folder_or_a_missing_folder(tmp_path, write):
    with pytest.raises(PathError, match=rf"^{tmp_path}: is a folder, not a file; give a file name inside it$") as info:
        write(tmp_path)
    _no_temporary_named(info.value)
    target = tmp_path / "no" / "such" / "m.mpk"
    with pytest.raises(PathError, match=rf"^{target}: the folder {tmp_path}/no/such does not exist; create it first$") as info:
        write(target)
    _no_temporary_named(info.value)
    assert isinstance(info.value, OSError) and isinstance(info.value, modelpack.ModelpackError)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes anywhere; POSIX modes")
def test_writing_into_an_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PathError, match=r"m\.mpk: cannot be written: permission denied"):
            modelpack.save(locked / "m.mpk", [1.0])
    finally:
        locked.chmod(0o700)


def test_unwritable_destination_as_root_is_simulated(tmp_path, monkeypatch):
    """Root ignores folder modes, so the OS refusal is simulated where the temporary is made."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(tmp_path, ".m.mpk.abcd1234.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PathError, match=rf"^{tmp_path / 'm.mpk'}: cannot be written: permission denied$") as info:
        modelpack.save(tmp_path / "m.mpk", [1.0])
    _no_temporary_named(info.value)


@pytest.mark.parametrize("read", [
    modelpack.load, modelpack.inspect, modelpack.open, modelpack.verify,
    lambda p: sequential_mlp(3, 2).load_parameters(p),
], ids=["load", "inspect", "open", "verify", "load_parameters"])
def test_reading_a_missing_file_or_a_folder(tmp_path, read):
    missing = tmp_path / "nosuch.mpk"
    with pytest.raises(MissingFileError, match=rf"^{missing}: no such file$") as info:
        read(missing)
    assert isinstance(info.value, FileNotFoundError)  # `except FileNotFoundError` keeps working
    with pytest.raises(PathError, match=rf"^{tmp_path}: is a folder, not a file"):
        read(tmp_path)


@pytest.mark.parametrize("call", [
    modelpack.load, modelpack.inspect, modelpack.open, modelpack.verify, modelpack.convert,
    lambda p: sequential_mlp(3, 2).load_parameters(p), lambda p: modelpack.save(p, [1.0]),
    lambda p: modelpack.export(sequential_mlp(3, 2), p), lambda p: sequential_mlp(3, 2).save_parameters(p),
], ids=["load", "inspect", "open", "verify", "convert", "load_parameters", "save", "export", "save_parameters"])
@pytest.mark.parametrize(("given", "shown"), [(["a.mpk", "b.mpk"], r"list \['a\.mpk', 'b\.mpk'\]"),
                                              (3, "int 3"), (None, "NoneType None")])
def test_a_file_given_as_something_else_is_a_usage_error(call, given, shown):
    """Not a bare TypeError from os.fspath (nor, for an int, a read of that file descriptor)."""
    if call is modelpack.convert and isinstance(given, list):
        shown = r"files as separate arguments, e\.g\. convert\('net-symbol\.json', 'net-0000\.params'\), not in a list"
    else:
        shown = rf"a file is given as a path \(str or os\.PathLike\), a URL, or an open binary file; found {shown}"
    with pytest.raises(UsageError, match=shown):
        call(given)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize("read", [
    modelpack.load, modelpack.inspect, modelpack.open, modelpack.verify,
    lambda p: sequential_mlp(3, 2).load_parameters(p),
], ids=["load", "inspect", "open", "verify", "load_parameters"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, read):
    """A pipe (which a folder of shards may hold in place of one) is no file to read: opening it
    for reading would block until something writes to it."""
    os.mkfifo(tmp_path / "pipe.mpk")
    with pytest.raises(PathError, match=rf"^{tmp_path / 'pipe.mpk'}: is not a regular file \(a pipe, a socket or a "
                                        r"device\); give a file$"):
        with time_bound(10.0):
            read(tmp_path / "pipe.mpk")


@pytest.mark.parametrize("as_path", [str, lambda p: p], ids=["str", "Path"])
def test_a_local_file_opened_unbuffered_is_a_raw_file_with_the_same_errors(tmp_path, as_path):
    """``buffered=False`` (what ``modelpack.open`` reads through: positioned reads only) gives
    the raw file, and a missing file or a folder the same errors as a buffered open."""
    target = tmp_path / "x-file"
    target.write_bytes(b"abc")
    with open_for_reading(as_path(target), buffered=False) as handle:
        assert type(handle) is io.FileIO and handle.read() == b"abc"
    with open_for_reading(as_path(target)) as handle:
        assert type(handle) is io.BufferedReader
    for missing, error, message in [(tmp_path / "nosuch", MissingFileError, "no such file"),
                                    (tmp_path, PathError, "is a folder, not a file")]:
        with pytest.raises(error, match=rf"^{missing}: {message}"):
            with open_for_reading(as_path(missing), buffered=False):
                pass
