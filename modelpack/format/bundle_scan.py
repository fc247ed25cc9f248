"""One pass over a stored bundle's bytes, for ``verify``: each tensor's npy header, CRC-32 and
SHA-256, and the CRC-32 of the bytes around them, at a cost that grows with the bytes.

The members are taken in file order and cut into runs of about a chunk (1 MiB); a thread
reads a run with one positioned read and checks its members from that buffer, so a small
tensor costs one slice, one CRC-32 and one SHA-256, and 10,000 tensors are a few runs, not
10,000 tasks. A member larger than a chunk is a run of its own, read chunk by chunk (memory:
one chunk per thread). hashlib and the CRC release the GIL on large buffers, so runs go on in
parallel on all cores; members of a few KiB are checked on one thread, as handing the GIL
between threads for each would cost more than hashing it.

A header is vouched for here only when it is byte for byte the header modelpack writes for
the manifest's dtype and shape (``npy.header_for``), which passes every header check of
spec §4 and leaves exactly ``product(shape) × itemsize`` data bytes. Every other member —
another writer's header, a damaged one, a tensor the manifest does not list — is left to the
entry-by-entry path, which words the refusal. Results come back as columns, compared in bulk.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import FormatError
from ..io import zipio
from ..io.checksums import crc32, crc32_combine

__all__ = ["Candidates", "Scan", "scan"]

CHUNK = 1 << 20
SMALL_MEMBER = 64 << 10  # below this on average, members are checked on one thread
# (Measured, 5,000 members of 4 KiB: hashed on one thread 13.5 ms, split over this thread and a
# worker 14.4 ms. Each hash frees the GIL for ~3 µs, less than a waiting thread takes to wake,
# so the thread that freed it takes it back. The 10kt bench's whole scan, split: median no
# better, from 19 to 30 ms run to run.)


@dataclass
class Candidates:
    """Stored members each expected to hold ``header`` then its data, as columns in file order
    (10,000 are built per verify: a column costs less than an object per member); offsets
    absolute in the file."""

    member: list[int] = field(default_factory=list)  # its position among the bundle's members
    header_offset: list[int] = field(default_factory=list)  # its local header
    data_offset: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)  # data_offset + its size
    header: list[bytes] = field(default_factory=list)  # the npy header it must start with

    def __len__(self) -> int:
        return len(self.member)


@dataclass
class Scan:
    """What one pass found, one entry per candidate (in the order given), plus the CRC-32 of
    each byte range read: ``(start, length, crc)`` absolute and in file order."""

    crcs: list[int] = field(default_factory=list)  # CRC-32 of each member (header + data)
    digests: list[bytes] = field(default_factory=list)  # SHA-256 of each member's data
    headers_match: list[bool] = field(default_factory=list)
    ranges: list[tuple[int, int, int]] = field(default_factory=list)


def scan(fd: int, candidates: Candidates, pool: ThreadPoolExecutor, where: str) -> Scan:
    """Check ``candidates`` (sorted by offset, as a vetted zip tiles them) on ``pool``."""
    result = Scan()
    runs = list(zipio.runs(candidates.header_offset, candidates.end, CHUNK))
    # One run (a small file) is checked here, sooner than a thread starts; so are members
    # that are small on average: hashing one takes less time than handing the GIL from
    # thread to thread around it, so threads would only slow them down.
    spanned = candidates.end[-1] - candidates.header_offset[0] if len(candidates) else 0
    apply = map if len(runs) <= 1 or spanned < SMALL_MEMBER * len(candidates) else pool.map
    for run_scan in apply(lambda run: _scan_run(fd, candidates, run[0], run[1], where), runs):
        result.crcs += run_scan.crcs
        result.digests += run_scan.digests
        result.headers_match += run_scan.headers_match
        result.ranges += run_scan.ranges
    return result


def _read(fd: int, start: int, count: int, where: str) -> bytes:
    data = os.pread(fd, count, start)
    if len(data) != count:
        raise FormatError(f"{where} is truncated: {count} bytes at file offset {start} are missing")
    return data


_buffers = threading.local()


def _chunk_buffer() -> bytearray:
    """This thread's chunk of memory, reused by every run it scans: a fresh megabyte per run
    would be fresh pages each time (glibc maps blocks that large anew), faulted in one by one."""
    buffer: bytearray | None = getattr(_buffers, "chunk", None)
    if buffer is None or len(buffer) < CHUNK:  # (one made while CHUNK was smaller is too short)
        buffer = _buffers.chunk = bytearray(CHUNK)
    return buffer


def _scan_run(fd: int, candidates: Candidates, first: int, stop: int, where: str) -> Scan:
    start, end = candidates.header_offset[first], candidates.end[stop - 1]
    if end - start > CHUNK:
        return _scan_large(fd, candidates, first, where)
    raw = _chunk_buffer()  # (the run's bytes are its first end - start)
    view = memoryview(raw)[: end - start]
    if not zipio.read_fully(fd, view, start):
        raise FormatError(f"{where} is truncated: {len(view)} bytes at file offset {start} are missing")
    headers = candidates.header[first:stop]
    spans = [(data - start, data - start + len(header), member_end - start)
             for data, member_end, header in zip(candidates.data_offset[first:stop],
                                                 candidates.end[first:stop], headers, strict=True)]
    sha256, crc = hashlib.sha256, crc32
    return Scan(
        [crc(view[data:stop]) for data, _, stop in spans],
        [sha256(view[body:stop]).digest() for _, body, stop in spans],
        # (bytes.startswith at an offset: a memoryview's == compares item by item, 5x slower)
        list(map(raw.startswith, headers, [data for data, _, _ in spans])),
        [(start, end - start, crc32(view))],
    )


def _scan_large(fd: int, candidates: Candidates, index: int, where: str) -> Scan:
    """One member read chunk by chunk; the range's CRC-32 combined from the member's."""
    member = _Member(candidates.header_offset[index], candidates.data_offset[index],
                     candidates.end[index], candidates.header[index])
    lead = _read(fd, member.header_offset, member.data_offset - member.header_offset, where)
    body = member.data_offset + len(member.header)
    head = _read(fd, member.data_offset, min(len(member.header), member.end - member.data_offset), where)
    crc, digest = crc32(head), hashlib.sha256()
    buffer = memoryview(_chunk_buffer())
    position = body
    while position < member.end:
        count = os.preadv(fd, [buffer[: min(CHUNK, member.end - position)]], position)
        if count <= 0:
            raise FormatError(f"{where} is truncated: the file ends inside a tensor's data at {position}")
        piece = buffer[:count]
        crc = crc32(piece, crc)
        digest.update(piece)
        position += count
    size = member.end - member.header_offset
    span_crc = crc32_combine(crc32(lead), crc, member.end - member.data_offset)
    return Scan([crc], [digest.digest()], [head == member.header], [(member.header_offset, size, span_crc)])


class _Member(NamedTuple):
    header_offset: int
    data_offset: int
    end: int
    header: bytes
