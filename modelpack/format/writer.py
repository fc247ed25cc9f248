"""Writing an ``.mpk`` archive (``spec/FORMAT.md`` §1), atomically and durably: the manifest
laid out once with a placeholder for each tensor's SHA-256 and read back as its reader would
(``check_reads_back``), the tensors' data written while their checksums are computed on the
other cores, then the headers, the manifest with its hashes, and the directories.
``container`` reads what this writes.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

import numpy as np

from ..errors import ModelpackError, SchemaError
from ..io import npz_write
from ..io.gcpause import cycle_collection_paused
from ..io.paths import PathOrFile, atomic_writer, describe, is_file_object
from ..io.workers import shared_pool
from ..io.writeback import WRITEBACK_CHUNK, start_writeback
from ..io.zipwrite import Piece, PlannedMember, ZipPlan
from . import schema
from .container import MANIFEST_HASH_PREFIX, MANIFEST_MEMBER, WEIGHTS_MEMBER
from .schema import FORMAT_VERSION, Manifest, manifest_to_yaml
from .tensor_index import TensorIndex

__all__ = ["write_archive", "check_reads_back"]


def write_archive(
    target: PathOrFile,
    manifest: Manifest,
    arrays: Mapping[str, np.ndarray],
    *,
    compress: bool = False,
) -> Manifest:
    """Write an archive atomically; the bytes depend only on the manifest and the arrays.

    Tensor hashes and the format version are filled in here, from the bytes being written;
    the manifest as written is returned (a sharded index records its shards' manifests).
    Every offset and CRC is known before the first byte is written (the bundle's CRC is
    combined from its members'), and when stored each tensor's data lands on a 64-byte
    boundary of the file, so readers can map it in place. The bundle is always a stored
    member; with compress=True its own members are deflated.

    The SHA-256s go into the manifest, which comes first in the file, but its length does not
    depend on them (64 hex digits each, in the JSON form), nor does any offset depend on a
    CRC-32: so the manifest is written out once with a placeholder for each hash and read
    back (a writer never writes what its reader refuses) before a byte is written; when
    writing to a path, the tensors' data goes to its place first, on its way to the disk
    (``io.writeback``), while the checksums are computed on the other cores; its flush
    starts, and the zip headers, the manifest (the hashes put in the placeholders' places)
    and the directories are written last. The slowest of hashing, writing and flushing sets
    the time, not their sum.
    """
    if list(manifest.weights) != list(arrays):
        raise ValueError("the manifest's weights index must list exactly the arrays, in order")
    with cycle_collection_paused():
        return _write_archive(target, manifest, arrays, compress)


def _write_archive(target: PathOrFile, manifest: Manifest, arrays: Mapping[str, np.ndarray],
                   compress: bool) -> Manifest:
    tensors = npz_write.Tensors.of(arrays)
    name = describe(target)
    checksums = tensors.checksums(shared_pool())  # CRC-32s and SHA-256s, while the rest goes on
    try:
        hashes, offsets = _lay_out_and_write(target, name, manifest, tensors, checksums, compress)
    finally:
        checksums.settle()  # returns at once, unless writing failed half-way
    return _with_hashes(manifest, tensors.names, hashes, offsets)


def _lay_out_and_write(target: PathOrFile, name: str, manifest: Manifest, tensors: npz_write.Tensors,
                       checksums: npz_write.PendingChecksums, compress: bool) -> tuple[list[str], list[int]]:
    """Write the archive as the checksums come in; returns the tensors' SHA-256s and offsets."""
    # Sizes and offsets do not depend on the CRCs: the bundle is laid out first, and the
    # manifest records where each tensor's member starts in it.
    bundle = tensors.plan([0] * len(tensors.names), compress=compress)  # CRCs to come
    offsets = [member.header_offset for member in bundle.members]
    draft = _Draft.of(manifest, tensors.names, offsets, name)
    if is_file_object(target) or draft.fill is None:
        # A caller's file is written in order; a block-form manifest may change length.
        crcs, hashes = checksums.result()
        bundle.set_crcs(crcs)
        bundle_crc = bundle.crc()
        if draft.fill is not None:
            raw = draft.fill(hashes)
        else:
            raw = manifest_to_yaml(_with_hashes(manifest, tensors.names, hashes, offsets)).encode("utf-8")
            check_reads_back(raw, name)
        with atomic_writer(target) as handle:
            _write_pieces(handle, _outer(raw, bundle, bundle_crc).pieces())
        return hashes, offsets
    # The tensors' data goes to its place first, while the checksums are computed; then the
    # flush starts (on its own thread), and headers, manifest and directories are written
    # once the checksums are known.
    start = _outer(draft.raw, bundle, 0).members[1].data_offset
    with atomic_writer(target) as handle, ThreadPoolExecutor(max_workers=1) as flusher:
        bulk = [(start + offset, piece) for offset, piece in bundle.bulk()]
        if bulk:
            checksums.hand_over(shared_pool())  # a small archive's, hashed while its data is written
        _write_placed(handle, bulk, hint=True)
        handle.flush()
        # A flush of its own while the checksums finish; a small file's is left to the
        # final fsync (each sync costs a journal commit).
        large = sum(piece.size for _, piece in bulk) > _EARLY_FLUSH
        flushed = flusher.submit(os.fdatasync, handle.fileno()) if large else None
        crcs, hashes = checksums.result()
        bundle.set_crcs(crcs)
        _write_placed(handle, [(start + offset, piece) for offset, piece in bundle.placed_but_bulk()])
        plan = _outer(draft.fill(hashes), bundle, bundle.crc())
        head, weights = plan.members
        if weights.data_offset != start:
            raise AssertionError("the manifest's length changed with its hashes")  # not reached
        handle.seek(0)
        handle.write(b"".join([head.local_header, *[p.data for p in head.data], weights.local_header]))
        handle.seek(weights.data_offset + weights.compressed_size)
        handle.write(plan.directory)
        if flushed is not None:
            flushed.result()
    return hashes, offsets


_PLACEHOLDER = "0" * 64  # a SHA-256 in hex, for laying the file out before the hashes are known
_PLACED = b'"sha256": "' + _PLACEHOLDER.encode("ascii") + b'"'  # how the JSON form writes one
_EARLY_FLUSH = WRITEBACK_CHUNK  # tensor bytes from which the data is flushed before the headers


@dataclass
class _Draft:
    """The manifest's bytes with a placeholder for each hash, read back as its reader would;
    ``fill`` puts the hashes in (None when the placeholders cannot be found for certain: the
    block form, or a ``"sha256": "000…"`` elsewhere in the manifest, e.g. in the metadata)."""

    raw: bytes
    fill: Callable[[list[str]], bytes] | None

    @classmethod
    def of(cls, manifest: Manifest, names: list[str], offsets: list[int], target: str) -> _Draft:
        placeholders = [_PLACEHOLDER] * len(names)
        raw = manifest_to_yaml(_with_hashes(manifest, names, placeholders, offsets)).encode("utf-8")
        parts = raw.split(_PLACED)
        if not raw.startswith(b"{") or len(parts) != len(names) + 1:
            return cls(raw, None)
        # The hashes are 64 hex digits like the placeholders, so the filled manifest reads
        # back exactly when this one does.
        check_reads_back(raw, target)

        def fill(hashes: list[str]) -> bytes:
            quoted = [b'"sha256": "' + digest.encode("ascii") + b'"' for digest in hashes]
            return b"".join([part for pair in zip(parts, quoted, strict=False) for part in pair] + parts[-1:])

        return cls(raw, fill)


def _with_hashes(manifest: Manifest, names: list[str], hashes: list[str], offsets: list[int]) -> Manifest:
    """``manifest`` at this writer's format version, each tensor recording its hash and where
    its member starts in the bundle."""
    weights = manifest.weights
    raw = weights.entries if isinstance(weights, TensorIndex) else None
    if raw is not None:
        entries = [(entry["dtype"], entry["shape"]) for entry in raw.values()]
    else:
        entries = [(info.dtype, info.shape) for info in weights.values()]
    index = {name: {"dtype": dtype, "shape": shape, "sha256": digest, "offset": offset}
             for name, (dtype, shape), digest, offset in zip(names, entries, hashes, offsets, strict=True)}
    copy = manifest.model_copy(update={"format_version": FORMAT_VERSION})
    # Validated as a reader validates it (as columns, when it can be), not entry by entry.
    Manifest.__pydantic_validator__.validate_assignment(copy, "weights", index)
    return copy


def _write_pieces(handle: IO[bytes], pieces: Iterable[Piece]) -> None:
    """Write pieces in order (tests stop this half-way)."""
    for piece in pieces:
        handle.write(piece.data)


def _write_placed(handle: IO[bytes], placed: list[tuple[int, Piece]], *, hint: bool = False) -> None:
    """Write pieces at their offsets (tests stop this half-way); with ``hint``, in slices, the
    disk's writing started after each ``WRITEBACK_CHUNK`` written, and for the rest at the
    end (each hint is a system call that queues the writes, ~40 µs)."""
    unhinted = placed[0][0] if placed else 0  # where the bytes not yet on their way start
    for offset, piece in placed:
        if handle.tell() != offset:
            handle.seek(offset)
        if not hint:
            handle.write(piece.data)
            continue
        data = memoryview(piece.data)
        for at in range(0, piece.size, WRITEBACK_CHUNK):
            handle.write(data[at : at + WRITEBACK_CHUNK])
            end = offset + min(at + WRITEBACK_CHUNK, piece.size)
            if end - unhinted >= WRITEBACK_CHUNK:
                start_writeback(handle.fileno(), unhinted, end - unhinted)
                unhinted = end
    if hint and placed and placed[-1][0] + placed[-1][1].size > unhinted:
        handle.flush()
        start_writeback(handle.fileno(), unhinted, placed[-1][0] + placed[-1][1].size - unhinted)


def _outer(manifest_bytes: bytes, bundle: ZipPlan, bundle_crc: int) -> ZipPlan:
    """The archive laid out around the bundle, whose bytes and CRC-32 it takes as they are."""
    comment = MANIFEST_HASH_PREFIX + hashlib.sha256(manifest_bytes).hexdigest().encode("ascii")
    return ZipPlan(
        [
            PlannedMember(MANIFEST_MEMBER, [Piece(manifest_bytes)]),
            PlannedMember(WEIGHTS_MEMBER, list(bundle.pieces(joined=False)), known_crc=bundle_crc),
        ],
        comment=comment,
    )


def check_reads_back(raw: bytes, target: str) -> None:
    """A writer never writes what its reader refuses: the manifest about to be written is
    read back with the reader's own rules and must come back the same (a value JSON or YAML
    cannot say, such as a NaN turned into null, would not), before the destination is
    touched. Resource limits are the reader's to choose (a large model needs raised ones),
    so they are not applied to what this process itself wrote."""
    where = f"{target}: {MANIFEST_MEMBER}"
    try:
        document = schema.parse_yaml(raw.decode("utf-8"), source=where, max_nodes=sys.maxsize)
        reread = schema.manifest_from_dict(document, source=where, max_architecture_nodes=sys.maxsize)
    except ModelpackError as exc:
        exc.args = (f"not written, as its reader would refuse it: {exc}",)  # same class, same fields
        raise
    if manifest_to_yaml(reread).encode("utf-8") != raw:
        raise SchemaError(f"{where}: not written: the manifest would not read back as written")
