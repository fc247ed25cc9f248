"""The manifest's YAML reader: plain data only, built from the event stream with hard bounds.

PyYAML's loaders compose a whole node tree recursively before constructing anything, keep
two position marks per node (hundreds of bytes each), resolve anchors and aliases, accept
duplicate keys (the last one silently wins) and construct whatever a tag asks for. None of
that is wanted for a file from a stranger. This reader walks the parser's events once,
iteratively, and builds dicts, lists, strings, ints, floats, bools and None directly:

- no tags, anchors or aliases (so no billion-laughs expansion and no object construction);
- mapping keys are strings, each at most once;
- one document;
- nesting at most ``MAX_DEPTH`` collections deep and at most ``max_nodes`` nodes in all,
  checked as the events arrive, so neither the stack nor memory can be exhausted; a node of
  the block form counts ``YAML_NODE_COST`` times, as it costs that much more to parse.

libyaml's parser is used when PyYAML has it (about 20× faster), PyYAML's own otherwise.
What a plain scalar means is spec/FORMAT.md §2.1's table, not PyYAML's resolver alone: the
YAML 1.1 forms the table leaves out (``on``, ``0x1F``, ``1_000``, ...) are refused, so that a
reader in another language never has to imitate PyYAML.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import yaml
from pydantic_core import from_json
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

__all__ = ["MAX_DEPTH", "YAML_NODE_COST", "Proof", "YAMLRefused", "YAMLTooLarge", "gc_paused", "load"]

# Deepest nesting of mappings and lists. An architecture level costs two (a node and its
# children mapping), so the 64-level architecture limit needs about 132; this leaves room
# for the schema check to report the architecture depth itself.
MAX_DEPTH = 160

# A node costs the block form (libyaml's events, then type resolution in Python) up to about
# four times what it costs the JSON form, so it counts four times: the worst manifest within
# the node limit then parses in about the same time in either form (bench/manifest_worst.py).
YAML_NODE_COST = 4

_PARSER = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_MAX_NUMBER_CHARS = 400  # far beyond any shape, config value or int64 in any base
_INT64 = (-(2**63), 2**63)  # integers a manifest may hold, [low, high)
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


class YAMLRefused(ValueError):
    """The text is not YAML, or uses something a manifest may not (the message says what)."""


class YAMLTooLarge(YAMLRefused):
    """The document has more nodes than the caller allows; ``cost`` is what each counted."""

    def __init__(self, message: str, *, cost: int) -> None:
        super().__init__(message)
        self.cost = cost


class Proof(NamedTuple):
    """A part of a parsed document that its reader has checked already (``load``'s ``prove``),
    and what stands in its place: ``load`` counts what the part held rather than visiting it.

    The reader vouches that the part holds no float, nests at most ``MAX_DEPTH`` levels
    below the root and holds only integers within [-2**63, 2**63).
    """

    key: str  # the root mapping's key whose value the reader checked
    checked: Any  # its value's stand-in: not a dict or list, so the walk does not enter it
    keys: int  # mapping keys the part held (below its own key)
    nodes: int  # nodes it held (below its own node)


Prove = Callable[[dict[str, Any]], "Proof | None"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around building (or validating) a large document.

    Parsing allocates up to millions of acyclic objects; each allocation burst triggers
    collections that traverse the whole process heap, so with the collector on, the cost of
    a manifest grew with everything else the process holds (2-4x here). Nothing built here
    forms a cycle, so nothing is lost by collecting later.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load(text: str | bytes, *, max_nodes: int, prove: Prove | None = None) -> Any:
    """Parse one YAML document of plain data; raise ``YAMLRefused`` for anything else.

    ``prove`` may check a part of a large document in its own terms (a manifest's tensor
    index) and give a ``Proof``: the part's value is then its stand-in, and the checks here
    count what it held rather than visiting it again.

    A text whose first character other than space, tab, CR or LF is ``{`` is the JSON form
    (spec/FORMAT.md §2.1): parsed by a compiled JSON parser (json's, or for a large index
    pydantic_core's; about 20× faster than even libyaml's events) with the form's
    restrictions, which make it mean the same under YAML 1.1; a text that breaks them is
    refused, never retried as YAML. Anything else is the block form.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    with gc_paused():
        if text.lstrip(" \t\r\n").startswith("{"):
            return _json_form(text, max_nodes, prove)
        if "\ufeff" in text:
            raise YAMLRefused("a raw U+FEFF (byte-order mark) is not allowed in a manifest")
        parser = _PARSER(text)
        try:
            return _build(parser, max_nodes // YAML_NODE_COST)
        except yaml.YAMLError as exc:
            raise YAMLRefused(str(exc)) from None
        finally:
            parser.dispose()


# Characters a YAML reader folds or strips inside quoted scalars, and escapes of UTF-16
# surrogates (JSON pairs them into one character, YAML 1.1 readers do not).
_YAML_DIFFERS = re.compile("[\u0085\u2028\u2029\ufeff]|\\\\u[dD][89a-fA-F]")
# A JSON number YAML 1.1 also reads as a float: a point, and a signed exponent if any.
_JSON_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+(?:[eE][-+][0-9]+)?\Z")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise YAMLRefused(f"duplicate key {duplicate!r} in the JSON form")
    return document


def _json_int(token: str) -> int:
    if len(token) > _MAX_NUMBER_CHARS:
        raise YAMLRefused(f"a number of {len(token)} characters")
    value = int(token)
    if not _INT64[0] <= value < _INT64[1]:
        raise YAMLRefused(f"the integer {token[:40]} is outside [-2**63, 2**63)")
    return value


def _json_float(token: str) -> float:
    if len(token) > _MAX_NUMBER_CHARS:
        raise YAMLRefused(f"a number of {len(token)} characters")
    if not _JSON_FLOAT.match(token):
        raise YAMLRefused(
            f"the number {token[:40]} is not in the JSON form (integers, or floats with a "
            "fraction and a signed exponent)"
        )
    return float(token)


def _json_constant(token: str) -> Any:
    raise YAMLRefused(f"{token} is not JSON")


def _json_form(text: str, max_nodes: int, prove: Prove | None = None) -> Any:
    """The JSON form of spec/FORMAT.md §2.1, or YAMLRefused saying which restriction broke."""
    # The raw characters can only be in a text that is not ASCII (writers write ASCII), and
    # the escapes only where a backslash occurs (one character: found at memchr's speed):
    # the full search is for the texts that need it.
    escaped = "\\" in text
    found = _YAML_DIFFERS.search(text) if escaped or not text.isascii() else None
    if found is not None:
        raise YAMLRefused(
            f"the JSON form holds {found.group()!r} (a raw U+0085, U+2028, U+2029, U+FEFF or a "
            "surrogate escape), which YAML reads differently"
        )
    # Duplicate keys: with few mappings a hook checks each as it is built; with many (a
    # manifest of 10,000 tensors) the hook costs more than the parse, so the keys the
    # mappings hold are counted instead and compared with the keys written.
    collections = text.count("{")
    if collections < _MANY_COLLECTIONS:
        collections += text.count("[")
    hooked = collections < _MANY_COLLECTIONS or escaped
    document: Any = None if hooked else _parse_quickly(text)
    checked_numbers = document is None
    if checked_numbers:
        document = _parse_json(text, hooked)
    # Every mapping, list and scalar is a node, mapping keys included; each comma separates
    # at most a key and a value, so this bound is cheap and never too low.
    if hooked and collections <= MAX_DEPTH and 1 + 2 * (collections + text.count(",")) <= max_nodes:
        return document
    # A part the caller checks in its own terms is counted, not walked (a tensor index).
    proof = prove(document) if prove is not None and not hooked and type(document) is dict else None
    if proof is not None:
        document[proof.key] = proof.checked
    keys, low, high, floats = _walk(document, max_nodes, counted=proof.nodes if proof else 0)
    keys += proof.keys if proof else 0
    if floats and not checked_numbers:
        # A float's written form is checked by json's hook alone: parsed again, to the same
        # mappings and integers as the walk found (or refused), and without the stand-in.
        document = _parse_json(text, hooked)
    if not hooked and (not _no_duplicates(text, keys) or low < _INT64[0] or high >= _INT64[1]):
        _parse_json(text, hooked=True)  # raises, naming the duplicated key or the integer
        raise YAMLRefused("duplicate keys in the JSON form")  # (a safety net: not reached)
    return document


def _no_duplicates(text: str, keys: int) -> bool:
    """Whether the mappings parsed from ``text`` (``keys`` keys in all) lost no duplicate.

    Each key written is followed by one colon outside strings, and a mapping keeps at most
    the keys written, so ``keys`` equal to the text's colons leaves no room for a duplicate.
    A colon inside a string (a URL or a time in the metadata) breaks the tie: then only the
    colons outside strings are counted (a pass over the quotes)."""
    return keys == text.count(":") or keys == _colons_outside_strings(text)


_MANY_COLLECTIONS = 1000
# Every byte but quotes and colons, deleted by bytes.translate to count the colons between keys
# and values (those outside strings).
_NOT_COLON_OR_QUOTE = bytes(sorted(set(range(256)) - set(b'":')))


def _parse_quickly(text: str) -> Any:
    """The text parsed by pydantic's JSON parser (about 1.5x json's speed, as it has no hooks),
    or None where it refuses: json then parses it again and words the refusal. It refuses
    whatever json refuses (tests/io/test_safeyaml.py compares them), and more (NaN, deep
    nesting); what json's hooks check it leaves to the caller (duplicates, floats' forms)."""
    try:
        return from_json(text, allow_inf_nan=False, cache_strings="keys")
    except ValueError:
        return None


def _parse_json(text: str, hooked: bool) -> Any:
    """The parsed text; with ``hooked``, each mapping and integer checked as it is built (a
    call per node), else left to ``_walk``, which checks them per level at C speed."""
    try:
        if hooked:
            return json.loads(text, object_pairs_hook=_pairs, parse_int=_json_int,
                              parse_float=_json_float, parse_constant=_json_constant)
        return json.loads(text, parse_float=_json_float, parse_constant=_json_constant)
    except RecursionError:
        raise YAMLRefused(f"nests deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise YAMLRefused(f"the JSON form is not valid JSON: {exc}") from None
    except ValueError:  # an integer of more digits than Python converts (4300): say which
        if hooked:
            raise
        return _parse_json(text, hooked=True)


def _walk(document: Any, max_nodes: int, *, counted: int = 0) -> tuple[int, int, int, bool]:
    """The keys of every mapping, the least and greatest integer (or 0), and whether any value
    is a float; YAMLRefused beyond ``MAX_DEPTH`` levels or ``max_nodes`` nodes (scalars are
    counted with their container, mapping keys too; ``counted`` nodes were counted before).

    Level by level, each level's collections handled by C-level builtins: a Python step
    per collection would cost as much as parsing. A level's values are taken in columns
    (``_groups``), so that a column of one type (every tensor's dtype, every shape) is
    classified by one set of types rather than value by value.
    """
    level = [document] if type(document) in (dict, list) else []
    nodes, keys, depth, low, high = 1 + counted, 0, 0, 0, 0
    floats = type(document) is float
    if nodes > max_nodes:
        raise YAMLTooLarge(f"has more than {max_nodes} nodes", cost=1)
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise YAMLRefused(f"nests deeper than {MAX_DEPTH} levels")
        kinds = set(map(type, level))
        if kinds == _DICT:
            mappings, sequences = level, []
        elif kinds == _LIST:
            mappings, sequences = [], level
        else:
            mappings = [value for value in level if type(value) is dict]
            sequences = [value for value in level if type(value) is list]
        found = sum(map(len, mappings))
        keys += found
        nodes += 2 * found + sum(map(len, sequences))
        if nodes > max_nodes:
            raise YAMLTooLarge(f"has more than {max_nodes} nodes", cost=1)
        level = []
        for group in _groups(mappings, found, sequences):
            kinds = set(map(type, group))
            floats = floats or float in kinds
            if kinds <= _LEAVES:
                continue
            if kinds == _DICT or kinds == _LIST:
                level += group
                continue
            if kinds == _INT:
                low, high = min(low, min(group)), max(high, max(group))
                continue
            types = list(map(type, group))
            integers = list(itertools.compress(group, map(operator.is_, types, itertools.repeat(int))))
            if integers:
                low, high = min(low, *integers), max(high, *integers)
            level += itertools.compress(group, map(_COLLECTIONS.__contains__, types))
    return keys, low, high, floats


def _groups(mappings: list[dict[str, Any]], keys: int, sequences: list[list[Any]]) -> list[list[Any]]:
    """A level's values in groups (every value exactly once): the mappings' values, in
    columns when they all hold the same number of keys (the n-th value of each: one field of
    a table of entries), and the sequences' items."""
    values = list(itertools.chain.from_iterable(map(dict.values, mappings)))
    width = keys // len(mappings) if mappings else 0
    if width > 1 and set(map(len, mappings)) == {width}:
        groups = [values[column::width] for column in range(width)]
    else:
        groups = [values]
    groups.append(list(itertools.chain.from_iterable(sequences)))
    return groups


_DICT, _LIST, _INT = frozenset((dict,)), frozenset((list,)), frozenset((int,))
# What a JSON parse gives that holds nothing further (an int is a leaf too, but checked).
_LEAVES = frozenset((str, float, bool, type(None)))
_COLLECTIONS = frozenset((dict, list))


def _colons_outside_strings(text: str) -> int:
    """Colons between keys and values in a valid JSON text without backslashes (so that
    quotes pair up in order): one per key written."""
    marks = np.frombuffer(text.encode("utf-8").translate(None, _NOT_COLON_OR_QUOTE), np.uint8)
    outside = ~np.logical_xor.accumulate(marks == ord('"'))  # (bytes, not 8-byte counts)
    return int(np.count_nonzero((marks == ord(":")) & outside))


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
        number = int(value) if len(value) <= _MAX_NUMBER_CHARS else None
        if number is None or not _INT64[0] <= number < _INT64[1]:
            raise YAMLRefused(f"the integer {value[:40]} is outside [-2**63, 2**63) ({_at(event)})")
        return number
    if value and value[0] not in _RESOLVER.yaml_implicit_resolvers:
        return value
    # The table's other rows without the resolver (its float row's decimal form, booleans,
    # null), which the resolver would also give: the block form's costliest scalars.
    if len(value) <= _MAX_NUMBER_CHARS and _DECIMAL_FLOAT.match(value):
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
    if len(value) > _MAX_NUMBER_CHARS:
        raise YAMLRefused(f"plain scalar {value[:40]!r} is an over-long number ({_at(event)})")
    try:
        return construct(ScalarNode(tag, value))
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise YAMLRefused(f"cannot read {value[:40]!r} ({_at(event)}): {exc}") from None


def _at(event: Any) -> str:
    mark = event.start_mark
    return f"at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
