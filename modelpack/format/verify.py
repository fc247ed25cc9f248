"""``modelpack.verify``: check every checksum an archive records, and report every problem.

``load`` stops at the first problem and, by default, checks what it reads with zip's CRC-32
(see ``spec/FORMAT.md`` §7 for why). ``verify`` is the thorough pass: it streams the whole
file once, memory bounded by a chunk whatever the archive's size, and checks

- the zip structure of the archive and of the bundle (names, sizes, offsets, limits);
- the CRC-32 of every member, the outer ``weights.npz`` included (so the bundle's own zip
  headers are covered too), and the manifest's SHA-256 from the zip comment;
- the manifest (YAML, version, schema) and that the architecture's parameters are the ones
  the manifest lists, with their shapes and dtypes;
- every tensor: its header against the manifest, and its SHA-256.

It reports each problem and carries on where it can; it raises only if the file cannot be
opened at all (``OSError``).

>>> report = modelpack.verify("mlp.mpk")  # doctest: +SKIP
>>> report.ok, report.problems            # doctest: +SKIP
(True, [])
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import FormatError, IntegrityError, ModelpackError
from ..io import npz
from ..io.checksums import crc32, crc32_combine
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.paths import PathOrFile, describe, open_for_reading
from ..io.zipio import STORED, MemberReader, Source
from ..nn.graph import GraphBlock
from ..nn.graph_spec import constant_name
from ..nn.parameter import shapes_compatible
from ..nn.ties import apply_ties
from . import architecture, schema
from .container import MANIFEST_MEMBER, WEIGHTS_MEMBER, Container
from .schema import Manifest, TensorInfo

__all__ = ["verify", "VerifyReport"]

T = TypeVar("T")
_CHUNK = 1 << 20
_TASK_BYTES = 4 << 20  # smaller tensors are hashed together, in tasks of about this size
_COMBINE_FROM = 64 << 10  # members this large are combined into the bundle's CRC, not read again
_WORKERS = max(1, min(4, os.cpu_count() or 1))

# Per-tensor results in VerifyReport.tensors.
OK = "ok"
CRC_ONLY = "ok (CRC-32; the archive records no SHA-256)"


@dataclass
class VerifyReport:
    """What ``verify`` found: ``ok`` is true exactly when ``problems`` is empty.

    ``tensors`` maps each tensor name to ``"ok"`` or to what is wrong with it; ``notes`` says
    what could not be checked (e.g. a format 1.0 archive records no SHA-256).
    """

    path: str
    format_version: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tensors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        version = f" (format {self.format_version})" if self.format_version else ""
        if self.ok:
            count = len(self.tensors)
            lines = [f"{self.path}: OK{version}, {count} tensor{'s' if count != 1 else ''} verified"]
        else:
            count = len(self.problems)
            lines = [f"{self.path}: {count} problem{'s' if count != 1 else ''}{version}"]
            lines += [f"  - {problem}" for problem in self.problems]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def verify(path: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> VerifyReport:
    """Check everything an archive records about itself; never raises for damaged bytes."""
    report = VerifyReport(path=describe(path))
    with open_for_reading(path) as handle, contextlib.ExitStack() as cleanup:
        container = _attempt(report, Container.open, handle, report.path, limits)
        if container is None:
            return report
        manifest = _check_manifest(container, limits, report)
        _check_bundle(container, manifest, limits, report, cleanup)
        if manifest is not None and manifest.kind == "sharded":
            from .shards import verify_shards  # the index's shards, each verified whole

            verify_shards(path, manifest, limits, report)
        elif manifest is not None and manifest.architecture is not None:
            _check_architecture(manifest, report)
    return report


def _attempt(report: VerifyReport, step: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run one check; a ModelpackError becomes a reported problem and ``None``."""
    try:
        return step(*args, **kwargs)
    except ModelpackError as exc:
        report.problems.append(str(exc))
        return None


def _check_manifest(container: Container, limits: Limits, report: VerifyReport) -> Manifest | None:
    def damaged(exc: ModelpackError) -> None:
        report.problems.append(str(exc))

    raw = _attempt(report, container.manifest_bytes, limits, damaged=damaged)
    if raw is None:
        return None
    document = _attempt(report, container.manifest_document, raw, limits)
    if document is None:
        return None
    where = f"{report.path}: {MANIFEST_MEMBER}"
    version = _attempt(report, schema.check_format_version, document, source=where)
    if version is None:
        return None
    report.format_version = f"{version[0]}.{version[1]}"
    _attempt(report, container.check_member_set)
    _attempt(report, container.check_manifest_hash, raw, version)
    return _attempt(report, container.validate_manifest, document, version, limits)


def _check_bundle(
    container: Container,
    manifest: Manifest | None,
    limits: Limits,
    report: VerifyReport,
    cleanup: contextlib.ExitStack,
) -> None:
    member = container.members.get(WEIGHTS_MEMBER)
    if member is None:
        return  # reported by the member-set check
    outer_at = len(report.problems)  # the bundle's own CRC is reported first, when it is known
    source = _attempt(report, container.bundle_source, limits, cleanup)
    bundle = (
        _attempt(report, npz.Bundle, source, limits=limits, max_inflated=container.inflate_left)
        if source is not None
        else None
    )
    if source is None or bundle is None:
        if member.method == STORED:
            _report_at(report, outer_at, _attempt(report, _stream, MemberReader(container.source, member)))
        return
    listed = manifest.weights if manifest is not None else {}
    known = _check_tensors(bundle, manifest, listed, report)
    if member.method == STORED:
        # The bundle's CRC-32 covers its own zip headers, which reading tensors does not:
        # combined from the tensors' CRCs just computed and the bytes between them.
        crc = _bundle_crc(source, bundle, known)
        if crc != member.crc:
            report.problems.insert(outer_at, (
                f"{container.name}: member {WEIGHTS_MEMBER!r} is damaged: CRC-32 is {crc:08x}, the "
                f"zip directory records {member.crc:08x}"
            ))
    for name in listed:
        if name not in bundle.members:
            report.problems.append(
                f"{source.where}: tensor {name!r} listed in the manifest is missing from the bundle"
            )
            report.tensors[name] = "missing"


def _report_at(report: VerifyReport, index: int, result: object) -> None:
    """Move the problem ``_attempt`` just appended (if any) to ``index``."""
    if result is None and len(report.problems) > index:
        report.problems.insert(index, report.problems.pop())


def _check_tensors(
    bundle: npz.Bundle, manifest: Manifest | None, listed: Mapping[str, TensorInfo], report: VerifyReport
) -> dict[str, int]:
    """Every tensor's header, CRC-32 and SHA-256, stored tensors on all cores; returns the
    CRC-32 of each large stored member, for the bundle's own CRC."""
    where = bundle.source.where
    results: dict[str, str | ModelpackError] = {}
    located: list[npz.TensorLocation] = []
    for name in bundle.members:
        info = listed.get(name)
        if manifest is not None and info is None:
            report.problems.append(f"{where}: holds tensor {name!r}, which the manifest does not list")
        try:
            location = bundle.locate(name, info) if bundle.source.fd is not None else None
            if location is None:  # deflated, or no descriptor to read in place: streamed
                results[name] = bundle.digest(name, info)
            else:
                located.append(location)
        except ModelpackError as exc:
            results[name] = exc
    known: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        fd = bundle.source.fd
        hash_batch = functools.partial(_hash_batch, fd if fd is not None else -1)  # (-1: nothing located)
        for batch in pool.map(hash_batch, _batches(located)):
            for location, crc, digest in batch:
                if crc != location.member_crc:
                    results[location.name] = IntegrityError(
                        f"{location.where} is damaged: CRC-32 is {crc:08x}, the zip directory records "
                        f"{location.member_crc:08x}"
                    )
                else:
                    results[location.name] = digest
                    if location.nbytes >= _COMBINE_FROM:
                        known[location.name] = crc
    unhashed = False
    for name in bundle.members:
        info, result = listed.get(name), results[name]
        try:
            if isinstance(result, ModelpackError):
                raise result
            if info is not None and info.sha256 is not None:
                npz.check_sha256(where, name, info.sha256, result)
        except ModelpackError as exc:
            report.problems.append(str(exc))
            report.tensors[name] = "damaged" if isinstance(exc, IntegrityError) else "invalid"
            continue
        hashed = info is not None and info.sha256 is not None
        unhashed |= not hashed
        report.tensors[name] = OK if hashed else CRC_ONLY
    if unhashed and manifest is not None:
        report.notes.append("tensors without a recorded SHA-256 (format 1.0) were checked by CRC-32 only")
    return known


def _batches(located: list[npz.TensorLocation]) -> Iterator[list[npz.TensorLocation]]:
    """Tasks of about ``_TASK_BYTES``: one per large tensor, small ones together."""
    batch: list[npz.TensorLocation] = []
    size = 0
    for location in located:
        batch.append(location)
        size += location.nbytes
        if size >= _TASK_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _hash_batch(fd: int, batch: list[npz.TensorLocation]) -> list[tuple[npz.TensorLocation, int, str]]:
    """Each tensor's member CRC-32 and data SHA-256, read in chunks with positioned reads
    (memory: one chunk per thread); reading and hashing release the GIL."""
    buffer = memoryview(bytearray(min(_CHUNK, max((loc.nbytes for loc in batch), default=0))))
    out = []
    for location in batch:
        crc, digest, done = location.header_crc, hashlib.sha256(), 0
        while done < location.nbytes:
            count = os.preadv(fd, [buffer[: min(_CHUNK, location.nbytes - done)]], location.offset + done)
            if count <= 0:
                raise FormatError(f"{location.where} is truncated: the file ends inside its data")
            piece = buffer[:count]
            crc = crc32(piece, crc)
            digest.update(piece)
            done += count
        out.append((location, crc, digest.hexdigest()))
    return out


def _bundle_crc(source: Source, bundle: npz.Bundle, known: Mapping[str, int]) -> int:
    """CRC-32 of the bundle's bytes: members whose CRC is ``known`` combined, the rest read."""
    crc, position = 0, 0
    members = sorted(((bundle.members[name], known[name]) for name in known), key=lambda m: m[0].data_offset)
    for member, member_crc in members:
        crc = _crc_range(source, position, member.data_offset, crc)
        crc = crc32_combine(crc, member_crc, member.compressed_size)
        position = member.data_offset + member.compressed_size
    return _crc_range(source, position, source.size, crc)


def _crc_range(source: Source, start: int, end: int, crc: int) -> int:
    while start < end:
        count = min(_CHUNK, end - start)
        crc = crc32(source.read_at(start, count), crc)
        start += count
    return crc


def _stream(reader: MemberReader) -> None:
    while reader.remaining:
        reader.read(_CHUNK)
    reader.finish()


def _check_architecture(manifest: Manifest, report: VerifyReport) -> None:
    """The parameters the architecture creates are exactly the listed ones (no data needed)."""
    assert manifest.architecture is not None
    where = f"{report.path}: {MANIFEST_MEMBER}"
    try:
        net = architecture.build(manifest.architecture, source=where)
        apply_ties(net, manifest.ties or {}, where)
    except ModelpackError as exc:
        report.problems.append(str(exc))
        return
    params = net.collect_params()
    constants = _constant_names(net)
    listed = {name: info for name, info in schema.model_weights(manifest).items() if name not in constants}
    for name, param in params.items():
        info = listed.get(name)
        if info is None:
            report.problems.append(f"{where}: the architecture has parameter {name!r}, which `weights` lacks")
        elif info.dtype != param.dtype.name or not shapes_compatible(param.shape, tuple(info.shape)):
            report.problems.append(
                f"{where}: parameter {name!r} is {param.dtype.name} {param.shape} in the architecture, "
                f"{info.dtype} {tuple(info.shape)} in the weights index"
            )
        else:
            _attempt(report, architecture.check_backed, name, tuple(info.shape), report.path)
    for name in listed:
        if name not in params:
            report.problems.append(f"{where}: tensor {name!r} is not a parameter of the architecture")
    for name in sorted(constants - set(manifest.weights)):
        report.problems.append(f"{where}: the graph reads constant {name!r}, which `weights` lacks")


def _constant_names(net: Any) -> set[str]:
    """Bundle names of graph constants (``P#const<k>``), which are not parameters."""
    names: set[str] = set()
    for path, block in net.named_blocks():
        if isinstance(block, GraphBlock):
            names.update(constant_name(path, i) for i in range(block.constant_count))
    return names
