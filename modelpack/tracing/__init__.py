"""Tracing a custom Block's ``forward`` into a graph of registered ops: recording with
stand-in arrays, symbolic (dynamic) sizes found by tracing twice, and the final check of the
graph against ``forward``.

It may import ``nn`` (the op table, blocks, ``GraphSpec``) and ``errors``; ``format`` reads
its results and the public verbs drive it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..nn import structure
from ..nn.block import Block
from .check import check_trace
from .record import TraceResult, is_opaque
from .symbols import DimSymbol, plan_symbols, trace_symbolic

__all__ = ["trace_for_export", "check_trace", "DimSymbol", "TraceResult"]


def trace_for_export(
    net: Block,
    examples: tuple[Any, ...] | None,
    *,
    dynamic_batch: bool,
    dynamic_axes: Mapping[int, Mapping[int, str]] | None,
) -> tuple[TraceResult | None, list[DimSymbol]]:
    """The traced graphs of ``net``'s custom blocks and its dynamic sizes; ``(None, [])`` for a
    network of registered layers, or when no example was given (describing it then refuses
    the custom block, saying that an example is needed). ``examples`` are forward's
    arguments: arrays, or tuples and lists of them (recurrent states)."""
    if is_opaque(net) or examples is None:
        return None, []
    _, leaves = structure.flatten(list(examples))
    symbols = plan_symbols(tuple(leaves), dynamic_batch=dynamic_batch, dynamic_axes=dynamic_axes)
    return trace_symbolic(net, examples, symbols), symbols
