"""The manifest's JSON form (spec/FORMAT.md §2.1), read by a compiled JSON parser with the
restrictions that make it mean the same under YAML 1.1, and the bounds of ``textbounds``
proven over the parsed document at C speed (per level and per column, not per node).

A text that breaks a restriction is refused (``YAMLRefused`` naming it), never retried as
YAML: ``safeyaml.load`` sends a text here when its first character other than space, tab, CR
or LF is ``{``.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
from typing import Any

import numpy as np
from pydantic_core import from_json

from .textbounds import INT64, MAX_DEPTH, MAX_NUMBER_CHARS, Decode, Proof, Prove, YAMLRefused, YAMLTooLarge

__all__ = ["parse"]


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
    if len(token) > MAX_NUMBER_CHARS:
        raise YAMLRefused(f"a number of {len(token)} characters")
    value = int(token)
    if not INT64[0] <= value < INT64[1]:
        raise YAMLRefused(f"the integer {token[:40]} is outside [-2**63, 2**63)")
    return value


def _json_float(token: str) -> float:
    if len(token) > MAX_NUMBER_CHARS:
        raise YAMLRefused(f"a number of {len(token)} characters")
    # json calls this for a number with a fraction or an exponent: without an exponent it has
    # its point, so only an exponent's form needs the pattern (2,000,000 floats: 3.5 → 2.4 s).
    if ("e" in token or "E" in token) and not _JSON_FLOAT.match(token):
        raise YAMLRefused(
            f"the number {token[:40]} is not in the JSON form (integers, or floats with a "
            "fraction and a signed exponent)"
        )
    return float(token)


def _json_constant(token: str) -> Any:
    raise YAMLRefused(f"{token} is not JSON")


def parse(text: str, max_nodes: int, prove: Prove | None = None, decode: Decode | None = None) -> Any:
    """The JSON form of spec/FORMAT.md §2.1, or YAMLRefused saying which restriction broke.

    ``decode`` (the caller's typed decoder, see ``Decode``) is tried first on a large text
    without escapes; what it declines, or what fails a check here, is parsed the usual way."""
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
    long = len(text) > _LONG_TEXT  # (many mappings, or long strings: either way not hooked)
    collections = 0 if long else text.count("{")
    if not long and collections < _MANY_COLLECTIONS:
        collections += text.count("[")
    hooked = escaped or (not long and collections < _MANY_COLLECTIONS)
    if decode is not None and not hooked:  # (a small text's hooks cost less than the decoder's walk)
        decoded = decode(text)
        vouched = _vouched(text, max_nodes, *decoded) if decoded is not None else None
        if vouched is not None:
            return vouched
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
    if not hooked and (not _no_duplicates(text, keys) or low < INT64[0] or high >= INT64[1]):
        _parse_json(text, hooked=True)  # raises, naming the duplicated key or the integer
        raise YAMLRefused("duplicate keys in the JSON form")  # (a safety net: not reached)
    return document


def _vouched(text: str, max_nodes: int, document: dict[str, Any], proof: Proof) -> Any:
    """A document a ``Decode`` gave, if the form's checks hold for it: the rest walked (depth,
    nodes, integers; the walk refuses as it would after the usual parse, whose proof of the
    same part counts the same), every key written still there (a decoder keeps the last of
    duplicate keys, or may drop one), and each float's written form checked by json's hook,
    which then parses the rest; None where a key or an integer fails, to parse the text the
    usual way, which words the refusal."""
    keys, low, high, floats = _walk(document, max_nodes, counted=proof.nodes)
    if low < INT64[0] or high >= INT64[1] or not _no_duplicates(text, keys + proof.keys):
        return None
    if floats:
        document = _parse_json(text, hooked=False)
        document[proof.key] = proof.checked  # the same text's part, as the decoder checked it
    return document


def _no_duplicates(text: str, keys: int) -> bool:
    """Whether the mappings parsed from ``text`` (``keys`` keys in all) lost no duplicate.

    Each key written is followed by one colon outside strings, and a mapping keeps at most
    the keys written, so ``keys`` equal to the text's colons leaves no room for a duplicate.
    A colon inside a string (a URL or a time in the metadata) breaks the tie: then only the
    colons outside strings are counted (a pass over the quotes)."""
    return keys == text.count(":") or keys == _colons_outside_strings(text)


# Measured as the bench measures (after a collection): the hooks cost more than the parse
# with its checks from about 80 tensors (160 collections) on.
_MANY_COLLECTIONS = 160
# A text longer than this is parsed without hooks, uncounted: the writers' manifests of 160
# collections (about 80 tensors) take about 15 KB, and counting a long text is a pass (~3 GB/s).
_LONG_TEXT = 16 << 10
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


# json's decoders with the form's hooks, built once (``json.loads`` with hooks builds one per
# call). The text never starts with a byte-order mark (``parse`` refuses U+FEFF first), the
# one check ``json.loads`` makes before decoding.
_HOOKED = json.JSONDecoder(object_pairs_hook=_pairs, parse_int=_json_int, parse_float=_json_float,
                           parse_constant=_json_constant)
_FLOATS_HOOKED = json.JSONDecoder(parse_float=_json_float, parse_constant=_json_constant)


def _parse_json(text: str, hooked: bool) -> Any:
    """The parsed text; with ``hooked``, each mapping and integer checked as it is built (a
    call per node), else left to ``_walk``, which checks them per level at C speed."""
    try:
        return (_HOOKED if hooked else _FLOATS_HOOKED).decode(text)
    except RecursionError:
        raise YAMLRefused(f"nests deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise YAMLRefused(f"the JSON form is not valid JSON: {exc}") from None
    except YAMLRefused:  # a hook's refusal (a ValueError too): parsing again would refuse the same
        raise
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
    columns when several all hold the same number of keys (the n-th value of each: one field
    of a table of entries), and the sequences' items."""
    values = list(itertools.chain.from_iterable(map(dict.values, mappings)))
    width = keys // len(mappings) if mappings else 0
    if width > 1 and len(mappings) > 1 and set(map(len, mappings)) == {width}:
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
