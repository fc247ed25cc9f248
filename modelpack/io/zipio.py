"""Byte access for the strict zip reader: a byte range of a file, and a CRC-checked member.

``Source`` reads by offset within a range (the whole file, or a stored member that is itself
a zip), refusing any range past its end as truncation. ``MemberReader`` streams one member's
uncompressed bytes, stored or deflated, never producing more than the directory declared,
and ``finish`` checks that everything was read and that the CRC-32 matches.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import IO

from ..errors import FormatError, IntegrityError
from .ziprecords import DEFLATED, STORED

__all__ = ["STORED", "DEFLATED", "Source", "Member", "MemberReader"]  # the methods, for readers

_CHUNK = 1 << 20


class Source:
    """A byte range of a seekable binary file, read by offsets relative to the range."""

    def __init__(self, handle: IO[bytes], start: int, size: int, *, where: str) -> None:
        self.handle, self.start, self.size, self.where = handle, start, size, where

    @classmethod
    def whole(cls, handle: IO[bytes], *, where: str) -> Source:
        """The whole file, whatever its current position (a zip is read from its end)."""
        seekable = getattr(handle, "seekable", None)
        if seekable is not None and not seekable():
            raise FormatError(f"{where}: cannot read an archive from a stream that cannot seek")
        return cls(handle, 0, handle.seek(0, os.SEEK_END), where=where)

    def window(self, offset: int, size: int, *, where: str) -> Source:
        """A sub-range, e.g. a stored member holding a zip of its own."""
        return Source(self.handle, self.start + offset, size, where=where)

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Announce ``(offset, length)`` reads to a file that fetches ranges in batches (a
        remote one, ``io.remote``); a local file has no such method and reads as usual."""
        fetch = getattr(self.handle, "prefetch", None)
        if fetch is not None:
            fetch([(self.start + offset, length) for offset, length in ranges])

    def read_at(self, offset: int, count: int) -> bytes:
        """Exactly ``count`` bytes at ``offset``; a range past the end means truncation."""
        self._check_range(offset, count)
        self.handle.seek(self.start + offset)
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


@dataclass(frozen=True)
class Member:
    """One vetted directory entry: where its data lies and what it must decode to."""

    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int


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

    @property
    def file_position(self) -> int:
        """Absolute file offset of the next byte of a stored member (for reading in place)."""
        return self.source.start + self._offset

    def read(self, count: int) -> bytes:
        """Exactly ``count`` bytes (fewer only if the member has fewer left)."""
        count = min(count, self.remaining)
        if self._inflater is None:
            data = self.source.read_at(self._offset, count)
            self._offset += count
            self._compressed_left -= count
        else:
            data = self._inflate(count)
        self.remaining -= count
        self.crc = zlib.crc32(data, self.crc)
        return data

    def readinto(self, buffer: memoryview) -> None:
        """Fill ``buffer`` entirely; it must not be longer than what remains."""
        if len(buffer) > self.remaining:
            raise FormatError(f"{self.where} is shorter than its contents need")
        if self._inflater is None:
            self.source.readinto_at(self._offset, buffer)
            self._offset += len(buffer)
            self._compressed_left -= len(buffer)
            self.crc = zlib.crc32(buffer, self.crc)
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
