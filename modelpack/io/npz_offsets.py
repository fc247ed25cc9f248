"""One member of an npz bundle found by the offset a manifest records (format 1.5), without
reading the bundle's directory.

The member is taken only when zip's two views of it agree: its local header, at the offset,
and its own entry in the directory, read alone where a directory listing the tensors in the
manifest's order, one plain entry each (as the writer makes it), puts it. Anything else — an
entry not there as such, a disagreement, a deflated member or one whose sizes follow its data
— is left to ``npz.Bundle``, which reads the whole directory and words the refusal. What the
offset finds instead of a member is refused here (``zipentries.local_member``).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable

from ..errors import LimitError
from .limits import Limits
from .zipentries import central_member, local_member
from .zipio import Member, Source
from .zipread import directory_span
from .ziprecords import CENTRAL

__all__ = ["PlacedMembers"]

_SUFFIX = ".npy"
_ENTRY_WIDTH = CENTRAL.size + len(_SUFFIX)  # a tensor's plain directory entry, but its name


class PlacedMembers:
    """The bundle ``source``'s tensors, listed in ``names``' order, each found by its offset."""

    def __init__(self, source: Source, names: Iterable[str], limits: Limits) -> None:
        self._source, self._names, self._limits = source, names, limits
        self._members: dict[str, Member | None] = {}
        self._entries: dict[str, int] | None = None  # where each tensor's directory entry starts

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

    def _entry(self, name: str) -> Member | None:
        """``name``'s directory entry, read alone where the writer's layout puts it; None if it
        is not there as such."""
        if self._entries is None:
            count, start, size, _ = directory_span(self._source, kind="an npz weight bundle")
            names = list(self._names)
            lengths = map(len, names) if "".join(names).isascii() else (len(n.encode()) for n in names)
            widths = map(operator.add, lengths, itertools.repeat(_ENTRY_WIDTH))
            starts = list(itertools.accumulate(widths, initial=start))  # one more: the directory's end
            in_order = count == len(names) and starts[-1] == start + size
            self._entries = dict(zip(names, starts, strict=False)) if in_order else {}
        position = self._entries.get(name)
        return None if position is None else central_member(self._source, position, name + _SUFFIX)
