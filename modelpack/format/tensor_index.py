"""The manifest's tensor index (``weights``): checked as whole columns, entries built on demand.

An archive of 10,000 tensors lists 10,000 entries. Validating each as a Pydantic model costs
about 2 µs (20 ms at open, more than reading the zip directories); here the same rules run
over all entries at once with C-level builtins — one set of key layouts, one set of dtypes,
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
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from ..io.npy import SUPPORTED_DTYPES

__all__ = ["TensorIndex", "vouch"]

Info = TypeVar("Info")

_DTYPES = frozenset(SUPPORTED_DTYPES)
_LAYOUTS = {frozenset({"dtype", "shape", "sha256"}), frozenset({"dtype", "shape"})}
_HEX_DIGITS = "0123456789abcdef"
_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")  # what schema.check_tensor_name refuses
_MAX_NAME = 1024
_MAX_DIM = 2**63
_not_none = functools.partial(operator.is_not, None)


class TensorIndex(Mapping[str, Info], Generic[Info]):
    """Tensor name → entry, in manifest order; each entry is built by ``make`` when first read."""

    def __init__(
        self, entries: dict[str, dict[str, Any]], make: Callable[..., Info], first_unhashed: str | None
    ) -> None:
        self._entries, self._make = entries, make
        self._built: dict[str, Info] = {}
        self.first_unhashed = first_unhashed  # the first tensor without a sha256, if any

    @property
    def entries(self) -> Mapping[str, dict[str, Any]]:
        """The checked entries as parsed (plain dicts), for callers that read every tensor's
        fields as columns (``verify``) rather than building an entry each."""
        return self._entries

    def json_entries(self) -> dict[str, dict[str, Any]]:
        """The entries as ``model_dump(mode="json", exclude_none=True)`` writes them (fields in
        schema order, no null hash), without building a model each (the writer's hot path)."""
        return {
            name: {"dtype": entry["dtype"], "shape": list(entry["shape"]), "sha256": entry["sha256"]}
            if entry.get("sha256") is not None
            else {"dtype": entry["dtype"], "shape": list(entry["shape"])}
            for name, entry in self._entries.items()
        }

    def __getitem__(self, name: str) -> Info:
        built = self._built.get(name)
        if built is None:
            built = self._built[name] = self._make(**self._entries[name])
        return built

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

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
    layouts = set(map(frozenset, entries))
    if not layouts <= _LAYOUTS:
        return None  # unknown fields (a newer minor version's: the schema drops them), or missing
    dtypes = list(map(operator.itemgetter("dtype"), entries))
    if dtypes and set(map(type, dtypes)) != {str}:
        return None  # a list or mapping where a name belongs (unhashable): the schema says what
    if not set(dtypes) <= _DTYPES:
        return None
    shapes = list(map(operator.itemgetter("shape"), entries))
    if shapes and set(map(type, shapes)) != {list}:
        return None
    dims = list(itertools.chain.from_iterable(shapes))
    if dims and (set(map(type, dims)) != {int} or min(dims) < 0 or max(dims) >= _MAX_DIM):
        return None
    hashes = list(map(dict.get, entries, itertools.repeat("sha256")))
    present: list[Any] = list(filter(_not_none, hashes))
    if present:
        if set(map(type, present)) != {str}:
            return None
        if set(map(len, present)) != {64} or "".join(present).strip(_HEX_DIGITS):  # (strip: C speed)
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
