"""One helper for every path argument: ``str``, ``os.PathLike`` or an open binary file.

Paths are used exactly as given (no extension is ever appended), and writes to a path are
atomic: a temporary file in the same folder is written, flushed, fsynced and renamed over the
target, so a crash mid-save leaves the previous file intact.

A writer killed mid-save leaves its temporary file (``.<name>.<random>.tmp``) behind. Names
are random, so litter never collides with a later save; and on POSIX each writer holds an
advisory lock (``flock``) on its temporary file until the rename, so the next save of the same
target can tell dead writers' files (unlocked) from live ones and removes them. Litter
therefore never accumulates beyond one file per writer that died since the last save.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any, BinaryIO, Union

from ..errors import MissingFileError, PathError, UsageError
from . import remote

try:
    import fcntl
except ImportError:  # Windows: no flock; stale temporary files are then left alone
    fcntl = None  # type: ignore[assignment]

# A URL (``s3://…``, ``https://…``), alone or with its store's options, goes to ``remote``.
PathOrFile = Union[str, "os.PathLike[str]", BinaryIO, IO[bytes], remote.Location]

__all__ = ["PathOrFile", "describe", "is_file_object", "open_for_reading", "regular_file_opener",
           "atomic_writer", "sibling"]


def is_file_object(target: object) -> bool:
    """True for an open file-like object (anything with ``read`` or ``write``)."""
    return hasattr(target, "read") or hasattr(target, "write")


def describe(target: object) -> str:
    """A short name for error messages: the path, or the file object's name."""
    if is_file_object(target):
        name = getattr(target, "name", None)
        return str(name) if isinstance(name, (str, os.PathLike)) else "<file object>"
    if remote.is_url(target):
        return remote.describe(target)
    return str(_fspath(target))


def _fspath(target: object) -> str | bytes:
    """A local path's string; anything else that is no file either is a ``UsageError`` (a
    list of paths, a number, None), where ``os.fspath`` would raise a bare ``TypeError``."""
    try:
        return os.fspath(target)  # type: ignore[call-overload]
    except TypeError:
        shown = repr(target)
        raise UsageError(f"a file is given as a path (str or os.PathLike), a URL, or an open binary file; "
                         f"found {type(target).__name__} {shown if len(shown) <= 60 else shown[:57] + '...'}"
                         ) from None


@contextlib.contextmanager
def _opened(
    target: PathOrFile,
    remote_open: Callable[[Any], AbstractContextManager[IO[bytes]]],
    local_open: Callable[[str], AbstractContextManager[IO[bytes]]],
) -> Iterator[IO[bytes]]:
    """The one dispatch of a path argument: a caller's file object as is (left open), a URL
    through ``remote_open``, a local path (``file://`` URLs included) through ``local_open``."""
    if is_file_object(target):
        yield target  # type: ignore[misc]
    elif remote.is_url(target):
        with remote_open(target) as handle:
            yield handle
    else:
        with local_open(remote.local_path(target) or _fspath(target)) as handle:  # type: ignore[arg-type]
            yield handle


def open_for_reading(source: PathOrFile, *, buffered: bool = True) -> AbstractContextManager[IO[bytes]]:
    """Yield a binary file to read; a caller's file object is used as is and left open.

    ``buffered=False`` opens a local path as a raw file, for readers that only read by
    offset (``os.pread``): a buffered reader costs a third of a small archive's ``open``
    (about 30 µs, in its buffer and lock) and would hold nothing they read."""
    if is_file_object(source):  # (a plain context manager: the dispatch's generator costs more)
        return contextlib.nullcontext(source)  # type: ignore[arg-type]
    if isinstance(source, str) and not source.startswith("file://") and not remote.is_url(source):
        # The common case, a local path, without the dispatch's generator (an open of a
        # small archive is timed in microseconds): the file is its own context manager.
        try:
            # (the caller's with-block closes it)
            return open(source, "rb", buffering=-1 if buffered else 0, opener=regular_file_opener)  # noqa: SIM115
        except OSError as exc:
            raise _path_error(source, exc, reading=True) from None
    return _opened(source, remote.open_for_reading, _open_local if buffered else _open_local_raw)


@contextlib.contextmanager
def _open_local(path: str, buffering: int = -1) -> Iterator[IO[bytes]]:
    try:
        handle = open(path, "rb", buffering=buffering, opener=regular_file_opener)  # noqa: SIM115  (closed below)
    except OSError as exc:
        raise _path_error(path, exc, reading=True) from None
    with handle:
        yield handle


def _open_local_raw(path: str) -> AbstractContextManager[IO[bytes]]:
    return _open_local(path, buffering=0)


class _NotRegular(OSError):
    """A path to read that is a pipe, a socket or a device (``regular_file_opener``)."""


def regular_file_opener(path: str, flags: int) -> int:
    """``open``'s opener for a file to read: opened without blocking, so a FIFO (which a
    folder of shards or weights may hold in place of a file) cannot make the open wait for a
    writer forever, and refused unless it is a regular file or a folder (which ``open``
    itself refuses as such); then blocking again, as ``open`` would have left it."""
    nonblocking = getattr(os, "O_NONBLOCK", 0)  # (POSIX; elsewhere a FIFO is not a path)
    fd = os.open(path, flags | nonblocking)
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise _NotRegular(f"{path} is a pipe, socket or device")
        if nonblocking:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _path_error(path: str, exc: OSError, *, reading: bool) -> PathError:
    """The user's path and what to do, for an OS error (never a temporary file's name)."""
    if isinstance(exc, _NotRegular):
        return PathError(path, "is not a regular file (a pipe, a socket or a device)", "give a file")
    if isinstance(exc, FileNotFoundError):
        folder = os.path.dirname(os.path.abspath(path))
        if reading:
            return MissingFileError(path, "no such file")
        if not os.path.isdir(folder):
            return PathError(path, f"the folder {folder} does not exist", "create it first")
    if isinstance(exc, IsADirectoryError) or os.path.isdir(path):
        return PathError(path, "is a folder, not a file", "give a file name inside it")
    if isinstance(exc, PermissionError):
        return PathError(path, "permission denied" if reading else "cannot be written: permission denied")
    return PathError(path, f"cannot be {'read' if reading else 'written'}: {exc.strerror or exc}")


def atomic_writer(target: PathOrFile) -> AbstractContextManager[IO[bytes]]:
    """Yield a binary file whose bytes replace ``target`` only if the block succeeds.

    For a path: write a temporary file beside it, fsync, ``os.replace`` it over the target and
    fsync the folder, so readers see the old file or the new one and never a torn one. The
    temporary file is removed on any failure. A caller's file object is written directly.
    """
    return _opened(target, remote.atomic_writer, _atomic_local)


@contextlib.contextmanager
def _atomic_local(path: str) -> Iterator[IO[bytes]]:
    folder, base = os.path.split(os.path.abspath(path))
    if os.path.isdir(path):
        raise PathError(path, "is a folder, not a file", "give a file name inside it")
    # Litter first, then this writer's own file: a writer killed at any instant leaves at
    # most its own file behind (cleaning up after creating it, a kill in between left two).
    _remove_stale_temporaries(folder, base)
    try:
        fd, tmp_path = _locked_temporary(folder, base)
    except OSError as exc:
        raise _path_error(path, exc, reading=False) from None
    try:
        os.chmod(tmp_path, _new_file_mode(path))
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            if fcntl is not None:
                os.replace(tmp_path, path)  # still holding the lock: never taken for litter
        if fcntl is None:
            os.replace(tmp_path, path)  # Windows cannot rename a file that is open
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        if isinstance(exc, OSError) and not isinstance(exc, PathError):
            raise _path_error(path, exc, reading=False) from exc  # e.g. disk full: name the target
        raise
    _fsync_folder(folder)


def _locked_temporary(folder: str, base: str) -> tuple[int, str]:
    """A new temporary file beside the target, locked for as long as its writer lives."""
    while True:
        fd, tmp_path = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
        if fcntl is None:
            return fd, tmp_path
        # Blocks only while another save's cleanup holds it, mistaking it for litter in the
        # instant between mkstemp and this lock; that cleanup then removes the name, so check.
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(fd, tmp_path):
            return fd, tmp_path
        os.close(fd)


def _remove_stale_temporaries(folder: str, base: str) -> None:
    """Delete this target's temporary files whose writers died (nobody holds their lock). A
    live writer's is locked and left; one caught between its creation and its lock is removed,
    and that writer makes another (``_locked_temporary``)."""
    if fcntl is None:
        return
    pattern = re.compile(r"\." + re.escape(base) + r"\.[a-z0-9_]{8}\.tmp\Z")
    try:
        with os.scandir(folder) as entries:
            stale = [entry.path for entry in entries if pattern.match(entry.name)]
    except OSError:
        return  # an unlistable folder: cleaning up is a courtesy, never a reason to fail
    for candidate in stale:
        try:
            fd = os.open(candidate, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # already gone, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, candidate):
                os.unlink(candidate)
        except OSError:
            pass  # locked: a live writer's file (or unremovable): leave it
        finally:
            os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except OSError:
        return False


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


def sibling(target: PathOrFile, name: str) -> PathOrFile:
    """The file called ``name`` in ``target``'s folder (a shard beside its index): a path, or
    a URL with the same store options. A file object's own path is used when it has one."""
    if is_file_object(target):
        own = getattr(target, "name", None)
        if not isinstance(own, (str, os.PathLike)) or not os.path.exists(own):
            raise PathError(
                describe(target), "is a file object without a path",
                f"give the path or URL of the index, so that {name!r} beside it can be found",
            )
        target = own
    if remote.is_url(target):
        return remote.sibling(target, name)  # type: ignore[arg-type]
    path = remote.local_path(target) or os.fspath(target)  # type: ignore[arg-type]
    return os.path.join(os.path.dirname(path), name)
