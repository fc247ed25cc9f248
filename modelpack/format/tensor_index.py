"""The manifest's tensor index (``weights``): checked as whole columns, entries built on demand.

An archive of 10,000 tensors lists 10,000 entries. Validating each as a Pydantic model costs
about 2 µs (20 ms at open, more than reading the zip directories); here the same rules run
over all entries at once with C-level builtins — one count of keys, one set of dtypes,
one joined string of hashes and one of names, one flattened list of dimensions. When every
rule holds, ``TensorIndex`` keeps the parsed entries and builds a ``TensorInfo`` only for the
tensors asked for; when anything is unusual, ``vouch`` returns None and the schema validates
entry by entry, which words the refusal. Nothing is accepted here that the schema refuses.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..io.lazymap import LazyMapping
from ..io.npy import SUPPORTED_DTYPES

__all__ = ["TensorIndex", "vouch"]

Info = TypeVar("Info")

_DTYPES = frozenset(SUPPORTED_DTYPES)
_HEX_DIGITS = b"0123456789abcdef"
_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")  # what schema.check_tensor_name refuses
_MAX_NAME = 1024
_MAX_DIM = 2**63
_not_none = functools.partial(operator.is_not, None)


class TensorIndex(LazyMapping[Info]):
    """Tensor name → entry, in manifest order; each entry is built by ``make`` when first read."""

    def __init__(
        self, entries: dict[str, dict[str, Any]], make: Callable[..., Info], first_unhashed: str | None
    ) -> None:
        self._entries, self._keys, self._make = entries, entries, make
        self._built: dict[str, Info] = {}
        self.first_unhashed = first_unhashed  # the first tensor without a sha256, if any

    def _lookup(self) -> dict[str, dict[str, Any]]:
        return self._entries

    def _build(self, key: str, found: dict[str, Any]) -> Info:
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = self._make(**found)
        return built

    def __repr__(self) -> str:
        return f"TensorIndex({len(self)} tensors)"


def vouch(value: Any, make: Callable[..., Info]) -> TensorIndex[Info] | None:
    """A ``TensorIndex`` of ``value`` if every entry is exactly what the schema accepts (a
    dict of ``dtype``, ``shape`` and optionally ``sha256``, with valid values) and every name
    is allowed; None to have the schema validate it entry by entry."""
    if type(value) is not dict:
        return None
    entries = list(value.values())
    if entries and set(map(type, entries)) != {dict}:
        return None
    try:
        dtypes = list(map(operator.itemgetter("dtype"), entries))
        shapes = list(map(operator.itemgetter("shape"), entries))
    except KeyError:
        return None  # a field is missing: the schema says which
    hashes = list(map(dict.get, entries, itertools.repeat("sha256")))
    present: list[Any] = list(filter(_not_none, hashes))
    # Each entry holds dtype and shape, so this sum counts exactly the other keys: each
    # present sha256 and nothing else (a newer minor version's field, which the schema drops,
    # or an explicit null, which it accepts).
    if sum(map(len, entries)) != 2 * len(entries) + len(present):
        return None
    if dtypes and set(map(type, dtypes)) != {str}:
        return None  # a list or mapping where a name belongs (unhashable): the schema says what
    if not set(dtypes) <= _DTYPES:
        return None
    if shapes and set(map(type, shapes)) != {list}:
        return None
    dims = list(itertools.chain.from_iterable(shapes))
    if dims and (set(map(type, dims)) != {int} or min(dims) < 0 or max(dims) >= _MAX_DIM):
        return None
    if present:
        if set(map(type, present)) != {str} or set(map(len, present)) != {64}:
            return None
        digits = "".join(present)  # lowercase hex only: nothing is left once they are deleted
        if not digits.isascii() or digits.encode("ascii").translate(None, _HEX_DIGITS):
            return None
    names = list(value)
    if names and set(map(type, names)) != {str}:
        return None
    if names and (
        "" in value or max(map(len, names)) > _MAX_NAME or _NAME_CHARS.search("".join(names))
    ):
        return None
    first_unhashed = names[hashes.index(None)] if len(present) != len(hashes) else None
    return TensorIndex(value, make, first_unhashed)
