"""What the manifest reader accepts in either of its forms (the block YAML of ``safeyaml``, the
JSON form of ``jsonform``): the nesting and size bounds, the integer range, how a refusal is
reported, and the proof a caller gives for a part of a document it checked itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["MAX_DEPTH", "YAML_NODE_COST", "MAX_NUMBER_CHARS", "INT64", "YAMLRefused", "YAMLTooLarge",
           "Proof", "Prove", "Decode"]

# Deepest nesting of mappings and lists. An architecture level costs two (a node and its
# children mapping), so the 64-level architecture limit needs about 132; this leaves room
# for the schema check to report the architecture depth itself.
MAX_DEPTH = 160

# A node costs the block form (libyaml's events, then type resolution in Python) up to about
# four times what it costs the JSON form, so it counts four times: the worst manifest within
# the node limit then parses in about the same time in either form (bench/manifest_worst.py).
YAML_NODE_COST = 4

MAX_NUMBER_CHARS = 400  # far beyond any shape, config value or int64 in any base
INT64 = (-(2**63), 2**63)  # integers a manifest may hold, [low, high)


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
# A caller's own decoder of a whole JSON text with a part checked as it is decoded (the
# manifest's tensor index): the document with the part's stand-in, and its proof; None where
# it declines (the text is then parsed the usual way, which words any refusal).
Decode = Callable[[str], "tuple[dict[str, Any], Proof] | None"]
