"""The manifest's block-form YAML (spec/FORMAT.md §2.1), read from PyYAML's event stream
with the bounds and refusals ``safeyaml`` describes; imported only for a text in that form.

libyaml's parser is used when PyYAML has it (about 20× faster), PyYAML's own otherwise.
What a plain scalar means is spec/FORMAT.md §2.1's table, not PyYAML's resolver alone: the
YAML 1.1 forms the table leaves out (``on``, ``0x1F``, ``1_000``, ...) are refused, so that a
reader in another language never has to imitate PyYAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from .textbounds import INT64, MAX_DEPTH, MAX_NUMBER_CHARS, YAML_NODE_COST, YAMLRefused, YAMLTooLarge

__all__ = ["parse"]

_PARSER = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
# spec/FORMAT.md §2.1's table: the plain scalars that are not strings.
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\Z")  # converted only when 400 characters at most
_BOOL = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_FLOAT = re.compile(r"(?:[-+]?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?|\.[0-9]+(?:[eE][-+][0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z")
_DECIMAL_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?\Z")  # Python's float() agrees
_WORDS: dict[str, Any] = {
    **{word: True for word in ("true", "True", "TRUE")},
    **{word: False for word in ("false", "False", "FALSE")},
    **{word: None for word in ("~", "null", "Null", "NULL", "")},
}
assert None not in _RESOLVER.yaml_implicit_resolvers  # the fast path below relies on it
_PLAIN: dict[str, Callable[[ScalarNode], Any] | None] = {
    "tag:yaml.org,2002:str": None,
    "tag:yaml.org,2002:int": _CONSTRUCTOR.construct_yaml_int,
    "tag:yaml.org,2002:float": _CONSTRUCTOR.construct_yaml_float,
    "tag:yaml.org,2002:bool": _CONSTRUCTOR.construct_yaml_bool,
    "tag:yaml.org,2002:null": _CONSTRUCTOR.construct_yaml_null,
}


def parse(text: str, max_nodes: int) -> Any:
    """One block-form document of at most ``max_nodes`` nodes, or ``YAMLRefused``."""
    if "\ufeff" in text:
        raise YAMLRefused("a raw U+FEFF (byte-order mark) is not allowed in a manifest")
    parser = _PARSER(text)
    try:
        return _build(parser, max_nodes)
    except yaml.YAMLError as exc:
        raise YAMLRefused(str(exc)) from None
    finally:
        parser.dispose()


def _build(parser: Any, max_nodes: int) -> Any:
    # Each open collection is [container, pending mapping key or _NO_KEY].
    stack: list[list[Any]] = []
    root: Any = None
    documents = nodes = 0
    while True:
        event = parser.get_event()
        kind = type(event)
        if kind is StreamEndEvent:
            return root
        if kind is DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise YAMLRefused(f"a second YAML document starts ({_at(event)}); a manifest is one document")
            if event.version is not None or event.tags:
                raise YAMLRefused(f"YAML directives (%YAML, %TAG) are not allowed ({_at(event)})")
            continue
        if kind is AliasEvent:
            raise YAMLRefused(f"YAML anchors and aliases are not allowed in a manifest ({_at(event)})")
        if not isinstance(event, NodeEvent):
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                value = stack.pop()[0]
            else:
                continue  # stream/document boundaries
        else:
            nodes += 1
            if nodes > max_nodes:
                raise YAMLTooLarge(f"has more than {max_nodes} YAML nodes", cost=YAML_NODE_COST)
            _check_plain(event)
            if isinstance(event, CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise YAMLRefused(f"nests deeper than {MAX_DEPTH} levels ({_at(event)})")
                stack.append([{} if kind is MappingStartEvent else [], _NO_KEY])
                continue
            value = _scalar(event)  # type: ignore[arg-type]
        if not stack:
            root = value
        else:
            _attach(stack[-1], value, event)


_NO_KEY = object()


def _attach(top: list[Any], value: Any, event: Any) -> None:
    container, key = top
    if isinstance(container, list):
        container.append(value)
    elif key is _NO_KEY:
        if not isinstance(value, str):
            raise YAMLRefused(f"mapping keys must be strings, found {type(value).__name__} ({_at(event)})")
        if value in container:
            raise YAMLRefused(f"duplicate key {value!r} ({_at(event)})")
        top[1] = value
    else:
        container[key] = value
        top[1] = _NO_KEY


def _check_plain(event: Any) -> None:
    if event.anchor is not None:
        raise YAMLRefused(f"YAML anchors and aliases are not allowed in a manifest ({_at(event)})")
    if event.tag is not None:
        raise YAMLRefused(f"YAML tag {event.tag!r} is not allowed in a modelpack manifest ({_at(event)})")


def _scalar(event: ScalarEvent) -> Any:
    value = event.value
    if not event.implicit[0]:
        return value  # quoted or block text: always a string
    # Fast paths (most of a manifest), with exactly the resolver's results: plain decimal
    # integers, and text whose first character no implicit type can start with.
    if _DECIMAL.match(value):
        number = int(value) if len(value) <= MAX_NUMBER_CHARS else None
        if number is None or not INT64[0] <= number < INT64[1]:
            raise YAMLRefused(f"the integer {value[:40]} is outside [-2**63, 2**63) ({_at(event)})")
        return number
    if value and value[0] not in _RESOLVER.yaml_implicit_resolvers:
        return value
    # The table's other rows without the resolver (its float row's decimal form, booleans,
    # null), which the resolver would also give: the block form's costliest scalars.
    if len(value) <= MAX_NUMBER_CHARS and _DECIMAL_FLOAT.match(value):
        return float(value)
    if value in _WORDS:
        return _WORDS[value]
    tag = _RESOLVER.resolve(ScalarNode, value, (True, False))
    if tag not in _PLAIN:
        raise YAMLRefused(
            f"plain scalar {value[:40]!r} resolves to {tag!r}, which a manifest may not "
            f"hold; quote it ({_at(event)})"
        )
    construct = _PLAIN[tag]
    if construct is None:
        return value
    table = _BOOL if tag == "tag:yaml.org,2002:bool" else _FLOAT if tag == "tag:yaml.org,2002:float" else None
    if tag != "tag:yaml.org,2002:null" and (table is None or not table.match(value)):
        # YAML 1.1 forms outside spec/FORMAT.md §2.1's table (yes/no/on/off, hexadecimal,
        # octal, binary, base 60, '_' separators; the decimal integers took the path above):
        # other YAML readers disagree about them, and no writer leaves them unquoted.
        raise YAMLRefused(
            f"plain scalar {value[:40]!r} is a YAML 1.1 form a manifest may not hold; quote it "
            f"({_at(event)})"
        )
    if len(value) > MAX_NUMBER_CHARS:
        raise YAMLRefused(f"plain scalar {value[:40]!r} is an over-long number ({_at(event)})")
    try:
        return construct(ScalarNode(tag, value))
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise YAMLRefused(f"cannot read {value[:40]!r} ({_at(event)}): {exc}") from None


def _at(event: Any) -> str:
    mark = event.start_mark
    return f"at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
