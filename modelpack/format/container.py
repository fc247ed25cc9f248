"""The ``.mpk`` container: a zip of ``manifest.yaml`` and the ``weights.npz`` bundle.

This is the one place that reads archive bytes (``writer`` is the one that writes them).
Layout (``spec/FORMAT.md`` §1), in this order, both members stored (uncompressed):

- ``manifest.yaml``: the manifest (UTF-8 YAML, plain data only), with each tensor's SHA-256;
- ``weights.npz``: an npz bundle; its ``.npy`` members are stored unless ``compress=True``;
- the zip comment ``modelpack-manifest-sha256:<hex>``: the manifest's own SHA-256, outside
  the manifest so that the member set stays exactly the two above.

Reading checks, in order and before allocating anything a header declares: the zip
structure (``_zip``), the manifest (size, YAML, version, hash, schema), then each tensor
(header against the manifest, size, CRC-32, and with ``integrity="sha256"`` its SHA-256).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from ..errors import FormatError, IntegrityError, LimitError, SchemaError
from ..io.checksums import crc32
from ..io.limits import DEFAULT_LIMITS, GRACE_BYTES, Limits
from ..io.paths import PathOrFile, describe, open_for_reading
from ..io.sniff import refuse_other_kind
from ..io.zipexact import written_members
from ..io.zipio import STORED, Member, MemberReader, Source
from ..io.zipread import read_directory
from . import schema, versions
from .schema import Manifest
from .tensor_index import TensorIndex

__all__ = [
    "MANIFEST_MEMBER",
    "WEIGHTS_MEMBER",
    "MANIFEST_HASH_PREFIX",
    "read_manifest",
]

MANIFEST_MEMBER = "manifest.yaml"
WEIGHTS_MEMBER = "weights.npz"
MEMBERS = (MANIFEST_MEMBER, WEIGHTS_MEMBER)
MANIFEST_HASH_PREFIX = b"modelpack-manifest-sha256:"
_HASH_COMMENT = re.compile(rb"modelpack-manifest-sha256:([0-9a-f]{64})\Z")
_COMMENT_LENGTH = len(MANIFEST_HASH_PREFIX) + 64  # what the writer puts in the zip comment


_MAX_OUTER_MEMBERS = 16  # a directory declaring more is refused before it is read
_COPY_CHUNK = 1024 * 1024


def read_manifest(source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> Manifest:
    """Only the manifest (architecture, metadata, tensor index), without reading weights."""
    name = describe(source)
    with open_for_reading(source) as handle:
        return Container.open(handle, name, limits).manifest(limits)


@dataclass
class Container:
    """The outer zip with its directory vetted; each step of reading it is one method."""

    source: Source
    members: dict[str, Member]
    comment: bytes
    # What the bundle's own deflated members may still expand to: the file's allowance
    # (Limits.max_inflated) less what this zip's deflated members already take.
    inflate_left: int

    @classmethod
    def open(cls, handle: IO[bytes], name: str, limits: Limits) -> Container:
        source = Source.whole(handle, where=name)
        allowance = limits.max_inflated(source.size)
        written = written_members(source, MEMBERS, _COMMENT_LENGTH, limits.max_manifest_bytes)
        if written is not None:  # exactly as modelpack writes it: no member is deflated
            found, comment = written
            return cls(source, {member.name: member for member in found}, comment, allowance)
        try:
            directory = read_directory(
                source,
                kind="a modelpack archive",
                max_members=_MAX_OUTER_MEMBERS,
                too_many=lambda count: FormatError(
                    f"{name}: holds {count} members; a modelpack archive holds only {', '.join(MEMBERS)}"
                ),
                max_ratio=limits.max_compression_ratio,
                grace_bytes=GRACE_BYTES,
                max_inflated=allowance,
            )
            members = {member.name: member for member in directory.table.rows()}
            if MANIFEST_MEMBER not in members:
                raise FormatError(f"{name}: member {MANIFEST_MEMBER!r} is missing: not a modelpack archive")
        except FormatError:
            refuse_other_kind(handle, name, expected="mpk")  # a parameter file, MXNet's, torch's, ...
            raise
        return cls(source, members, directory.comment, allowance - directory.inflated)

    @property
    def name(self) -> str:
        return self.source.where

    def manifest(self, limits: Limits) -> Manifest:
        """Every manifest check in order; the version comes first so that a newer archive
        gets a VersionError rather than a complaint about what that version changed."""
        raw = self.manifest_bytes(limits)
        document = self.manifest_document(raw, limits)
        version = schema.check_format_version(document, source=self._manifest_where)
        self.check_member_set()
        self.check_manifest_hash(raw, version)
        return self.validate_manifest(document, version, limits)

    def manifest_bytes(
        self, limits: Limits, *, damaged: Callable[[FormatError], None] | None = None
    ) -> bytes:
        """The manifest's bytes, size-limited and CRC-checked; a CRC mismatch is raised, or
        passed to ``damaged`` (which ``verify`` uses to report it and read on)."""
        member = self.members[MANIFEST_MEMBER]
        if member.size > limits.max_manifest_bytes:
            raise LimitError(
                f"{self.name}: member {MANIFEST_MEMBER!r}", "its size in bytes", member.size,
                limit="max_manifest_bytes", allowed=limits.max_manifest_bytes,
            )
        if member.method == STORED:  # (read from the tail or head already read, mostly)
            raw = self.source.read_at(member.data_offset, member.size)
            if crc32(raw) == member.crc:
                return raw
        # A deflated manifest, or a CRC mismatch, which the member reader words.
        reader = MemberReader(self.source, member)
        raw = reader.read(member.size)
        try:
            reader.finish()
        except IntegrityError as exc:
            if damaged is None:
                raise
            damaged(exc)
        return raw

    def manifest_document(self, raw: bytes, limits: Limits) -> dict:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SchemaError(f"{self.name}: member {MANIFEST_MEMBER!r} is not UTF-8: {exc}") from None
        return schema.parse_yaml(text, source=self._manifest_where, max_nodes=limits.max_manifest_nodes)

    def check_member_set(self) -> None:
        for member in self.members:
            if member not in MEMBERS:
                raise FormatError(
                    f"{self.name}: unexpected member {member!r}; a modelpack archive holds "
                    f"only {', '.join(MEMBERS)}"
                )
        if WEIGHTS_MEMBER not in self.members:
            raise FormatError(
                f"{self.name}: member {WEIGHTS_MEMBER!r} is missing; is this a modelpack archive?"
            )

    def check_manifest_hash(self, raw: bytes, version: tuple[int, int]) -> None:
        """The zip comment's SHA-256 must match; from format 1.1 on it must be there."""
        comment = self.comment
        if comment.startswith(MANIFEST_HASH_PREFIX) and len(comment) == _COMMENT_LENGTH:
            # As the writer writes it: the comparison is the check (the pattern, ~10 us cold,
            # only words what is wrong)
            if comment == MANIFEST_HASH_PREFIX + hashlib.sha256(raw).hexdigest().encode("ascii"):
                return
        match = _HASH_COMMENT.match(comment)
        if match is None:
            if not versions.rules(version).hashes:
                return  # format 1.0 recorded no hash; its comment means nothing to us
            found = f"comment {self.comment[:80]!r}" if self.comment else "no comment"
            raise IntegrityError(
                f"{self.name}: format {version[0]}.{version[1]} archives record the manifest's "
                f"SHA-256 in the zip comment, found {found}"
            )
        actual = hashlib.sha256(raw).hexdigest()
        if actual != match.group(1).decode("ascii"):
            raise IntegrityError(
                f"{self.name}: member {MANIFEST_MEMBER!r} is damaged: its SHA-256 is {actual}, the "
                f"archive comment records {match.group(1).decode('ascii')}"
            )

    def validate_manifest(self, document: dict, version: tuple[int, int], limits: Limits) -> Manifest:
        manifest = schema.manifest_from_dict(
            document, source=self._manifest_where, max_architecture_nodes=limits.max_architecture_nodes,
            version=version,
        )
        if versions.rules(version).hashes:
            weights = manifest.weights
            unhashed = (
                weights.first_unhashed if isinstance(weights, TensorIndex)
                else next((name for name, info in weights.items() if info.sha256 is None), None)
            )
            if unhashed is not None:
                raise SchemaError(
                    f"{self._manifest_where}: tensor {unhashed!r} has no sha256, which format "
                    f"{version[0]}.{version[1]} manifests record for every tensor"
                )
        return manifest

    @property
    def bundle_stored(self) -> bool:
        """Whether the bundle is stored (the writers' way): then ``bundle_source`` reads it in
        place and needs no cleanup stack for a temporary file."""
        return self.members[WEIGHTS_MEMBER].method == STORED

    def bundle_source(self, limits: Limits, cleanup: contextlib.ExitStack | None) -> Source:
        """The bundle in place when stored (the writers' way); a deflated one is inflated
        to a temporary file first, its size limited and its CRC-32 checked on the way, which
        ``cleanup`` closes (None only where the caller knows the bundle is stored)."""
        member = self.members[WEIGHTS_MEMBER]
        where = f"{self.name}: member {WEIGHTS_MEMBER!r}"
        if self.bundle_stored:
            return self.source.window(member.data_offset, member.size, where=where)
        if member.size > limits.max_total_bytes:
            raise LimitError(
                where, "its declared size in bytes", member.size,
                limit="max_total_bytes", allowed=limits.max_total_bytes,
            )
        if cleanup is None:
            raise TypeError(f"{where} is deflated: its temporary file needs a cleanup stack")
        spool = cleanup.enter_context(tempfile.TemporaryFile())
        reader = MemberReader(self.source, member)
        while reader.remaining:
            spool.write(reader.read(_COPY_CHUNK))
        reader.finish()
        return Source(spool, 0, member.size, where=where)

    @property
    def _manifest_where(self) -> str:
        return f"{self.name}: {MANIFEST_MEMBER}"
