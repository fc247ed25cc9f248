"""The ``.npz`` weight bundle: a zip of ``.npy`` members keyed by structured parameter name.

Both parameter files (``save_parameters``) and the bundle inside an ``.mpk`` archive use this
one reader (and ``npz_write``'s one writer), so there is a single place that decides what
bytes are accepted.

Written bundles are canonical: members in the order given, fixed timestamps, C order,
little-endian data, no pickle. They load with ``numpy.load(path, allow_pickle=False)``.
Writing goes through the one zip writer (``zipwrite``), stored or deflated. Reading goes
through the strict zip reader (``zipread``): every header is checked, and every size compared
with what the bytes can back, before an array is allocated.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, NamedTuple

import numpy as np

from ..errors import (
    FormatError,
    IntegrityError,
    LimitError,
    UsageError,
)
from . import zipio
from .checksums import crc32
from .limits import DEFAULT_LIMITS, GRACE_BYTES, Limits
from .npy import (
    SUPPORTED_DTYPES,
    ExpectedTensor,
    archive_dtype,
    canonical_array,
    check_storable,
    header_for,
    header_in,
    read_header,
)
from .pages import fresh_array, read_target
from .zipio import STORED, Member, MemberReader, MemberTable, Source
from .zipread import read_directory

__all__ = [
    "SUPPORTED_DTYPES",
    "check_storable",
    "canonical_array",
    "tensor_sha256",
    "check_sha256",
    "Integrity",
    "read_npz",
    "read_member",
    "read_written",
    "read_written_runs",
    "written_view",
    "locate",
    "Bundle",
]

_HASH_CHUNK = 1 << 20
_HEADER_AHEAD = 256  # read at once for a stored tensor's .npy header
# read_written_runs: tensors of at most RUN_MEMBER_BYTES that follow one another are read
# together, RUN_BYTES at most at a time; a larger tensor costs less read straight into its
# array (one copy) than read into a run and copied out (two).
RUN_BYTES = 1 << 20
RUN_MEMBER_BYTES = 64 << 10


def tensor_sha256(array: np.ndarray) -> str:
    """SHA-256 (hex) of the tensor's data as an archive stores it: C order, little-endian."""
    return hashlib.sha256(canonical_array(np.asarray(array)).reshape(-1).view(np.uint8).data).hexdigest()


def data_view(array: np.ndarray) -> memoryview:
    """The bytes of a canonical array, without copying."""
    return array.reshape(-1).view(np.uint8).data


class Integrity(str, enum.Enum):
    """How much a read checks, as one value from the public call down to the member reader.

    ``CRC32`` (the default): zip's CRC-32 of every member read, and the manifest's SHA-256.
    ``SHA256``: also every tensor's SHA-256 against the manifest (about twice the time).
    """

    CRC32 = "crc32"
    SHA256 = "sha256"

    @classmethod
    def of(cls, value: Integrity | str) -> Integrity:
        """The mode a caller named; anything else is a UsageError listing the modes."""
        # (A lookup by value: the Enum's call costs ~5 µs of a small archive's open.)
        mode = cls._value2member_map_.get(value) if isinstance(value, str) else None
        if mode is None:
            modes = " or ".join(repr(mode.value) for mode in cls)
            raise UsageError(f"integrity must be {modes}, not {value!r}")
        return mode  # type: ignore[return-value]

    @property
    def tensor_sha256(self) -> bool:
        return self is Integrity.SHA256


def read_npz(
    handle: IO[bytes],
    *,
    source: str,
    expected: Mapping[str, ExpectedTensor] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> dict[str, np.ndarray]:
    """Read every array of an npz file, never unpickling; ``source`` names it in errors.

    With ``expected`` (name → dtype and shape, e.g. the manifest's index) the bundle must
    hold exactly those tensors, each header must match its entry exactly, and the arrays come
    back in ``expected``'s order. Without it (a stand-alone parameter file from another
    writer), big-endian and Fortran-ordered arrays are accepted and converted.
    """
    bundle = Bundle(Source.whole(handle, where=source), limits=limits)
    if expected is not None:
        bundle.check_names(expected)
        return {name: bundle.read(name, expected[name]) for name in expected}
    return {name: bundle.read(name) for name in bundle.members}


class Bundle:
    """An npz bundle whose directory has been vetted; tensors are read one at a time."""

    def __init__(
        self, source: Source, *, limits: Limits = DEFAULT_LIMITS, max_inflated: int | None = None
    ) -> None:
        """``max_inflated``: what the deflated members may expand to together; by default
        the allowance of a stand-alone file of this size (an archive passes what is left of
        its own, so that deflate nested in deflate cannot multiply the ratio limit)."""
        where = source.where
        directory = read_directory(
            source,
            kind="an npz weight bundle",
            max_members=limits.max_tensors,
            too_many=lambda count: LimitError(
                where, "its number of tensors", count, limit="max_tensors", allowed=limits.max_tensors
            ),
            max_ratio=limits.max_compression_ratio,
            grace_bytes=GRACE_BYTES,
            max_inflated=limits.max_inflated(source.size) if max_inflated is None else max_inflated,
        )
        self.source = source
        # Member names are '<tensor>.npy'; checked on all names at once (one string), since
        # a bundle may hold 100,000 of them.
        names = directory.table.names
        joined = "\n".join(names) + "\n" if names else ""
        if joined.count(".npy\n") != len(names) or "/" in joined or max(map(len, names), default=0) > 1028:
            bad = next(n for n in names if not n.endswith(".npy") or "/" in n or len(n) > 1028)
            raise FormatError(
                f"{where}: unexpected member {bad!r}; an npz bundle holds only "
                "'<name>.npy' members (a tensor name: no '/', at most 1024 characters)"
            )
        tensors = joined.replace(".npy\n", "\n").split("\n")[:-1]
        self.members: Mapping[str, Member] = directory.table.renamed(tensors)
        self.total_bytes = total = sum(directory.table.column("size"))
        if total > limits.max_total_bytes:
            raise LimitError(
                where, "its declared tensor bytes", total,
                limit="max_total_bytes", allowed=limits.max_total_bytes,
            )

    def check_names(self, expected: Mapping[str, object]) -> None:
        """The bundle holds exactly the tensors ``expected`` lists."""
        if list(self.members) == list(expected) or (
            len(self.members) == len(expected) and set(self.members) == set(expected)
        ):
            return
        for name in self.members:
            if name not in expected:
                raise FormatError(
                    f"{self.source.where}: holds tensor {name!r}, which the manifest does not list"
                )
        missing = [name for name in expected if name not in self.members]
        if missing:
            raise FormatError(
                f"{self.source.where}: tensor {missing[0]!r} listed in the manifest is missing "
                f"from the bundle (missing: {missing})"
            )

    def read(
        self, name: str, want: ExpectedTensor | None = None, *, integrity: Integrity = Integrity.CRC32
    ) -> np.ndarray:
        """One tensor as a fresh writable array; CRC-32 always checked, SHA-256 on request."""
        return read_member(self.source, self.members[name], name, want, integrity=integrity)

    def read_written(
        self, fd: int, name: str, want: ExpectedTensor, *, integrity: Integrity = Integrity.CRC32
    ) -> np.ndarray | None:
        """``read_written`` of this bundle's member ``name``."""
        return read_written(self.source, fd, self.members[name], name, want, integrity=integrity)

    def locate(self, name: str, want: ExpectedTensor | None) -> TensorLocation | None:
        """``locate`` of this bundle's member ``name``."""
        return locate(self.source, self.members[name], name, want)

    def check_offsets(self, recorded: Mapping[str, int | None]) -> None:
        """Each offset the manifest records (tensor name → offset, None for none) is where the
        directory puts that tensor's member: a reader that takes one tensor by its offset
        must find what a reader of the directory finds."""
        wrong = self.misplaced(recorded)
        if wrong:
            raise wrong[0][1]

    def misplaced(self, recorded: Mapping[str, int | None]) -> list[tuple[str, FormatError]]:
        """``check_offsets``' refusal for each tensor whose recorded offset is not where the
        directory puts its member (``verify`` reports them all)."""
        starts = self.members.column("header_offset") if isinstance(self.members, MemberTable) else None
        if starts is not None and list(recorded) == list(self.members) and list(recorded.values()) == starts:
            return []
        return [
            (name, FormatError(
                f"{self.source.where}: the manifest records offset {offset} for tensor {name!r}, "
                f"whose member starts at offset {member.header_offset}"
            ))
            for name, offset in recorded.items()
            if offset is not None and (member := self.members.get(name)) is not None
            and offset != member.header_offset
        ]

    def digest(self, name: str, want: ExpectedTensor | None) -> str:
        """Stream one tensor without keeping it: header and CRC-32 checked, SHA-256 returned."""
        reader = MemberReader(self.source, self.members[name])
        read_header(reader, want)
        digest = hashlib.sha256()
        for chunk in _chunks(reader):
            digest.update(chunk)
        reader.finish()
        return digest.hexdigest()


def read_member(
    source: Source, member: Member, name: str, want: ExpectedTensor | None = None,
    *, integrity: Integrity = Integrity.CRC32,
) -> np.ndarray:
    """Tensor ``name`` from its vetted ``member``, as a fresh writable array; CRC-32 always
    checked, SHA-256 on request."""
    reader = MemberReader(source, member)
    shape, fortran_order, dtype = read_header(reader, want)
    array = read_target(reader.where, shape[::-1] if fortran_order else shape, dtype)
    if array.nbytes:
        reader.readinto(array.reshape(-1).view(np.uint8).data)
    reader.finish()
    if integrity.tensor_sha256 and want is not None and want.sha256 is not None:
        check_sha256(reader.where, name, want.sha256, tensor_sha256(array))
    if fortran_order:
        array = array.transpose().copy(order="C")
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_written(
    source: Source, fd: int, member: Member, name: str, want: ExpectedTensor,
    *, integrity: Integrity = Integrity.CRC32, local_header: bytes = b"",
) -> np.ndarray | None:
    """A tensor as modelpack writes it, in one positioned read (header and data together,
    nothing parsed), or None: then ``read_member`` or ``locate`` reads it the exact way.

    Vouched only when the stored member is exactly the header modelpack writes for the
    manifest's dtype and shape (``npy.header_for``, which passes every header check) then
    that many data bytes, and its CRC-32 matches; anything else — another writer's header,
    a damaged or short member — is left to the exact path, which words the refusal. The
    array is allocated from the manifest's shape only once the member's size, checked
    against the limits, is known to be exactly what that shape takes. ``local_header``, the
    member's local header as the writer makes it (``PlacedMembers.predicted``), is read in
    the same read, just before the data, and must be exactly those bytes too.
    """
    written = _as_written(member, want)
    if written is None:
        return None
    header, shape, dtype = written
    array = _fresh(shape, dtype)
    if array is None:
        return None
    # (The array itself is the buffer: C-ordered, so its bytes are the member's data.)
    expected = local_header + header
    lead, data = bytearray(len(expected)), array.data
    start, total = source.start + member.data_offset - len(local_header), len(local_header) + member.size
    filled = os.preadv(fd, [lead, data], start)
    while filled < total:  # a short read (Linux reads 2 GiB at most a call): read on
        rest = ([memoryview(lead)[filled:], data] if filled < len(lead)
                else [data_view(array)[filled - len(lead) :]])
        count = os.preadv(fd, rest, start + filled)
        if count <= 0:
            return None  # the file ends early: the exact path says where
        filled += count
    if lead != expected or crc32(data, crc32(header)) != member.crc:
        return None
    if integrity.tensor_sha256 and want.sha256 is not None:
        where = f"{source.where}: member {member.name!r}"
        check_sha256(where, name, want.sha256, hashlib.sha256(data).hexdigest())
    return array


def read_written_runs(
    source: Source, fd: int, members: Sequence[Member], names: Sequence[str], wants: Sequence[ExpectedTensor],
    *, integrity: Integrity = Integrity.CRC32,
) -> list[np.ndarray | None]:
    """``read_written`` of many small tensors at once: stored members of at most
    ``RUN_MEMBER_BYTES`` that follow one another in the file are read together, ``RUN_BYTES``
    at most at a time (``zipio.runs``), and each copied out (a read of its own costs a small
    tensor more than its copy). Each array is what ``read_written`` gives, checked the same
    way; None where it gives None (another writer's header, a damaged or short member) and
    for a larger member, for ``read_written`` or the exact path."""
    arrays: list[np.ndarray | None] = [None] * len(members)
    small = [member.method == STORED and member.size <= RUN_MEMBER_BYTES for member in members]
    buffer = bytearray()  # grown to the longest run (at most RUN_BYTES), reused by each
    # Runs are cut within each stretch of small members (a larger one is not read twice).
    for is_small, stretch in itertools.groupby(range(len(members)), small.__getitem__):
        if not is_small:
            continue
        indices = list(stretch)
        starts = [members[index].data_offset for index in indices]
        ends = [start + members[index].size for start, index in zip(starts, indices, strict=True)]
        for first, stop in zipio.runs(starts, ends, RUN_BYTES):
            start, end = starts[first], ends[stop - 1]
            if len(buffer) < end - start:
                buffer = bytearray(end - start)
            if zipio.read_fully(fd, memoryview(buffer)[: end - start], source.start + start):
                for index in indices[first:stop]:
                    arrays[index] = _copied(buffer, members[index], names[index], wants[index], start,
                                            source, integrity)
    return arrays


def _copied(
    buffer: bytearray, member: Member, name: str, want: ExpectedTensor, start: int, source: Source,
    integrity: Integrity,
) -> np.ndarray | None:
    """The tensor in ``buffer`` (read from ``start``) as ``read_written`` vouches for it."""
    checked = _checked_data(memoryview(buffer), member, name, want, start, source, integrity)
    if checked is None:
        return None
    data, shape, dtype = checked
    try:  # (a member this small takes no huge page: one copy, 1.3 -> 0.8 us a tensor)
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    except MemoryError:
        return None


def _fresh(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """An array to read a vouched-for tensor into, or None where memory runs out (the exact
    path then words it)."""
    try:
        return fresh_array(shape, dtype)
    except MemoryError:
        return None


def written_view(
    whole: np.ndarray, base: int, member: Member, name: str, want: ExpectedTensor, source: Source,
    integrity: Integrity,
) -> np.ndarray | None:
    """The tensor as a view of ``whole`` (bytes read from the file whose bundle starts at
    ``base`` in it), vouched for as ``read_written`` vouches; None as it gives None, or when
    the data is not aligned for its dtype in memory."""
    checked = _checked_data(whole.data, member, name, want, -base, source, integrity)
    if checked is None:
        return None
    data, shape, dtype = checked
    at = base + member.data_offset + member.size - len(data)
    array = whole[at : at + len(data)].view(dtype).reshape(shape)
    return array if array.flags.aligned else None


def _checked_data(
    buffer: memoryview, member: Member, name: str, want: ExpectedTensor, start: int, source: Source,
    integrity: Integrity,
) -> tuple[memoryview, tuple[int, ...], np.dtype] | None:
    """The data of the member in ``buffer`` (read from bundle offset ``start``), with its shape and dtype,
    when it is the header modelpack writes then that data and its CRC-32 (and SHA-256, if
    asked) match; None otherwise."""
    written = _as_written(member, want)
    if written is None:
        return None
    header, shape, dtype = written
    at = member.data_offset - start
    stored = buffer[at : at + member.size]
    # (bytes compared as bytes: a memoryview's == compares item by item, 6x slower)
    if len(stored) != member.size or stored[: len(header)].tobytes() != header or crc32(stored) != member.crc:
        return None
    data = stored[len(header) :]
    if integrity.tensor_sha256 and want.sha256 is not None:
        where = f"{source.where}: member {member.name!r}"
        check_sha256(where, name, want.sha256, hashlib.sha256(data).hexdigest())
    return data, shape, dtype


def locate(source: Source, member: Member, name: str, want: ExpectedTensor | None) -> TensorLocation | None:
    """Where a stored tensor's data lies in the file, its header checked; None if deflated."""
    if member.method != STORED:
        return None
    where = f"{source.where}: member {member.name!r}"
    # One read usually holds the whole header (numpy's are 64 or 128 bytes); the zip
    # reader usually has it already, read with the member's local header.
    block = source.read_at(member.data_offset, min(_HEADER_AHEAD, member.size))
    found = _written_header(block, member, want) or header_in(block, member.size, where, want)
    if found is None:
        reader = MemberReader(source, member)
        shape, fortran_order, dtype = read_header(reader, want)
        header_size, header_crc = member.size - reader.remaining, reader.crc
    else:
        shape, fortran_order, dtype, header_size = found
        header_crc = crc32(block[:header_size])
    if fortran_order or dtype.byteorder == ">":
        return None  # another writer's layout: the copying reader converts it
    return TensorLocation(
        name,
        where,
        shape,
        dtype,
        source.start + member.data_offset + header_size,  # offset
        member.size - header_size,  # nbytes
        header_crc,
        member.crc,  # member_crc
        want.sha256 if want is not None else None,
    )


def _written_header(
    block: bytes, member: Member, want: ExpectedTensor | None
) -> tuple[tuple[int, ...], bool, np.dtype, int] | None:
    """``header_in``'s answer without parsing, when ``block`` starts with the header
    modelpack writes (``_as_written``); None otherwise (then the header is parsed)."""
    written = _as_written(member, want) if want is not None else None
    if written is None or not block.startswith(written[0]):
        return None
    header, shape, dtype = written
    return shape, False, dtype, len(header)


def _as_written(member: Member, want: ExpectedTensor) -> tuple[bytes, tuple[int, ...], np.dtype] | None:
    """The npy header modelpack writes for the manifest's dtype and shape (``npy.header_for``,
    which passes every header check), with that shape and dtype, when the stored member is
    exactly that long with it; else None. A member that starts with these bytes holds exactly
    this tensor, so its header need not be parsed."""
    dtype = archive_dtype(want.dtype)
    if member.method != STORED or dtype is None:
        return None
    shape = tuple(want.shape)
    expected = header_for(want.dtype, shape)
    if expected is None or len(expected[0]) + expected[1] != member.size:
        return None
    return expected[0], shape, dtype


class TensorLocation(NamedTuple):
    """A stored tensor's data in place: absolute file offset, size and what it must hash to."""

    name: str
    where: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    nbytes: int
    header_crc: int  # CRC-32 of the member's bytes before the data (the npy header)
    member_crc: int
    sha256: str | None

    def check(self, data: memoryview | np.ndarray, *, integrity: Integrity) -> None:
        """CRC-32 of the member (header + data) against the directory; SHA-256 on request."""
        if isinstance(data, np.ndarray):
            data = data.reshape(-1).view(np.uint8).data
        crc = crc32(data, self.header_crc)  # continues from the header's: the member's CRC-32
        if crc != self.member_crc:
            raise IntegrityError(
                f"{self.where} is damaged: CRC-32 is {crc:08x}, the zip directory records "
                f"{self.member_crc:08x}"
            )
        if integrity.tensor_sha256 and self.sha256 is not None:
            check_sha256(self.where, self.name, self.sha256, hashlib.sha256(data).hexdigest())


def _chunks(reader: MemberReader) -> Iterator[bytes]:
    while reader.remaining:
        yield reader.read(_HASH_CHUNK)


def check_sha256(where: str, name: str, recorded: str, actual: str) -> None:
    """IntegrityError naming the tensor unless the two hashes are equal."""
    if recorded != actual:
        raise IntegrityError(
            f"{where}: tensor {name!r} is damaged: its SHA-256 is {actual}, the manifest "
            f"records {recorded}"
        )

