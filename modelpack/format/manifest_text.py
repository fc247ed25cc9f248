"""The manifest's text: how a manifest document is written (the JSON subset of YAML where the
content allows, else block YAML) and how its YAML is read back, safely, into plain data.

``format.schema`` validates that data into models; this module knows nothing of them.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from typing import Any

from ..errors import LimitError, SchemaError
from ..io import safeyaml
from ..io.limits import DEFAULT_LIMITS
from . import index_decode, tensor_index

__all__ = ["document_to_text", "parse_yaml"]


def document_to_text(document: dict[str, Any]) -> str:
    """A manifest document (plain data, fields in schema order) as ASCII text.

    Written in the JSON subset of YAML (indented, one field per line) whenever the content
    allows — every JSON parser reads it, and it parses ~20× faster than block YAML — else
    (non-finite floats, characters beyond the BMP) in block style.
    """
    as_json = _json_text(document, "")
    if as_json is not None:
        return as_json + "\n"
    plain = {key: value.json_entries() if isinstance(value, tensor_index.TensorIndex) else value
             for key, value in document.items()}
    return _block_yaml(plain)


def _block_yaml(plain: dict[str, Any]) -> str:
    import yaml  # here only: the JSON form, what is usually written, needs none of it (~15 ms)

    return yaml.dump(
        plain,
        Dumper=_dumper(),
        sort_keys=False,
        # ASCII with escapes: PyYAML writes some characters (NEL, U+2028) raw that its own
        # reader then takes as line breaks; escaped text round-trips exactly.
        allow_unicode=False,
        default_flow_style=False,
        width=100,
    )


@functools.cache
def _dumper() -> type:
    """PyYAML's safe dumper in block style, except that short lists of scalars (shapes,
    kernel sizes) stay on one line."""
    import yaml

    class ManifestDumper(yaml.SafeDumper):
        pass

    def represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        flow = all(not isinstance(item, (list, dict)) for item in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    ManifestDumper.add_representer(list, represent_list)
    return ManifestDumper


def _json_text(value: Any, indent: str) -> str | None:
    """JSON that YAML 1.1 reads identically (floats with a point and a signed exponent), or
    None when the value has something JSON cannot say that way. (Strings are quoted by json's
    own C encoder and lists of ints joined at once: a manifest of 10,000 tensors holds
    100,000 values.)"""
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        parts = []
        for key, item in value.items():
            # The values of a tensor entry (a name, an offset, a shape) written here rather
            # than each by a call of its own: a manifest of 10,000 tensors holds 50,000.
            kind = type(item)
            if kind is str:
                text = _encode_string(item) if item.isascii() else _quoted(item)
            elif kind is int:
                text = str(item)
            elif kind is list and all(type(number) is int for number in item):
                text = "[" + ", ".join(map(str, item)) + "]"
            elif isinstance(item, tensor_index.TensorIndex):
                text = _index_text(item.entries, inner)
            else:
                text = _json_text(item, inner)
            if type(key) is str and key.isascii():
                key_text: str | None = _encode_string(key)
            else:
                key_text = _json_text(key, inner)
            if text is None or key_text is None:
                return None
            parts.append(f"{inner}{key_text}: {text}")
        return "{\n" + ",\n".join(parts) + "\n" + indent + "}"
    if isinstance(value, list):
        if all(type(item) is int for item in value):  # a shape: the common list
            return "[" + ", ".join(map(str, value)) + "]"
        items = [_json_text(item, indent + "  ") for item in value]
        if any(item is None for item in items):
            return None
        if all(not isinstance(item, (dict, list)) for item in value):
            return "[" + ", ".join(items) + "]"  # type: ignore[arg-type]
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + item for item in items) + "\n" + indent + "]"  # type: ignore[operator]
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent and exponent[0] not in "+-":
            exponent = "+" + exponent
        return mantissa + ("e" + exponent if exponent else "")
    return None


def _index_text(entries: Mapping[str, dict[str, Any]], indent: str) -> str | None:
    """A checked tensor index (``tensor_index.TensorIndex.entries``) as ``_json_text`` writes
    its ``json_entries()``, one format per entry (a manifest's bulk: 1.2 µs a tensor where
    the dump and the general path took 5)."""
    if not entries:
        return "{}"
    inner, field = indent + "  ", indent + "    "
    parts = []
    for name, entry in entries.items():
        key = _encode_string(name) if name.isascii() else _quoted(name)
        if key is None:
            return None
        text = (f'{inner}{key}: {{\n{field}"dtype": "{entry["dtype"]}",\n'
                f'{field}"shape": [{", ".join(map(str, entry["shape"]))}]')
        digest, offset = entry.get("sha256"), entry.get("offset")
        if digest is not None:
            text += f',\n{field}"sha256": "{digest}"'
        if offset is not None:
            text += f',\n{field}"offset": {offset}'
        parts.append(text + f"\n{inner}}}")
    return "{\n" + ",\n".join(parts) + "\n" + indent + "}"


def _quoted(text: str) -> str | None:
    """A string as ``json.dumps`` writes it (ASCII, escaped); None beyond the BMP, which
    needs the block form (max() finds such characters at C speed)."""
    return _encode_string(text) if text.isascii() or max(text) <= "\uffff" else None


_encode_string = json.encoder.encode_basestring_ascii  # what json.dumps uses for a str


def parse_yaml(
    text: str, *, source: str, max_nodes: int = DEFAULT_LIMITS.max_manifest_nodes
) -> dict[str, Any]:
    """The manifest's YAML as plain data (see ``safeyaml``: no tags, aliases, or deep nesting);
    a tensor index comes back already checked, as a ``tensor_index.TensorIndex``, when its
    entries are checked as columns (``tensor_index.prove_index``) or while decoding
    (``index_decode``, with msgspec)."""
    try:
        document = safeyaml.load(text, max_nodes=max_nodes, prove=tensor_index.prove_index,
                                  decode=index_decode.decode)
    except safeyaml.YAMLTooLarge as exc:
        costlier = f" (in the block form, each node counts {exc.cost} times)"
        raise LimitError(
            f"{source}: manifest", "its YAML node count", max_nodes + 1,
            limit="max_manifest_nodes", allowed=max_nodes, note=costlier if exc.cost > 1 else "",
        ) from None
    except safeyaml.YAMLRefused as exc:
        raise SchemaError(f"{source}: manifest is not valid safe YAML: {exc}") from None
    if not isinstance(document, dict):
        raise SchemaError(f"{source}: manifest must be a mapping, found {type(document).__name__}")
    return document
