"""Nested call structures: tuples and lists of arrays (and None), as graphs pass them.

A recurrent layer takes ``(x, [h, c])`` and returns ``(y, [h, c])``; a decoder's state is a
list of arrays. A graph stores such a structure as a *tree* next to the flat list of values
it holds: ``"value"`` (one array), ``"none"`` (Python None), or ``{kind: tuple|list, items:
[tree, ...]}``. ``flatten`` and ``unflatten`` convert between the two.

>>> flatten((1, [2, None]))  # doctest: +SKIP
({'kind': 'tuple', 'items': ['value', {'kind': 'list', 'items': ['value', 'none']}]}, [1, 2])
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Tree",
    "TreeNode",
    "flatten",
    "unflatten",
    "count",
    "is_flat",
    "has_nesting",
    "describe",
    "MAX_DEPTH",
]

MAX_DEPTH = 32  # nesting a writer records (readers are bounded by YAML's); states nest 2-3 levels


class TreeNode(BaseModel):
    """A tuple or list in a structure, with the structure of each item."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)

    kind: Literal["tuple", "list"]
    items: list[Tree] = Field(max_length=100_000)


Tree = Literal["value", "none"] | TreeNode
# (no model_rebuild here: it would build the validator at import; with defer_build the
# first validation resolves ``Tree`` from this module and builds it)


def flatten(value: Any) -> tuple[Any, list[Any]]:
    """``(tree, leaves)`` of a nested tuple/list structure; anything else is one leaf."""
    leaves: list[Any] = []

    def walk(item: Any, depth: int) -> Any:
        if item is None:
            return "none"
        if isinstance(item, (tuple, list)):
            if depth >= MAX_DEPTH:
                raise ValueError(f"structures nest at most {MAX_DEPTH} levels")
            kind = "tuple" if isinstance(item, tuple) else "list"
            return {"kind": kind, "items": [walk(x, depth + 1) for x in item]}
        leaves.append(item)
        return "value"

    return walk(value, 0), leaves


def unflatten(tree: Any, leaves: list[Any]) -> Any:
    """The structure ``tree`` describes, filled with ``leaves`` in order."""
    source: Iterator[Any] = iter(leaves)

    def build(node: Any) -> Any:
        node = as_json(node)
        if node == "value":
            return next(source)
        if node == "none":
            return None
        items = [build(item) for item in node["items"]]
        return tuple(items) if node["kind"] == "tuple" else items

    return build(tree)


def values_of(tree: Any, value: Any) -> list[Any]:
    """The values of ``value``, which must have the structure ``tree`` (``TypeError`` naming
    both structures otherwise)."""
    want = as_json(tree)
    got, leaves = flatten(value)
    if got != want:
        raise TypeError(f"{describe(want)}, got {describe(got)}")
    return leaves


def as_json(tree: Any) -> Any:
    """A tree as plain JSON data (validated models become dicts, at every level)."""
    tree = tree.model_dump() if isinstance(tree, BaseModel) else tree
    if isinstance(tree, dict):
        return {"kind": tree["kind"], "items": [as_json(item) for item in tree["items"]]}
    return tree


def count(tree: Any) -> int:
    """How many values (leaves other than None) a tree holds."""
    tree = as_json(tree)
    if tree == "value":
        return 1
    if tree == "none":
        return 0
    return sum(count(item) for item in tree["items"])


def is_flat(trees: list[Any]) -> bool:
    """True when every tree is one value (the form graphs store without a tree)."""
    return all(isinstance(tree, str) and tree == "value" for tree in trees)


def has_nesting(items: Any) -> bool:
    """True when a tuple or list of values holds a tuple, list or None (so it needs a tree)."""
    return any(item is None or isinstance(item, (tuple, list)) for item in items)


def describe(tree: Any) -> str:
    """A tree as Python-like text for messages: ``(x, [x, None])``."""
    tree = as_json(tree)
    if tree == "value":
        return "x"
    if tree == "none":
        return "None"
    inner = ", ".join(describe(item) for item in tree["items"])
    return f"({inner}{',' if len(tree['items']) == 1 else ''})" if tree["kind"] == "tuple" else f"[{inner}]"
