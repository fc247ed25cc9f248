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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import IntegrityError, ModelpackError
from ..io import npz
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.paths import PathOrFile, describe, open_for_reading
from ..io.zipio import STORED, MemberReader
from ..nn.graph import GraphBlock
from ..nn.graph_spec import constant_name
from ..nn.parameter import shapes_compatible
from ..nn.ties import apply_ties
from . import architecture, schema
from .container import MANIFEST_MEMBER, WEIGHTS_MEMBER, Container
from .schema import Manifest

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
    if member.method == STORED:
        # The bundle's CRC-32 covers its own zip headers, which reading tensors does not.
        _attempt(report, _stream, MemberReader(container.source, member))
    source = _attempt(report, container.bundle_source, limits, cleanup)
    bundle = (
        _attempt(report, npz.Bundle, source, limits=limits, max_inflated=container.inflate_left)
        if source is not None
        else None
    )
    if source is None or bundle is None:
        return
    listed = manifest.weights if manifest is not None else {}
    unhashed = False
    for name in bundle.members:
        info = listed.get(name)
        if manifest is not None and info is None:
            report.problems.append(f"{source.where}: holds tensor {name!r}, which the manifest does not list")
        try:
            digest = bundle.digest(name, info)
            if info is not None and info.sha256 is not None:
                npz.check_sha256(source.where, name, info.sha256, digest)
        except ModelpackError as exc:
            report.problems.append(str(exc))
            report.tensors[name] = "damaged" if isinstance(exc, IntegrityError) else "invalid"
            continue
        hashed = info is not None and info.sha256 is not None
        unhashed |= not hashed
        report.tensors[name] = OK if hashed else CRC_ONLY
    for name in listed:
        if name not in bundle.members:
            report.problems.append(
                f"{source.where}: tensor {name!r} listed in the manifest is missing from the bundle"
            )
            report.tensors[name] = "missing"
    if unhashed and manifest is not None:
        report.notes.append("tensors without a recorded SHA-256 (format 1.0) were checked by CRC-32 only")


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
