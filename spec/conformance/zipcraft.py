"""Byte-level builders for conformance archives: any zip, any manifest text, any .npy.

Independent of modelpack's writer on purpose: a valid vector built here is a second
writer's output, and an invalid one can carry exactly one defect. Everything a field can
hold is settable, so each refusal rule of spec/FORMAT.md gets an archive that breaks it and
nothing else.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

LOCAL, CENTRAL, EOCD = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
EOCD64, LOCATOR, DESCRIPTOR = b"PK\x06\x06", b"PK\x06\x07", b"PK\x07\x08"
DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
REGULAR = 0o100644 << 16
HASH_PREFIX = b"modelpack-manifest-sha256:"
U32 = 0xFFFFFFFF


def deflate(data: bytes, level: int = 9) -> bytes:
    """A raw deflate stream (RFC 1951, no zlib header), as zip's method 8 stores it."""
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


@dataclass
class Entry:
    """One member. Declared fields default to the truth about ``data``; override to lie."""

    name: bytes
    data: bytes
    method: int = 0
    stored: bytes | None = None  # the bytes in the file; default: data, or its deflate stream
    flags: int | None = None  # default: bit 11 when the name is not ASCII
    crc: int | None = None
    size: int | None = None  # declared uncompressed size
    csize: int | None = None  # declared compressed size
    made_by: int = (3 << 8) | 20
    external: int = REGULAR
    local_name: bytes | None = None
    local_method: int | None = None
    local_flags: int | None = None
    local_crc: int | None = None
    local_size: int | None = None
    zip64: bool = False  # sizes (and offset) through zip64 extra fields, 32-bit fields saturated
    descriptor: bytes | None = None  # written after the data (flag bit 3 is set for it)
    local_extra: bytes = b""
    central_extra: bytes = b""
    header_offset: int | None = None  # declared in the directory; default: the true offset

    def file_bytes(self) -> bytes:
        if self.stored is not None:
            return self.stored
        return deflate(self.data) if self.method == 8 else self.data


@dataclass
class Layout:
    """Where things landed, for patching bytes after the fact."""

    local_offsets: list[int] = field(default_factory=list)
    central_offsets: list[int] = field(default_factory=list)
    directory_offset: int = 0
    eocd_offset: int = 0


def make_zip(
    entries: list[Entry],
    *,
    comment: bytes = b"",
    gaps: dict[int, bytes] | None = None,
    count: int | None = None,
    directory_offset: int | None = None,
    directory_size: int | None = None,
    zip64_end: bool = False,
    eocd64_fields: dict[str, int] | None = None,
    eocd_disk: int = 0,
    locator_disks: int = 1,
    layout: Layout | None = None,
) -> bytes:
    """A zip of ``entries`` in order; ``gaps[i]`` bytes are put before entry i's header
    (``gaps[len(entries)]`` before the directory)."""
    gaps = gaps or {}
    layout = layout if layout is not None else Layout()
    out = io.BytesIO()
    central = []
    for index, entry in enumerate(entries):
        out.write(gaps.get(index, b""))
        stored = entry.file_bytes()
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        size = len(entry.data) if entry.size is None else entry.size
        csize = len(stored) if entry.csize is None else entry.csize
        flags = entry.flags if entry.flags is not None else (0 if entry.name.isascii() else 0x800)
        if entry.descriptor is not None:
            flags |= 0x8
        offset = out.tell()
        layout.local_offsets.append(offset)
        local_flags = flags if entry.local_flags is None else entry.local_flags
        local_name = entry.name if entry.local_name is None else entry.local_name
        local_method = entry.method if entry.local_method is None else entry.local_method
        local_crc = crc if entry.local_crc is None else entry.local_crc
        local_size = size if entry.local_size is None else entry.local_size
        local_extra = entry.local_extra
        if entry.zip64:
            local_extra = struct.pack("<HHQQ", 1, 16, local_size, csize) + local_extra
            local_sizes = (U32, U32)
        else:
            local_sizes = (csize, local_size)
        if local_flags & 0x8:
            local_crc, local_sizes = 0, (0, 0)
        out.write(struct.pack("<4s5H3L2H", LOCAL, 45 if entry.zip64 else 20, local_flags, local_method,
                              0, DOS_DATE, local_crc, *local_sizes, len(local_name), len(local_extra)))
        out.write(local_name + local_extra + stored)
        if entry.descriptor is not None:
            out.write(entry.descriptor)
        declared_offset = offset if entry.header_offset is None else entry.header_offset
        central_extra = entry.central_extra
        if entry.zip64:
            central_extra = struct.pack("<HHQQQ", 1, 24, size, csize, declared_offset) + central_extra
            fields = (U32, U32, U32)
        else:
            fields = (csize, size, declared_offset)
        central.append((struct.pack("<4s6H3L5H2L", CENTRAL, entry.made_by, 45 if entry.zip64 else 20,
                                    flags, entry.method, 0, DOS_DATE, crc, fields[0], fields[1],
                                    len(entry.name), len(central_extra), 0, 0, 0, entry.external,
                                    fields[2]), entry.name + central_extra))
    out.write(gaps.get(len(entries), b""))
    start = out.tell()
    layout.directory_offset = start
    for fixed, rest in central:
        layout.central_offsets.append(out.tell())
        out.write(fixed + rest)
    size = out.tell() - start
    number = len(entries) if count is None else count
    offset_field = start if directory_offset is None else directory_offset
    size_field = size if directory_size is None else directory_size
    if zip64_end:
        values = {"count": number, "size": size_field, "offset": offset_field, "disk": 0}
        values.update(eocd64_fields or {})
        record_offset = out.tell()
        out.write(struct.pack("<4sQ2H2L4Q", EOCD64, 44, (3 << 8) | 45, 45, values["disk"], 0,
                              values["count"], values["count"], values["size"], values["offset"]))
        out.write(struct.pack("<4sLQL", LOCATOR, 0, record_offset, locator_disks))
        number, size_field, offset_field = 0xFFFF, U32, U32
    layout.eocd_offset = out.tell()
    out.write(struct.pack("<4s4H2LH", EOCD, eocd_disk, 0, number, number, size_field, offset_field,
                          len(comment)))
    out.write(comment)
    return out.getvalue()


# -- .npy ----------------------------------------------------------------------------------

def npy(array: np.ndarray, *, version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npy file as NumPy writes it (C order unless the array is Fortran-ordered)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    return buffer.getvalue()


def npy_raw(header: str | bytes, data: bytes, *, version: tuple[int, int] = (1, 0),
            length: int | None = None, magic: bytes = b"\x93NUMPY") -> bytes:
    """An .npy with a hand-written header text (padded with spaces to 64, ending in a newline)."""
    text = header.encode("latin1") if isinstance(header, str) else header
    width = 2 if version == (1, 0) else 4
    pad = -(len(magic) + 2 + width + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    declared = len(text) if length is None else length
    return magic + bytes(version) + declared.to_bytes(width, "little") + text + data


def header_text(descr: str = "<f4", fortran: str = "False", shape: str = "(2, 3)") -> str:
    return f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}"


# -- manifests -----------------------------------------------------------------------------

def json_form(value: Any, indent: str = "") -> str:
    """The manifest's JSON form (spec §2.1): floats with a point and a signed exponent."""
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = [f"{inner}{json.dumps(key)}: {json_form(item, inner)}" for key, item in value.items()]
        return "{\n" + ",\n".join(parts) + "\n" + indent + "}"
    if isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            return "[" + ", ".join(json_form(item, inner) for item in value) + "]"
        return "[\n" + ",\n".join(inner + json_form(item, inner) for item in value) + "\n" + indent + "]"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("the JSON form has no non-finite floats")
        mantissa, _, exponent = repr(value).partition("e")
        mantissa += "" if "." in mantissa else ".0"
        if exponent and exponent[0] not in "+-":
            exponent = "+" + exponent
        return mantissa + (f"e{exponent}" if exponent else "")
    raise TypeError(type(value))


def tensor_info(array: np.ndarray, *, sha256: bool = True) -> dict[str, Any]:
    info: dict[str, Any] = {"dtype": array.dtype.name, "shape": list(array.shape)}
    if sha256:
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
        info["sha256"] = hashlib.sha256(data.reshape(-1).view(np.uint8).data).hexdigest()
    return info


def hash_comment(manifest: bytes) -> bytes:
    return HASH_PREFIX + hashlib.sha256(manifest).hexdigest().encode("ascii")


@dataclass
class Archive:
    """An archive as parts: manifest text, bundle entries, outer options; ``bytes()`` builds it."""

    manifest: bytes
    bundle: list[Entry]
    comment: bytes | None = None  # default: the manifest's hash
    outer_manifest: Entry | None = None  # overrides for the outer entries (data is replaced)
    outer_weights: Entry | None = None
    extra_members: list[Entry] = field(default_factory=list)
    bundle_options: dict[str, Any] = field(default_factory=dict)
    outer_options: dict[str, Any] = field(default_factory=dict)
    weights_first: bool = False

    def bundle_bytes(self) -> bytes:
        return make_zip(self.bundle, **self.bundle_options)

    def __bytes__(self) -> bytes:
        manifest = replace(self.outer_manifest or Entry(b"manifest.yaml", b""), data=self.manifest)
        weights = replace(self.outer_weights or Entry(b"weights.npz", b""), data=self.bundle_bytes())
        members = [weights, manifest] if self.weights_first else [manifest, weights]
        comment = hash_comment(self.manifest) if self.comment is None else self.comment
        return make_zip(members + self.extra_members, comment=comment, **self.outer_options)
