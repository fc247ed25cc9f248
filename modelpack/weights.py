"""The ``.npz`` weight bundle: a zip of ``.npy`` members keyed by structured parameter name.

Both parameter files (``save_parameters``) and the bundle inside an ``.mpk`` archive use this
one reader and writer, so there is a single place that decides what bytes are accepted.

Written bundles are canonical: members in the order given, fixed timestamps, C order,
little-endian data, no pickle. They load with ``numpy.load(path, allow_pickle=False)``.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from typing import IO, Protocol

import numpy as np

from .errors import DtypeMismatchError, FormatError, ShapeMismatchError, UnsupportedDtypeError


class ExpectedTensor(Protocol):
    """What the reader checks a header against (the manifest's TensorInfo fits)."""

    dtype: str
    shape: list[int]

__all__ = [
    "ZIP_EPOCH",
    "SUPPORTED_DTYPES",
    "check_storable",
    "canonical_array",
    "fixed_zipinfo",
    "check_member_header",
    "write_npz",
    "read_npz",
]

# Zip's earliest representable time; fixed so the same arrays always give the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# Every dtype an archive may hold, by numpy's name. Anything else (object, strings,
# structured, datetime) is refused at save time so that no reader ever needs pickle.
SUPPORTED_DTYPES: tuple[str, ...] = (
    "bool",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
    "complex64", "complex128",
)


def check_storable(name: str, array: np.ndarray) -> None:
    """Refuse arrays whose dtype cannot be stored without pickle."""
    if array.dtype.name not in SUPPORTED_DTYPES or array.dtype.fields is not None:
        raise UnsupportedDtypeError(
            f"array {name!r} has dtype {array.dtype!s}, which cannot be stored; "
            f"supported dtypes: {', '.join(SUPPORTED_DTYPES)}"
        )


def canonical_array(array: np.ndarray) -> np.ndarray:
    """C-ordered, little-endian view or copy of ``array`` (a no-op for the common case)."""
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones.
    return array if array.flags.c_contiguous else array.copy(order="C")


def fixed_zipinfo(name: str, compression: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
    """A member header with nothing that varies by clock or platform (for byte-equal output)."""
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = compression
    info.create_system = 3  # Unix, whatever platform writes it
    info.external_attr = 0o644 << 16  # a regular file, rw-r--r--
    return info


_READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def check_member_header(info: zipfile.ZipInfo, source: str) -> None:
    """Refuse encrypted members and compression methods outside the spec (stored, deflate)."""
    if info.flag_bits & 0x1:
        raise FormatError(f"{source}: member {info.filename!r} is encrypted")
    if info.compress_type not in _READABLE_METHODS:
        raise FormatError(
            f"{source}: member {info.filename!r} uses compression method "
            f"{info.compress_type}; only stored (0) and deflate (8) are allowed"
        )


def write_npz(handle: IO[bytes], arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> None:
    """Write ``arrays`` as an npz bundle to an open binary file, in the mapping's order."""
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(handle, mode="w", compression=compression, allowZip64=True) as bundle:
        for name, value in arrays.items():
            array = np.asarray(value)
            check_storable(name, array)
            info = fixed_zipinfo(name + ".npy", compression)
            with bundle.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, canonical_array(array), allow_pickle=False)


def read_npz(
    handle: IO[bytes], *, source: str, expected: Mapping[str, ExpectedTensor] | None = None
) -> dict[str, np.ndarray]:
    """Read every array of an npz bundle, never unpickling; ``source`` names it in errors.

    With ``expected`` (name → object with ``dtype`` and ``shape``, e.g. the manifest's index),
    the bundle must hold exactly those tensors, and each header is checked against it before
    any data is allocated or read.
    """
    try:
        bundle = zipfile.ZipFile(handle, mode="r")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FormatError(f"{source}: not an npz weight bundle (not a zip file: {exc})") from exc
    arrays: dict[str, np.ndarray] = {}
    with bundle:
        for info in bundle.infolist():
            check_member_header(info, source)
            if info.is_dir() or not info.filename.endswith(".npy"):
                raise FormatError(
                    f"{source}: unexpected member {info.filename!r}; an npz bundle holds only "
                    "'<name>.npy' members"
                )
            key = info.filename[: -len(".npy")]
            if key in arrays:
                raise FormatError(f"{source}: duplicate member {info.filename!r}")
            if expected is not None and key not in expected:
                raise FormatError(
                    f"{source}: holds tensor {key!r}, which the manifest does not list"
                )
            arrays[key] = _read_member(
                bundle, info, source, expected[key] if expected is not None else None
            )
    if expected is not None:
        missing = [name for name in expected if name not in arrays]
        if missing:
            raise FormatError(
                f"{source}: tensor {missing[0]!r} listed in the manifest is missing from the "
                f"bundle (missing: {missing})"
            )
        arrays = {name: arrays[name] for name in expected}  # manifest order
    return arrays


def _read_member(
    bundle: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, want: ExpectedTensor | None
) -> np.ndarray:
    where = f"{source}: member {info.filename!r}"
    try:
        with bundle.open(info) as member:
            shape, fortran_order, dtype = _read_npy_header(member, where)
            if want is not None:
                _check_header(where, want, shape, dtype)
            declared = math.prod(shape) * dtype.itemsize
            if declared > info.file_size:
                # Checked before allocating, so a forged header cannot exhaust memory.
                raise FormatError(
                    f"{where}: header says shape {shape} of {dtype!s} ({declared} bytes) but "
                    f"the member holds only {info.file_size} bytes"
                )
            array = np.empty(shape[::-1] if fortran_order else shape, dtype=dtype)
            expected = array.nbytes
            got = _read_into(member, array.reshape(-1).view(np.uint8)) if expected else 0
            if got != expected:
                raise FormatError(
                    f"{where} is truncated: header says shape {shape} of {dtype!s} "
                    f"({expected} bytes), found {got} bytes"
                )
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise FormatError(f"{where} is not a valid .npy array: {exc}") from exc
    if fortran_order:
        array = array.transpose().copy(order="C")
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    return array


def _check_header(where: str, want: ExpectedTensor, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.name != want.dtype:
        raise DtypeMismatchError(
            f"{where}: the manifest says dtype {want.dtype}, the array header says {dtype.name}"
        )
    if list(shape) != list(want.shape):
        raise ShapeMismatchError(
            f"{where}: the manifest says shape {tuple(want.shape)}, the array header says {shape}"
        )


def _read_npy_header(member: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse an npy header (no pickle, no eval) and refuse dtypes that are not plain numbers."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise FormatError(f"{where}: unsupported .npy format version {version}")
    if dtype.hasobject or dtype.fields is not None or dtype.name not in SUPPORTED_DTYPES:
        raise UnsupportedDtypeError(
            f"{where} has dtype {dtype!s}, which modelpack never loads "
            f"(supported: {', '.join(SUPPORTED_DTYPES)})"
        )
    if any(dim < 0 for dim in shape):
        raise FormatError(f"{where}: negative dimension in shape {shape}")
    return tuple(int(d) for d in shape), bool(fortran_order), dtype


def _read_into(member: IO[bytes], buffer: np.ndarray) -> int:
    """Fill ``buffer`` from ``member``; return how many bytes arrived (short on truncation)."""
    view = buffer.data
    filled = 0
    while filled < len(view):
        count = member.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled
