"""safetensors files read without the safetensors package: every declared size checked first.

The format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of
UTF-8 JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str:
str}}``, then the data buffer, which the tensors cover exactly (offsets relative to its
start), with neither holes nor overlaps (safetensors refuses both: a file with a hole could be
another format too). The header is at most 100 MB, as safetensors allows, and at most
``Limits.max_manifest_bytes``; it is parsed with duplicate keys refused. Each tensor's span
must be its shape's element count times its dtype's size, and the tensors' count and total
size are checked against ``Limits`` before anything is allocated. Data is little-endian,
read by positioned reads into fresh arrays (``io.pages.read_target``) in this machine's byte
order. BF16, F8_E4M3 and F8_E5M2 come back as float32, which holds each of their values
exactly (``interop.widened``); dtypes numpy or modelpack cannot hold are refused by name.

>>> arrays, metadata = read_safetensors("model.safetensors")   # doctest: +SKIP
>>> net.load_parameters("model.safetensors")                   # doctest: +SKIP  (torch's names mapped)
"""

from __future__ import annotations

import json
import math
import os
from typing import IO, Any

import numpy as np

from ..errors import FormatError, LimitError, UnsupportedDtypeError
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.npy import MAX_DIMS
from ..io.pages import read_target
from ..io.paths import PathOrFile, describe, open_for_reading
from .widened import STORED_AS, stored_dtype, widened

__all__ = ["read_safetensors", "DTYPES", "MAX_HEADER"]

# safetensors' dtype name -> numpy's, or a format read as float32 (``widened``); None: refused.
DTYPES: dict[str, str | None] = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "I32": "int32",
    "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16", "F32": "float32",
    "F64": "float64", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    **dict.fromkeys(("F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64")),
}
MAX_HEADER = 100_000_000  # safetensors' own bound on N (MAX_HEADER_SIZE)
_ENTRY_KEYS = frozenset(("dtype", "shape", "data_offsets"))


def read_safetensors(
    source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors of a safetensors file by name, in the header's order, and its
    ``__metadata__`` strings; nothing is allocated before the whole header is checked.

    >>> arrays, metadata = read_safetensors("model.safetensors")   # doctest: +SKIP
    """
    where = describe(source)
    with open_for_reading(source) as handle:
        size = handle.seek(0, os.SEEK_END)
        count = _header_length(_read_exactly(handle, 0, 8, where, "the header length"), size, where, limits)
        header = _parse(_read_exactly(handle, 8, count, where, "the header"), where)
        entries, metadata = _entries(header, where, limits)
        _check_layout(entries, size - 8 - count, where, limits)
        arrays = {name: _tensor(handle, 8 + count, name, entry, where) for name, entry in entries.items()}
    return arrays, metadata


def _header_length(head: bytes, size: int, where: str, limits: Limits) -> int:
    count = int.from_bytes(head, "little")
    if count > MAX_HEADER:
        raise FormatError(f"{where}: its header length {count} is over safetensors' limit of "
                          f"{MAX_HEADER} bytes")
    if count > limits.max_manifest_bytes:
        raise LimitError(where, "its header's size", count, limit="max_manifest_bytes",
                         allowed=limits.max_manifest_bytes)
    if count > size - 8:
        raise FormatError(f"{where}: its header length {count} reaches past the file's {size} bytes")
    return count


def _parse(text: bytes, where: str) -> dict[str, Any]:
    """The header's JSON object, with duplicate keys and non-finite numbers refused."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{where}: its header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not decoded.startswith("{"):
        raise FormatError(f"{where}: its header does not start with '{{' (found {decoded[:20]!r})")
    try:
        header = json.loads(decoded, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, an over-long integer, deep nesting
        raise FormatError(f"{where}: its header is not valid JSON ({str(exc)[:200]})") from None
    except _Duplicate as exc:
        raise FormatError(f"{where}: its header names {exc.args[0]!r} twice") from None
    if not isinstance(header, dict):
        raise FormatError(f"{where}: its header is a JSON {type(header).__name__}, not an object")
    return header


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Duplicate(key)
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _entries(
    header: dict[str, Any], where: str, limits: Limits
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The tensor entries, each checked in itself, and the metadata strings."""
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata  # safetensors writes null for none
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise FormatError(f"{where}: its '__metadata__' is not a map of strings to strings")
    if len(header) > limits.max_tensors:
        raise LimitError(where, "its number of tensors", len(header), limit="max_tensors",
                         allowed=limits.max_tensors)
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise FormatError(f"{where}: tensor {name!r} has keys {found}; a tensor has exactly "
                              f"{sorted(_ENTRY_KEYS)}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str):
            raise FormatError(f"{where}: tensor {name!r} has dtype {str(dtype)[:40]}, not a name")
        if DTYPES.get(dtype) is None:
            known = "a dtype numpy cannot hold" if dtype in DTYPES else "not a dtype modelpack knows"
            raise UnsupportedDtypeError(
                f"{where}: tensor {name!r} has dtype {dtype[:40]!r}, {known}; modelpack reads "
                f"{', '.join(k for k, v in DTYPES.items() if v)}")
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and _are_sizes(shape)):
            raise FormatError(f"{where}: tensor {name!r} has shape {str(shape)[:80]}, not a list of at most "
                              f"{MAX_DIMS} non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and _are_sizes(offsets)
                and offsets[0] <= offsets[1]):
            raise FormatError(f"{where}: tensor {name!r} has data_offsets {str(offsets)[:80]}, not "
                              "[begin, end] with 0 <= begin <= end")
        itemsize = stored_dtype(DTYPES[dtype] or "").itemsize
        span = offsets[1] - offsets[0]
        if math.prod(shape) * itemsize != span:
            raise FormatError(
                f"{where}: tensor {name!r} of shape {tuple(shape)} and dtype {dtype} takes "
                f"{math.prod(shape) * itemsize} bytes, but its data_offsets {offsets} span {span}")
    return header, metadata


def _are_sizes(values: list[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)


def _check_layout(entries: dict[str, dict[str, Any]], buffer: int, where: str, limits: Limits) -> None:
    """The tensors, in offset order, must tile the data buffer exactly, as safetensors requires."""
    end = 0
    for name, entry in sorted(entries.items(), key=lambda item: item[1]["data_offsets"]):
        begin, stop = entry["data_offsets"]
        if begin != end:
            what = "overlaps the tensor before it" if begin < end else f"leaves bytes {end} to {begin} unused"
            raise FormatError(f"{where}: tensor {name!r} at data_offsets [{begin}, {stop}] {what}; "
                              "tensors must cover the data buffer without holes or overlaps")
        end = stop
    if end != buffer:
        raise FormatError(f"{where}: its tensors cover {end} bytes of data, but the file holds {buffer} "
                          "after the header")
    widening = sum(4 * math.prod(e["shape"]) for e in entries.values() if DTYPES[e["dtype"]] in STORED_AS)
    if buffer + widening > limits.max_total_bytes:
        raise LimitError(where, "the tensors' total size (with 16- and 8-bit floats read as float32)",
                         buffer + widening, limit="max_total_bytes", allowed=limits.max_total_bytes)


def _tensor(handle: IO[bytes], start: int, name: str, entry: dict[str, Any], where: str) -> np.ndarray:
    kind = DTYPES[entry["dtype"]] or ""
    dtype = stored_dtype(kind)
    stored = dtype.newbyteorder("<")
    array = read_target(f"{where}: tensor {name!r}", tuple(entry["shape"]), stored)
    _read_into(handle, start + entry["data_offsets"][0], array.reshape(-1).view(np.uint8), where,
               f"tensor {name!r}")
    if stored != dtype:  # a big-endian machine: swap once, into native order
        array = array.astype(dtype)
    if dtype == np.bool_ and array.size and array.view(np.uint8).max() > 1:
        raise FormatError(f"{where}: BOOL tensor {name!r} holds bytes other than 0 and 1")
    return widened(array, kind) if kind in STORED_AS else array


def _read_exactly(handle: IO[bytes], offset: int, count: int, where: str, what: str) -> bytes:
    buffer = np.empty(count, np.uint8)
    _read_into(handle, offset, buffer, where, what)
    return buffer.tobytes()


def _read_into(handle: IO[bytes], offset: int, target: np.ndarray, where: str, what: str) -> None:
    """Fill ``target`` from ``offset``: positioned reads where the file has a descriptor."""
    view, done = target.data.cast("B"), 0
    fd = _descriptor(handle)
    if fd is None:
        handle.seek(offset)
    while done < len(view):
        if fd is not None:
            got = os.preadv(fd, [view[done:]], offset + done)
        else:
            got = handle.readinto(view[done:]) or 0  # type: ignore[attr-defined]
        if got <= 0:
            raise FormatError(f"{where}: the file ends {len(view) - done} bytes into reading {what}")
        done += got


def _descriptor(handle: IO[bytes]) -> int | None:
    if not hasattr(os, "preadv"):
        return None
    try:
        return handle.fileno()
    except (OSError, AttributeError, ValueError):
        return None
