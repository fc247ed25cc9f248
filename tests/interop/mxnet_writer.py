"""A tiny, test-only writer of MXNet's NDArray file format (modelpack itself only reads it).

Written from the format's description, independently of the reader, and checked byte for
byte against files MXNet wrote; every field can be overridden to build hostile files.
"""

from __future__ import annotations

import struct

import numpy as np

# MXNet's type flags, declared here again on purpose (the tests must not trust the reader's).
FLAGS = {"float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4, "int8": 5, "int64": 6,
         "bool": 7, "int16": 8, "uint16": 9, "uint32": 10, "uint64": 11, "bfloat16": 12}
MAGIC = {"numpy": 0xF993FACA, "legacy": 0xF993FAC9, "v1": 0xF993FAC8}


def record(
    array: np.ndarray,
    *,
    layout: str = "numpy",
    dtype: str | None = None,
    flag: int | None = None,
    storage: int = 0,
    shape: tuple[int, ...] | None = None,
    ndim: int | None = None,
    device: tuple[int, int] = (1, 0),
    data: bytes | None = None,
) -> bytes:
    """One array record; ``dtype="bfloat16"`` takes ``array`` as the raw uint16 bit patterns."""
    dtype = dtype or array.dtype.name
    shape = tuple(array.shape) if shape is None else shape
    ndim = len(shape) if ndim is None else ndim
    out = b""
    if layout == "v0":
        out += struct.pack("<I", ndim) + struct.pack(f"<{len(shape)}I", *shape)
    else:
        out += struct.pack("<I", MAGIC[layout])
        if layout in ("numpy", "legacy"):
            out += struct.pack("<i", storage)
        out += struct.pack("<i", ndim) + struct.pack(f"<{len(shape)}q", *shape)
    out += struct.pack("<ii", *device)
    out += struct.pack("<i", FLAGS[dtype] if flag is None else flag)
    raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    return out + (raw if data is None else data)


def ndarray_file(
    records: list[bytes],
    names: list[str | bytes] | None = None,
    *,
    magic: int = 0x112,
    count: int | None = None,
    name_count: int | None = None,
    name_lengths: list[int] | None = None,
) -> bytes:
    """The list: header, records, names (``names=None``: a list; else a dict)."""
    raw_names = [n.encode("utf-8") if isinstance(n, str) else n for n in names or []]
    out = struct.pack("<QQQ", magic, 0, len(records) if count is None else count) + b"".join(records)
    out += struct.pack("<Q", len(raw_names) if name_count is None else name_count)
    for i, name in enumerate(raw_names):
        length = len(name) if name_lengths is None else name_lengths[i]
        out += struct.pack("<Q", length) + name
    return out


def save(arrays: list[np.ndarray] | dict[str, np.ndarray], *, layout: str = "numpy") -> bytes:
    """What ``npx.save`` (layout ``numpy``) or ``nd.save`` (``legacy``) would write."""
    if isinstance(arrays, dict):
        return ndarray_file([record(a, layout=layout) for a in arrays.values()], list(arrays))
    return ndarray_file([record(a, layout=layout) for a in arrays])
