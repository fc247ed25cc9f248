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
import itertools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar, cast

from ..errors import IntegrityError, ModelpackError
from ..io import npy, npz, workers
from ..io.checksums import crc32, crc32_combine
from ..io.gcpause import cycle_collection_paused
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.paths import PathOrFile, describe, open_for_reading
from ..io.zipio import STORED, MemberReader, MemberTable, Source
from . import bundle_scan, schema, tensor_index
from .container import MANIFEST_MEMBER, WEIGHTS_MEMBER, Container
from .schema import Manifest, TensorInfo
from .tensor_index import TensorIndex

__all__ = ["verify", "VerifyReport"]

T = TypeVar("T")
_CHUNK = 1 << 20

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


def verify(path: PathOrFile, *, limits: Limits = DEFAULT_LIMITS, follow_shards: bool = True) -> VerifyReport:
    """Check everything an archive records about itself; never raises for damaged bytes.
    ``follow_shards=False`` (a shard's own check) leaves an index's shards unread: a shard
    naming the index, or another index, is then reported by the shard check, not followed."""
    report = VerifyReport(path=describe(path))
    with open_for_reading(path) as handle, contextlib.ExitStack() as cleanup, cycle_collection_paused():
        container = _attempt(report, Container.open, handle, report.path, limits)
        if container is None:
            return report
        manifest = _check_manifest(container, limits, report)
        _check_bundle(container, manifest, limits, report, cleanup)
        if manifest is not None and manifest.kind == "sharded":
            if follow_shards:
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
    ranges, entries = _check_tensors(bundle, manifest, listed, report)
    # Every member listed (no more tensors listed) at the offset recorded: none misplaced,
    # found by comparing two columns (10,000 tensors: ~1 ms less than building a mapping).
    starts = _table(bundle).column("header_offset")
    if not (entries.every and len(listed) == len(starts) and entries.offsets == starts):
        for name, problem in bundle.misplaced(tensor_index.offsets(listed)):
            report.problems.append(str(problem))
            report.tensors[name] = "invalid"
    if member.method == STORED:
        # The bundle's CRC-32 covers its own zip headers, which reading tensors does not:
        # combined from the CRC-32s of the ranges just read and the bytes between them.
        crc = _bundle_crc(source, ranges)
        if crc != member.crc:
            report.problems.insert(outer_at, (
                f"{container.name}: member {WEIGHTS_MEMBER!r} is damaged: CRC-32 is {crc:08x}, the "
                f"zip directory records {member.crc:08x}"
            ))
    stored = set(bundle.members)
    for name in listed if not stored.issuperset(listed) else ():
        if name not in stored:
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
) -> tuple[list[tuple[int, int, int]], _Listed]:
    """Every tensor's header, CRC-32 and SHA-256, in one pass over the stored bytes on all
    cores (``bundle_scan``); returns the CRC-32 of each byte range that pass read
    (``(start, length, crc)``, file offsets), for the bundle's own CRC-32, and the members'
    entries."""
    where, names = bundle.source.where, list(bundle.members)
    if manifest is not None and not (names == list(listed) or set(names) <= set(listed)):
        report.problems += [f"{where}: holds tensor {name!r}, which the manifest does not list"
                            for name in names if name not in listed]
    entries = _entries(names, listed)
    fd = bundle.source.fd
    pool = workers.shared_pool()  # started once per process (~0.15 ms a start, 7% of a 1 MB verify)
    candidates = _candidates(bundle, entries) if fd is not None else bundle_scan.Candidates()
    scanned = bundle_scan.Scan()
    if fd is not None and len(candidates):
        scanned = bundle_scan.scan(fd, candidates, pool, where)
    problems: dict[int, ModelpackError] = {}
    _compare(scanned, candidates, entries, bundle, problems)
    # (each member is a candidate at most once: when all are, none is left over)
    vouched = set(candidates.member) if len(candidates) != len(names) else None
    others = [index for index in range(len(names)) if index not in vouched] if vouched is not None else []
    if False in scanned.headers_match:
        others += [candidates.member[k] for k, match in enumerate(scanned.headers_match) if not match]
    # Positioned reads may run in parallel; a file object's one position may not.
    run = pool.map if fd is not None else map
    for index, outcome in zip(others, run(lambda i: _check_one(bundle, names[i], entries.entry(i)), others),
                              strict=True):
        if outcome is not None:
            problems[index] = outcome
        else:
            problems.pop(index, None)
    hashed = None not in entries.hashes  # (None also where a member is not listed)
    if hashed:  # (the usual archive: one value for every name)
        report.tensors.update(dict.fromkeys(names, OK))
    else:
        report.tensors.update(zip(names, [CRC_ONLY if h is None else OK for h in entries.hashes],
                                  strict=True))
    for index in sorted(problems):
        exc = problems[index]
        report.problems.append(str(exc))
        report.tensors[names[index]] = "damaged" if isinstance(exc, IntegrityError) else "invalid"
    if not hashed and manifest is not None:
        report.notes.append("tensors without a recorded SHA-256 (format 1.0) were checked by CRC-32 only")
    return scanned.ranges, entries


_Entry = tuple[str, list[int], "str | None"]  # dtype, shape, sha256 of a listed tensor


class _Listed(NamedTuple):
    """Each bundle member's manifest entry as columns, None in each where the manifest does
    not list it (a column costs less than a tuple per member: 10,000 are built per verify)."""

    dtypes: list[str | None]
    shapes: list[list[int] | None]
    hashes: list[str | None]  # also None for a listed tensor without one (format 1.0)
    offsets: list[int | None]  # also None for a listed tensor without one (before format 1.5)
    every: bool  # every member is listed

    def entry(self, index: int) -> _Entry | None:
        dtype, shape = self.dtypes[index], self.shapes[index]
        return None if dtype is None or shape is None else (dtype, shape, self.hashes[index])


def _entries(names: list[str], listed: Mapping[str, TensorInfo]) -> _Listed:
    """Each member's manifest entry, without building a TensorInfo per tensor when the index
    was checked as columns."""
    raw = listed.entries if isinstance(listed, TensorIndex) else None
    if raw is not None:
        found = list(map(raw.get, names))
        if None not in found:  # every member listed: the fields taken as columns
            every = cast("list[dict[str, Any]]", found)
            return _Listed(list(map(_DTYPE, every)), list(map(_SHAPE, every)),
                           list(map(dict.get, every, itertools.repeat("sha256"))),
                           list(map(dict.get, every, itertools.repeat("offset"))), True)
        rows = [(e["dtype"], e["shape"], e.get("sha256"), e.get("offset")) if e is not None else _UNLISTED
                for e in found]
    else:
        infos = [listed.get(name) for name in names]
        rows = [(i.dtype, i.shape, i.sha256, i.offset) if i is not None else _UNLISTED for i in infos]
    dtypes, shapes, hashes, offsets = ([list(column) for column in zip(*rows, strict=True)] if rows
                                       else [[], [], [], []])
    return _Listed(dtypes, shapes, hashes, offsets, None not in dtypes)


_UNLISTED = (None, None, None, None)
_DTYPE, _SHAPE = operator.itemgetter("dtype"), operator.itemgetter("shape")


def _candidates(bundle: npz.Bundle, entries: _Listed) -> bundle_scan.Candidates:
    """The stored, listed members whose size fits the manifest's dtype and shape, in file order.

    Taken as columns by C-level maps: each distinct (dtype, shape) is looked up once (a model
    has a handful), and a member costs a few steps of builtins, not a loop step of Python."""
    table = _table(bundle)
    fields = ("method", "size", "header_offset", "data_offset")
    method, size, local, data_offset = (table.column(name) for name in fields)
    if entries.every:
        keys: list[tuple[str, tuple[int, ...]] | None] = list(
            zip(entries.dtypes, map(tuple, entries.shapes), strict=True)  # type: ignore[arg-type]
        )
    else:
        keys = [(dtype, tuple(shape)) if dtype is not None and shape is not None else None
                for dtype, shape in zip(entries.dtypes, entries.shapes, strict=True)]
    headers = {key: npy.header_for(*key) if key is not None else None for key in set(keys)}
    # A member fits when it is stored and holds exactly its header and data (-1: no header).
    fits = {key: -1 if found is None else len(found[0]) + found[1] for key, found in headers.items()}
    fitting = map(operator.eq, map(fits.__getitem__, keys), size)
    if method.count(STORED) != len(method):
        fitting = map(operator.and_, fitting, map(STORED.__eq__, method))
    chosen = list(itertools.compress(range(len(keys)), fitting))
    starts = list(map(data_offset.__getitem__, chosen))
    in_order = all(map(operator.le, starts, starts[1:]))
    if not in_order:  # another writer's order
        chosen.sort(key=data_offset.__getitem__)
        starts.sort()
    header_of = {key: found[0] for key, found in headers.items() if found is not None}
    # (every member chosen, in order: the usual archive, whose keys are the chosen ones')
    chosen_keys = keys if in_order and len(chosen) == len(keys) else map(keys.__getitem__, chosen)
    base = bundle.source.start
    data = [base + start for start in starts]
    return bundle_scan.Candidates(
        chosen,
        [base + local[index] for index in chosen],
        data,
        list(map(operator.add, data, map(size.__getitem__, chosen))),
        list(map(header_of.__getitem__, chosen_keys)),
    )


def _table(bundle: npz.Bundle) -> MemberTable:
    """The bundle's members as columns (how a bundle keeps them)."""
    table = bundle.members
    if not isinstance(table, MemberTable):
        table = MemberTable.of([table[name] for name in table]).renamed(list(table))
    return table


def _compare(scanned: bundle_scan.Scan, candidates: bundle_scan.Candidates,
             entries: _Listed, bundle: npz.Bundle, problems: dict[int, ModelpackError]) -> None:
    """Each scanned member's CRC-32 and SHA-256 against the records, compared as whole columns;
    only a mismatch is looked at member by member."""
    table, where = _table(bundle), bundle.source.where
    recorded = table.column("crc")
    expected = list(map(recorded.__getitem__, candidates.member))
    if scanned.crcs != expected:
        for member, crc, want in zip(candidates.member, scanned.crcs, expected, strict=True):
            if crc != want:
                problems[member] = IntegrityError(
                    f"{where}: member {table.names[member]!r} is damaged: CRC-32 is {crc:08x}, "
                    f"the zip directory records {want:08x}"
                )
    hashes = list(map(entries.hashes.__getitem__, candidates.member))
    pairs = None
    if None in hashes:  # format 1.0 records none: those are checked by CRC-32 alone
        pairs = [pair for pair in zip(candidates.member, scanned.digests, hashes, strict=True)
                 if pair[2] is not None]
        digests, recorded_hashes = [pair[1] for pair in pairs], [pair[2] for pair in pairs]
    else:
        digests, recorded_hashes = scanned.digests, hashes
    if b"".join(digests) == bytes.fromhex("".join(recorded_hashes)):  # type: ignore[arg-type]
        return
    if pairs is None:  # (built only when some digest differs: 10,000 tuples cost ~0.4 ms)
        pairs = list(zip(candidates.member, scanned.digests, hashes, strict=True))
    tensors = list(table)
    for member, digest, recorded_hash in pairs:
        if digest.hex() != recorded_hash and member not in problems:
            try:
                npz.check_sha256(where, tensors[member], recorded_hash, digest.hex())  # type: ignore[arg-type]
            except IntegrityError as exc:
                problems[member] = exc


def _check_one(bundle: npz.Bundle, name: str, entry: _Entry | None) -> ModelpackError | None:
    """One member the scan could not vouch for, entry by entry (streamed, header parsed):
    the reader's own checks, whose errors name what is wrong."""
    want = _Want(*entry) if entry is not None else None
    try:
        digest = bundle.digest(name, want)
        if want is not None and want.sha256 is not None:
            npz.check_sha256(bundle.source.where, name, want.sha256, digest)
    except ModelpackError as exc:
        return exc
    return None


@dataclass
class _Want:
    """A manifest entry as the npy reader checks it (``ExpectedTensor``)."""

    dtype: str
    shape: list[int]
    sha256: str | None


def _bundle_crc(source: Source, ranges: list[tuple[int, int, int]]) -> int:
    """CRC-32 of the bundle's bytes: the ranges already read combined, the rest read."""
    crc, position = 0, 0
    for start, length, range_crc in sorted(ranges):
        crc = _crc_range(source, position, start - source.start, crc)
        crc = crc32_combine(crc, range_crc, length)
        position = start - source.start + length
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
    from . import architecture  # the layer library, for a model only: a file of tensors needs none

    assert manifest.architecture is not None
    where = f"{report.path}: {MANIFEST_MEMBER}"
    report.problems += architecture.parameter_problems(manifest, where, report.path)
