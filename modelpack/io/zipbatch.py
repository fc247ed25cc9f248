"""The zip directory's checks on whole columns at once, for directories of many members.

A bundle of 10,000 tensors has 10,000 central entries and local headers. Checked one by one in
Python (``zipentries``) they cost more than everything else an open does, so here the same
checks run as numpy operations over all entries together: the entries' fixed fields become
one structured array, the names one string checked by one regular expression, the local
headers one more array, and the tiling one comparison of sorted offsets.

This path only ever *vouches*: it returns the members when every check passes, and None as
soon as anything is unusual (a zip64 field, a data descriptor, a name the exact path would
refuse, code page 437 names) — the caller then runs the exact, entry-by-entry checks, which
accept the unusual but valid files and word every refusal. So nothing is accepted here that
``zipentries`` would refuse.
"""

from __future__ import annotations

import contextlib
import mmap
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .zipio import MemberTable, Source
from .ziprecords import (
    CENTRAL,
    DEFLATED,
    DESCRIPTOR_FLAG,
    DOS_DIRECTORY,
    ENCRYPTION_FLAGS,
    EXTERNAL_ATTR,
    LOCAL,
    MADE_BY,
    MAX_32,
    STORED,
    UNIX_SYSTEMS,
    UTF8_FLAG,
)

__all__ = ["check_directory"]

_CENTRAL = CENTRAL.columns()
_LOCAL = LOCAL.columns()
_CENTRAL_SIGNATURE = int.from_bytes(CENTRAL.signature, "little")
_LOCAL_SIGNATURE = int.from_bytes(LOCAL.signature, "little")
# Anything zipentries.check_name refuses, in names joined by (and starting with) "\n":
# control characters and backslashes (``_NAME_BYTES`` holds every other byte; in UTF-8 no
# other character's encoding holds an ASCII byte), an empty name, an absolute path, a ".."
# component, a trailing "/". ("\n" itself cannot be in a name: the names would not split back.)
_NAME_BYTES = bytes(sorted(set(range(256)) - {*range(0x0A), *range(0x0B, 0x20), 0x7F, ord("\\")}))
_BAD_PATH = re.compile(r"\n[A-Za-z]:/|[\n/]\.\.[\n/]")  # (with "\n\n", "\n/", "/\n": substrings)
_FILE_TYPE, _REGULAR = 0o170000 << 16, 0o100000 << 16  # in the external attributes (Unix mode)
# Local headers are read in one block when that costs about what reading each would.
_BLOCK_PER_MEMBER, _MAX_BLOCK = 16 << 10, 64 << 20


def check_directory(
    source: Source, raw: bytes, count: int, directory_offset: int, max_ratio: float, grace: int
) -> MemberTable | None:
    """The members of directory ``raw`` when every check of ``zipentries`` passes, else None."""
    buffer = np.frombuffer(raw, np.uint8)
    found = _entries(buffer, count)
    if found is None:
        return None
    starts, entries = found
    flags, method = entries["flags"], entries["method"]
    size, compressed = entries["size"].astype(np.int64), entries["compressed_size"].astype(np.int64)
    offset = entries["header_offset"].astype(np.int64)
    if not _as_written(entries, count, size, compressed, offset) and _unusual(
        entries, flags, method, size, compressed, offset, max_ratio, grace
    ):
        return None
    name_length = entries["name_length"].astype(np.int64)
    joined = _gather_joined(buffer, starts + CENTRAL.size, name_length)
    names = _names(joined, count, flags)
    if names is None:
        return None
    if (offset[1:] >= offset[:-1]).all():  # (the members are usually listed in file order)
        data_offset = _locate(source, entries, joined, directory_offset)
    else:
        order = np.argsort(offset, kind="stable")
        joined = _gather_joined(buffer, starts[order] + CENTRAL.size, name_length[order])
        in_file_order = _locate(source, entries[order], joined, directory_offset)
        if in_file_order is None:
            return None
        data_offset = np.empty_like(in_file_order)
        data_offset[order] = in_file_order
    if data_offset is None:
        return None
    return MemberTable(names, [method.tolist(), flags.tolist(), entries["crc"].tolist(), compressed.tolist(),
                               size.tolist(), offset.tolist(), data_offset.tolist()])


def _unusual(
    entries: np.ndarray, flags: np.ndarray, method: np.ndarray, size: np.ndarray, compressed: np.ndarray,
    offset: np.ndarray, max_ratio: float, grace: int,
) -> bool:
    """Whether any entry has something the exact path must read or word: encryption, a
    descriptor, another method, a zip64 field, another file type, a bomb."""
    external = entries["external_attr"]
    file_type = external & _FILE_TYPE
    system = entries["made_by"] >> 8
    with np.errstate(invalid="ignore"):  # an infinite ratio times 0 bytes: never refused
        bombs = (method == DEFLATED) & (size > grace) & (size > max_ratio * compressed)
    return bool(
        (entries["signature"] != _CENTRAL_SIGNATURE).any()
        or (flags & (ENCRYPTION_FLAGS | DESCRIPTOR_FLAG)).any()
        or ((method != STORED) & (method != DEFLATED)).any()
        # zip64 fields (saturated sizes, offsets, disk): the exact path reads them
        or (size == MAX_32).any() or (compressed == MAX_32).any() or (offset == MAX_32).any()
        or (entries["disk"] != 0).any()
        or ((method == STORED) & (size != compressed)).any()
        or (_is_unix(system) & (file_type != 0) & (file_type != _REGULAR)).any()
        or (external & DOS_DIRECTORY).any()
        or bombs.any()
    )


def _is_unix(system: np.ndarray) -> np.ndarray:
    """``np.isin(system, UNIX_SYSTEMS)`` (a handful of values: comparisons cost less)."""
    found = system == UNIX_SYSTEMS[0]
    for other in UNIX_SYSTEMS[1:]:
        found |= system == other
    return found


# What the writer puts in the fields _unusual reads of every central entry of a stored member
# with an ASCII name (no flag set): the entries' bytes are compared with it under a mask, one
# comparison for the whole directory; the other fields are masked out.
_WRITTEN_FIELDS = {
    "signature": _CENTRAL_SIGNATURE, "made_by": MADE_BY, "flags": 0, "method": STORED, "disk": 0,
    "external_attr": EXTERNAL_ATTR,
}
_WRITTEN = np.zeros(1, _CENTRAL)
_WRITTEN_MASK = np.zeros(1, _CENTRAL)
for _field, _value in _WRITTEN_FIELDS.items():
    _WRITTEN[_field], _WRITTEN_MASK[_field] = _value, np.iinfo(_CENTRAL[_field]).max
_WRITTEN_BYTES, _WRITTEN_MASK_BYTES = _WRITTEN.view(np.uint8), _WRITTEN_MASK.view(np.uint8)
del _field, _value


def _as_written(
    entries: np.ndarray, count: int, size: np.ndarray, compressed: np.ndarray, offset: np.ndarray
) -> bool:
    """Whether every entry is one the writer makes for a stored member (so that none has
    anything ``_unusual`` looks for), checked in a few operations rather than a dozen."""
    rows = entries.view(np.uint8).reshape(count, CENTRAL.size)
    return not (
        ((rows ^ _WRITTEN_BYTES) & _WRITTEN_MASK_BYTES).any()
        or (size != compressed).any() or (size == MAX_32).any() or (offset == MAX_32).any()
    )


def _entries(buffer: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Where each central entry starts (the signature's positions) and its fixed fields, when
    the entries chain exactly (each ends where the next begins, the last where the directory
    ends)."""
    end = len(buffer)
    candidates = np.flatnonzero(buffer[: max(0, end - CENTRAL.size + 1)] == CENTRAL.signature[0])
    for k in range(1, 4):
        candidates = candidates[buffer[candidates + k] == CENTRAL.signature[k]]
    if len(candidates) != count or count == 0 or candidates[0] != 0:
        return None  # a signature inside a name, or a damaged directory: the exact path decides
    entries = _gather(buffer, candidates, _CENTRAL)
    ends = candidates + CENTRAL.size
    ends += entries["name_length"]
    ends += entries["extra_length"]
    ends += entries["comment_length"]
    if (ends[:-1] != candidates[1:]).any() or ends[-1] != end:
        return None
    return candidates.astype(np.int64), entries


def _gather(buffer: np.ndarray, starts: np.ndarray, layout: np.dtype) -> np.ndarray:
    """The records of ``layout`` at each of ``starts``, as one structured array.

    A view with a record at every byte offset (stride 1) makes this one fancy index that
    copies whole records, rather than one index per byte.
    """
    count = len(buffer) - layout.itemsize + 1
    raw = np.dtype(f"V{layout.itemsize}")  # copied as plain bytes, then read as fields
    every = np.ndarray((max(count, 0),), dtype=raw, buffer=buffer, strides=(1,))
    return every[starts].view(layout)


def _gather_joined(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The byte ranges ``[start, start + length)`` one after another, each followed by "\\n"."""
    spans = lengths + 1
    ends = np.cumsum(spans)
    # (the byte after a range may lie past the buffer: clipped, then replaced by "\n")
    flat = np.take(buffer, np.arange(int(ends[-1])) + np.repeat(starts - (ends - spans), spans), mode="clip")
    flat[ends - 1] = ord("\n")
    return flat


def _names(joined: np.ndarray, count: int, flags: np.ndarray) -> list[str] | None:
    """Every name (``joined``: each followed by "\\n"), decoded in one call, if all of them
    pass ``check_name`` and are distinct."""
    utf8 = (flags & UTF8_FLAG) != 0
    if utf8.all():
        encoding = "utf-8"
    elif not utf8.any() and joined.max() < 0x80:
        encoding = "ascii"  # code page 437 agrees with ASCII on these bytes
    else:
        return None
    raw = joined.tobytes()
    if raw.translate(None, _NAME_BYTES):  # (deleting the allowed bytes leaves the others)
        return None
    try:
        text = "\n" + raw.decode(encoding)
    except UnicodeDecodeError:
        return None
    # Each two-character search costs a pass: without a "/" (the bundle's names), only an
    # empty name and a name ".." are left of what the patterns find.
    if "/" not in text:
        if "\n\n" in text or "\n..\n" in text:
            return None
    elif "\n\n" in text or "\n/" in text or "/\n" in text or (
        (":/" in text or ".." in text) and _BAD_PATH.search(text)
    ):
        return None
    text = text[1:]
    names = text.split("\n")
    names.pop()  # after the last separator
    if len(names) != count or len(set(names)) != count:
        return None
    return names


def _locate(
    source: Source, entries: np.ndarray, names: np.ndarray, directory_offset: int
) -> np.ndarray | None:
    """Each member's data offset (``entries`` sorted by header offset, ``names`` their names
    in that order, as ``_gather_joined`` gives them), if every local header repeats its entry
    and the members tile the zip from offset 0 to the directory with nothing between them."""
    offset = entries["header_offset"].astype(np.int64)
    name_length = entries["name_length"].astype(np.int64)
    width = LOCAL.size + name_length
    if offset[0] != 0 or (offset + width > directory_offset).any():
        return None
    with _member_area(source, offset, width, directory_offset) as (block, starts):
        local = _gather(block, starts, _LOCAL)
        same_names = _same_names(block, starts + LOCAL.size, name_length, names)
        del block, starts  # (a mapped file closes only once no array looks into it)
    if (local["signature"] != _LOCAL_SIGNATURE).any() or not same_names:
        return None
    if not _same_entries(local, entries) and (
        (local["name_length"] != entries["name_length"]).any()
        or ((local["flags"] ^ entries["flags"]) & (UTF8_FLAG | DESCRIPTOR_FLAG | ENCRYPTION_FLAGS)).any()
        or (local["method"] != entries["method"]).any()
        or (local["crc"] != entries["crc"]).any()
        or (local["compressed_size"] != entries["compressed_size"]).any()
        or (local["size"] != entries["size"]).any()
    ):
        return None
    data = offset + width + local["extra_length"]
    end = data + entries["compressed_size"]
    if (end[:-1] != offset[1:]).any() or end[-1] != directory_offset:
        return None
    return data


# The fields a local header shares with its central entry, version needed to name length
# (ziprecords._ENTRY, but the extra field's length), as byte ranges of each record.
def _shared(layout: np.dtype) -> slice:
    fields: Mapping[str, tuple[Any, ...]] = layout.fields or {}
    return slice(fields["version_needed"][1], fields["extra_length"][1])


_SHARED_LOCAL, _SHARED_CENTRAL = _shared(_LOCAL), _shared(_CENTRAL)


def _same_entries(local: np.ndarray, entries: np.ndarray) -> bool:
    """Whether every local header repeats its entry's shared fields byte for byte (as the
    writer's do), which covers each comparison the exact path makes, in one."""
    count = len(entries)
    return np.array_equal(
        local.view(np.uint8).reshape(count, LOCAL.size)[:, _SHARED_LOCAL],
        entries.view(np.uint8).reshape(count, CENTRAL.size)[:, _SHARED_CENTRAL],
    )


def _same_names(block: np.ndarray, starts: np.ndarray, lengths: np.ndarray, names: np.ndarray) -> bool:
    """Whether the byte ranges ``[start, start + length)`` of ``block`` are ``names`` (as
    ``_gather_joined`` gives them: each followed by "\\n", which ``_names`` refused in a name).

    Each range is read as a record of the longest name's width (one fancy index of whole
    records, as ``_gather``) and compared under a mask of its own length: reading the
    ranges byte by byte costs several times more, most of it in a mapped file's pages.
    """
    widest = int(lengths.max())
    if widest == 0 or int(starts.max()) + widest > len(block):  # a record would pass the end
        return np.array_equal(_gather_joined(block, starts, lengths), names)
    records = _gather(block, starts, np.dtype(f"V{widest}")).view(np.uint8).reshape(len(starts), widest)
    inside = np.arange(widest) < lengths[:, None]
    return len(names) == int(lengths.sum()) + len(lengths) and np.array_equal(
        records[inside], names[names != ord("\n")]
    )


@contextlib.contextmanager
def _member_area(
    source: Source, offset: np.ndarray, width: np.ndarray, directory_offset: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Bytes holding every local header and name, and where each starts in them.

    A local file is mapped (only the pages holding headers are touched: reading the whole
    member area would copy every tensor); a small member area of another file is read in one
    block; else each header is read on its own (a remote file fetches them in one batch).
    """
    if source.fd is not None and directory_offset:
        with mmap.mmap(source.fd, 0, access=mmap.ACCESS_READ) as mapped:
            if len(mapped) >= source.start + directory_offset:
                yield np.frombuffer(mapped, np.uint8, directory_offset, source.start), offset
                return
    if directory_offset <= min(_MAX_BLOCK, _BLOCK_PER_MEMBER * len(offset)):
        yield np.frombuffer(source.read_at(0, directory_offset), np.uint8), offset
        return
    ranges = list(zip(offset.tolist(), width.tolist(), strict=True))
    source.announce(ranges)  # a remote file fetches them in one batch
    pieces = [source.read_at(at, size) for at, size in ranges]
    yield np.frombuffer(b"".join(pieces), np.uint8), np.cumsum(width) - width
