"""The one zip writer: stored members on 64-byte boundaries, deflated members, one pass.

Every byte of the zip is laid out before the first is written, so each offset, size and CRC-32
goes straight into its header: no seeking back, no data descriptors. Stored members' data is
placed at a multiple of ``ALIGN`` by padding the local header's extra field, as Android's
zipalign does (with its extra-field id), so readers can map tensors in place; the CRC-32 of a
member made of pieces (a whole ``.npz`` bundle) is combined from the pieces' CRCs without
reading the data twice. A deflated member is compressed while planning (raw deflate, zip's
method 8) and its compressed bytes are held in memory until written, since its local header
needs the compressed size first. Output depends only on the names, bytes and methods given:
fixed timestamps and attributes (``ziprecords``), and zlib's default level (deflated bytes
are the same under the same zlib; another zlib build may compress differently).
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO

from .checksums import crc32, crc32_combine
from .ziprecords import (
    CENTRAL,
    DEFLATED,
    DOS_DATE,
    DOS_TIME,
    END,
    EXTERNAL_ATTR,
    EXTRA_HEADER,
    LOCAL,
    MADE_BY,
    MAX_16,
    MAX_32,
    STORED,
    UTF8_FLAG,
    VERSION_DEFAULT,
    VERSION_ZIP64,
    ZIP64_END,
    ZIP64_END_LEAD,
    ZIP64_EXTRA_ID,
    ZIP64_LOCATOR,
    ZIPALIGN_EXTRA_ID,
    ZIPALIGN_MIN,
    Layout,
)

__all__ = [
    "ALIGN", "Piece", "PlannedMember", "ZipPlan", "crc32_combine", "crc_of", "directory_records",
    "local_header", "padding_for",
]

ALIGN = 64
_CRC = struct.Struct("<I")


def _offset_of(layout: Layout, name: str) -> int:
    """Where field ``name`` of a record starts (its struct codes are "<4s" and one letter each)."""
    codes = layout.struct.format.removeprefix("<4s")
    return 4 + struct.calcsize("<" + codes[: layout.fields.index(name) - 1])


_LOCAL_CRC_AT = _offset_of(LOCAL, "crc")
_CENTRAL_CRC_AT = _offset_of(CENTRAL, "crc")
_CENTRAL_TAIL_AT = _offset_of(CENTRAL, "name_length")  # name, extra and comment lengths
_ENTRY_TAIL = struct.Struct("<HHH")
# Sizes and offsets from ZIP64_SIZE on, and member counts from ZIP64_COUNT on, go to zip64
# fields (their 32- and 16-bit fields saturate). Tests lower these to write zip64 small.
ZIP64_SIZE, ZIP64_COUNT = MAX_32, MAX_16


@dataclass(slots=True)
class Piece:
    """Some bytes of a member: given outright, or a buffer whose CRC was computed elsewhere."""

    data: bytes | memoryview
    crc: int | None = None  # None: computed from ``data`` (fine for small headers)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.data.nbytes if isinstance(self.data, memoryview) else len(self.data)


@dataclass(slots=True)
class PlannedMember:
    """One member: name, its bytes as pieces, and (after planning) its header and data.

    ``deflate=True`` compresses it (and holds the compressed bytes); otherwise it is stored
    with its data aligned.
    """

    name: str
    pieces: list[Piece]
    deflate: bool = False
    known_crc: int | None = None  # the CRC-32 of the pieces, when a plan already computed it
    header_offset: int = 0
    local_header: bytes = b""
    size: int = 0  # uncompressed
    compressed_size: int = 0
    crc: int = 0  # of the uncompressed bytes
    data: list[Piece] = field(default_factory=list)  # what follows the local header

    @property
    def method(self) -> int:
        return DEFLATED if self.deflate else STORED

    @property
    def data_offset(self) -> int:
        return self.header_offset + len(self.local_header)


def padding_for(position: int, align: int = ALIGN) -> int:
    """Extra-field bytes that bring ``position`` to a multiple of ``align`` (0, or at least 6).

    An extra block is a 4-byte id/size header plus its payload; zipalign's payload starts
    with the 2-byte alignment, so any non-empty padding is at least 6 bytes.
    """
    pad = -position % align
    while pad and pad < ZIPALIGN_MIN:
        pad += align
    return pad


@dataclass
class ZipPlan:
    """A whole zip laid out before writing: members, offsets, directory, comment.

    Data is aligned relative to the zip's start. A zip nested as another plan's stored member
    (the bundle in the archive) is aligned in the file too, since that member's data is.

    >>> plan = ZipPlan([PlannedMember("a.txt", [Piece(b"hello")], deflate=True)])
    >>> plan.size == sum(piece.size for piece in plan.pieces())
    True
    """

    members: list[PlannedMember]
    comment: bytes = b""
    directory: bytes = field(default=b"", init=False)
    size: int = field(default=0, init=False)  # bytes in all

    def __post_init__(self) -> None:
        _deflate_all([member for member in self.members if member.deflate])
        offset = 0
        for member in self.members:
            member.size = sum([piece.size for piece in member.pieces])
            member.crc = member.known_crc if member.known_crc is not None else crc_of(member.pieces)
            if not member.deflate:
                member.data = member.pieces
            member.compressed_size = sum([piece.size for piece in member.data])
            member.header_offset = offset
            member.local_header = local_header(member, offset)
            offset = member.data_offset + member.compressed_size
        self.directory = directory_records(self.members, offset, self.comment)
        self.size = offset + len(self.directory)

    @classmethod
    def of_members(
        cls, names: list[str], headers: list[bytes], datas: list[memoryview], crcs: list[int],
        *, deflate: bool = False,
    ) -> ZipPlan:
        """Members of a header and a data buffer each, their CRC-32s (of both) computed by the
        caller: how a bundle of tensors is laid out, in bulk."""
        return cls([
            PlannedMember(name, [Piece(header), Piece(data)], deflate, crc)
            for name, header, data, crc in zip(names, headers, datas, crcs, strict=True)
        ])

    def set_crcs(self, crcs: list[int]) -> None:
        """Put in the members' CRC-32s, known only after the plan was made (a CRC changes no
        size or offset, so a writer may lay out and write data first): each CRC field of the
        local headers and the directory written over, nothing else packed again."""
        directory = bytearray(self.directory)
        at = 0
        for member, crc in zip(self.members, crcs, strict=True):
            member.crc = crc
            header = member.local_header
            member.local_header = header[:_LOCAL_CRC_AT] + _CRC.pack(crc) + header[_LOCAL_CRC_AT + 4 :]
            _CRC.pack_into(directory, at + _CENTRAL_CRC_AT, crc)
            at += CENTRAL.size + sum(_ENTRY_TAIL.unpack_from(directory, at + _CENTRAL_TAIL_AT))
        self.directory = bytes(directory)

    def pieces(self, *, joined: bool = True) -> Iterable[Piece]:
        """Every byte of the zip in order: headers, member data, directory; consecutive
        small pieces joined into one (a write or a CRC-32 call each costs more than a copy)."""
        return _joined(self._pieces()) if joined else self._pieces()

    def _pieces(self) -> Iterator[Piece]:
        for member in self.members:
            yield Piece(member.local_header)
            yield from member.data
        yield Piece(self.directory)

    def placed(self) -> Iterable[tuple[int, Piece]]:
        """Every piece with the offset it goes to."""
        offset = 0
        for piece in self.pieces():
            yield offset, piece
            offset += piece.size

    def bulk(self) -> list[tuple[int, Piece]]:
        """The large data pieces of stored members, with their offsets: the bytes a caller
        gave, which no CRC changes, so they can be written before the CRCs are known."""
        return [(offset, piece) for offset, piece in self._placed_as_given() if _is_bulk(piece)]

    def placed_but_bulk(self) -> Iterator[tuple[int, Piece]]:
        """``placed`` without the pieces ``bulk`` lists (written already): runs of the rest
        joined into pieces of at most ``_JOIN_UP_TO`` bytes (other large ones as they are)."""
        run: list[bytes | memoryview] = []
        start = offset = 0  # where the run starts; where the next byte goes
        for data in self._datas():
            size = data.nbytes if isinstance(data, memoryview) else len(data)
            if size < _READ_AGAIN and offset + size - start <= _JOIN_UP_TO:
                run.append(data)
            else:
                if run:
                    yield start, _join_data(run)
                run, start = [], offset
                if size < _READ_AGAIN:
                    run.append(data)
                else:
                    if not isinstance(data, memoryview):  # large, but none of a caller's buffers
                        yield offset, Piece(data)
                    start = offset + size
            offset += size
        if run:
            yield start, _join_data(run)

    def _datas(self) -> Iterator[bytes | memoryview]:
        for member in self.members:
            yield member.local_header
            for piece in member.data:
                yield piece.data
        yield self.directory

    def _placed_as_given(self) -> Iterator[tuple[int, Piece]]:
        offset = 0
        for piece in self._pieces():
            yield offset, piece
            offset += piece.size

    def crc(self) -> int:
        """CRC-32 of the whole zip: each stored member's CRC-32 combined in, headers and small
        members read (no large data is read again)."""
        crc = 0
        for member in self.members:
            crc = crc32(member.local_header, crc)
            if not member.deflate and member.size > _READ_AGAIN:
                crc = crc32_combine(crc, member.crc, member.size)
            else:
                crc = crc_of(member.data, crc)
        return crc32(self.directory, crc)

    def write(self, handle: IO[bytes]) -> None:
        """Write every piece in order to ``handle``."""
        for piece in self.pieces():
            handle.write(piece.data)


_JOIN_UP_TO = 1 << 20  # pieces joined into one are at most this large together


def _joined(pieces: Iterable[Piece]) -> Iterator[Piece]:
    """``pieces`` with runs of small ones (under ``_READ_AGAIN``, whose CRC is read again
    anyway) joined into one piece of at most ``_JOIN_UP_TO`` bytes; large ones as they are."""
    run: list[Piece] = []
    size = 0
    for piece in pieces:
        if piece.size < _READ_AGAIN and size + piece.size <= _JOIN_UP_TO:
            run.append(piece)
            size += piece.size
            continue
        if run:
            yield _join(run)
        run, size = ([piece], piece.size) if piece.size < _READ_AGAIN else ([], 0)
        if not run:
            yield piece
    if run:
        yield _join(run)


def _join_data(run: list[bytes | memoryview]) -> Piece:
    return Piece(run[0] if len(run) == 1 else b"".join(run))


def _join(run: list[Piece]) -> Piece:
    return run[0] if len(run) == 1 else Piece(b"".join([piece.data for piece in run]))


def _is_bulk(piece: Piece) -> bool:
    """A caller's large buffer (a tensor's data), as opposed to bytes this module made."""
    return isinstance(piece.data, memoryview) and piece.size >= _READ_AGAIN


def crc_of(pieces: list[Piece], crc: int = 0) -> int:
    """The CRC-32 of the pieces one after another (continuing from ``crc``, that of the bytes
    before): small ones (headers) read again, large ones combined from their known CRC
    (without ISA-L a combine costs as much as reading ~100 KiB)."""
    for piece in pieces:
        if piece.crc is None or piece.size <= _READ_AGAIN:
            crc = crc32(piece.data, crc)
        else:
            crc = crc32_combine(crc, piece.crc, piece.size)
    return crc


_READ_AGAIN = 64 << 10


def _deflate(pieces: list[Piece]) -> bytes:
    """Raw deflate (no zlib wrapper, as zip's method 8 wants) at zlib's default level."""
    deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return b"".join([deflater.compress(piece.data) for piece in pieces] + [deflater.flush()])


def _deflate_all(members: list[PlannedMember]) -> None:
    """Each member's ``data`` becomes its deflated bytes; members in parallel (zlib releases
    the GIL), each compressed alone, so the bytes do not depend on the thread count."""
    if not members:
        return  # stored members only: no threads to start
    workers = max(1, min(4, os.cpu_count() or 1, len(members)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for member, data in zip(members, pool.map(lambda m: _deflate(m.pieces), members), strict=True):
            member.data = [Piece(data)]


def _name_bytes(name: str) -> tuple[bytes, int]:
    """UTF-8 name and the general-purpose flag that says so (only when it is not ASCII)."""
    raw = name.encode("utf-8")
    return raw, (UTF8_FLAG if not name.isascii() else 0)


def _field32(value: int) -> int:
    """A 32-bit header field: the value, or saturated when zip64 carries it."""
    return MAX_32 if value >= ZIP64_SIZE else value


def _zip64_extra(values: list[int]) -> bytes:
    """The zip64 extra field holding ``values`` (8 bytes each), or nothing."""
    if not values:
        return b""
    return EXTRA_HEADER.pack(ZIP64_EXTRA_ID, 8 * len(values)) + struct.pack(f"<{len(values)}Q", *values)


def local_header(member: PlannedMember, position: int) -> bytes:
    """The local header written for ``member`` at ``position`` (``zipexact`` rebuilds it to
    recognise a file written here)."""
    name, flags = _name_bytes(member.name)
    # A local zip64 extra field holds both sizes, whichever of them overflows (APPNOTE 4.5.3).
    zip64 = max(member.size, member.compressed_size) >= ZIP64_SIZE
    extra = _zip64_extra([member.size, member.compressed_size] if zip64 else [])
    if not member.deflate:  # compressed data cannot be mapped: no point aligning it
        extra += _zipalign_extra(padding_for(position + LOCAL.size + len(name) + len(extra)))
    # Positional, in LocalHeader's field order (keywords cost more than the rest of a member).
    header = LOCAL.struct.pack(
        LOCAL.signature, VERSION_ZIP64 if zip64 else VERSION_DEFAULT, flags, member.method,
        DOS_TIME, DOS_DATE, member.crc, MAX_32 if zip64 else member.compressed_size,
        MAX_32 if zip64 else member.size, len(name), len(extra),
    )
    return header + name + extra


@functools.cache
def _zipalign_extra(pad: int) -> bytes:
    """zipalign's extra block of ``pad`` bytes in all (none for 0)."""
    if not pad:
        return b""
    return EXTRA_HEADER.pack(ZIPALIGN_EXTRA_ID, pad - EXTRA_HEADER.size) + struct.pack("<H", ALIGN) + (
        b"\0" * (pad - ZIPALIGN_MIN))


def directory_records(members: list[PlannedMember], start: int, comment: bytes) -> bytes:
    """Everything after the members' data: the central directory starting at ``start``, the
    zip64 records where needed, the end record and ``comment``."""
    entries = []
    for member in members:
        name, flags = _name_bytes(member.name)
        wide = (member.size, member.compressed_size, member.header_offset)
        extra = _zip64_extra([value for value in wide if value >= ZIP64_SIZE])  # APPNOTE order
        entries.append(
            CENTRAL.struct.pack(  # positional, in CentralHeader's field order
                CENTRAL.signature, MADE_BY, VERSION_ZIP64 if extra else VERSION_DEFAULT, flags,
                member.method, DOS_TIME, DOS_DATE, member.crc, _field32(member.compressed_size),
                _field32(member.size), len(name), len(extra), 0, 0, 0, EXTERNAL_ATTR,
                _field32(member.header_offset),
            )
            + name
            + extra
        )
    central = b"".join(entries)
    count = len(members)
    tail = b""
    if count >= ZIP64_COUNT or max(start, len(central)) >= ZIP64_SIZE:
        tail += ZIP64_END.pack(
            record_size=ZIP64_END.size - ZIP64_END_LEAD, made_by=MADE_BY, version_needed=VERSION_ZIP64,
            disk=0, directory_disk=0, disk_entries=count, entries=count,
            directory_size=len(central), directory_offset=start,
        )
        tail += ZIP64_LOCATOR.pack(disk=0, record_offset=start + len(central), disks=1)
    short_count = MAX_16 if count >= ZIP64_COUNT else count
    tail += END.pack(
        disk=0, directory_disk=0, disk_entries=short_count, entries=short_count,
        directory_size=_field32(len(central)), directory_offset=_field32(start),
        comment_length=len(comment),
    )
    return central + tail + comment
