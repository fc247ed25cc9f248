"""Byte-level tools for tests that build archives modelpack would never write.

``raw_zip`` writes any zip structure (names with NUL, symlink modes, encryption flags, sizes
that lie), independently of both ``zipfile`` and modelpack's reader, so the reader is tested
against bytes it did not produce. The other helpers rebuild valid archives with one thing
changed, re-hashing the manifest so that the change reaches the check under test.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from modelpack.format.container import MANIFEST_HASH_PREFIX

_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01


@dataclass
class RawEntry:
    """One member as raw_zip writes it; ``data`` is the stored (maybe compressed) bytes."""

    name: bytes
    data: bytes
    method: int = 0
    flags: int = 0
    crc: int | None = None  # default: CRC-32 of ``plain`` (or of ``data``)
    size: int | None = None  # declared uncompressed size; default len(plain or data)
    plain: bytes | None = None  # the uncompressed bytes, for a deflated member
    create_system: int = 3
    external_attr: int = 0o644 << 16
    local_name: bytes | None = None
    extra: bytes = b""
    local_flags: int | None = None  # default: ``flags``, as in the directory
    local_zeroed: bool = False  # CRC-32 and sizes written as zeros in the local header
    descriptor: bytes = b""  # bytes written right after the data (a data descriptor, or junk)


def raw_zip(
    entries: list[RawEntry],
    *,
    comment: bytes = b"",
    prefix: bytes = b"",
    suffix: bytes = b"",
    declared_count: int | None = None,
) -> bytes:
    """A zip built field by field; ``prefix``/``suffix`` add junk around it (offsets unadjusted)."""
    out = io.BytesIO()
    central = []
    for entry in entries:
        plain = entry.plain if entry.plain is not None else entry.data
        crc = zlib.crc32(plain) if entry.crc is None else entry.crc
        size = len(plain) if entry.size is None else entry.size
        local_name = entry.name if entry.local_name is None else entry.local_name
        offset = out.tell()
        local_flags = entry.flags if entry.local_flags is None else entry.local_flags
        local = (0, 0, 0) if entry.local_zeroed else (crc, len(entry.data), size)
        out.write(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, local_flags, entry.method, 0,
                              _DOS_DATE, *local, len(local_name), len(entry.extra)))
        out.write(local_name + entry.extra + entry.data + entry.descriptor)
        central.append(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, entry.create_system, 20, 0,
                                   entry.flags, entry.method, 0, _DOS_DATE, crc, len(entry.data), size,
                                   len(entry.name), len(entry.extra), 0, 0, 0, entry.external_attr, offset)
                       + entry.name + entry.extra)
    directory_offset = out.tell()
    for record in central:
        out.write(record)
    count = len(entries) if declared_count is None else declared_count
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, out.tell() - directory_offset,
                          directory_offset, len(comment)))
    out.write(comment)
    return prefix + out.getvalue() + suffix


def raw_archive(manifest: bytes | RawEntry, bundle: bytes | RawEntry, *extra: RawEntry) -> bytes:
    """An .mpk written by ``raw_zip``: the manifest and the bundle (bytes, or entries with odd
    fields), then ``extra`` members, with the manifest's hash in the comment."""
    first = manifest if isinstance(manifest, RawEntry) else RawEntry(b"manifest.yaml", manifest)
    second = bundle if isinstance(bundle, RawEntry) else RawEntry(b"weights.npz", bundle)
    text = first.plain if first.plain is not None else first.data
    return raw_zip([first, second, *extra], comment=manifest_comment(text))


def deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def npy(array: np.ndarray) -> bytes:
    """An .npy file as numpy writes it (any dtype numpy can write without pickle)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def npy_with_header(header: str, data: bytes) -> bytes:
    """An .npy file with a hand-written header dict literal (padded as format 1.0 wants)."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data



_CRC_TABLE = [zlib.crc32(bytes([i])) ^ zlib.crc32(b"\x00") for i in range(256)]  # (the register steps)
_CRC_INDEX = {entry >> 24: i for i, entry in enumerate(_CRC_TABLE)}  # a top byte names its entry


def crc32_suffix(prefix: bytes, target: int) -> bytes:
    """Four bytes that, appended to ``prefix``, make its CRC-32 ``target`` (CRC-32 is linear:
    the four register steps are found backwards from ``target``, then bytes that take them).
    For tests where a checksum must agree with data that is wrong in another way."""
    register, wanted = zlib.crc32(prefix) ^ 0xFFFFFFFF, target ^ 0xFFFFFFFF
    steps = []
    for _ in range(4):
        index = _CRC_INDEX[wanted >> 24]
        steps.append(index)
        wanted = ((wanted ^ _CRC_TABLE[index]) << 8) & 0xFFFFFFFF
    suffix = bytearray()
    for index in reversed(steps):
        suffix.append((register ^ index) & 0xFF)
        register = (register >> 8) ^ _CRC_TABLE[index]
    assert zlib.crc32(prefix + bytes(suffix)) == target
    return bytes(suffix)

def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def stored_zip(members: dict[str, bytes] | list[tuple[str, bytes]], *, comment: bytes = b"") -> bytes:
    """A plain stored zip of ``members`` (names as zipfile allows them)."""
    buffer = io.BytesIO()
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are the point, sometimes
        for name, content in items:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
        archive.comment = comment
    return buffer.getvalue()


class Unseekable(io.RawIOBase):
    """A readable stream that cannot seek, as a pipe or a socket is."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def streamed_zip(members: dict[str, bytes], *, comment: bytes = b"") -> bytes:
    """A zip as ``zipfile`` writes it to a pipe: deflated members, each followed by a data
    descriptor (its sizes and CRC-32 are known only after its data)."""

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:  # type: ignore[no-untyped-def]
            self.chunks.append(bytes(data))
            return len(data)

    pipe = Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            with zf.open(name, "w") as member:
                member.write(content)
        zf.comment = comment
    return b"".join(pipe.chunks)


def manifest_comment(manifest: bytes) -> bytes:
    return MANIFEST_HASH_PREFIX + hashlib.sha256(manifest).hexdigest().encode()


def archive(manifest: bytes, bundle: bytes, *, extra: list[tuple[str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    """An .mpk of these member bytes, with the manifest hash in the comment."""
    return stored_zip([("manifest.yaml", manifest), ("weights.npz", bundle), *extra],
                      comment=manifest_comment(manifest))


def edit(data: bytes, *, manifest: Callable[[dict], object] | None = None,
         bundle: Callable[[dict[str, bytes]], object] | None = None, rehash: bool = True) -> bytes:
    """Rebuild a valid archive with its manifest dict and/or its bundle members edited in place.

    A rebuilt bundle moves its members: the offsets the manifest records (format 1.5) are moved
    with them, so that only the edit is wrong. ``rehash=False`` keeps the comment's hash of the
    manifest as it was before ``manifest`` edited it."""
    members = members_of(data)
    raw_manifest, raw_bundle = members["manifest.yaml"], members["weights.npz"]
    document = yaml.safe_load(raw_manifest) if manifest is not None or bundle is not None else None
    if manifest is not None:
        manifest(document)
    if bundle is not None:
        inner = members_of(raw_bundle)
        bundle(inner)
        raw_bundle = stored_zip(inner)
        moved = _repoint_offsets(document, raw_bundle)
        if moved and manifest is None:
            raw_manifest = yaml.safe_dump(document, sort_keys=False).encode()
    if manifest is not None:
        raw_manifest = yaml.safe_dump(document, sort_keys=False).encode()
    comment = manifest_comment(raw_manifest) if rehash or manifest is None else members_comment(data)
    return stored_zip([("manifest.yaml", raw_manifest), ("weights.npz", raw_bundle)], comment=comment)


def with_offsets(manifest: bytes, bundle: bytes) -> bytes:
    """``manifest`` with each recorded tensor offset where ``bundle`` holds the member (for a
    bundle built by hand); unchanged when none moved."""
    document = yaml.safe_load(manifest)
    return yaml.safe_dump(document, sort_keys=False).encode() if _repoint_offsets(document, bundle) else manifest


def _repoint_offsets(document: Any, bundle: bytes) -> bool:
    """Each recorded tensor offset set to where ``bundle`` now holds the tensor's member;
    whether any moved."""
    weights = document.get("weights") if isinstance(document, dict) else None
    if not isinstance(weights, dict):
        return False
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        starts = {info.filename: info.header_offset for info in zf.infolist()}
    moved = False
    for name, entry in weights.items():
        start = starts.get(f"{name}.npy")
        if isinstance(entry, dict) and "offset" in entry and start is not None and entry["offset"] != start:
            entry["offset"], moved = start, True
    return moved


def members_comment(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.comment


def central_offsets(data: bytes) -> list[int]:
    """Where each of the outer zip's central directory entries starts (for patching fields)."""
    end = data.rindex(b"PK\x05\x06")
    count, size, offset = struct.unpack_from("<HLL", data, end + 10)
    positions, at = [], offset
    for _ in range(count):
        positions.append(at)
        name, extra, comment = struct.unpack_from("<HHH", data, at + 28)
        at += 46 + name + extra + comment
    return positions


def edit_file(path: Path, **changes: Any) -> Path:
    """``edit`` applied in place to the archive file at ``path``; returns ``path``."""
    path.write_bytes(edit(path.read_bytes(), **changes))
    return path


def npy_header_end(data: bytes, at: int = 0) -> int:
    """Where the data of the .npy file starting at ``at`` begins (after its 1.0 header)."""
    return at + 10 + struct.unpack_from("<H", data, at + 8)[0]


def member_data_offsets(data: bytes, base: int = 0) -> dict[str, int]:
    """Where each member's data starts, read from its local header (plus ``base``: where a
    nested zip starts in the file around it)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        offsets = {}
        for info in zf.infolist():
            name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
            offsets[info.filename] = base + info.header_offset + 30 + name_length + extra_length
    return offsets


def tensor_data_offsets(data: bytes) -> dict[str, int]:
    """Each tensor's first data byte (after its npy header) in an archive whose members are
    stored, as an offset into ``data``, in bundle order."""
    bundle_at = member_data_offsets(data)["weights.npz"]
    inner = member_data_offsets(members_of(data)["weights.npz"], base=bundle_at)
    return {member[:-4]: npy_header_end(data, offset) for member, offset in inner.items()}
