"""Writing zips whose stored members start at 64-byte boundaries, in one sequential pass.

Python's ``zipfile`` cannot align member data or predict its own layout. Here every size is
known before a byte is written (members are stored, not compressed), so a writer can place
each member's data at a multiple of ``ALIGN`` by padding the local header's extra field — as
Android's zipalign does, with the same extra-field id — and can compute the CRC-32 of a
member made of pieces (a whole ``.npz`` bundle) from the pieces' CRCs, without reading the
data twice. Output depends only on the names and bytes given: fixed timestamps and attributes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO

__all__ = ["ALIGN", "Piece", "PlannedMember", "ZipPlan", "crc32_combine", "padding_for"]

ALIGN = 64
_ZIPALIGN_ID = 0xD935  # Android zipalign's alignment extra field: 2-byte alignment, then zeros
_ZIP64_ID = 0x0001
_U32 = 0xFFFFFFFF
_DOS_DATE, _DOS_TIME = (0 << 9) | (1 << 5) | 1, 0  # 1980-01-01 00:00:00
_EXTERNAL_ATTR = 0o644 << 16  # a regular file, rw-r--r--
_MADE_BY = (3 << 8) | 45  # Unix, spec version 4.5 (zip64-aware)
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR = struct.Struct("<IIQI")


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
    """CRC-32 of ``A + B`` given crc32(A), crc32(B) and len(B)."""
    power, k, n = 1 << 31, 3, length2  # x^(8·len2): 2^3 bits per byte
    while n:
        if n & 1:
            power = _multmodp(_X2N[k & 31], power)
        n >>= 1
        k += 1
    return _multmodp(power, crc1) ^ crc2


@dataclass
class Piece:
    """Some bytes of a member: given outright, or a buffer whose CRC was computed elsewhere."""

    data: bytes | memoryview
    crc: int | None = None  # None: computed from ``data`` (fine for small headers)

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else self.data.nbytes

    def checksum(self) -> int:
        return self.crc if self.crc is not None else zlib.crc32(self.data)


@dataclass
class PlannedMember:
    """One stored member: name, pieces, and (after planning) where its header and data go."""

    name: str
    pieces: list[Piece]
    header_offset: int = 0
    local_header: bytes = b""
    size: int = 0
    crc: int = 0

    @property
    def data_offset(self) -> int:
        return self.header_offset + len(self.local_header)


def padding_for(position: int, align: int = ALIGN) -> int:
    """Extra-field bytes that bring ``position`` to a multiple of ``align`` (0, or at least 6).

    An extra block is a 4-byte id/size header plus its payload; zipalign's payload starts
    with the 2-byte alignment, so any non-empty padding is at least 6 bytes.
    """
    pad = -position % align
    while pad and pad < 6:
        pad += align
    return pad


@dataclass
class ZipPlan:
    """A whole zip laid out before writing: members, offsets, directory, comment.

    Data is aligned relative to the zip's start. A zip nested as another plan's stored member
    (the bundle in the archive) is aligned in the file too, since that member's data is.
    """

    members: list[PlannedMember]
    comment: bytes = b""
    directory: bytes = field(default=b"", init=False)
    size: int = field(default=0, init=False)  # bytes in all

    def __post_init__(self) -> None:
        offset = 0
        for member in self.members:
            member.size = sum(piece.size for piece in member.pieces)
            member.crc = _crc_of(member.pieces)
            member.header_offset = offset
            member.local_header = _local_header(member, offset)
            offset = member.data_offset + member.size
        self.directory = _directory(self.members, offset, self.comment)
        self.size = offset + len(self.directory)

    def pieces(self) -> Iterable[Piece]:
        """Every byte of the zip in order: headers, member data, directory."""
        for member in self.members:
            yield Piece(member.local_header)
            yield from member.pieces
        yield Piece(self.directory)

    def crc(self) -> int:
        """CRC-32 of the whole zip, combined from its pieces (no data is read again)."""
        return _crc_of(list(self.pieces()))

    def write(self, handle: IO[bytes]) -> None:
        """Write every piece in order to ``handle``."""
        for piece in self.pieces():
            handle.write(piece.data)


def _crc_of(pieces: list[Piece]) -> int:
    crc = 0  # the CRC-32 of no bytes
    for piece in pieces:
        crc = crc32_combine(crc, piece.checksum(), piece.size)
    return crc


def _name_bytes(name: str) -> tuple[bytes, int]:
    """UTF-8 name and the general-purpose flag that says so (only when it is not ASCII)."""
    raw = name.encode("utf-8")
    return raw, (0x800 if not name.isascii() else 0)


def _local_header(member: PlannedMember, position: int) -> bytes:
    name, flags = _name_bytes(member.name)
    zip64 = member.size >= _U32
    extra = struct.pack("<HHQQ", _ZIP64_ID, 16, member.size, member.size) if zip64 else b""
    pad = padding_for(position + _LOCAL.size + len(name) + len(extra))
    if pad:
        extra += struct.pack("<HHH", _ZIPALIGN_ID, pad - 4, ALIGN) + b"\0" * (pad - 6)
    size_field = _U32 if zip64 else member.size
    header = _LOCAL.pack(
        0x04034B50, 45 if zip64 else 20, flags, 0, _DOS_TIME, _DOS_DATE,
        member.crc, size_field, size_field, len(name), len(extra),
    )
    return header + name + extra


def _directory(members: list[PlannedMember], start: int, comment: bytes) -> bytes:
    entries = []
    for member in members:
        name, flags = _name_bytes(member.name)
        values = [v for v in (member.size, member.size) if member.size >= _U32]
        offset_field = member.header_offset
        if member.header_offset >= _U32:
            values.append(member.header_offset)
            offset_field = _U32
        extra = struct.pack(f"<HH{len(values)}Q", _ZIP64_ID, 8 * len(values), *values) if values else b""
        size_field = _U32 if member.size >= _U32 else member.size
        entries.append(
            _CENTRAL.pack(
                0x02014B50, _MADE_BY, 45 if extra else 20, flags, 0, _DOS_TIME, _DOS_DATE,
                member.crc, size_field, size_field, len(name), len(extra), 0, 0, 0,
                _EXTERNAL_ATTR, offset_field,
            )
            + name
            + extra
        )
    central = b"".join(entries)
    count = len(members)
    tail = b""
    if count >= 0xFFFF or start >= _U32 or len(central) >= _U32:
        eocd64_offset = start + len(central)
        tail += _EOCD64.pack(0x06064B50, _EOCD64.size - 12, _MADE_BY, 45, 0, 0, count, count,
                             len(central), start)
        tail += _LOCATOR.pack(0x07064B50, 0, eocd64_offset, 1)
    tail += _EOCD.pack(
        0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
        min(len(central), _U32), min(start, _U32), len(comment),
    )
    return central + tail + comment
