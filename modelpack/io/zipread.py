"""Strict zip reading: the directory is vetted before a single member byte is read.

Python's ``zipfile`` is lenient where a file from a stranger must not be: it reads past junk
before the first member or after the directory (so two files glued together read as the
second one), accepts overlapping members and sizes that no bytes back, and builds an object
per directory entry before anyone can count them. This module parses the end record and the
central directory itself, refuses all of that with a message naming the file and the member,
and reads members with an explicit CRC-32 check. Record layouts, signatures and flags come
from ``ziprecords``, which the writer (``zipwrite``) shares.

Both the ``.mpk`` container and the ``weights.npz`` bundle inside it are read through here;
member offsets are kept so that later readers can map tensor data in place. The bytes
themselves are read through ``zipio``. This module finds and checks the end records and the
directory's place; ``zipentries`` checks each entry and local header (and words every
refusal); ``zipbatch`` runs the same checks as array operations on large directories.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError, LimitError, ModelpackError
from . import zipbatch
from .zipentries import central_entries, check_name, check_ratio, locate_data
from .zipio import Member, MemberTable, Source
from .ziprecords import (
    CENTRAL,
    DEFLATED,
    END,
    LOCAL,
    MAX_16,
    MAX_32,
    MAX_COMMENT,
    ZIP64_END,
    ZIP64_END_LEAD,
    ZIP64_LOCATOR,
)

__all__ = ["Directory", "read_directory", "directory_span", "check_name"]

_MAX_ENTRY = CENTRAL.size + 3 * MAX_16  # a central entry: fixed part, then name, extra, comment
_SHORT_TAIL = 4 << 10  # searched first for the end record (a page: fresh pages cost)
# A file without a descriptor (a remote one) pays a round trip per read instead: its first
# read also takes the directories of most files (and of their bundles).
_REMOTE_TAIL = 32 << 10
# Directories of this many entries or more are checked as columns first. Measured as the
# bench measures (an open right after a collection): the exact checks cost ~7 µs an entry,
# the column checks ~0.6 ms whatever the count; 50 entries are faster exact, 200 as columns.
BATCH_MIN = 80


@dataclass(frozen=True)
class Directory:
    """The members of a zip by name in directory order, and the archive comment."""

    table: MemberTable
    comment: bytes
    inflated: int  # declared uncompressed bytes of the deflated members, together

    @property
    def members(self) -> list[Member]:
        """Every member, in directory order."""
        return list(self.table.rows())


def read_directory(
    source: Source,
    *,
    kind: str,
    max_members: int,
    too_many: Callable[[int], ModelpackError],
    max_ratio: float,
    grace_bytes: int,
    max_inflated: float,
) -> Directory:
    """Parse and vet the directory of the zip that is exactly ``source``.

    ``kind`` says what the file should be ("a modelpack archive") when it is no zip at all.
    Refused: junk before the first member or after the end record, a directory that is not
    where the end record says, more than ``max_members`` entries (counted before the directory
    is read), unsafe or duplicate names, links and other non-regular files, encryption,
    methods other than stored and deflate, overlapping members or unexplained gaps,
    deflated members expanding more than ``max_ratio`` times beyond ``grace_bytes``, and
    deflated members expanding to more than ``max_inflated`` bytes together.
    """
    where = source.where
    count, directory_offset, directory_size, directory_end, comment = _end_record(source, kind)
    if count > max_members:
        raise too_many(count)
    _check_place(source, directory_offset, directory_size, directory_end)
    if not count * CENTRAL.size <= directory_size <= count * _MAX_ENTRY:
        # The upper bound keeps the directory read (it is read whole) in proportion to count.
        raise FormatError(
            f"{where}: a zip directory of {directory_size} bytes cannot hold exactly {count} entries"
        )
    raw = source.read_at(directory_offset, directory_size)
    # Large directories are checked as columns; whatever that cannot vouch for is checked
    # again entry by entry, which words the refusal.
    table = None
    if count >= BATCH_MIN:
        table = zipbatch.check_directory(source, raw, count, directory_offset, max_ratio, grace_bytes)
    if table is not None:
        inflated = sum(map(operator.mul, table.column("size"), map(DEFLATED.__eq__, table.column("method"))))
        _check_inflated(inflated, max_inflated, where)
        return Directory(table=table, comment=comment, inflated=inflated)
    members = central_entries(raw, count, where)
    inflated = 0
    for member in members:
        if member.method == DEFLATED:
            check_ratio(member, where, max_ratio, grace_bytes)
            inflated += member.size
    _check_inflated(inflated, max_inflated, where)  # (before any local header is read)
    return Directory(table=MemberTable.of(locate_data(source, members, directory_offset)),
                     comment=comment, inflated=inflated)


def directory_span(source: Source, *, kind: str) -> tuple[int, int, int, bytes]:
    """(entries, directory offset, directory size, comment) of the zip that is exactly
    ``source``, from its end record, the directory's place checked; nothing of it is read."""
    count, directory_offset, directory_size, directory_end, comment = _end_record(source, kind)
    _check_place(source, directory_offset, directory_size, directory_end)
    return count, directory_offset, directory_size, comment


def _check_place(source: Source, directory_offset: int, directory_size: int, directory_end: int) -> None:
    if directory_offset + directory_size != directory_end:
        gap = directory_end - directory_offset - directory_size
        raise FormatError(
            f"{source.where}: the zip directory is not where the end record says ({gap:+d} bytes): "
            "junk before the archive, two files concatenated, or a damaged file"
        )


def _check_inflated(inflated: int, max_inflated: float, where: str) -> None:
    if inflated > max_inflated:
        raise LimitError(
            where, "the declared size of its deflated members together", inflated,
            limit="max_compression_ratio", allowed=max_inflated,
            note=" (the file's size times the ratio, plus 1 MiB; deflate nested in deflate, or many "
            "small bombs?)",
        )


def _end_record(source: Source, kind: str) -> tuple[int, int, int, int, bytes]:
    """(entries, directory offset, directory size, where the directory must end, comment)."""
    where, size = source.where, source.size
    if size < END.size:
        raise FormatError(f"{where}: not {kind} (not a zip file: only {size} bytes)")
    # The record ends the file, after a comment of at most 64 KiB; modelpack's is 90 bytes.
    # The last record found in a shorter tail is the one a longer tail gives, so the bytes
    # already read are searched first (a bundle's end lies in its archive's tail), then a
    # short tail (a local file's: one page, which with modelpack's layout holds both
    # directories of a small file), and the longest only when those find nothing.
    known = source.cached_tail(END.size + MAX_COMMENT)
    short = _SHORT_TAIL if source.fd is not None else _REMOTE_TAIL
    for span in (len(known), short, END.size + MAX_COMMENT):
        if span < END.size and span < size:
            continue
        tail_start = max(0, size - span)
        wanted = size - tail_start
        tail = known[len(known) - wanted :] if wanted <= len(known) else source.prefetch(tail_start, wanted)
        position, record, excess = _find_end_record(tail)
        if record is not None or tail_start == 0:
            break
    if record is None:
        if excess is not None and excess > 0:
            raise FormatError(
                f"{where}: {excess} unexpected bytes after the last end-of-directory record "
                "(files concatenated, junk appended, or a truncated file?)"
            )
        if excess is not None:
            raise FormatError(f"{where}: truncated zip file: its end-of-directory record is cut short")
        if source.read_at(0, 4) == LOCAL.signature:
            raise FormatError(f"{where}: truncated zip file: no end-of-directory record")
        raise FormatError(f"{where}: not {kind} (not a zip file: no end-of-directory record)")
    assert record is not None
    end_offset = tail_start + position
    comment = tail[position + END.size :]
    if record.disk != 0 or record.directory_disk != 0 or record.disk_entries != record.entries:
        raise FormatError(f"{where}: multi-disk (split) zip archives are not supported")
    locator_offset = end_offset - ZIP64_LOCATOR.size
    if locator_offset >= 0 and source.read_at(locator_offset, 4) == ZIP64_LOCATOR.signature:
        return (*_zip64_end_record(source, locator_offset, record), comment)
    return record.entries, record.directory_offset, record.directory_size, end_offset, comment


def _find_end_record(tail: bytes) -> tuple[int, Any, int | None]:
    """The last end record in ``tail`` whose comment ends exactly at its end: (position,
    record, None), or (-1, None, bytes after the last one found, <0 if it is cut short)."""
    position = tail.rfind(END.signature)
    excess = None
    while position >= 0:
        if position + END.size <= len(tail):
            record = END.unpack_from(tail, position)
            surplus = len(tail) - position - END.size - record.comment_length
            if surplus == 0:
                return position, record, None
            excess = surplus if excess is None else excess
        else:
            excess = -1 if excess is None else excess
        position = tail.rfind(END.signature, 0, position)
    return -1, None, excess


def _zip64_end_record(source: Source, locator_offset: int, record: Any) -> tuple[int, int, int, int]:
    where = source.where
    locator = ZIP64_LOCATOR.unpack_from(source.read_at(locator_offset, ZIP64_LOCATOR.size))
    if locator.disk != 0 or locator.disks != 1:
        raise FormatError(f"{where}: multi-disk (split) zip archives are not supported")
    record_offset = locator.record_offset
    if record_offset + ZIP64_END.size > locator_offset:
        raise FormatError(f"{where}: the zip64 end record is not where its locator says")
    wide = ZIP64_END.unpack_from(source.read_at(record_offset, ZIP64_END.size))
    record_end = record_offset + ZIP64_END_LEAD + wide.record_size
    if wide.signature != ZIP64_END.signature or record_end != locator_offset:
        raise FormatError(f"{where}: the zip64 end record is damaged or not where its locator says")
    if wide.disk != 0 or wide.directory_disk != 0 or wide.disk_entries != wide.entries:
        raise FormatError(f"{where}: multi-disk (split) zip archives are not supported")
    for value, short, saturated in ((wide.entries, record.entries, MAX_16),
                                    (wide.directory_size, record.directory_size, MAX_32),
                                    (wide.directory_offset, record.directory_offset, MAX_32)):
        if short not in (value, saturated):
            raise FormatError(f"{where}: the zip end record and zip64 end record disagree")
    return wide.entries, wide.directory_offset, wide.directory_size, record_offset


