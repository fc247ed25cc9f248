"""Strict readers of the dataset files MXNet's vision datasets use: gzipped idx files (MNIST,
Fashion-MNIST), CIFAR's fixed binary records, and the members of CIFAR's tar archive.

These files come from the network or a user's folder, so they are untrusted: every size is
checked against the header and the file before memory is allocated, a gzip stream is never
decompressed past what its header declares, and a bad file raises ``FormatError`` naming the
file and what is wrong. Nothing is unpickled (CIFAR's binary version is read, as MXNet does).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import tarfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from ....errors import FormatError
from ....io.paths import regular_file_opener

__all__ = ["MAX_PAYLOAD", "read_idx", "read_records", "extract_members"]

# The largest payload a dataset file may declare (the real ones hold at most 180 MB).
MAX_PAYLOAD = 1 << 30
# Deflate cannot expand data by more than about 1032:1, so a header declaring more than this
# many times the compressed file's size describes data the file cannot hold.
_MAX_GZIP_RATIO = 1100

# idx's type byte -> numpy dtype (big-endian); MNIST's files use only unsigned bytes.
_IDX_DTYPES = {0x08: np.dtype(np.uint8)}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The array of a gzipped idx file of ``ndim`` dimensions (``uint8``), checked strictly."""
    try:
        compressed = os.path.getsize(path)
        with (open(path, "rb", opener=regular_file_opener) as raw,
              gzip.GzipFile(fileobj=raw, mode="rb") as stream):
            header = _read_exact(stream, 4, path, "the idx magic number")
            if header[:2] != b"\0\0" or header[2] not in _IDX_DTYPES:
                raise FormatError(f"{path}: not an idx file of unsigned bytes (magic number {header.hex()}, "
                                  f"expected 0000080{ndim})")
            if header[3] != ndim:
                raise FormatError(f"{path}: an idx file of {header[3]} dimensions, expected {ndim}")
            shape = struct.unpack(f">{ndim}I", _read_exact(stream, 4 * ndim, path, "the idx dimensions"))
            dtype = _IDX_DTYPES[header[2]]
            size = math.prod(shape) * dtype.itemsize
            _check_declared(path, shape, size, compressed)
            data = bytearray(size)
            view, filled = memoryview(data), 0
            while filled < size:
                count = stream.readinto(view[filled:])
                if not count:
                    raise FormatError(f"{path}: truncated: its header declares {size} bytes of data "
                                      f"(shape {shape}), the file holds {filled}")
                filled += count
            if stream.read(1):
                raise FormatError(f"{path}: more data than its header declares ({size} bytes, shape {shape})")
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise FormatError(f"{path}: not a valid gzip file ({exc})") from exc
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _check_declared(path: Path, shape: tuple[int, ...], size: int, compressed: int) -> None:
    if size > MAX_PAYLOAD:
        raise FormatError(f"{path}: its header declares {size} bytes of data (shape {shape}), over the "
                          f"limit of {MAX_PAYLOAD} for a dataset file")
    if size > _MAX_GZIP_RATIO * compressed + 4096:
        raise FormatError(f"{path}: truncated: its header declares {size} bytes of data (shape {shape}), "
                          f"more than a gzip file of {compressed} bytes can hold")


def _read_exact(stream: gzip.GzipFile, count: int, path: Path, what: str) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise FormatError(f"{path}: truncated: {what} needs {count} bytes, the file holds {len(data)}")
    return data


def read_records(
    path: Path, label_bytes: int, label_limits: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR's binary batch: records of ``label_bytes`` label bytes then a 3×32×32 image (planes
    R, G, B). Returns images ``(N, 32, 32, 3)`` uint8 (HWC, as MXNet) and the labels ``(N, label_bytes)``
    int32; each label column must be below its limit (10 classes; CIFAR-100's 20 and 100)."""
    record = label_bytes + 3 * 32 * 32
    size = os.path.getsize(path)
    if size > MAX_PAYLOAD:
        raise FormatError(f"{path}: {size} bytes, over the limit of {MAX_PAYLOAD} for a dataset file")
    if size == 0 or size % record:
        raise FormatError(f"{path}: {size} bytes is not a whole number of {record}-byte CIFAR records")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size != size:  # the file changed under us
        raise FormatError(f"{path}: read {data.size} bytes of {size}")
    rows = data.reshape(-1, record)
    labels = rows[:, :label_bytes].astype(np.int32)
    for column, limit in enumerate(label_limits):
        bad = np.flatnonzero(labels[:, column] >= limit)
        if bad.size:
            raise FormatError(f"{path}: record {bad[0]} has label {labels[bad[0], column]}, "
                              f"expected one of 0..{limit - 1}")
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def extract_members(archive: Path, wanted: dict[str, int], root: Path, *, max_members: int = 64) -> None:
    """Write the regular files of ``archive`` (a tar.gz) whose base names are in ``wanted``
    (name -> size expected) into ``root``, each atomically; nothing else is written.

    Members are matched by base name (MXNet's archive nests them in a folder), so no path in the
    archive ever reaches the file system; links, devices and oversized members are refused.
    """
    found: set[str] = set()
    try:
        with (open(archive, "rb", opener=regular_file_opener) as raw,
              tarfile.open(fileobj=raw, mode="r:gz") as tar):
            for count, member in enumerate(tar):
                if count >= max_members:
                    raise FormatError(f"{archive}: more than {max_members} members, not a dataset archive")
                name = os.path.basename(member.name)
                if name not in wanted:
                    if member.size > MAX_PAYLOAD:
                        raise FormatError(f"{archive}: member {member.name!r} declares {member.size} bytes")
                    continue
                if not member.isfile() or member.size != wanted[name] or name in found:
                    raise FormatError(
                        f"{archive}: member {member.name!r} is not a regular file of {wanted[name]} "
                        f"bytes (found {member.size} bytes, type {member.type!r})")
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    raise FormatError(f"{archive}: member {member.name!r} has no data")
                _write_atomic(root / name, source, member.size, archive)
                found.add(name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise FormatError(f"{archive}: not a valid tar.gz archive ({exc})") from exc
    missing = sorted(set(wanted) - found)
    if missing:
        raise FormatError(f"{archive}: the archive lacks {', '.join(missing)}")


def _write_atomic(target: Path, source: IO[bytes], size: int, archive: Path) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with open(temporary, "wb") as out:
            remaining = size
            while remaining:
                chunk = source.read(min(remaining, 1 << 20))
                if not chunk:
                    raise FormatError(f"{archive}: member {target.name} is truncated")
                out.write(chunk)
                remaining -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
