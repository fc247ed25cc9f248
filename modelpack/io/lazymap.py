"""A mapping whose values are built when first asked for, from data kept in bulk.

Opening an archive of 10,000 tensors checks its zip directory as columns (``zipbatch``) and
its tensor index as lists (``format.tensor_index``); building an object per member or per
tensor would cost more than the checks. Both keep the checked data as it is and answer as a
read-only mapping through this one base.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["LazyMapping"]

V = TypeVar("V")


class LazyMapping(Mapping[str, V]):
    """Keys in order; a key's value is ``_build(key, found)``, ``found`` being what
    ``_lookup()`` holds for it (a row number, a parsed entry)."""

    _keys: Collection[str]

    def _lookup(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def _build(self, key: str, found: Any) -> V:
        raise NotImplementedError

    def __getitem__(self, key: str) -> V:
        return self._build(key, self._lookup()[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._lookup()
