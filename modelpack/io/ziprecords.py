"""Zip's records, signatures, flags and fixed field values, each declared once.

The strict reader (``zipread``, ``zipio``) and the one writer (``zipwrite``) take every layout
and constant from here, so what modelpack writes and what it accepts cannot drift apart.
Field names follow PKWARE's APPNOTE.TXT (section 4.3); every integer is little-endian. A
record is a ``NamedTuple`` of its fields plus a ``Layout`` (struct format and signature), so
code reads ``header.extra_length`` rather than ``fields[10]``.
"""

from __future__ import annotations

import re
import stat
import struct
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

__all__ = [
    "Layout", "LocalHeader", "CentralHeader", "EndRecord", "Zip64EndRecord", "Zip64Locator",
    "LOCAL", "CENTRAL", "END", "ZIP64_END", "ZIP64_LOCATOR", "ZIP64_END_LEAD", "DESCRIPTOR_SIZES",
    "DESCRIPTOR_SIGNATURE", "DESCRIPTOR_FIELDS",
    "EXTRA_HEADER", "ZIP64_EXTRA_ID", "ZIPALIGN_EXTRA_ID", "ZIPALIGN_MIN",
    "STORED", "DEFLATED", "UTF8_FLAG", "DESCRIPTOR_FLAG", "ENCRYPTION_FLAGS",
    "MAX_16", "MAX_32", "MAX_COMMENT", "VERSION_DEFAULT", "VERSION_ZIP64",
    "UNIX", "UNIX_SYSTEMS", "MADE_BY", "DOS_DATE", "DOS_TIME", "EXTERNAL_ATTR", "DOS_DIRECTORY",
]

R = TypeVar("R", bound=tuple[Any, ...])


class Layout(Generic[R]):
    """One record's struct format and signature, packed from and unpacked to named fields."""

    def __init__(self, record: Callable[..., R], fmt: str, signature: bytes) -> None:
        self.record, self.struct, self.signature = record, struct.Struct(fmt), signature
        self.size = self.struct.size
        fields = getattr(record, "_fields", ())
        if len(fields) != len(self.struct.unpack(bytes(self.size))) or fields[:1] != ("signature",):
            raise TypeError(f"{getattr(record, '__name__', record)}: fields {fields} do not match {fmt!r}")

    def unpack_from(self, buffer: bytes, offset: int = 0) -> R:
        """The record at ``offset``; its signature is the caller's to check (errors differ)."""
        return self.record(*self.struct.unpack_from(buffer, offset))

    def columns(self) -> np.dtype:
        """The record as a packed numpy dtype, one named field per record field, for reading
        many records at once (``zipbatch``): the same layout as ``struct``'s."""
        codes = {"H": "<u2", "I": "<u4", "Q": "<u8"}
        parts = []
        for repeat, code in re.findall(r"(\d*)([sHIQ])", self.struct.format):
            if code == "s":  # the signature, compared as a little-endian integer
                parts.append("<u4" if repeat == "4" else f"V{repeat}")
            else:
                parts += [codes[code]] * int(repeat or 1)
        return np.dtype(list(zip(self.record._fields, parts, strict=True)))  # type: ignore[attr-defined]

    def pack(self, **fields: int) -> bytes:
        """The record's bytes, signature included; every other field must be named."""
        return self.struct.pack(*self.record(signature=self.signature, **fields))


class LocalHeader(NamedTuple):
    """Before each member's data (APPNOTE 4.3.7)."""

    signature: bytes
    version_needed: int
    flags: int
    method: int
    time: int
    date: int
    crc: int
    compressed_size: int
    size: int
    name_length: int
    extra_length: int


class CentralHeader(NamedTuple):
    """One entry of the central directory (APPNOTE 4.3.12)."""

    signature: bytes
    made_by: int  # high byte: the writer's system (3 = Unix); low byte: its spec version
    version_needed: int
    flags: int
    method: int
    time: int
    date: int
    crc: int
    compressed_size: int
    size: int
    name_length: int
    extra_length: int
    comment_length: int
    disk: int
    internal_attr: int
    external_attr: int  # on Unix systems, the high 16 bits are a st_mode
    header_offset: int


class EndRecord(NamedTuple):
    """End of central directory record, the last thing in a zip but its comment (4.3.16)."""

    signature: bytes
    disk: int
    directory_disk: int
    disk_entries: int
    entries: int
    directory_size: int
    directory_offset: int
    comment_length: int


class Zip64EndRecord(NamedTuple):
    """Zip64 end of central directory record: the 64-bit counts and offsets (4.3.14)."""

    signature: bytes
    record_size: int  # bytes after this field: the record's size less ZIP64_END_LEAD
    made_by: int
    version_needed: int
    disk: int
    directory_disk: int
    disk_entries: int
    entries: int
    directory_size: int
    directory_offset: int


class Zip64Locator(NamedTuple):
    """Zip64 end of central directory locator, just before the end record (4.3.15)."""

    signature: bytes
    disk: int
    record_offset: int
    disks: int


LOCAL = Layout(LocalHeader, "<4s5H3I2H", b"PK\x03\x04")
CENTRAL = Layout(CentralHeader, "<4s6H3I5H2I", b"PK\x01\x02")
END = Layout(EndRecord, "<4s4H2IH", b"PK\x05\x06")
ZIP64_END = Layout(Zip64EndRecord, "<4sQ2H2I4Q", b"PK\x06\x06")
ZIP64_LOCATOR = Layout(Zip64Locator, "<4sIQI", b"PK\x06\x07")
ZIP64_END_LEAD = 12  # the signature and record_size fields, which record_size does not count

# A data descriptor follows a member's data when flag 0x8 is set: an optional 4-byte
# signature, the CRC-32, then both sizes in 4 or (zip64) 8 bytes each (APPNOTE 4.3.9).
DESCRIPTOR_SIZES = tuple(sorted(signature + 4 + 2 * width for signature in (0, 4) for width in (4, 8)))
DESCRIPTOR_SIGNATURE = b"PK\x07\x08"  # required by modelpack's reader in the 16- and 24-byte forms
# The fields after the optional signature, by their length: CRC-32 and two 32- or 64-bit sizes.
DESCRIPTOR_FIELDS = {12: struct.Struct("<3I"), 20: struct.Struct("<I2Q")}

# Extra fields: a 2-byte id and 2-byte payload size, then the payload (APPNOTE 4.5).
EXTRA_HEADER = struct.Struct("<HH")
ZIP64_EXTRA_ID = 0x0001  # 8-byte size, compressed size, offset (4-byte disk): saturated fields only
ZIPALIGN_EXTRA_ID = 0xD935  # Android zipalign's: a 2-byte alignment, then zeros (padding)
ZIPALIGN_MIN = EXTRA_HEADER.size + 2  # the smallest alignment extra field

# Compression methods this package reads and writes.
STORED, DEFLATED = 0, 8

# General-purpose flag bits.
UTF8_FLAG = 0x800  # the name is UTF-8 (else code page 437)
DESCRIPTOR_FLAG = 0x8  # CRC and sizes follow the data; the local header's are zeros
ENCRYPTION_FLAGS = 0x1 | 0x40 | 0x2000  # traditional, strong, central-directory encryption

# A 16- or 32-bit field holding its maximum defers to the zip64 record or extra field.
MAX_16, MAX_32 = 0xFFFF, 0xFFFFFFFF
MAX_COMMENT = MAX_16

# What the writer records; fixed so that the same members always give the same bytes.
VERSION_DEFAULT, VERSION_ZIP64 = 20, 45  # "version needed": 2.0 (deflate), 4.5 (zip64)
UNIX = 3
UNIX_SYSTEMS = (UNIX, 19)  # Unix, OS X: systems whose external attributes carry a st_mode
MADE_BY = (UNIX << 8) | VERSION_ZIP64
DOS_DATE, DOS_TIME = (0 << 9) | (1 << 5) | 1, 0  # 1980-01-01 00:00:00, zip's earliest time
# A Unix mode in the high 16 bits: the file type says regular file (S_IFREG), rw-r--r--
# (spec/FORMAT.md §1; readers also take the type bits 0 that writers before 1.1's rule set).
EXTERNAL_ATTR = (stat.S_IFREG | 0o644) << 16
DOS_DIRECTORY = 0x10  # the MS-DOS directory attribute (low byte of the external attributes)
