"""One helper for every path argument: ``str``, ``os.PathLike`` or an open binary file.

Paths are used exactly as given (no extension is ever appended), and writes to a path are
atomic: a temporary file in the same folder is written, flushed, fsynced and renamed over the
target, so a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, BinaryIO, Union

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO, IO[bytes]]

__all__ = ["PathOrFile", "describe", "is_file_object", "open_for_reading", "atomic_writer"]


def is_file_object(target: object) -> bool:
    """True for an open file-like object (anything with ``read`` or ``write``)."""
    return hasattr(target, "read") or hasattr(target, "write")


def describe(target: object) -> str:
    """A short name for error messages: the path, or the file object's name."""
    if is_file_object(target):
        name = getattr(target, "name", None)
        return str(name) if isinstance(name, (str, os.PathLike)) else "<file object>"
    return str(os.fspath(target))  # type: ignore[call-overload]


@contextlib.contextmanager
def open_for_reading(source: PathOrFile) -> Iterator[IO[bytes]]:
    """Yield a binary file to read; a caller's file object is used as is and left open."""
    if is_file_object(source):
        yield source  # type: ignore[misc]
        return
    with open(os.fspath(source), "rb") as handle:  # type: ignore[arg-type]
        yield handle


@contextlib.contextmanager
def atomic_writer(target: PathOrFile) -> Iterator[IO[bytes]]:
    """Yield a binary file whose bytes replace ``target`` only if the block succeeds.

    For a path: write a temporary file beside it, fsync, ``os.replace`` it over the target and
    fsync the folder, so readers see the old file or the new one and never a torn one. The
    temporary file is removed on any failure. A caller's file object is written directly.
    """
    if is_file_object(target):
        yield target  # type: ignore[misc]
        return
    path = os.fspath(target)  # type: ignore[arg-type]
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder
    )
    try:
        os.chmod(tmp_path, _new_file_mode(path))
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise
    _fsync_folder(folder)


def _new_file_mode(path: str) -> int:
    """Keep an existing file's permissions; otherwise what ``open()`` would give (umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: str) -> None:
    """Make the rename durable; some platforms cannot open a folder, which is harmless."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
