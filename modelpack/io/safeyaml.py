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

The JSON form (what modelpack writes) goes to ``jsonform``; the block form to ``yamlblock``,
imported only then, so that reading modelpack's own files never imports PyYAML.
"""

from __future__ import annotations

from typing import Any

from . import jsonform
from .gcpause import cycle_collection_paused
from .textbounds import MAX_DEPTH, YAML_NODE_COST, Decode, Proof, Prove, YAMLRefused, YAMLTooLarge

__all__ = ["MAX_DEPTH", "YAML_NODE_COST", "Proof", "YAMLRefused", "YAMLTooLarge", "load"]


def load(
    text: str | bytes, *, max_nodes: int, prove: Prove | None = None, decode: Decode | None = None
) -> Any:
    """Parse one YAML document of plain data; raise ``YAMLRefused`` for anything else.

    ``prove`` may check a part of a large document in its own terms (a manifest's tensor
    index) and give a ``Proof``: the part's value is then its stand-in, and the checks here
    count what it held rather than visiting it again. ``decode`` may decode a JSON form text
    whole, with that part checked as it goes (``jsonform.parse`` checks the rest).

    A text whose first character other than space, tab, CR or LF is ``{`` is the JSON form
    (spec/FORMAT.md §2.1): parsed by a compiled JSON parser (json's, or for a large index
    pydantic_core's; about 20× faster than even libyaml's events) with the form's
    restrictions, which make it mean the same under YAML 1.1; a text that breaks them is
    refused, never retried as YAML. Anything else is the block form.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    with cycle_collection_paused():
        if text.lstrip(" \t\r\n").startswith("{"):
            return jsonform.parse(text, max_nodes, prove, decode)
        from . import yamlblock  # PyYAML (~15 ms to import), for the block form only

        return yamlblock.parse(text, max_nodes // YAML_NODE_COST)
