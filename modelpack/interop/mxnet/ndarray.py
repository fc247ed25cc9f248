"""MXNet's NDArray file format, read-only and without MXNet: ``npx.save``/``nd.save`` files and
Gluon parameter files (``save_parameters``, an export's ``-0000.params``).

The layout (little-endian), as MXNet 1.x writes and reads it:

- u64 list magic ``0x112``, u64 reserved, u64 array count; the arrays; u64 name count (0, or
  the array count) and per name a u64 length and that many UTF-8 bytes.
- An array is a *record*. Numpy-mode records (magic ``0xF993FACA``) and legacy ones
  (``0xF993FAC9``) hold: u32 magic, i32 storage type (0 = dense), shape (i32 ndim, i64
  dims), i32 device type and id, i32 type flag, the raw data. ``0xF993FAC8`` records lack the
  storage type; the oldest records have no magic at all: their first u32 is ndim and the dims
  are u32. A legacy record's ndim 0 means "no shape" (a numpy-mode one's means 0-d).

Reading is two passes: ``scan`` walks every header, checking each field against the bytes
left in the file and against ``Limits`` before anything is allocated; only then are the
arrays read. A problem is a ``ModelpackError`` naming the file, the array and the field.
"""

from __future__ import annotations

import io
import math
import struct
import sys
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ...errors import FormatError, LimitError, UnsupportedDtypeError
from ...io.limits import DEFAULT_LIMITS, Limits
from ...io.pages import read_target
from ...io.paths import PathOrFile, describe, open_for_reading
from ...io.sniff import MXNET_LIST_MAGIC, is_mxnet
from ..widened import STORED_AS, stored_dtype, widened

__all__ = ["LIST_MAGIC", "TYPE_FLAGS", "Entry", "Index", "is_ndarray_file", "scan", "load", "read_arrays"]

LIST_MAGIC = MXNET_LIST_MAGIC
NUMPY_MAGIC, LEGACY_MAGIC, V1_MAGIC = 0xF993FACA, 0xF993FAC9, 0xF993FAC8
LAYOUTS = {NUMPY_MAGIC: "numpy", LEGACY_MAGIC: "legacy", V1_MAGIC: "v1"}  # no magic: "v0"

# MXNet's type flags (mshadow). 8-11 are MXNet 2's; 1.9 writes only the others. bfloat16 has no
# numpy dtype: it is read as float32, which holds every bfloat16 value exactly.
TYPE_FLAGS: dict[int, str] = {
    0: "float32", 1: "float64", 2: "float16", 3: "uint8", 4: "int32", 5: "int8", 6: "int64",
    7: "bool", 8: "int16", 9: "uint16", 10: "uint32", 11: "uint64", 12: "bfloat16",
}
_STORAGE = {-1: "undefined", 1: "row_sparse", 2: "csr"}
MAX_DIMS = 32  # MXNet's own limit on dimensions
MAX_NAME_BYTES = 1 << 16  # far beyond any real name; bounds one allocation
_MIN_RECORD = 16  # the smallest record (v0, 0-d, no data): ndim, device, type flag
_HEADER = struct.Struct("<QQQ")


@dataclass(frozen=True)
class Entry:
    """One array's header: where its data is and what it holds (nothing is read yet)."""

    name: str | None
    dtype: str  # a TYPE_FLAGS name: "bfloat16" is MXNet's, read as float32
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    layout: str  # "numpy", "legacy", "v1" or "v0"


@dataclass(frozen=True)
class Index:
    """Every header of one file; ``named`` is True when the arrays have names (a dict)."""

    source: str
    entries: list[Entry]
    named: bool

    @property
    def total_bytes(self) -> int:
        return sum(entry.nbytes for entry in self.entries)


def is_ndarray_file(source: PathOrFile) -> bool:
    """True when the first bytes are an NDArray list header (a cheap sniff, not a check)."""
    try:
        with open_for_reading(source) as handle:
            return is_mxnet(handle)
    except OSError:
        return False


def load(source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> list[np.ndarray] | dict[str, np.ndarray]:
    """What ``npx.load`` returns: a dict when the arrays are named, else a list.

    >>> x, y = load("x-files")  # doctest: +SKIP
    """
    index, arrays = read_arrays(source, limits=limits)
    if index.named:
        return {entry.name: array for entry, array in zip(index.entries, arrays, strict=True)}  # type: ignore[misc]
    return arrays


def scan(source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> Index:
    """Every array's header, checked, without reading any array data."""
    with open_for_reading(source) as handle:
        return _scan(_Cursor(handle, describe(source)), limits)


def read_arrays(source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Index, list[np.ndarray]]:
    """The checked index and every array, in file order."""
    with open_for_reading(source) as handle:
        cursor = _Cursor(handle, describe(source))
        index = _scan(cursor, limits)
        return index, [_read_data(cursor, position, entry) for position, entry in enumerate(index.entries)]


class _Cursor:
    """Reads fields from a file whose size is known, refusing any read past its end."""

    def __init__(self, handle: IO[bytes], source: str) -> None:
        self.source = source
        try:
            self.base = handle.tell()
            self.size = handle.seek(0, io.SEEK_END) - self.base
            handle.seek(self.base)
            self.handle = handle
        except (OSError, AttributeError, ValueError):  # a stream: its bytes are the file
            self.handle, self.base = io.BytesIO(handle.read()), 0
            self.size = len(self.handle.getbuffer())
        self.pos = 0

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def error(self, field: str, problem: str) -> FormatError:
        return FormatError(f"{self.source}: {field} {problem} (at byte {self.pos})")

    def take(self, count: int, field: str) -> bytes:
        if count > self.remaining:
            raise self.error(field, f"needs {count} bytes but the file ends {self.remaining} bytes later")
        data = self.handle.read(count)
        if len(data) != count:  # the file shrank under us
            raise self.error(field, "could not be read: the file is shorter than it was")
        self.pos += count
        return data

    def unpack(self, fmt: str, field: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), field))[0]

    def skip(self, count: int, field: str) -> None:
        if count > self.remaining:
            raise self.error(field, f"needs {count} bytes but the file ends {self.remaining} bytes later")
        self.pos += count
        self.handle.seek(self.base + self.pos)


def _scan(cursor: _Cursor, limits: Limits) -> Index:
    magic, _reserved, count = _HEADER.unpack(cursor.take(_HEADER.size, "the NDArray list header"))
    if magic != LIST_MAGIC:
        raise FormatError(
            f"{cursor.source} is not an MXNet NDArray file: list magic is {magic:#x}, "
            f"expected {LIST_MAGIC:#x}"
        )
    if count > limits.max_tensors:
        raise LimitError(
            cursor.source, "the array count", count, limit="max_tensors", allowed=limits.max_tensors
        )
    if count * _MIN_RECORD > cursor.remaining:
        raise cursor.error(
            "the array count",
            f"is {count}, but {count} records need more than the {cursor.remaining} bytes left",
        )
    entries: list[Entry] = []
    total = 0
    for position in range(count):
        entry = _scan_record(cursor, position)
        total += entry.nbytes
        if total > limits.max_total_bytes:
            raise LimitError(f"{cursor.source}: array {position}", "the data declared so far, in bytes,",
                             total, limit="max_total_bytes", allowed=limits.max_total_bytes)
        entries.append(entry)
    names = _scan_names(cursor, count)
    if cursor.remaining:
        raise cursor.error("the end of the file", f"has {cursor.remaining} unexpected bytes after the names")
    if names:
        entries = [
            Entry(name, e.dtype, e.shape, e.offset, e.nbytes, e.layout)
            for name, e in zip(names, entries, strict=True)
        ]
    return Index(cursor.source, entries, named=bool(names))


def _scan_record(cursor: _Cursor, position: int) -> Entry:
    where = f"array {position}"
    magic = cursor.unpack("<I", f"{where}: the record magic")
    layout = LAYOUTS.get(magic, "v0")
    if layout in ("numpy", "legacy"):
        storage = cursor.unpack("<i", f"{where}: the storage type")
        if storage != 0:
            kind = _STORAGE.get(storage, f"unknown storage type {storage}")
            raise FormatError(
                f"{cursor.source}: {where} uses {kind} storage; modelpack reads dense arrays only "
                "(in MXNet, convert it with .tostype('default') and save again)"
            )
    if layout == "v0":
        if magic > MAX_DIMS:
            raise cursor.error(
                f"{where}: the record magic",
                f"{magic:#x} is neither an NDArray magic nor a legacy dimension count (0-{MAX_DIMS})",
            )
        ndim, dim_format = magic, "I"
    else:
        ndim, dim_format = cursor.unpack("<i", f"{where}: the dimension count"), "q"
    if layout == "numpy" and ndim == -1 or layout == "legacy" and ndim == 0:
        raise FormatError(
            f"{cursor.source}: {where} has no shape (an uninitialised NDArray); it holds no data "
            "and MXNet cannot load it either"
        )
    if not 0 <= ndim <= MAX_DIMS:
        raise cursor.error(f"{where}: the dimension count", f"is {ndim}, expected 0 to {MAX_DIMS}")
    size = struct.calcsize(dim_format)
    shape = struct.unpack(f"<{ndim}{dim_format}", cursor.take(ndim * size, f"{where}: the shape"))
    if any(dim < 0 for dim in shape) or layout == "legacy" and 0 in shape:
        raise FormatError(
            f"{cursor.source}: {where}: shape {shape} has an unknown (negative, or in a legacy record "
            "zero) dimension"
        )
    cursor.take(8, f"{where}: the device")  # MXNet loads every array to the CPU anyway
    flag = cursor.unpack("<i", f"{where}: the type flag")
    dtype = TYPE_FLAGS.get(flag)
    if dtype is None:
        raise UnsupportedDtypeError(
            f"{cursor.source}: {where} has type flag {flag}, which is not a known MXNet dtype "
            f"(known: {', '.join(f'{k} {v}' for k, v in TYPE_FLAGS.items())})"
        )
    nbytes = math.prod(shape) * _itemsize(dtype)
    offset = cursor.pos
    cursor.skip(nbytes, f"{where}: the data ({dtype}, shape {shape})")
    return Entry(None, dtype, tuple(shape), offset, nbytes, layout)


def _scan_names(cursor: _Cursor, count: int) -> list[str]:
    number = cursor.unpack("<Q", "the name count")
    if number not in (0, count):
        raise cursor.error(
            "the name count", f"is {number}, but the file holds {count} arrays (expected 0 or {count})"
        )
    names: list[str] = []
    for position in range(number):
        length = cursor.unpack("<Q", f"name {position}: the length")
        if length > MAX_NAME_BYTES:
            raise cursor.error(f"name {position}: the length", f"is {length} bytes, over {MAX_NAME_BYTES}")
        raw = cursor.take(length, f"name {position}")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(
                f"{cursor.source}: name {position} is not valid UTF-8: {exc.reason} at byte {exc.start}"
            ) from None
        if name in names:
            raise FormatError(
                f"{cursor.source}: name {position} ({name!r}) appears twice; a dict cannot hold both"
            )
        names.append(name)
    return names


def _itemsize(dtype: str) -> int:
    return stored_dtype(dtype).itemsize


def _read_data(cursor: _Cursor, position: int, entry: Entry) -> np.ndarray:
    """One array's data, already bounded by ``scan``; bfloat16 widened to float32 exactly."""
    stored = stored_dtype(entry.dtype).newbyteorder("<")
    array = read_target(f"{cursor.source}: array {position}", entry.shape, stored)
    cursor.handle.seek(cursor.base + entry.offset)
    view = array.reshape(-1).view(np.uint8).data if array.size else memoryview(bytearray())
    done = 0
    while done < entry.nbytes:  # a raw file may return less than asked; EOF returns 0
        got = cursor.handle.readinto(view[done:])  # type: ignore[attr-defined]
        if not got:
            raise FormatError(
                f"{cursor.source}: array {position}: the data could not be read: the file is shorter "
                "than it was"
            )
        done += got
    if entry.dtype == "bool" and array.size and array.view(np.uint8).max() > 1:
        raise FormatError(f"{cursor.source}: array {position} is bool but holds bytes other than 0 and 1")
    if entry.dtype in STORED_AS:
        return widened(array, entry.dtype)
    return array if sys.byteorder == "little" else array.astype(array.dtype.newbyteorder("="))
