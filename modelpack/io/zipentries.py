"""The zip directory entry by entry: the exact checks, and the message for each refusal.

``zipread`` finds the directory; this module vets each central entry (names, methods,
attributes, zip64 fields) and each local header against it, and checks that the members tile
the file. ``zipbatch`` runs the same checks on whole columns at once for large directories and
comes back here whenever anything is off, so every refusal is worded in one place.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence

from ..errors import FormatError, LimitError
from .zipio import Member, Source
from .ziprecords import (
    CENTRAL,
    DEFLATED,
    DESCRIPTOR_FIELDS,
    DESCRIPTOR_FLAG,
    DESCRIPTOR_SIGNATURE,
    DESCRIPTOR_SIZES,
    DOS_DIRECTORY,
    ENCRYPTION_FLAGS,
    EXTRA_HEADER,
    LOCAL,
    MAX_16,
    MAX_32,
    STORED,
    UNIX_SYSTEMS,
    UTF8_FLAG,
    ZIP64_EXTRA_ID,
)

__all__ = [
    "central_entries", "central_member", "locate_data", "local_member", "check_name", "check_ratio",
    "decode_name", "zip64_fields",
]

_CONTROL = re.compile("[\x00-\x1f\x7f]")
_FILE_TYPE = 0o170000  # the file type bits of a Unix mode (stat.S_IFMT)
_ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[/\\])")
# Anything check_name may refuse: a control character or backslash, a leading "/" or drive,
# a ".." component, a trailing "/".
_SUSPECT = re.compile(r"[\x00-\x1f\x7f\\]|\A/|\A[A-Za-z]:|(?:\A|/)\.\.(?:/|\Z)|/\Z")
# External attributes _check_file_type may refuse: a Unix file type other than a regular
# file's, or the MS-DOS directory bit (a regular file's type bits, or none, pass whatever
# the system that made the entry).
_SUSPECT_ATTR = ((_FILE_TYPE & ~stat.S_IFREG) << 16) | DOS_DIRECTORY
# A zip64 extra field holding all three 8-byte fields a central entry may saturate.
_ZIP64_EXTRA_MOST = EXTRA_HEADER.size + 3 * 8


def central_entries(raw: bytes, count: int, where: str) -> list[Member]:
    """Every central entry of ``raw`` vetted; the fields read as a plain tuple, and the rare
    cases (zip64 fields, a non-regular file type, a suspect name) checked by helpers only when
    an entry has one (an open runs this loop for two small zips: it is kept short)."""
    members: list[Member] = []
    seen: set[str] = set()
    position = 0
    unpack, fixed, signature, end = CENTRAL.struct.unpack_from, CENTRAL.size, CENTRAL.signature, len(raw)
    for index in range(count):
        if position + fixed > end:
            raise FormatError(f"{where}: the zip directory ends after {index} of its {count} entries")
        (magic, made_by, _, flags, method, _, _, crc, compressed, size, name_length, extra_length,
         comment_length, disk, _, external, offset) = unpack(raw, position)
        if magic != signature:
            raise FormatError(f"{where}: zip directory entry {index} is damaged (bad signature)")
        start = position + fixed
        position = start + name_length + extra_length + comment_length
        if position > end:
            raise FormatError(f"{where}: zip directory entry {index} runs past the directory")
        raw_name = raw[start : start + name_length]
        name = raw_name.decode("ascii") if raw_name.isascii() else decode_name(raw_name, flags, where)
        if not name or _SUSPECT.search(name):
            check_name(name, where)
        if name in seen:
            raise FormatError(f"{where}: duplicate member {name!r}")
        seen.add(name)
        if MAX_32 in (size, compressed, offset) or disk == MAX_16:
            extra = raw[start + name_length : start + name_length + extra_length]
            size, compressed, offset, disk = zip64_fields(extra, size, compressed, offset, disk, where, name)
        if disk != 0:
            raise FormatError(f"{where}: member {name!r} lies on another disk of a split archive")
        if flags & ENCRYPTION_FLAGS:
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
        if external & _SUSPECT_ATTR:  # (a plain file's attributes never need the full check)
            _check_file_type(name, made_by >> 8, external, where)
        members.append(Member(name, method, flags, crc, compressed, size, offset, -1))
    if position != end:
        raise FormatError(
            f"{where}: the zip directory holds {end - position} bytes beyond its {count} "
            "entries (more members than the end record declares?)"
        )
    return members


def decode_name(raw: bytes, flags: int, where: str) -> str:
    try:  # (ASCII reads the same in both, and the cp437 codec is slower)
        return raw.decode("utf-8") if flags & UTF8_FLAG or raw.isascii() else raw.decode("cp437")
    except UnicodeDecodeError:
        raise FormatError(f"{where}: member name {raw!r} is not valid UTF-8") from None


def check_name(name: str, where: str) -> None:
    """Refuse names that are not plain relative paths (traversal, absolute, NUL, backslash)."""
    if name and not _SUSPECT.search(name):
        return  # (one search clears a plain name; the checks below word a refusal)
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


def zip64_fields(
    extra: bytes, size: int, compressed: int, offset: int, disk: int, where: str, name: str
) -> tuple[int, int, int, int]:
    """Replace saturated 32-bit fields by the zip64 extra field's values, in APPNOTE order."""
    if size != MAX_32 and compressed != MAX_32 and offset != MAX_32 and disk != MAX_16:
        return size, compressed, offset, disk
    wanted = [size == MAX_32, compressed == MAX_32, offset == MAX_32, disk == MAX_16]
    position = 0
    while position + EXTRA_HEADER.size <= len(extra):
        kind, length = EXTRA_HEADER.unpack_from(extra, position)
        body = extra[position + EXTRA_HEADER.size : position + EXTRA_HEADER.size + length]
        position += EXTRA_HEADER.size + length
        if kind != ZIP64_EXTRA_ID:
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
    kind = (external >> 16) & _FILE_TYPE  # 0 when a writer set permissions only
    if system in UNIX_SYSTEMS and kind not in (0, stat.S_IFREG):
        if kind == stat.S_IFLNK:
            raise FormatError(f"{where}: member {name!r} is a symbolic link")
        raise FormatError(f"{where}: member {name!r} is not a regular file (mode {external >> 16:#o})")
    if external & DOS_DIRECTORY:
        raise FormatError(f"{where}: member {name!r} is a directory")


def check_ratio(member: Member, where: str, max_ratio: float, grace: int) -> None:
    if member.method == DEFLATED and member.size > grace and member.size > max_ratio * member.compressed_size:
        ratio = member.size / max(member.compressed_size, 1)
        raise LimitError(
            f"{where}: member {member.name!r}", "its compression ratio", round(ratio),
            limit="max_compression_ratio", allowed=max_ratio,
            note=f" ({member.size} bytes from {member.compressed_size}; a zip bomb?)",
        )


_HEAD = 4 << 10  # read at the first member: a page


# After a local header, its name and an extra field of up to this many bytes (zipalign's
# padding, a zip64 field), the first bytes of the data: an .npy member's header, which a
# tensor's reader then finds already read (``Source.read_at``).
_EXTRA_GUESS, _DATA_AHEAD = 128, 256


def header_guess(member: Member) -> int:
    """Bytes that usually hold a local header, its name, a padding extra field and the first
    ``_DATA_AHEAD`` bytes of the data."""
    return header_guess_for(member.name)


def locate_data(source: Source, members: list[Member], directory_offset: int) -> list[Member]:
    """Check each local header against the directory; members must tile the file exactly."""
    where = source.where
    located: dict[int, Member] = {}
    expected_offset = 0
    previous: Member | None = None
    if source.fd is None:  # a remote file fetches the headers read below in one batch
        source.announce((m.header_offset, header_guess(m)) for m in members)
    offsets = [m.header_offset for m in members]
    order: Sequence[int] = range(len(offsets))
    if offsets != sorted(offsets):
        order = sorted(order, key=offsets.__getitem__)
    unpack, fixed, signature = LOCAL.struct.unpack_from, LOCAL.size, LOCAL.signature
    for index in order:
        member = members[index]
        header_offset = member.header_offset
        if header_offset + fixed > directory_offset:
            raise FormatError(
                f"{where}: member {member.name!r} starts at offset {header_offset}, past the "
                f"end of the member data ({directory_offset})"
            )
        if header_offset != expected_offset or (previous is not None and previous.flags & DESCRIPTOR_FLAG):
            _check_gap(header_offset, expected_offset, previous, where, source=source)
        # One read usually covers the header, the name, a padding extra field and the start of
        # the data (header_guess).
        guess = min(header_guess(member), directory_offset - header_offset)
        if previous is None and source.fd is not None and source.cached(header_offset, guess) is None:
            # A local file's head, kept: the first headers and, in modelpack's files, the manifest.
            block = source.prefetch(header_offset, min(_HEAD, directory_offset - header_offset))
        else:
            block = source.read_at(header_offset, guess)
        magic, _, flags, method, _, _, crc, compressed, size, name_length, extra_length = unpack(block)
        if magic != signature:
            raise FormatError(
                f"{where}: member {member.name!r} has no local header at offset {header_offset}"
            )
        name_start = header_offset + fixed
        if fixed + name_length + extra_length <= len(block):
            raw_name = block[fixed : fixed + name_length + extra_length]
        else:
            raw_name = source.read_at(name_start, name_length + extra_length)
        local_name = raw_name[:name_length]
        if local_name.isascii():
            same_name = local_name.decode("ascii") == member.name
        else:
            same_name = decode_name(local_name, flags, where) == member.name
        if not same_name:
            raise FormatError(f"{where}: member {member.name!r} is called {local_name!r} in its local header")
        if (flags ^ member.flags) & DESCRIPTOR_FLAG:
            # Bit 3 decides whether a reader takes the CRC and sizes from here or from a
            # descriptor after the data: both records must say the same.
            raise FormatError(
                f"{where}: member {member.name!r}: flag bit 3 (data descriptor) is "
                f"{'set' if flags & DESCRIPTOR_FLAG else 'clear'} in its local header but not "
                "in the zip directory"
            )
        if flags & DESCRIPTOR_FLAG and (crc, compressed, size) == (0, 0, 0):
            # The writer did not know them yet: the real values follow the data (checked there).
            crc, compressed, size = member.crc, member.compressed_size, member.size
        elif size == MAX_32 or compressed == MAX_32:
            extra = raw_name[name_length:]
            size, compressed, _, _ = zip64_fields(extra, size, compressed, 0, 0, where, member.name)
        local = (method, flags & ENCRYPTION_FLAGS, crc, compressed, size)
        if local != (member.method, member.flags & ENCRYPTION_FLAGS, member.crc,
                     member.compressed_size, member.size):
            # Tools that read local headers (streaming unzip) would see another file than we do.
            raise FormatError(
                f"{where}: member {member.name!r}: its local header (method, encryption, CRC-32, "
                f"sizes {local}) disagrees with the zip directory"
            )
        data_offset = name_start + name_length + extra_length
        lead = block[data_offset - header_offset : data_offset - header_offset + _DATA_AHEAD]
        if lead:
            source.keep_lead(data_offset, lead)
        located[index] = Member(*member[:-1], data_offset)
        expected_offset = data_offset + member.compressed_size
        previous = member
    _check_gap(directory_offset, expected_offset, previous, where, at_directory=True, source=source)
    return [located[i] for i in range(len(members))]


def local_member(source: Source, offset: int, name: str, what: str) -> Member | None:
    """The stored member ``name`` whose local header starts at ``offset``, checked on its own
    (its CRC-32 and sizes taken from it), for reading one member without the zip directory;
    None when it needs the directory (deflated, or its sizes follow in a data descriptor).
    ``what`` says where the offset came from, for the refusal when no such header is there."""
    where = source.where
    if not 0 <= offset <= source.size - LOCAL.size:
        raise FormatError(
            f"{where}: {what} is offset {offset}, where no local header fits ({source.size} bytes)"
        )
    block = source.read_at(offset, min(header_guess_for(name), source.size - offset))
    fields = LOCAL.struct.unpack_from(block)
    magic, _, flags, method, _, _, crc, compressed, size, name_length, extra_length = fields
    fixed = LOCAL.size
    if magic != LOCAL.signature:
        raise FormatError(f"{where}: {what} is offset {offset}, where no zip local header starts")
    if fixed + name_length + extra_length > len(block):
        block = block[:fixed] + source.read_at(offset + fixed, name_length + extra_length)
    raw_name = block[fixed : fixed + name_length]
    found = raw_name.decode("ascii") if raw_name.isascii() else decode_name(raw_name, flags, where)
    if found != name:
        raise FormatError(f"{where}: {what} is offset {offset}, where member {found!r} starts, not {name!r}")
    if flags & ENCRYPTION_FLAGS:
        raise FormatError(f"{where}: member {name!r} is encrypted")
    if method != STORED or flags & DESCRIPTOR_FLAG:
        return None
    if size == MAX_32 or compressed == MAX_32:
        extra = block[fixed + name_length : fixed + name_length + extra_length]
        size, compressed, _, _ = zip64_fields(extra, size, compressed, 0, 0, where, name)
    if compressed != size:
        raise FormatError(f"{where}: member {name!r} is stored but declares {size} bytes in {compressed}")
    data_offset = offset + fixed + name_length + extra_length
    if data_offset + size > source.size:
        raise FormatError(f"{where}: member {name!r} runs past the end: {size} bytes at offset {data_offset}")
    return Member(name, method, flags, crc, compressed, size, offset, data_offset)


def central_member(source: Source, position: int, name: str) -> Member | None:
    """The central entry at ``position``, if it is one for a stored member ``name`` as writers
    commonly make it (no comment, no extra field but a zip64 one holding exactly its saturated
    fields, a regular file, not encrypted), with no data offset (-1); None for anything else,
    which the whole directory's checks then word."""
    encoded = name.encode()
    fixed = CENTRAL.size + len(encoded)
    if not 0 <= position <= source.size - fixed:
        return None
    raw = source.read_at(position, min(fixed + _ZIP64_EXTRA_MOST, source.size - position))
    (magic, _, _, flags, method, _, _, crc, compressed, stored_size, name_length, extra_length,
     comment_length, disk, _, external, offset) = CENTRAL.struct.unpack_from(raw)
    if (magic != CENTRAL.signature or raw[CENTRAL.size : fixed] != encoded or comment_length
            or disk or flags & ENCRYPTION_FLAGS or method != STORED or external & _SUSPECT_ATTR
            or name_length != len(encoded)):
        return None
    saturated = (compressed, stored_size, offset).count(MAX_32)
    if extra_length != (EXTRA_HEADER.size + 8 * saturated if saturated else 0):
        return None
    if fixed + extra_length > len(raw):  # the source ends inside it
        return None
    if saturated:
        if EXTRA_HEADER.unpack_from(raw, fixed) != (ZIP64_EXTRA_ID, 8 * saturated):
            return None
        extra = raw[fixed : fixed + extra_length]
        stored_size, compressed, offset, _ = zip64_fields(extra, stored_size, compressed, offset, 0,
                                                          source.where, name)
    return Member(name, method, flags, crc, compressed, stored_size, offset, -1)


def header_guess_for(name: str) -> int:
    """``header_guess`` of a member called ``name``."""
    return LOCAL.size + len(name.encode()) + _EXTRA_GUESS + _DATA_AHEAD


def _check_gap(
    offset: int,
    expected: int,
    previous: Member | None,
    where: str,
    *,
    at_directory: bool = False,
    source: Source | None = None,
) -> None:
    """Between members only a data descriptor may sit, and only after a member whose flag
    bit 3 is set (which must have one); anything else is junk or overlap."""
    gap = offset - expected
    what = "the zip directory" if at_directory else "the next member"
    if previous is not None and gap < 0:
        raise FormatError(
            f"{where}: member {previous.name!r} overlaps {what} by {-gap} bytes "
            "(a zip bomb or a damaged file)"
        )
    if previous is not None and previous.flags & DESCRIPTOR_FLAG:
        if gap not in DESCRIPTOR_SIZES:
            raise FormatError(
                f"{where}: member {previous.name!r} sets flag bit 3, but {gap} bytes, not a data "
                f"descriptor (12, 16, 20 or 24 bytes), lie between its data and {what}"
            )
        assert source is not None
        _check_descriptor(source.read_at(expected, gap), previous, where)
        return
    if gap == 0:
        return
    if previous is None:
        raise FormatError(
            f"{where}: {gap} bytes of unexpected data before the first member (junk prepended?)"
        )
    raise FormatError(f"{where}: {gap} unexpected bytes between member {previous.name!r} and {what}")


def _check_descriptor(raw: bytes, member: Member, where: str) -> None:
    """A data descriptor must repeat the directory's CRC-32 and sizes (each length has one
    layout: an optional signature, the CRC-32, then 32- or 64-bit sizes)."""
    signed = len(raw) in (16, 24)
    if signed and raw[:4] != DESCRIPTOR_SIGNATURE:
        raise FormatError(
            f"{where}: the {len(raw)} bytes after member {member.name!r} are not a data descriptor "
            "(no PK\\x07\\x08 signature)"
        )
    body = raw[4:] if signed else raw
    crc, compressed, size = DESCRIPTOR_FIELDS[len(body)].unpack(body)
    if (crc, compressed, size) != (member.crc, member.compressed_size, member.size):
        raise FormatError(
            f"{where}: member {member.name!r}: its data descriptor (CRC-32 {crc:08x}, sizes "
            f"{compressed}/{size}) disagrees with the zip directory (CRC-32 {member.crc:08x}, "
            f"sizes {member.compressed_size}/{member.size})"
        )
