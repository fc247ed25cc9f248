"""Recognising a zip laid out exactly as ``zipwrite`` writes it, by rebuilding its records.

The strict reader (``zipread``, ``zipentries``) checks a zip from anyone field by field,
which for a small archive costs more than reading it. A zip written here has one layout:
its members back to back from offset 0, each behind the local header ``zipwrite`` makes for
that place, the directory right after the last member, then the end record and the comment
closing the file. So the directory's entries are parsed, the records ``zipwrite`` would
write for them are rebuilt, and the file must hold exactly those bytes; every check of the
strict reader then holds by construction (a writer never writes what its reader refuses),
and the members are the ones it would return. Anything else — another writer's zip, a
damaged or crafted one, zip64, deflated members — gives None, and the caller reads the zip
the strict way, which words any refusal.
"""

from __future__ import annotations

from collections.abc import Sequence

from .zipio import Member, Source
from .ziprecords import CENTRAL, END, STORED
from .zipwrite import ZIP64_SIZE, PlannedMember, directory_records, local_header

__all__ = ["written_members"]

# One page at each end, at least: the tail holds a small archive's directories (its bundle's
# too), the head its first headers (the first tensor's among them).
_PAGE = 4 << 10


def written_members(
    source: Source, names: Sequence[str], comment_length: int, max_leading: int
) -> tuple[list[Member], bytes] | None:
    """The members of the zip that is exactly ``source`` and its comment, if ``zipwrite``
    wrote it with the stored members ``names`` in that order and a comment of
    ``comment_length`` bytes; else None. Two positioned reads, kept in ``source``'s cache:
    the tail (which holds a small bundle's directory too) and the head, with the data of
    every member but the last — so None too when one of those holds more than
    ``max_leading`` bytes (the strict reader then applies the caller's limits)."""
    size = source.size
    if source.fd is None or size >= ZIP64_SIZE:
        return None  # (a remote file reads its tail its own way; zip64 records are not rebuilt)
    span = min(size, _PAGE)
    tail_start = size - span
    tail = source.prefetch(tail_start, span)
    end = span - END.size - comment_length
    if end < 0 or tail[end : end + 4] != END.signature:
        return None
    record = END.unpack_from(tail, end)
    start = record.directory_offset - tail_start  # where the directory starts in the tail
    if record.entries != len(names) or record.comment_length != comment_length or start < 0:
        return None
    planned = []
    at = start
    for name in names:
        if at + CENTRAL.size > end:
            return None
        entry = CENTRAL.unpack_from(tail, at)
        raw_name = name.encode("utf-8")
        at += CENTRAL.size
        if tail[at : at + len(raw_name)] != raw_name or entry.method != STORED:
            return None
        member = PlannedMember(name, [], crc=entry.crc, size=entry.size, compressed_size=entry.size,
                               header_offset=entry.header_offset)
        planned.append(member)
        at += len(raw_name) + entry.extra_length + entry.comment_length
    if directory_records(planned, record.directory_offset, tail[end + END.size :]) != tail[start:]:
        return None
    # The members back to back from 0, each after the header written for its place; the head
    # (every header, and the data of all members but the last) is read in one go.
    offset, headers = 0, []
    for member in planned:
        header = local_header(member, offset)
        if member.header_offset != offset:
            return None
        headers.append(header)
        offset += len(header) + member.size
    if offset != record.directory_offset or any(member.size > max_leading for member in planned[:-1]):
        return None
    head_size = planned[-1].header_offset + len(headers[-1])
    head = source.prefetch(0, max(head_size, min(size, _PAGE)))
    members = []
    for member, header in zip(planned, headers, strict=True):
        place = member.header_offset
        if head[place : place + len(header)] != header:
            return None
        members.append(Member(member.name, STORED, 0, member.crc, member.size, member.size, place,
                              place + len(header)))
    return members, tail[end + END.size :]
