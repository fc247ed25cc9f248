"""The ``.npy`` format as modelpack uses it: the dtype table, writing headers, and a strict
header parser that never builds a dtype or evaluates anything a file names.

numpy's own parser tokenises the header as a Python literal (its legacy filter raises
tokenizer errors on odd bytes) and builds whatever dtype a header names; here a header is
matched against numpy's exact layout first, then parsed as a plain literal, and only dtypes
from ``SUPPORTED_DTYPES`` are ever accepted.
"""

from __future__ import annotations

import functools
import io
import math
import re
from typing import Protocol

import numpy as np

from ..errors import DtypeMismatchError, FormatError, ShapeMismatchError, UnsupportedDtypeError
from .zipio import MemberReader

__all__ = [
    "SUPPORTED_DTYPES",
    "FLOAT_DTYPES",
    "MAX_DIMS",
    "ExpectedTensor",
    "check_storable",
    "dtype_name",
    "canonical_array",
    "npy_header",
    "header_for",
    "archive_dtype",
    "read_header",
    "header_in",
]


class ExpectedTensor(Protocol):
    """What the reader checks a header against (the manifest's TensorInfo fits, and its
    entry as plain values); read only."""

    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> list[int]: ...
    @property
    def sha256(self) -> str | None: ...


# Every dtype an archive may hold, by numpy's name. Anything else (object, strings,
# structured, datetime) is refused at save time so that no reader ever needs pickle.
FLOAT_DTYPES: tuple[str, ...] = ("float16", "float32", "float64")  # what parameters may be
SUPPORTED_DTYPES: tuple[str, ...] = (
    "bool",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    *FLOAT_DTYPES,
    "complex64", "complex128",
)
# The npy ``descr`` each dtype must have inside an archive: little-endian or byte-order-free.
_DESCR = {name: np.dtype(name).newbyteorder("<").str for name in SUPPORTED_DTYPES}
# Every descr the reader accepts at all (big-endian too, for parameter files of other writers).
_READABLE_DESCR = {
    np.dtype(name).newbyteorder(order).str: np.dtype(name).newbyteorder(order)
    for name in SUPPORTED_DTYPES
    for order in ("<", ">")
}
_NAME = {dtype: dtype.name for dtype in _READABLE_DESCR.values()}
_ARCHIVE_DTYPES = {name: _READABLE_DESCR[descr] for name, descr in _DESCR.items()}
_REFUSED_KINDS = {"O": "object: pickled Python objects", "U": "text", "S": "bytes", "a": "bytes",
                  "M": "datetime", "m": "timedelta", "V": "void/structured"}

# numpy's own header layout, byte for byte (dims without leading zeros, so int() agrees with
# the literal); anything else goes through the careful literal parser below.
_NUMPY_HEADER = re.compile(
    rb"\{'descr': '([<>|][a-z][0-9]{1,2})', 'fortran_order': (True|False), "
    rb"'shape': \(((?:0|[1-9][0-9]{0,18})(?:,|(?:, (?:0|[1-9][0-9]{0,18}))+))?\), \} *\n\Z"
)
MAX_DIMS = 64  # numpy's own limit; a header with more is refused before numpy sees it
_MAX_HEADER = 10_000  # numpy's default max_header_size: a real header is ~128 bytes
_MAGIC = b"\x93NUMPY"
# Headers of numpy's exact form already parsed (bytes → shape, Fortran order, dtype); bounded.
_PARSED: dict[bytes, tuple[tuple[int, ...], bool, np.dtype]] = {}
_MAX_PARSED = 4096


def dtype_name(dtype: np.dtype) -> str:
    """numpy's name for a dtype (``dtype.name`` is a slow Python property: a table first)."""
    return _NAME.get(dtype) or dtype.name


def check_storable(name: str, array: np.ndarray) -> None:
    """Refuse arrays whose dtype cannot be stored without pickle."""
    if array.dtype in _NAME:  # the common case, without dtype.name (a slow Python property)
        return
    if array.dtype.name not in SUPPORTED_DTYPES or array.dtype.fields is not None:
        raise UnsupportedDtypeError(
            f"{name} has dtype {array.dtype!s}, which cannot be stored; "
            f"supported dtypes: {', '.join(SUPPORTED_DTYPES)}"
        )


def canonical_array(array: np.ndarray) -> np.ndarray:
    """C-ordered, little-endian view or copy of ``array`` (a no-op for the common case)."""
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones.
    return array if array.flags.c_contiguous else array.copy(order="C")


def npy_header(array: np.ndarray) -> bytes:
    """The ``.npy`` header numpy would write for ``array`` (already canonical), padded to 64."""
    fortran = bool(array.flags.f_contiguous and not array.flags.c_contiguous)
    return _npy_header(array.dtype, array.shape, fortran)


def archive_dtype(dtype: str) -> np.dtype | None:
    """The dtype of an archive tensor of this numpy name (little-endian), or None if it is
    no name an archive may hold."""
    return _ARCHIVE_DTYPES.get(dtype)


@functools.lru_cache(maxsize=1024)
def header_for(dtype: str, shape: tuple[int, ...]) -> tuple[bytes, int] | None:
    """The header modelpack writes for a tensor of this dtype name and shape, and its data's
    byte count: a member holding exactly these bytes then data of that size passes every
    header check (``verify`` compares headers so, instead of parsing each one). None for a
    shape ``read_header`` refuses whatever the bytes."""
    return _header_and_size(np.dtype(_DESCR[dtype]), shape)


@functools.lru_cache(maxsize=1024)
def _header_and_size(dtype: np.dtype, shape: tuple[int, ...]) -> tuple[bytes, int] | None:
    if len(shape) > MAX_DIMS or min(shape, default=0) < 0:
        return None
    if math.prod(dim for dim in shape if dim) * dtype.itemsize >= 1 << 63:
        return None
    return _npy_header(dtype, shape, False), math.prod(shape) * dtype.itemsize


@functools.lru_cache(maxsize=1024)
def _npy_header(dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> bytes:
    """(Tensors of one shape and dtype share a header: numpy's writer costs ~60 µs a call.)"""
    buffer = io.BytesIO()
    # What np.lib.format.header_data_from_array_1_0 gives, without an array of that shape.
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
    try:
        np.lib.format.write_array_header_1_0(buffer, header)
    except ValueError:  # too long for a 1.0 header (a huge number of dimensions)
        buffer = io.BytesIO()
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def read_header(
    reader: MemberReader, want: ExpectedTensor | None
) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse the npy header (no pickle, no eval) and check it before any data is allocated.

    Afterwards the reader is positioned at the data, whose size must be exactly what the
    header declares: anything more or less is refused here, so reading it reaches the end.
    """
    where = reader.where
    length_size = _length_size(reader.read(len(_MAGIC) + 2), where)
    length = _header_length(reader.read(length_size), length_size, reader.remaining, where)
    text = reader.read(length)
    return _checked(text, where, want, reader.remaining)


def header_in(
    block: bytes, size: int, where: str, want: ExpectedTensor | None
) -> tuple[tuple[int, ...], bool, np.dtype, int] | None:
    """``read_header`` over a member's first bytes already read (``size`` bytes in all), with
    the header's length in bytes; None when the header does not fit in ``block``."""
    lead = len(_MAGIC) + 2
    length_size = _length_size(block[:lead], where)
    start = lead + length_size
    if len(block) < start:
        return None
    length = _header_length(block[lead:start], length_size, size - start, where)
    if len(block) < start + length:
        return None
    return (*_checked(block[start : start + length], where, want, size - start - length), start + length)


def _length_size(prefix: bytes, where: str) -> int:
    """The width of the header length field, from the magic and the version."""
    if len(prefix) < len(_MAGIC) + 2 or prefix[: len(_MAGIC)] != _MAGIC:
        raise FormatError(f"{where} is not a .npy array (no NUMPY magic)")
    version = (prefix[-2], prefix[-1])
    length_size = {(1, 0): 2, (2, 0): 4}.get(version)
    if length_size is None:
        raise FormatError(f"{where}: unsupported .npy format version {version[0]}.{version[1]}")
    return length_size


def _header_length(length_bytes: bytes, length_size: int, remaining: int, where: str) -> int:
    length = int.from_bytes(length_bytes, "little")
    if len(length_bytes) < length_size or length > _MAX_HEADER or length > remaining:
        raise FormatError(
            f"{where}: .npy header length {length} is over {_MAX_HEADER} bytes or beyond the member"
        )
    return length


def _checked(
    text: bytes, where: str, want: ExpectedTensor | None, data_size: int
) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The header's fields, checked against the manifest and the data's ``data_size`` bytes."""
    shape, fortran_order, dtype = _parse_header(text, where)
    if len(shape) > MAX_DIMS or any(dim < 0 for dim in shape):
        raise FormatError(f"{where}: shape {shape} has negative dimensions or more than {MAX_DIMS}")
    if math.prod(dim for dim in shape if dim) * dtype.itemsize >= 1 << 63:
        raise FormatError(f"{where}: shape {shape} overflows any array size")
    if want is not None:
        _check_against_manifest(where, want, shape, fortran_order, dtype)
    data = math.prod(shape) * dtype.itemsize
    if data != data_size:
        # Checked before allocating, so a forged header cannot exhaust memory.
        state = "is truncated" if data > data_size else "has bytes after its data"
        raise FormatError(
            f"{where} {state}: header says shape {shape} of {dtype!s} ({data} bytes), "
            f"the member holds {data_size} bytes of data"
        )
    return shape, fortran_order, dtype


def _parse_header(text: bytes, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The header's dict literal, checked field by field; a dtype only from the table.

    Not numpy's parser: its legacy-header filter raises tokenizer errors on odd bytes, and
    it builds whatever dtype a header names before anyone can look at it.
    """
    known = _PARSED.get(text)
    if known is not None:  # tensors of one shape and dtype share their header
        return known
    fast = _NUMPY_HEADER.match(text)
    if fast is not None and fast.group(1).decode("ascii") in _READABLE_DESCR:
        # The exact form numpy (and modelpack) writes: no need to tokenise a Python literal.
        dims = (fast.group(3) or b"").decode("ascii").replace(",", " ").split()
        dtype = _READABLE_DESCR[fast.group(1).decode("ascii")]
        if len(_PARSED) >= _MAX_PARSED:
            _PARSED.clear()
        parsed = _PARSED[text] = (tuple(int(d) for d in dims), fast.group(2) == b"True", dtype)
        return parsed
    descr, fortran_order, shape = _grammar(text.decode("latin1"), where)
    if descr not in _READABLE_DESCR:
        raise UnsupportedDtypeError(
            f"{where} has dtype {str(descr)[:80]!r} ({_describe_descr(descr)}), which modelpack "
            f"never loads (supported: {', '.join(SUPPORTED_DTYPES)})"
        )
    return shape, fortran_order, _READABLE_DESCR[descr]


# spec/FORMAT.md §4's header grammar: the subset of Python literal syntax numpy writes.
_GRAMMAR_INT = r"-?(?:0|[1-9][0-9]*)"
# Printable ASCII but the quote and the backslash, in single or double quotes.
_GRAMMAR_STRING = r"'[ -&(-\[\]-~]*'" + r'|"[ !#-\[\]-~]*"'
_GRAMMAR_SHAPE = rf"\( *(?:|{_GRAMMAR_INT} *, *|{_GRAMMAR_INT}(?: *, *{_GRAMMAR_INT})+ *(?:, *)?)\)"
_GRAMMAR_ENTRY = (
    rf"""(?:'(descr|fortran_order|shape)'|"(descr|fortran_order|shape)") *: *"""
    rf"({_GRAMMAR_STRING}|True|False|{_GRAMMAR_SHAPE})"
)
_GRAMMAR = re.compile(
    rf"\{{ *{_GRAMMAR_ENTRY} *, *{_GRAMMAR_ENTRY} *, *{_GRAMMAR_ENTRY} *(?:, *)?\}} *\n\Z"
)
_STRUCTURED = re.compile(r"""['"]descr['"] *: *(\[)""")


def _grammar(text: str, where: str) -> tuple[str, bool, tuple[int, ...]]:
    """descr, fortran_order and shape from a header of the spec's grammar; else FormatError
    (or UnsupportedDtypeError for a structured dtype, whose descr numpy writes as a list)."""
    match = _GRAMMAR.match(text)
    if match is None:
        structured = _STRUCTURED.search(text)
        if structured is not None:
            raise UnsupportedDtypeError(
                f"{where} has dtype {_bracketed(text, structured.start(1))!r} (structured), which "
                f"modelpack never loads (supported: {', '.join(SUPPORTED_DTYPES)})"
            )
        raise FormatError(f"{where}: malformed .npy header (not the grammar of the format): {text[:80]!r}")
    header: dict[str, str] = {}
    groups = match.groups()
    for position in range(3):
        key = groups[3 * position] or groups[3 * position + 1]
        value = groups[3 * position + 2]
        if key in header:
            raise FormatError(f"{where}: malformed .npy header: {key!r} twice")
        kind = "str" if value[0] in "'\"" else "bool" if value in ("True", "False") else "shape"
        if kind != {"descr": "str", "fortran_order": "bool", "shape": "shape"}[key]:
            raise FormatError(f"{where}: malformed .npy header: {key} is {value[:40]!r}")
        header[key] = value
    shape = tuple(int(d) for d in re.findall(_GRAMMAR_INT, header["shape"]))
    return header["descr"][1:-1], header["fortran_order"] == "True", shape


def _bracketed(text: str, start: int) -> str:
    """The bracketed text at ``start`` (to its matching bracket, or the end)."""
    depth = 0
    for position in range(start, len(text)):
        depth += {"[": 1, "]": -1}.get(text[position], 0)
        if depth == 0:
            return text[start : position + 1]
    return text[start:]


def _describe_descr(descr: object) -> str:
    """A name for a refused descr, from its type code alone (never built into a dtype)."""
    if isinstance(descr, list):
        return "structured"
    code = descr.lstrip("<>|=")[:1] if isinstance(descr, str) else ""
    return _REFUSED_KINDS.get(code, "not a supported number type")


def _check_against_manifest(
    where: str, want: ExpectedTensor, shape: tuple[int, ...], fortran_order: bool, dtype: np.dtype
) -> None:
    """Inside an archive a header must say exactly what the manifest says, byte order included."""
    if (_NAME.get(dtype) or dtype.name) != want.dtype:  # (dtype.name is slow: a Python property)
        raise DtypeMismatchError(
            f"{where}: the manifest says dtype {want.dtype}, the array header says {dtype.name}"
        )
    if dtype.str != _DESCR[want.dtype]:
        raise DtypeMismatchError(
            f"{where}: the array header says byte order {dtype.str!r}; archive tensors are "
            f"little-endian ({_DESCR[want.dtype]!r})"
        )
    if list(shape) != list(want.shape):
        raise ShapeMismatchError(
            f"{where}: the manifest says shape {tuple(want.shape)}, the array header says {shape}"
        )
    if fortran_order:
        raise FormatError(f"{where}: the array header says Fortran order; archive tensors are C order")
