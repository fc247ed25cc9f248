"""Float formats numpy has no dtype for, as other frameworks store them, read as float32.

float32 holds every value of each exactly, so nothing is rounded: bfloat16 is a float32's
upper half (torch's ``BFloat16Storage``, MXNet's type flag 12), and the 8-bit formats of the
OCP FP8 standard, ``float8_e4m3fn`` (no infinities; NaN where every exponent and mantissa
bit is set) and ``float8_e5m2`` (IEEE-like), are looked up in a table of their 256 values.
A NaN keeps its sign and its mantissa bits (the top of float32's), as torch's ``.float()``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STORED_AS", "stored_dtype", "widened"]

# Each format's name (torch's and MXNet's) -> the unsigned integer dtype its bits are read as.
STORED_AS: dict[str, np.dtype] = {
    "bfloat16": np.dtype("<u2"),
    "float8_e4m3fn": np.dtype("u1"),
    "float8_e5m2": np.dtype("u1"),
}


def _float8_table(exponent_bits: int, mantissa_bits: int, *, infinities: bool) -> np.ndarray:
    """The 256 values of an 8-bit float (1 sign bit), by their bits, as float32."""
    bits = np.arange(256)
    sign = np.where(bits >> 7, -1.0, 1.0)
    exponent = (bits >> mantissa_bits) & ((1 << exponent_bits) - 1)
    mantissa = bits & ((1 << mantissa_bits) - 1)
    bias = (1 << (exponent_bits - 1)) - 1
    fraction = mantissa / (1 << mantissa_bits)
    normal = (1 + fraction) * np.exp2(exponent - bias)
    subnormal = fraction * np.exp2(1 - bias)
    values = sign * np.where(exponent == 0, subnormal, normal)
    top = exponent == (1 << exponent_bits) - 1
    if infinities:  # IEEE: the top exponent is infinity (mantissa 0) or NaN
        values = np.where(top & (mantissa == 0), sign * np.inf, values)
        nan = top & (mantissa != 0)
    else:  # "fn": finite only, NaN where the mantissa is all ones too
        nan = top & (mantissa == (1 << mantissa_bits) - 1)
    table = values.astype(np.float32)
    # a NaN's sign and mantissa kept in float32's (quiet) NaN, as torch widens it
    payload = (bits >> 7 << 31) | 0x7FC00000 | (mantissa << (23 - mantissa_bits))
    table.view(np.uint32)[nan] = payload[nan]
    return table


_TABLES = {
    "float8_e4m3fn": _float8_table(4, 3, infinities=False),
    "float8_e5m2": _float8_table(5, 2, infinities=True),
}


def stored_dtype(name: str) -> np.dtype:
    """The dtype a file's elements of ``name`` are read as: the bits' integers for a format
    here, else numpy's dtype of that name."""
    return STORED_AS[name] if name in STORED_AS else np.dtype(name)


def widened(raw: np.ndarray, name: str) -> np.ndarray:
    """The values whose bits ``raw`` holds (of dtype ``STORED_AS[name]``), as a new float32
    array of the same shape."""
    if name == "bfloat16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return _TABLES[name][raw]
