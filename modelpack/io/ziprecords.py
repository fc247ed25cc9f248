"""Zip's records, signatures, flags and fixed field values, each declared once.

The strict reader (``zipread``, ``zipio``) and the one writer (``zipwrite``) take every layout
and constant from here, so what modelpack writes and what it accepts cannot drift apart.
Field names follow PKWARE's APPNOTE.TXT (section 4.3); every integer is little-endian. A
record is declared as its fields, each with its struct code (``name:H``), from which come its
struct format, a named tuple of its fields and a numpy dtype, so code reads
``header.extra_length`` rather than ``fields[10]``.
"""

from __future__ import annotations

import collections
import stat
import struct
from typing import Any

import numpy as np

__all__ = [
    "Layout", "LOCAL", "CENTRAL", "END", "ZIP64_END", "ZIP64_LOCATOR", "ZIP64_END_LEAD",
    "DESCRIPTOR_SIZES", "DESCRIPTOR_SIGNATURE", "DESCRIPTOR_FIELDS",
    "EXTRA_HEADER", "ZIP64_EXTRA_ID", "ZIPALIGN_EXTRA_ID", "ZIPALIGN_MIN",
    "STORED", "DEFLATED", "UTF8_FLAG", "DESCRIPTOR_FLAG", "ENCRYPTION_FLAGS",
    "MAX_16", "MAX_32", "MAX_COMMENT", "VERSION_DEFAULT", "VERSION_ZIP64",
    "UNIX", "UNIX_SYSTEMS", "MADE_BY", "DOS_DATE", "DOS_TIME", "EXTERNAL_ATTR", "DOS_DIRECTORY",
]

_CODES = {"H": "<u2", "I": "<u4", "Q": "<u8"}  # struct code → numpy type, little-endian


class Layout:
    """One record: a 4-byte signature, then ``fields`` (``"name:H name:I ..."``, in order),
    packed from and unpacked to named fields."""

    def __init__(self, name: str, signature: bytes, fields: str) -> None:
        pairs = [field.partition(":")[::2] for field in fields.split()]
        for field_name, code in pairs:
            if code not in _CODES:
                raise ValueError(f"{name}: field {field_name}:{code} needs a struct code H, I or Q")
        self.fields = ("signature", *(field_name for field_name, _ in pairs))
        self.record: Any = collections.namedtuple(name, self.fields)  # type: ignore[misc]
        self.struct = struct.Struct("<4s" + "".join(code for _, code in pairs))
        self.signature, self.size = signature, self.struct.size
        # the signature compared as a little-endian integer
        self._columns = np.dtype([("signature", "<u4"), *((f, _CODES[code]) for f, code in pairs)])

    def unpack_from(self, buffer: bytes, offset: int = 0) -> Any:
        """The record at ``offset``; its signature is the caller's to check (errors differ)."""
        return self.record._make(self.struct.unpack_from(buffer, offset))

    def columns(self) -> np.dtype:
        """The record as a packed numpy dtype, one named field per record field, for reading
        many records at once (``zipbatch``): the same layout as ``struct``'s."""
        return self._columns

    def pack(self, **fields: int) -> bytes:
        """The record's bytes, signature included; every other field must be named."""
        return self.struct.pack(*self.record(signature=self.signature, **fields))


# What a local header and a central directory entry share, in this order.
_ENTRY = ("version_needed:H flags:H method:H time:H date:H crc:I compressed_size:I size:I "
          "name_length:H extra_length:H")
# Before each member's data (APPNOTE 4.3.7).
LOCAL = Layout("LocalHeader", b"PK\x03\x04", _ENTRY)
# One entry of the central directory (4.3.12). made_by: high byte the writer's system (3 =
# Unix), low byte its spec version; external_attr: on Unix systems the high 16 bits are a
# st_mode.
CENTRAL = Layout("CentralHeader", b"PK\x01\x02", f"made_by:H {_ENTRY} comment_length:H disk:H "
                 "internal_attr:H external_attr:I header_offset:I")
# End of central directory record, the last thing in a zip but its comment (4.3.16).
END = Layout("EndRecord", b"PK\x05\x06", "disk:H directory_disk:H disk_entries:H entries:H "
             "directory_size:I directory_offset:I comment_length:H")
# Zip64 end of central directory record: the 64-bit counts and offsets (4.3.14); record_size
# counts the bytes after itself (the record's size less ZIP64_END_LEAD).
ZIP64_END = Layout("Zip64EndRecord", b"PK\x06\x06", "record_size:Q made_by:H version_needed:H disk:I "
                   "directory_disk:I disk_entries:Q entries:Q directory_size:Q directory_offset:Q")
# Zip64 end of central directory locator, just before the end record (4.3.15).
ZIP64_LOCATOR = Layout("Zip64Locator", b"PK\x06\x07", "disk:I record_offset:Q disks:I")
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
