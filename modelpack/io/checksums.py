"""Checksums in one place: zip's CRC-32, as fast as this machine allows, and its algebra.

CRC-32 is checked on every byte a load reads, so its speed sets the pace of a load from the
page cache. zlib's runs at about 2 GB/s on one core; ISA-L's (the ``isal`` package, the
optional extra ``modelpack[fast]``) computes the same CRC (zip's polynomial, same start and
final values) at about 10 GB/s with vector instructions. ``crc32`` uses ISA-L when it is
installed and zlib otherwise; zlib stays the reference, and the tests check the two agree.

>>> crc32(b"modelpack") == zlib.crc32(b"modelpack")
True
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import cast

__all__ = ["crc32", "crc32_combine", "reference_crc32", "reference_crc32_combine", "FAST_CRC32"]

Buffer = bytes | bytearray | memoryview

reference_crc32: Callable[[Buffer, int], int] = zlib.crc32
try:
    from isal import isal_zlib

    _crc32 = cast(Callable[[Buffer, int], int], isal_zlib.crc32)
    _combine: Callable[[int, int, int], int] | None = getattr(isal_zlib, "crc32_combine", None)  # ~1 µs
    FAST_CRC32 = True
except ImportError:  # the optional extra is not installed: zlib's
    _crc32 = reference_crc32
    _combine = None
    FAST_CRC32 = False


# zip's CRC-32 of ``data``, continuing from ``value`` (the CRC-32 of the bytes before):
# ``crc32(data, value=0)``. The library's function itself, not a wrapper: loops over many small
# buffers call it (a Python frame is ~0.1 µs: 1 ms of a verify of 10,000 tensors).
crc32: Callable[..., int] = _crc32


# -- CRC-32 of a concatenation from the parts' CRCs (zlib's crc32_combine, which Python's zlib
#    does not expose). Polynomial arithmetic modulo the CRC-32 polynomial, reflected.
_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    """a(x)·b(x) modulo p(x), both reflected; 32 shifts at most."""
    m, product = 1 << 31, 0
    while True:
        if a & m:
            product ^= b
            if not a & (m - 1):
                break
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


_X2N = [1 << 30]  # x^(2^0), x^(2^1), ... modulo p
for _ in range(31):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of ``A + B`` given crc32(A), crc32(B) and len(B): ISA-L's when installed, else
    ``reference_crc32_combine``."""
    if _combine is not None:
        return _combine(crc1, crc2, length2)
    return reference_crc32_combine(crc1, crc2, length2)


def reference_crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """zlib's crc32_combine in Python (~60 µs a call)."""
    power, k, n = 1 << 31, 3, length2  # x^(8·len2): 2^3 bits per byte
    while n:
        if n & 1:
            power = _multmodp(_X2N[k & 31], power)
        n >>= 1
        k += 1
    return _multmodp(power, crc1) ^ crc2
