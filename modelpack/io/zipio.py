"""Byte access for the strict zip reader: a byte range of a file, and a CRC-checked member.

``Source`` reads by offset within a range (the whole file, or a stored member that is itself
a zip), refusing any range past its end as truncation. ``MemberReader`` streams one member's
uncompressed bytes, stored or deflated, never producing more than the directory declared,
and ``finish`` checks that everything was read and that the CRC-32 matches.
"""

from __future__ import annotations

import io
import operator
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, NamedTuple

from ..errors import FormatError, IntegrityError
from .checksums import crc32
from .lazymap import LazyMapping
from .ziprecords import DEFLATED, STORED

# STORED and DEFLATED: the methods, for readers
__all__ = ["STORED", "DEFLATED", "Source", "Member", "MemberTable", "MemberReader", "runs", "read_fully"]

_CHUNK = 1 << 20
_AHEAD = 256  # read at once for small reads of a stored member


class Source:
    """A byte range of a seekable binary file, read by offsets relative to the range."""

    def __init__(
        self, handle: IO[bytes], start: int, size: int, *, where: str, cache: _Cache | None = None
    ) -> None:
        self.handle, self.start, self.size, self.where = handle, start, size, where
        # Bytes already read (the file's tail), shared with every window of this file, so
        # that the directories and end records in them are not read again.
        self._cache = cache if cache is not None else _Cache(_fileno(handle))

    @classmethod
    def whole(cls, handle: IO[bytes], *, where: str) -> Source:
        """The whole file, whatever its current position (a zip is read from its end)."""
        seekable = getattr(handle, "seekable", None)
        if seekable is not None and not seekable():
            raise FormatError(f"{where}: cannot read an archive from a stream that cannot seek")
        return cls(handle, 0, handle.seek(0, os.SEEK_END), where=where)

    def window(self, offset: int, size: int, *, where: str) -> Source:
        """A sub-range, e.g. a stored member holding a zip of its own."""
        return Source(self.handle, self.start + offset, size, where=where, cache=self._cache)

    @property
    def fd(self) -> int | None:
        """The file's descriptor for positioned reads (``os.preadv``), if it has one."""
        return self._cache.fd

    def cached(self, offset: int, count: int) -> bytes | None:
        """The bytes at ``offset`` if an earlier ``prefetch`` holds them all, else None."""
        self._check_range(offset, count)
        return self._cache.get(self.start + offset, count)

    def cached_tail(self, span: int) -> bytes:
        """The longest run of already read bytes (at most ``span``) that ends at this
        range's end; empty if none does."""
        return self._cache.tail(self.start + self.size, min(span, self.size))

    def prefetch(self, offset: int, count: int) -> bytes:
        """``read_at``, keeping the bytes for later reads inside them (a few blocks are kept:
        the file's tail with its directories, its head with the first headers)."""
        data = self.read_at(offset, count)
        self._cache.keep(self.start + offset, data)
        return data

    def keep_lead(self, offset: int, data: bytes) -> None:
        """Keep the first bytes of a member's data, read with its local header, for the one
        read that asks for them from ``offset`` (a tensor's .npy header)."""
        self._cache.leads[self.start + offset] = data

    def announce(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Announce ``(offset, length)`` reads to a file that fetches ranges in batches (a
        remote one, ``io.remote``); a local file has no such method and reads as usual."""
        if self._cache.fd is None:  # (a local file, read with pread, has nothing to batch)
            fetch = getattr(self.handle, "prefetch", None)
            if fetch is not None:
                fetch([(self.start + offset, length) for offset, length in ranges])

    def read_at(self, offset: int, count: int) -> bytes:
        """Exactly ``count`` bytes at ``offset``; a range past the end means truncation."""
        if offset < 0 or count < 0 or offset + count > self.size:
            self._check_range(offset, count)
        cache, absolute = self._cache, self.start + offset
        data = cache.get(absolute, count)
        if data is not None:
            return data
        if cache.fd is not None:
            data = os.pread(cache.fd, count, absolute)  # one call, no seek
        else:
            self.handle.seek(absolute)
            data = self.handle.read(count)
        if len(data) != count:
            raise FormatError(f"{self.where} is truncated: {count} bytes at offset {offset} are missing")
        return data

    def readinto_at(self, offset: int, buffer: memoryview) -> None:
        """Fill ``buffer`` from ``offset`` with no intermediate copy where the file allows."""
        self._check_range(offset, len(buffer))
        self.handle.seek(self.start + offset)
        readinto = getattr(self.handle, "readinto", None)
        filled = 0
        while filled < len(buffer):
            if readinto is not None:
                count = readinto(buffer[filled:])
            else:
                chunk = self.handle.read(len(buffer) - filled)
                count = len(chunk)
                buffer[filled : filled + count] = chunk
            if not count:
                raise FormatError(f"{self.where} is truncated: bytes at offset {offset + filled} are missing")
            filled += count

    def _check_range(self, offset: int, count: int) -> None:
        if offset < 0 or count < 0 or offset + count > self.size:
            raise FormatError(
                f"{self.where} is truncated or inconsistent: {count} bytes at offset {offset} "
                f"lie outside its {self.size} bytes"
            )


class _Cache:
    """A few blocks of a file's bytes at absolute offsets, and the descriptor for ``pread``.

    Blocks are small and few (the tail, the head, a large directory): a lookup scans them.
    """

    _MAX_BLOCKS = 4

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.blocks: list[tuple[int, bytes]] = []
        self.leads: dict[int, bytes] = {}  # the first bytes of members' data, by where they start

    def get(self, start: int, count: int) -> bytes | None:
        for block_start, data in self.blocks:
            begin = start - block_start
            if 0 <= begin and begin + count <= len(data):
                return data[begin : begin + count]
        lead = self.leads.get(start)
        if lead is not None and count <= len(lead):
            return lead[:count]
        return None

    def tail(self, end: int, span: int) -> bytes:
        best = b""
        for block_start, data in self.blocks:
            if block_start <= end <= block_start + len(data) and end - block_start > len(best):
                best = data[max(0, end - block_start - span) : end - block_start]
        return best

    def keep(self, start: int, data: bytes) -> None:
        if data and self.get(start, len(data)) is not None:
            return  # (a slice of a block already kept)
        self.blocks.insert(0, (start, data))
        del self.blocks[self._MAX_BLOCKS :]


def runs(starts: Sequence[int], ends: Sequence[int], limit: int) -> Iterator[tuple[int, int]]:
    """Index ranges ``(first, stop)`` of byte ranges (members) that one positioned read fetches
    together: consecutive, each starting at or after the previous one's end, spanning at most
    ``limit`` bytes from the first one's start (a longer range is a run of its own)."""
    first, previous_end = 0, None
    for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
        if previous_end is not None and (end - starts[first] > limit or start < previous_end):
            yield first, index
            first = index
        previous_end = end
    if len(starts):
        yield first, len(starts)


def read_fully(fd: int, view: memoryview, offset: int) -> bool:
    """Fill ``view`` from the file's ``offset`` with positioned reads (a read may return less
    than asked); False if the file ends first."""
    filled = 0
    while filled < len(view):
        count = os.preadv(fd, [view[filled:]], offset + filled)
        if count <= 0:
            return False
        filled += count
    return True


def _fileno(handle: IO[bytes]) -> int | None:
    """A descriptor that positioned reads may use, or None (then the handle is used)."""
    if not hasattr(os, "pread") or not isinstance(handle, (io.BufferedReader, io.FileIO)):
        return None
    try:
        return handle.fileno()
    except (OSError, ValueError):
        return None


class Member(NamedTuple):
    """One vetted directory entry: where its data lies and what it must decode to.

    (A tuple: an open builds one or two per member, and a frozen dataclass costs 5× more.)
    """

    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int


class MemberTable(LazyMapping[Member]):
    """Vetted members by name, in directory order: as ``Member`` rows, or as columns.

    A directory of 10,000 members is checked as arrays (``zipbatch``); building a ``Member``
    for each would cost more than the checks, so then one is built when it is asked for.
    """

    FIELDS = Member._fields[1:]

    def __init__(self, names: list[str], columns: Sequence[Sequence[int]]) -> None:
        self.names = names
        self._columns: list[list[int]] | None = [list(column) for column in columns]
        self._rows: list[Member] | None = None
        self._keys = names
        self._index: dict[str, int] | None = None  # built on first use

    @classmethod
    def of(cls, members: list[Member]) -> MemberTable:
        table = cls.__new__(cls)
        table.names = table._keys = [m.name for m in members]
        table._columns, table._rows, table._index = None, members, None
        return table

    def rows(self) -> list[Member]:
        """Every member, in directory order."""
        if self._rows is not None:
            return self._rows
        return [self._build(name, index) for index, name in enumerate(self.names)]

    def renamed(self, names: list[str]) -> MemberTable:
        """The same members under other keys (the bundle's tensor names); ``Member.name``
        keeps the member's own name."""
        if len(names) != len(self.names):
            raise ValueError("one key per member")
        table = MemberTable.__new__(MemberTable)
        table.names, table._columns, table._rows = self.names, self._columns, self._rows
        table._keys, table._index = names, None
        return table

    def _lookup(self) -> dict[str, int]:
        if self._index is None:
            self._index = dict(zip(self._keys, range(len(self._keys)), strict=True))
        return self._index

    def _build(self, key: str, found: int) -> Member:
        if self._rows is not None:
            return self._rows[found]
        assert self._columns is not None
        method, flags, crc, compressed_size, size, header_offset, data_offset = self._columns
        return Member(self.names[found], method[found], flags[found], crc[found], compressed_size[found],
                      size[found], header_offset[found], data_offset[found])

    def column(self, field: str) -> list[int]:
        if self._rows is not None:
            return list(map(operator.attrgetter(field), self._rows))
        assert self._columns is not None
        return self._columns[self.FIELDS.index(field)]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MemberTable):
            return self.names == other.names and all(
                self.column(field) == other.column(field) for field in self.FIELDS
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class MemberReader:
    """Sequential reader of one member's uncompressed bytes; ``finish`` checks the CRC-32."""

    def __init__(self, source: Source, member: Member) -> None:
        self.source, self.member = source, member
        self.where = f"{source.where}: member {member.name!r}"
        self.remaining = member.size
        self.crc = 0
        self._offset = member.data_offset  # next compressed byte to fetch
        self._compressed_left = member.compressed_size
        self._inflater = zlib.decompressobj(-15) if member.method == DEFLATED else None
        # Small reads of a stored member (an .npy header: three of them) come from one read.
        self._ahead, self._ahead_at = b"", self._offset

    @property
    def file_position(self) -> int:
        """Absolute file offset of the next byte of a stored member (for reading in place)."""
        return self.source.start + self._offset

    def read(self, count: int) -> bytes:
        """Exactly ``count`` bytes (fewer only if the member has fewer left)."""
        count = min(count, self.remaining)
        if self._inflater is None:
            begin = self._offset - self._ahead_at
            if begin + count > len(self._ahead) and count <= _AHEAD:
                self._ahead = self.source.read_at(self._offset, min(_AHEAD, self._compressed_left))
                self._ahead_at, begin = self._offset, 0
            if begin + count <= len(self._ahead):
                data = self._ahead[begin : begin + count]
            else:
                data = self.source.read_at(self._offset, count)
            self._offset += count
            self._compressed_left -= count
        else:
            data = self._inflate(count)
        self.remaining -= count
        self.crc = crc32(data, self.crc)
        return data

    def readinto(self, buffer: memoryview) -> None:
        """Fill ``buffer`` entirely; it must not be longer than what remains."""
        if len(buffer) > self.remaining:
            raise FormatError(f"{self.where} is shorter than its contents need")
        if self._inflater is None:
            self.source.readinto_at(self._offset, buffer)
            self._offset += len(buffer)
            self._compressed_left -= len(buffer)
            self.crc = crc32(buffer, self.crc)
            self.remaining -= len(buffer)
            return
        filled = 0
        while filled < len(buffer):
            piece = self.read(min(_CHUNK, len(buffer) - filled))
            buffer[filled : filled + len(piece)] = piece
            filled += len(piece)

    def finish(self) -> None:
        """Everything was read and the CRC-32 matches the directory's; else raise."""
        if self.remaining:
            raise FormatError(f"{self.where} has {self.remaining} bytes nobody accounted for")
        if self._inflater is not None:
            while not self._inflater.eof:
                if self._inflate_some(1):
                    raise FormatError(
                        f"{self.where} decompresses to more than its declared {self.member.size} bytes"
                    )
            if self._compressed_left or self._inflater.unused_data:
                raise FormatError(f"{self.where}: bytes follow the end of its deflate stream")
        if self.crc != self.member.crc:
            raise IntegrityError(
                f"{self.where} is damaged: CRC-32 is {self.crc:08x}, the zip directory "
                f"records {self.member.crc:08x}"
            )

    def _inflate(self, count: int) -> bytes:
        parts, produced = [], 0
        while produced < count:
            piece = self._inflate_some(count - produced)
            if not piece and self._inflater is not None and self._inflater.eof:
                raise FormatError(f"{self.where} is truncated: its deflate stream ends early")
            parts.append(piece)
            produced += len(piece)
        return b"".join(parts)

    def _inflate_some(self, limit: int) -> bytes:
        inflater = self._inflater
        assert inflater is not None
        if inflater.eof:
            return b""
        data = inflater.unconsumed_tail
        if not data:
            if not self._compressed_left:
                raise FormatError(f"{self.where} is truncated: its deflate stream ends early")
            step = min(_CHUNK, self._compressed_left)
            data = self.source.read_at(self._offset, step)
            self._offset += step
            self._compressed_left -= step
        try:
            return inflater.decompress(data, limit)
        except zlib.error as exc:
            raise FormatError(f"{self.where}: deflate data is corrupt ({exc})") from None
