"""The manifest's JSON form decoded with its tensor index checked as it is parsed, by msgspec
(the optional extra ``modelpack[fast]``).

Opening an archive of 10,000 tensors parses a 2 MB manifest and checks 10,000 index entries:
a JSON parser builds the entries (~8 ms here) and ``tensor_index.vouch`` then checks them as
columns (~7 ms). msgspec's typed decoder does both in one compiled pass (~4 ms): each entry
must be exactly ``dtype`` (a supported name), ``shape`` (integers in [0, 2**63)), ``sha256``
(64 characters) and ``offset`` (an integer in [0, 2**63)) — what a 1.5 writer writes for every
tensor. What the types cannot say is checked here as ``vouch`` checks it (hex digits, names);
what concerns the whole text (nesting, node count, duplicate keys, integer range and float
forms elsewhere) ``jsonform.parse`` checks after. Anything else — an older archive's entry
without a hash or offset, a newer minor version's field, a null, a float where an integer
belongs — is declined, and the text parsed the usual way, which words any refusal. Without
msgspec installed, ``decode`` declines everything.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, Literal, TypedDict

from ..io.npy import SUPPORTED_DTYPES
from ..io.textbounds import Proof
from . import tensor_index

__all__ = ["decode"]

try:
    import msgspec
except ImportError:  # the optional extra is not installed
    msgspec = None  # type: ignore[assignment]

_INDEX_KEY = "weights"  # the manifest's field that holds the tensor index
_FIELDS_PER_ENTRY = 4  # dtype, shape, sha256, offset: every one required here


def decode(text: str) -> tuple[dict[str, Any], Proof] | None:
    """The manifest document with its index checked (a ``TensorIndex`` stands in for it), and
    the proof ``jsonform`` counts; None where this decoder declines the text."""
    decoder = _decoder()
    if decoder is None:
        return None
    try:
        decoded = decoder.decode(text)
    except (msgspec.DecodeError, RecursionError):  # (ValidationError is a DecodeError)
        return None
    document = {name: value for name in decoded.__struct_fields__
                if (value := getattr(decoded, name)) is not msgspec.UNSET}
    weights = document.get(_INDEX_KEY)
    if weights is None:
        return None
    names = list(weights)
    entries = list(weights.values())
    if not tensor_index.names_allowed(names):
        return None
    if not tensor_index.lowercase_hex(list(map(_SHA256, entries))):
        return None
    dimensions = sum(map(len, map(_SHAPE, entries)))
    fields = _FIELDS_PER_ENTRY * len(entries)
    index = tensor_index.checked_index_of(weights, fields=fields, dimensions=dimensions)
    keys = len(names) + index.fields  # each tensor's name, and its entry's keys
    document[_INDEX_KEY] = index
    return document, Proof(_INDEX_KEY, index, keys=keys, nodes=2 * keys + dimensions)


_SHA256, _SHAPE = operator.itemgetter("sha256"), operator.itemgetter("shape")


@functools.cache
def _decoder() -> Any:
    """msgspec's decoder of a manifest whose index is typed (built on first use: the schema
    names the manifest's fields, and imports this module's importer); None without msgspec."""
    if msgspec is None:
        return None
    from .schema import Manifest  # (a cycle at import time: schema -> manifest_text -> here)

    dimension = Annotated[int, msgspec.Meta(ge=0, le=tensor_index.MAX_DIMENSION - 1)]
    # A TypedDict decodes to the plain dicts the rest of the reader takes; it drops a key it
    # does not know, which jsonform's count of the keys written then notices. (The functional
    # form: this module's postponed annotations could not name the local ``dimension``.)
    entry = TypedDict(  # type: ignore[name-match]  # noqa: UP013
        "_Entry",
        {
            "dtype": Literal[SUPPORTED_DTYPES],  # type: ignore[valid-type]
            "shape": list[dimension],
            "sha256": Annotated[str, msgspec.Meta(min_length=64, max_length=64)],
            "offset": dimension,
        },
    )
    fields = [(name, dict[str, entry] if name == _INDEX_KEY else Any, msgspec.UNSET)
              for name in Manifest.model_fields]
    document = msgspec.defstruct("_Manifest", fields, forbid_unknown_fields=True)
    return msgspec.json.Decoder(document)
