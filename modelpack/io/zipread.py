"""Strict zip reading: the directory is vetted before a single member byte is read.

Python's ``zipfile`` is lenient where a file from a stranger must not be: it reads past junk
before the first member or after the directory (so two files glued together read as the
second one), accepts overlapping members and sizes that no bytes back, and builds an object
per directory entry before anyone can count them. This module parses the end record and the
central directory itself, refuses all of that with a message naming the file and the member,
and reads members with an explicit CRC-32 check. Writing still uses ``zipfile``.

Both the ``.mpk`` container and the ``weights.npz`` bundle inside it are read through here;
member offsets are kept so that later readers can map tensor data in place. The bytes
themselves are read through ``_zipio``.
"""

from __future__ import annotations

import re
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import FormatError, LimitError, ModelpackError
from .zipio import DEFLATED, STORED, Member, Source

__all__ = ["Directory", "read_directory", "check_name"]

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_LOCATOR = struct.Struct("<4sLQL")  # zip64 end of central directory locator
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # local file header
_EOCD_SIG, _LOCATOR_SIG, _EOCD64_SIG = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_CENTRAL_SIG, _LOCAL_SIG = b"PK\x01\x02", b"PK\x03\x04"
_MAX_COMMENT = 0xFFFF
_MAX_ENTRY = 46 + 3 * 0xFFFF  # a central entry: fixed part, then name, extra, comment
_UTF8_FLAG, _DESCRIPTOR_FLAG = 0x800, 0x8
_ENCRYPTION_FLAGS = 0x1 | 0x40 | 0x2000  # traditional, strong, central-directory encryption
_DESCRIPTOR_SIZES = (12, 16, 20, 24)  # with/without signature, 32/64-bit sizes
_UNIX_SYSTEMS = (3, 19)  # Unix, OS X: the high 16 bits of external_attr are a st_mode
_DOS_DIRECTORY = 0x10
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[/\\])")


@dataclass(frozen=True)
class Directory:
    """The members of a zip in directory order, and the archive comment."""

    members: list[Member]
    comment: bytes


def read_directory(
    source: Source,
    *,
    kind: str,
    max_members: int,
    too_many: Callable[[int], ModelpackError],
    max_ratio: float,
    grace_bytes: int,
) -> Directory:
    """Parse and vet the directory of the zip that is exactly ``source``.

    ``kind`` says what the file should be ("a modelpack archive") when it is no zip at all.
    Refused: junk before the first member or after the end record, a directory that is not
    where the end record says, more than ``max_members`` entries (counted before the directory
    is read), unsafe or duplicate names, links and other non-regular files, encryption,
    methods other than stored and deflate, overlapping members or unexplained gaps, and
    deflated members expanding more than ``max_ratio`` times beyond ``grace_bytes``.
    """
    where = source.where
    count, directory_offset, directory_size, directory_end, comment = _end_record(source, kind)
    if count > max_members:
        raise too_many(count)
    if directory_offset + directory_size != directory_end:
        gap = directory_end - directory_offset - directory_size
        raise FormatError(
            f"{where}: the zip directory is not where the end record says ({gap:+d} bytes): "
            "junk before the archive, two files concatenated, or a damaged file"
        )
    if not count * _CENTRAL.size <= directory_size <= count * _MAX_ENTRY:
        # The upper bound keeps the directory read (it is read whole) in proportion to count.
        raise FormatError(
            f"{where}: a zip directory of {directory_size} bytes cannot hold exactly {count} entries"
        )
    raw = source.read_at(directory_offset, directory_size)
    members = _central_entries(raw, count, where)
    for member in members:
        _check_ratio(member, where, max_ratio, grace_bytes)
    members = _locate_data(source, members, directory_offset)
    return Directory(members=members, comment=comment)


def _end_record(source: Source, kind: str) -> tuple[int, int, int, int, bytes]:
    """(entries, directory offset, directory size, where the directory must end, comment)."""
    where, size = source.where, source.size
    if size < _EOCD.size:
        raise FormatError(f"{where}: not {kind} (not a zip file: only {size} bytes)")
    tail_start = max(0, size - _EOCD.size - _MAX_COMMENT)
    tail = source.read_at(tail_start, size - tail_start)
    position = tail.rfind(_EOCD_SIG)
    excess = None  # bytes after the last-found end record and its comment (<0: cut short)
    record = None
    while position >= 0:
        if position + _EOCD.size <= len(tail):
            record = _EOCD.unpack_from(tail, position)
            surplus = len(tail) - position - _EOCD.size - record[7]
            if surplus == 0:
                break
            excess = surplus if excess is None else excess
        else:
            excess = -1 if excess is None else excess
        record = None
        position = tail.rfind(_EOCD_SIG, 0, position)
    if record is None:
        if excess is not None and excess > 0:
            raise FormatError(
                f"{where}: {excess} unexpected bytes after the last end-of-directory record "
                "(files concatenated, junk appended, or a truncated file?)"
            )
        if excess is not None:
            raise FormatError(f"{where}: truncated zip file: its end-of-directory record is cut short")
        if source.read_at(0, 4) == _LOCAL_SIG:
            raise FormatError(f"{where}: truncated zip file: no end-of-directory record")
        raise FormatError(f"{where}: not {kind} (not a zip file: no end-of-directory record)")
    assert record is not None
    _, disk, directory_disk, disk_entries, entries, directory_size, directory_offset, _ = record
    end_offset = tail_start + position
    comment = tail[position + _EOCD.size :]
    if disk != 0 or directory_disk != 0 or disk_entries != entries:
        raise FormatError(f"{where}: multi-disk (split) zip archives are not supported")
    locator_offset = end_offset - _LOCATOR.size
    if locator_offset >= 0 and source.read_at(locator_offset, 4) == _LOCATOR_SIG:
        return (*_zip64_end_record(source, locator_offset, record), comment)
    return entries, directory_offset, directory_size, end_offset, comment


def _zip64_end_record(source: Source, locator_offset: int, record: tuple) -> tuple[int, int, int, int]:
    where = source.where
    _, disk, record_offset, disks = _LOCATOR.unpack(source.read_at(locator_offset, _LOCATOR.size))
    if disk != 0 or disks != 1:
        raise FormatError(f"{where}: multi-disk (split) zip archives are not supported")
    if record_offset + _EOCD64.size > locator_offset:
        raise FormatError(f"{where}: the zip64 end record is not where its locator says")
    fields = _EOCD64.unpack(source.read_at(record_offset, _EOCD64.size))
    signature, record_size, _, _, disk, directory_disk, disk_entries, entries, size, offset = fields
    if signature != _EOCD64_SIG or record_offset + 12 + record_size != locator_offset:
        raise FormatError(f"{where}: the zip64 end record is damaged or not where its locator says")
    if disk != 0 or directory_disk != 0 or disk_entries != entries:
        raise FormatError(f"{where}: multi-disk (split) zip archives are not supported")
    for value, short, saturated in ((entries, record[4], 0xFFFF), (size, record[5], 0xFFFFFFFF),
                                    (offset, record[6], 0xFFFFFFFF)):
        if short not in (value, saturated):
            raise FormatError(f"{where}: the zip end record and zip64 end record disagree")
    return entries, offset, size, record_offset


def _central_entries(raw: bytes, count: int, where: str) -> list[Member]:
    members: list[Member] = []
    seen: set[str] = set()
    position = 0
    for index in range(count):
        if position + _CENTRAL.size > len(raw):
            raise FormatError(f"{where}: the zip directory ends after {index} of its {count} entries")
        fields = _CENTRAL.unpack_from(raw, position)
        (signature, _, system, _, _, flags, method, _, _, crc, compressed, size,
         name_length, extra_length, comment_length, disk, _, external, offset) = fields
        if signature != _CENTRAL_SIG:
            raise FormatError(f"{where}: zip directory entry {index} is damaged (bad signature)")
        start = position + _CENTRAL.size
        position = start + name_length + extra_length + comment_length
        if position > len(raw):
            raise FormatError(f"{where}: zip directory entry {index} runs past the directory")
        raw_name = raw[start : start + name_length]
        name = _decode_name(raw_name, flags, where)
        check_name(name, where)
        if name in seen:
            raise FormatError(f"{where}: duplicate member {name!r}")
        seen.add(name)
        extra = raw[start + name_length : start + name_length + extra_length]
        size, compressed, offset, disk = _zip64_fields(extra, size, compressed, offset, disk, where, name)
        if disk != 0:
            raise FormatError(f"{where}: member {name!r} lies on another disk of a split archive")
        if flags & _ENCRYPTION_FLAGS:
            raise FormatError(f"{where}: member {name!r} is encrypted")
        if method not in (STORED, DEFLATED):
            raise FormatError(
                f"{where}: member {name!r} uses compression method {method}; only stored (0) "
                "and deflate (8) are allowed"
            )
        if method == STORED and compressed != size:
            raise FormatError(
                f"{where}: member {name!r} is stored but declares {size} bytes in {compressed}"
            )
        _check_file_type(name, system, external, where)
        members.append(Member(name, method, flags, crc, compressed, size, offset, -1))
    if position != len(raw):
        raise FormatError(
            f"{where}: the zip directory holds {len(raw) - position} bytes beyond its {count} "
            "entries (more members than the end record declares?)"
        )
    return members


def _decode_name(raw: bytes, flags: int, where: str) -> str:
    try:
        return raw.decode("utf-8") if flags & _UTF8_FLAG else raw.decode("cp437")
    except UnicodeDecodeError:
        raise FormatError(f"{where}: member name {raw!r} is not valid UTF-8") from None


def check_name(name: str, where: str) -> None:
    """Refuse names that are not plain relative paths (traversal, absolute, NUL, backslash)."""
    problem = None
    if not name:
        problem = "is empty"
    elif "\x00" in name:
        problem = "contains a NUL byte"
    elif "\\" in name:
        problem = "contains a backslash"
    elif _ABSOLUTE.match(name):
        problem = "is an absolute path"
    elif ".." in name.split("/"):
        problem = "contains a '..' component"
    elif name.endswith("/"):
        problem = "is a directory"
    elif _CONTROL.search(name):
        problem = "contains control characters"
    if problem is not None:
        raise FormatError(
            f"{where}: member name {name!r} {problem}; member names must be plain relative names"
        )


def _zip64_fields(
    extra: bytes, size: int, compressed: int, offset: int, disk: int, where: str, name: str
) -> tuple[int, int, int, int]:
    """Replace saturated 32-bit fields by the zip64 extra field's values, in APPNOTE order."""
    wanted = [size == 0xFFFFFFFF, compressed == 0xFFFFFFFF, offset == 0xFFFFFFFF, disk == 0xFFFF]
    if not any(wanted):
        return size, compressed, offset, disk
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        body = extra[position + 4 : position + 4 + length]
        position += 4 + length
        if kind != 1:
            continue
        values = [size, compressed, offset, disk]
        cursor = 0
        for index, needed in enumerate(wanted):
            if not needed:
                continue
            width = 4 if index == 3 else 8
            if cursor + width > len(body):
                break
            values[index] = int.from_bytes(body[cursor : cursor + width], "little")
            cursor += width
        else:
            return values[0], values[1], values[2], values[3]
        break
    raise FormatError(f"{where}: member {name!r} lacks the zip64 sizes its directory entry announces")


def _check_file_type(name: str, system: int, external: int, where: str) -> None:
    kind = stat.S_IFMT(external >> 16)  # 0 when a writer set permissions only
    if system in _UNIX_SYSTEMS and kind not in (0, stat.S_IFREG):
        if kind == stat.S_IFLNK:
            raise FormatError(f"{where}: member {name!r} is a symbolic link")
        raise FormatError(f"{where}: member {name!r} is not a regular file (mode {external >> 16:#o})")
    if external & _DOS_DIRECTORY:
        raise FormatError(f"{where}: member {name!r} is a directory")


def _check_ratio(member: Member, where: str, max_ratio: float, grace: int) -> None:
    if member.method == DEFLATED and member.size > grace and member.size > max_ratio * member.compressed_size:
        ratio = member.size / max(member.compressed_size, 1)
        raise LimitError(
            f"{where}: member {member.name!r}", "its compression ratio", round(ratio),
            limit="max_compression_ratio", allowed=max_ratio,
            note=f" ({member.size} bytes from {member.compressed_size}; a zip bomb?)",
        )


def _locate_data(source: Source, members: list[Member], directory_offset: int) -> list[Member]:
    """Check each local header against the directory; members must tile the file exactly."""
    where = source.where
    located: dict[int, Member] = {}
    expected_offset = 0
    previous: Member | None = None
    for index in sorted(range(len(members)), key=lambda i: members[i].header_offset):
        member = members[index]
        if member.header_offset + _LOCAL.size > directory_offset:
            raise FormatError(
                f"{where}: member {member.name!r} starts at offset {member.header_offset}, past the "
                f"end of the member data ({directory_offset})"
            )
        _check_gap(member.header_offset, expected_offset, previous, where)
        # One read usually covers the header, the name and a padding extra field.
        room = directory_offset - member.header_offset
        guess = min(_LOCAL.size + len(member.name.encode()) + 128, room)
        block = source.read_at(member.header_offset, guess)
        (signature, _, _, flags, method, _, _, crc, compressed, size,
         name_length, extra_length) = _LOCAL.unpack_from(block)
        if signature != _LOCAL_SIG:
            raise FormatError(
                f"{where}: member {member.name!r} has no local header at offset {member.header_offset}"
            )
        name_start = member.header_offset + _LOCAL.size
        if _LOCAL.size + name_length + extra_length <= len(block):
            raw_name = block[_LOCAL.size : _LOCAL.size + name_length + extra_length]
        else:
            raw_name = source.read_at(name_start, name_length + extra_length)
        if _decode_name(raw_name[:name_length], flags, where) != member.name:
            raise FormatError(
                f"{where}: member {member.name!r} is called {raw_name[:name_length]!r} in its local header"
            )
        if flags & _DESCRIPTOR_FLAG:  # the local fields are zeros; the real ones follow the data
            crc, compressed, size = member.crc, member.compressed_size, member.size
        else:
            extra = raw_name[name_length:]
            size, compressed, _, _ = _zip64_fields(extra, size, compressed, 0, 0, where, member.name)
        local = (method, flags & _ENCRYPTION_FLAGS, crc, compressed, size)
        if local != (member.method, member.flags & _ENCRYPTION_FLAGS, member.crc,
                     member.compressed_size, member.size):
            # Tools that read local headers (streaming unzip) would see another file than we do.
            raise FormatError(
                f"{where}: member {member.name!r}: its local header (method, encryption, CRC-32, "
                f"sizes {local}) disagrees with the zip directory"
            )
        data_offset = name_start + name_length + extra_length
        located[index] = Member(
            member.name, member.method, member.flags, member.crc, member.compressed_size,
            member.size, member.header_offset, data_offset,
        )
        expected_offset = data_offset + member.compressed_size
        previous = member
    _check_gap(directory_offset, expected_offset, previous, where, at_directory=True)
    return [located[i] for i in range(len(members))]


def _check_gap(
    offset: int, expected: int, previous: Member | None, where: str, *, at_directory: bool = False
) -> None:
    """Between members only a data descriptor may sit; anything else is junk or overlap."""
    gap = offset - expected
    if gap == 0 or (previous is not None and previous.flags & _DESCRIPTOR_FLAG and gap in _DESCRIPTOR_SIZES):
        return
    what = "the zip directory" if at_directory else "the next member"
    if previous is None:
        raise FormatError(
            f"{where}: {gap} bytes of unexpected data before the first member (junk prepended?)"
        )
    if gap < 0:
        raise FormatError(
            f"{where}: member {previous.name!r} overlaps {what} by {-gap} bytes "
            "(a zip bomb or a damaged file)"
        )
    raise FormatError(f"{where}: {gap} unexpected bytes between member {previous.name!r} and {what}")
