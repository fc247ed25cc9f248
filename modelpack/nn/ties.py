"""Parameters shared between layers (Gluon's ``Dense(8, params=shared.params)``): find, re-tie.

A network may use one ``Parameter`` in several places (d2l's "tied parameters"). An archive
stores its data once, under its first structured name, and records every other name as a
*tie*: ``{"2.weight": "1.weight"}`` (spec §3.6). Loading builds each layer from its config,
which gives the tied place a fresh parameter, and ``apply_ties`` puts the shared one back, so
training the loaded model updates both places together, as in the original.

>>> find_ties(net)                                   # doctest: +SKIP
{'2.weight': '1.weight', '2.bias': '1.bias'}
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import FormatError
from .block import Block
from .parameter import Parameter, shapes_compatible

__all__ = ["find_ties", "apply_ties"]


def find_ties(net: Block) -> dict[str, str]:
    """Each later name of a shared parameter → the name it is stored under (its first)."""
    first: dict[int, str] = {}
    ties: dict[str, str] = {}
    for name, param in net._walk(""):
        if id(param) in first:
            ties[name] = first[id(param)]
        else:
            first[id(param)] = name
    return ties


def apply_ties(net: Block, ties: Mapping[str, str], source: str) -> None:
    """Make each tied place of ``net`` use the parameter it is tied to (checked first)."""
    places = {name: param for name, param in net._walk("")}
    for alias, stored in ties.items():
        if alias not in places:
            raise FormatError(f"{source}: tie {alias!r} → {stored!r} names no parameter of the architecture")
        if stored not in places or stored in ties:
            raise FormatError(f"{source}: tie {alias!r} → {stored!r} names no stored parameter")
        shared, fresh = places[stored], places[alias]
        if shared.dtype != fresh.dtype or not shapes_compatible(fresh.shape, shared.shape):
            raise FormatError(
                f"{source}: tie {alias!r} → {stored!r}: the layer at {alias!r} needs "
                f"{fresh.shape} {fresh.dtype.name}, {stored!r} is {shared.shape} {shared.dtype.name}"
            )
        _replace(net, alias, fresh, shared)


def _replace(net: Block, dotted: str, old: Parameter, new: Parameter) -> None:
    """Swap ``old`` for ``new`` in the block that owns ``dotted``, wherever it refers to it."""
    *path, key = dotted.split(".")
    owner = net
    for part in path:
        owner = owner._children[part]
    owner._reg_params[key] = new
    for attribute, value in list(vars(owner).items()):
        if value is old:
            object.__setattr__(owner, attribute, new)
