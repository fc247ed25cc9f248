"""One member of an npz bundle found by the offset a manifest records (format 1.5), without
reading the bundle's directory.

The member is taken only when zip's two views of it agree: its local header, at the offset,
and its own entry in the directory, read alone where a directory listing the tensors in the
manifest's order, one entry each as the writer makes it (with a zip64 field where a member
lies past 4 GiB or holds that much), puts it. Anything else — an entry not there as such, a
disagreement, a deflated member or one whose sizes follow its data — is left to
``npz.Bundle``, which reads the whole directory and words the refusal. What the offset finds
instead of a member is refused here (``zipentries.local_member``).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..errors import LimitError
from . import zipwrite
from .limits import Limits
from .zipentries import central_member, local_member
from .zipio import Member, Source
from .zipread import directory_span
from .ziprecords import CENTRAL, EXTRA_HEADER, LOCAL, ZIPALIGN_MIN

__all__ = ["PlacedMembers"]

_SUFFIX = ".npy"
_ENTRY_WIDTH = CENTRAL.size + len(_SUFFIX)  # a tensor's plain directory entry, but its name
_LOCAL_ZIP64_EXTRA = EXTRA_HEADER.size + 2 * 8  # a large member's local zip64 field: both sizes
_MOST_PADDING = zipwrite.ALIGN + ZIPALIGN_MIN  # more than ``zipwrite.padding_for`` ever adds


class PlacedMembers:
    """The bundle ``source``'s tensors, listed in ``names``' order, each found by its offset;
    ``offsets()`` gives every tensor's offset in that order (asked only of a bundle large
    enough for zip64 fields, whose entries' widths depend on them)."""

    def __init__(
        self, source: Source, names: Iterable[str], offsets: Callable[[], Sequence[int | None]],
        limits: Limits,
    ) -> None:
        self._source, self._names, self._offsets, self._limits = source, names, offsets, limits
        self._members: dict[str, Member | None] = {}
        self._entries: dict[str, int] | None = None  # where each tensor's directory entry starts
        # The directory's entry count, place and size, and the names in order, once read.
        self._layout: tuple[int, int, int, list[str]] | None = None

    def member(self, name: str, offset: int) -> Member | None:
        """Tensor ``name``'s member, whose local header the manifest puts at ``offset``, when its
        directory entry says the same; None to read it through the whole directory."""
        if name not in self._members:
            what = f"the offset the manifest records for tensor {name!r}"
            local = local_member(self._source, offset, name + _SUFFIX, what)
            self._members[name] = None
            if local is not None:
                allowed = self._limits.max_total_bytes
                if local.size > allowed:
                    raise LimitError(f"{self._source.where}: member {local.name!r}", "its size in bytes",
                                     local.size, limit="max_total_bytes", allowed=allowed)
                if self._entry(name) == local._replace(data_offset=-1):
                    self._members[name] = local
        return self._members[name]

    def predicted(self, name: str, offset: int) -> tuple[Member, bytes] | None:
        """Tensor ``name``'s member as its directory entry alone says, and the local header
        the writer makes for it at ``offset``, which the caller reads with the data and
        compares (``npz.read_written``): only then do zip's two views of the member agree,
        as ``member`` checks them, in one read fewer. None where the entry is not where the
        writer's layout puts it, says another offset, or the member is over the limits:
        ``member`` then reads the local header first and words what is wrong."""
        entry = self._entry(name)
        if entry is None or entry.header_offset != offset or entry.size > self._limits.max_total_bytes:
            return None
        planned = zipwrite.PlannedMember(entry.name, [], crc=entry.crc, size=entry.size,
                                         compressed_size=entry.compressed_size)
        header = zipwrite.local_header(planned, offset)
        if LOCAL.unpack_from(header).flags != entry.flags or entry.compressed_size != entry.size:
            return None
        return entry._replace(data_offset=offset + len(header)), header

    def announce(self, name: str, offset: int, data_size: int) -> None:
        """Announce the most bytes the member at ``offset`` takes as the writer lays it out
        (local header, name, a zip64 field, alignment, then ``data_size`` bytes: the npy header
        and the tensor), so that a file fetched in ranges (``io.remote``) fetches its headers
        and data in one request rather than its header block first."""
        header = LOCAL.size + len((name + _SUFFIX).encode("utf-8", "surrogatepass"))
        self._source.announce([(offset, header + _LOCAL_ZIP64_EXTRA + _MOST_PADDING + data_size)])

    def _entry(self, name: str) -> Member | None:
        """``name``'s directory entry, read alone where the writer's layout puts it; None if it
        is not there as such."""
        position = self._position(name)
        return None if position is None else central_member(self._source, position, name + _SUFFIX)

    def _position(self, name: str) -> int | None:
        """Where the writer's layout puts ``name``'s entry: for the first tensor asked for, in
        a directory without zip64 fields and of ASCII names, from the names before it alone
        (the places of all cost an open of 200 tensors 4% more, 7% at 10,000); else from the
        places of all, found once."""
        if self._entries is not None:
            return self._entries.get(name)
        if self._layout is None:
            count, start, size, _ = directory_span(self._source, kind="an npz weight bundle")
            names = list(self._names)
            self._layout = count, start, size, names
            joined = "".join(names)
            if self._source.size < zipwrite.ZIP64_SIZE and joined.isascii():
                if count != len(names) or start + count * _ENTRY_WIDTH + len(joined) != start + size:
                    self._entries = {}  # not the writer's layout: no entry is where it predicts
                    return None
                before = names.index(name) if name in self._names else None
                if before is not None:
                    return start + before * _ENTRY_WIDTH + sum(map(len, names[:before]))
        self._entries = self._places(*self._layout)
        return self._entries.get(name)

    def _places(self, count: int, start: int, size: int, names: list[str]) -> dict[str, int]:
        """Where each tensor's entry starts, if the directory has exactly the size the writer's
        layout gives it; else none."""
        lengths = list(map(len, names)) if "".join(names).isascii() else [len(n.encode()) for n in names]
        widths: Iterable[int] = map(operator.add, lengths, itertools.repeat(_ENTRY_WIDTH))
        if self._source.size >= zipwrite.ZIP64_SIZE:
            wide = _zip64_widths(self._offsets(), lengths, start)
            widths = [] if wide is None else map(operator.add, widths, wide)
        starts = list(itertools.accumulate(widths, initial=start))  # one more: the directory's end
        in_order = count == len(names) == len(starts) - 1 and starts[-1] == start + size
        return dict(zip(names, starts, strict=False)) if in_order else {}


def _zip64_widths(offsets: Sequence[int | None], lengths: list[int], directory: int) -> list[int] | None:
    """The width of each entry's zip64 extra field as the writer makes it (``zipwrite``): the
    member's offset, and both its sizes, each when it reaches ``ZIP64_SIZE``. A stored
    member's size follows from the distance to the next member's header: between them lie its
    local header (with a zip64 field of both sizes from the threshold on, and the alignment
    field ``padding_for`` gives) and its data. None unless the offsets rise, as members are
    laid out in the manifest's order; a layout other than the writer's puts entries elsewhere
    than predicted, and the whole directory is read."""
    if None in offsets or not offsets:
        return None
    starts = np.array(offsets, dtype=np.int64)
    ends = np.append(starts[1:], directory)  # where the next member (or the directory) starts
    if starts[0] < 0 or np.any(ends <= starts):
        return None
    threshold = zipwrite.ZIP64_SIZE
    headers = LOCAL.size + len(_SUFFIX) + np.array(lengths, dtype=np.int64)
    room = ends - starts - headers  # the member's data and its local extra fields
    wide = room >= threshold + _LOCAL_ZIP64_EXTRA + _MOST_PADDING  # zip64 sizes whatever the padding
    for index in np.flatnonzero((room >= threshold) & ~wide).tolist():  # near the threshold: exactly
        aligned = int(starts[index] + headers[index]) + _LOCAL_ZIP64_EXTRA
        wide[index] = room[index] - _LOCAL_ZIP64_EXTRA - zipwrite.padding_for(aligned) >= threshold
    fields = (starts >= threshold) + 2 * wide  # a stored member's two sizes are equal
    return np.where(fields > 0, EXTRA_HEADER.size + 8 * fields, 0).tolist()
