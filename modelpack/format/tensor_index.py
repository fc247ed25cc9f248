"""The manifest's tensor index (``weights``): its entry model, and the check of the whole index.

An archive of 10,000 tensors lists 10,000 entries. Validating each as a Pydantic model costs
about 2 µs (20 ms at open, more than reading the zip directories); here the same rules run
over all entries at once with C-level builtins — one count of keys, one set of dtypes,
one joined string of hashes and one of names, one flattened list of dimensions. When every
rule holds, ``TensorIndex`` keeps the parsed entries and builds a ``TensorInfo`` only for the
tensors asked for; when anything is unusual, ``vouch`` returns None and Pydantic validates
entry by entry, which words the refusal. Nothing is accepted here that the model refuses.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, ValidatorFunctionWrapHandler

from ..io import safeyaml
from ..io.lazymap import LazyMapping
from ..io.npy import SUPPORTED_DTYPES
from .models import Extensible, constructed

__all__ = [
    "MAX_NAME",
    "TensorInfo", "TensorIndex", "Entry", "check_tensor_name", "checked_index", "dump_weights", "entries",
    "offsets", "prove_index", "validate_weights", "vouch", "MAX_DIMENSION", "checked_index_of",
    "lowercase_hex", "names_allowed",
]

Info = TypeVar("Info")

_DTYPES = frozenset(SUPPORTED_DTYPES)
_HEX_DIGITS = b"0123456789abcdef"
# Tensor names: dotted identifiers for models; any printable name without path characters
# for tensor dicts. Either way a name can never form a path outside the bundle.
_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")
# The UTF-8 bytes of every other character (all that _NAME_CHARS finds are ASCII, and in UTF-8
# no other character's encoding holds an ASCII byte): deleting them leaves what it would find.
_NAME_BYTES = bytes(sorted(set(range(256)) - {ord("/"), ord("\\"), *range(0x20), 0x7F}))
MAX_NAME = 1024  # the longest tensor name, in characters
MAX_DIMENSION = 2**63  # dimensions and offsets are below it (int64, as numpy's shapes)
_not_none = functools.partial(operator.is_not, None)


DtypeName = Literal[SUPPORTED_DTYPES]  # type: ignore[valid-type]


class TensorInfo(Extensible):
    """One tensor of the weight bundle: numpy dtype name and shape (little-endian, C order)."""

    dtype: DtypeName
    shape: list[Annotated[int, Field(ge=0, lt=MAX_DIMENSION)]]
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (lowercase hex) of the tensor's data bytes as stored: C order, "
        "little-endian, without the .npy header. Written from format 1.1 on.",
    )
    offset: int | None = Field(
        default=None, ge=0, lt=MAX_DIMENSION,
        description="Where the tensor's member starts in the weight bundle: the offset of its zip "
        "local header from the bundle's first byte, so that one tensor is read without the "
        "bundle's directory. Written from format 1.5 on.",
    )


def check_tensor_name(name: str) -> None:
    """Refuse names that are empty or could act as paths inside the bundle."""
    if not name or _NAME_CHARS.search(name) or len(name) > MAX_NAME:
        raise ValueError(
            f"tensor name {name!r} is not allowed: names are 1-1024 characters with no '/', "
            "'\\' or control characters"
        )


def validate_weights(value: Any, handler: ValidatorFunctionWrapHandler) -> Mapping[str, TensorInfo]:
    """The manifest's ``weights`` (a wrap validator): the common case checked as columns,
    anything else entry by entry by Pydantic, which words the refusal. An index checked
    while the manifest was parsed (``prove_index``) stands in the document already."""
    index = checked_index(value)
    if index is not None:
        return index
    checked: dict[str, TensorInfo] = handler(value)
    for name in checked:
        check_tensor_name(name)
    return checked


def checked_index(value: Any) -> TensorIndex[TensorInfo] | None:
    """``value`` as a checked index of ``TensorInfo``: as it stands if ``prove_index`` checked
    it while the manifest was parsed, else vouched for (``vouch``); None to have the schema
    validate it entry by entry."""
    if type(value) is TensorIndex and value.make is _checked_info:
        return value
    return vouch(value, _checked_info)


def dump_weights(
    value: Mapping[str, TensorInfo], handler: SerializerFunctionWrapHandler, info: SerializationInfo
) -> Any:
    """The index as the plain mapping Pydantic serialises (a wrap serializer); the writer's
    JSON dump takes the checked entries as they are, without building a model each."""
    if isinstance(value, TensorIndex):
        plain = info.mode_is_json() and info.exclude_none
        if plain and not (info.exclude_unset or info.exclude_defaults):
            return value.json_entries()  # as the handler would give them, at a fraction of the cost
        value = dict(value.items())
    return handler(value)


def _checked_info(
    dtype: str, shape: list[int], sha256: str | None = None, offset: int | None = None
) -> TensorInfo:
    """A TensorInfo from values already checked (``vouch``)."""
    values = {"dtype": dtype, "shape": shape, "sha256": sha256, "offset": offset}
    return constructed(TensorInfo, values, {key for key, value in values.items() if value is not None})


class TensorIndex(LazyMapping[Info]):
    """Tensor name → entry, in manifest order; each entry is built by ``make`` when first read."""

    def __init__(
        self, entries: dict[str, dict[str, Any]], make: Callable[..., Info], first_unhashed: str | None,
        first_unplaced: str | None = None, *, fields: int = 0, dimensions: int = 0,
    ) -> None:
        self._entries, self._keys, self.make = entries, entries, make
        self._built: dict[str, Info] = {}
        self.first_unhashed = first_unhashed  # the first tensor without a sha256, if any
        self.first_unplaced = first_unplaced  # the first tensor without an offset, if any (allowed)
        # What the entries hold, as ``vouch`` counted them: keys in all, and shape dimensions.
        self.fields, self.dimensions = fields, dimensions

    @property
    def entries(self) -> Mapping[str, dict[str, Any]]:
        """The checked entries as parsed (plain dicts), for callers that read every tensor's
        fields as columns (``verify``) rather than building an entry each."""
        return self._entries

    def json_entries(self) -> dict[str, dict[str, Any]]:
        """The entries as ``model_dump(mode="json", exclude_none=True)`` writes them (fields in
        schema order, no null hash), without building a model each (the writer's hot path)."""
        return {name: _json_entry(entry) for name, entry in self._entries.items()}

    def _lookup(self) -> dict[str, dict[str, Any]]:
        return self._entries

    def _build(self, key: str, found: dict[str, Any]) -> Info:
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = self.make(**found)
        return built

    def __repr__(self) -> str:
        return f"TensorIndex({len(self)} tensors)"


class Entry(NamedTuple):
    """A tensor's entry as plain values: what a reader checks its member against
    (``npy.ExpectedTensor``) and where it starts, without building a ``TensorInfo``."""

    dtype: str
    shape: list[int]
    sha256: str | None
    offset: int | None


def entries(weights: Mapping[str, TensorInfo]) -> dict[str, Entry]:
    """Every tensor's entry as an ``Entry``, for reading them all: building a ``TensorInfo``
    for each costs more than reading a small tensor."""
    if isinstance(weights, TensorIndex):
        get = dict.get
        return {name: Entry(entry["dtype"], entry["shape"], get(entry, "sha256"), get(entry, "offset"))
                for name, entry in weights.entries.items()}
    return {name: Entry(info.dtype, info.shape, info.sha256, info.offset) for name, info in weights.items()}


def offsets(weights: Mapping[str, TensorInfo]) -> dict[str, int | None]:
    """Each tensor's recorded offset (None where none is), without building an entry each."""
    if isinstance(weights, TensorIndex):
        entries = weights.entries
        return dict(zip(entries, map(dict.get, entries.values(), itertools.repeat("offset")), strict=True))
    return {name: info.offset for name, info in weights.items()}


def _json_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One checked entry in schema field order, without its null fields."""
    dumped = {"dtype": entry["dtype"], "shape": list(entry["shape"])}
    for optional in _OPTIONAL:
        if entry.get(optional) is not None:
            dumped[optional] = entry[optional]
    return dumped


_OPTIONAL = ("sha256", "offset")  # TensorInfo's optional fields, in schema order


def checked_index_of(
    entries: dict[str, dict[str, Any]], *, fields: int, dimensions: int
) -> TensorIndex[TensorInfo]:
    """The index of ``entries`` that were checked as ``vouch`` checks them, each holding every
    field (``index_decode``): ``fields`` keys and ``dimensions`` shape dimensions in all."""
    return TensorIndex(entries, _checked_info, None, None, fields=fields, dimensions=dimensions)


def prove_index(document: dict[str, Any]) -> safeyaml.Proof | None:
    """A parsed manifest's ``weights`` checked as the schema will check it (``vouch``), for
    ``safeyaml.load``: the index then stands in the document, and the parser counts what it
    holds (an entry's keys; its shape's dimensions) rather than walking 10,000 entries again.
    Everything ``vouch`` accepts is what the parser needs: no floats, three levels, and
    integers in [0, 2**63)."""
    value = document.get("weights")
    index = vouch(value, _checked_info) if type(value) is dict else None
    if index is None:
        return None
    keys = len(index) + index.fields  # each tensor's name, and its entry's keys
    return safeyaml.Proof("weights", index, keys=keys, nodes=2 * keys + index.dimensions)


def lowercase_hex(digests: list[str]) -> bool:
    """Whether strings (of 64 characters each, checked before) are lowercase hex digits only:
    nothing is left of them once those are deleted."""
    digits = "".join(digests)
    return digits.isascii() and not digits.encode("ascii").translate(None, _HEX_DIGITS)


def names_allowed(names: list[str]) -> bool:
    """Whether every name (a str each) passes ``check_tensor_name``, checked at once."""
    return not names or not (
        "" in names or max(map(len, names)) > MAX_NAME
        or "".join(names).encode("utf-8", "surrogatepass").translate(None, _NAME_BYTES)
    )


def vouch(value: Any, make: Callable[..., Info]) -> TensorIndex[Info] | None:
    """A ``TensorIndex`` of ``value`` if every entry is exactly what the schema accepts (a
    dict of ``dtype``, ``shape`` and optionally ``sha256`` and ``offset``, with valid values) and every name
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
    present: list[Any] = list(filter(_not_none, hashes)) if None in hashes else hashes
    offsets = list(map(dict.get, entries, itertools.repeat("offset")))
    placed: list[Any] = list(filter(_not_none, offsets)) if None in offsets else offsets
    # Each entry holds dtype and shape, so this sum counts exactly the other keys: each
    # present sha256 and offset and nothing else (a newer minor version's field, which the
    # schema drops, or an explicit null, which it accepts).
    fields = sum(map(len, entries))
    if fields != 2 * len(entries) + len(present) + len(placed):
        return None
    if placed and (set(map(type, placed)) != {int} or min(placed) < 0 or max(placed) >= MAX_DIMENSION):
        return None
    if dtypes and set(map(type, dtypes)) != {str}:
        return None  # a list or mapping where a name belongs (unhashable): the schema says what
    if not set(dtypes) <= _DTYPES:
        return None
    if shapes and set(map(type, shapes)) != {list}:
        return None
    dims = list(itertools.chain.from_iterable(shapes))
    if dims and (set(map(type, dims)) != {int} or min(dims) < 0 or max(dims) >= MAX_DIMENSION):
        return None
    if present:
        if set(map(type, present)) != {str} or set(map(len, present)) != {64}:
            return None
        if not lowercase_hex(present):
            return None
    names = list(value)
    if names and set(map(type, names)) != {str}:
        return None
    if not names_allowed(names):
        return None
    first_unhashed = names[hashes.index(None)] if len(present) != len(hashes) else None
    first_unplaced = names[offsets.index(None)] if len(placed) != len(offsets) else None
    return TensorIndex(value, make, first_unhashed, first_unplaced, fields=fields, dimensions=len(dims))
