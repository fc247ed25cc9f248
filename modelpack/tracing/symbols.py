"""Symbolic dimensions: which input sizes may change after loading, found by tracing twice.

A dimension is dynamic when declared so: axis 0 of every input is ``"batch"`` (unless
``dynamic_batch=False``), and ``dynamic_axes={input: {axis: name}}`` names others (one name
shared by several axes ties them, as ONNX does). Tracing runs once on the example and once
with each dynamic dimension grown by a distinct step; the two graphs must be identical except
where an integer tracks exactly one symbol's size (an input's shape, a reshape target), which
becomes the symbol's name. Any other difference is refused: the graph would only be right
for the example's sizes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import TraceError, UsageError
from ..nn.block import Block
from ..nn.graph import SYMBOL_PATTERN, GraphSpec
from .record import BlockTrace, TraceResult, trace_model

__all__ = ["DimSymbol", "plan_symbols", "resize", "trace_twice"]

_SYMBOL = re.compile(SYMBOL_PATTERN)


@dataclass(frozen=True)
class DimSymbol:
    """A named dynamic dimension: its size in the example and where it appears."""

    name: str
    size: int
    step: int  # growth in the second trace; distinct per symbol so values identify it
    places: tuple[tuple[int, int], ...]  # (input index, axis)


def plan_symbols(
    examples: tuple[np.ndarray, ...],
    *,
    dynamic_batch: bool,
    dynamic_axes: Mapping[int, Mapping[int, str]] | None,
) -> list[DimSymbol]:
    """Validate the declared dynamic dimensions against the example; one symbol per name."""
    places: dict[str, list[tuple[int, int]]] = {}
    owner: dict[tuple[int, int], str] = {}

    def declare(name: str, index: int, axis: int) -> None:
        if not isinstance(name, str) or not _SYMBOL.match(name):
            raise UsageError(f"dynamic dimension name {name!r} must be an identifier")
        if not 0 <= index < len(examples):
            raise UsageError(f"dynamic_axes names input {index}, but forward takes {len(examples)}")
        ndim = examples[index].ndim
        if not -ndim <= axis < ndim:
            raise UsageError(f"dynamic_axes: input {index} has {ndim} axes, no axis {axis}")
        place = (index, axis % ndim)
        if owner.get(place, name) != name:
            raise UsageError(f"input {index} axis {place[1]} is named both {owner[place]!r} and {name!r}")
        if place not in owner:
            owner[place] = name
            places.setdefault(name, []).append(place)

    if dynamic_batch:
        for index, example in enumerate(examples):
            if example.ndim:
                declare("batch", index, 0)
    for index, axes in (dynamic_axes or {}).items():
        for axis, name in axes.items():
            declare(name, index, axis)
    symbols = []
    for step, (name, where) in enumerate(places.items(), start=1):
        sizes = {int(examples[i].shape[a]) for i, a in where}
        if len(sizes) != 1:
            raise UsageError(
                f"dynamic dimension {name!r} has different sizes in the example: {sorted(sizes)}"
            )
        size = sizes.pop()
        if size == 0:
            raise UsageError(
                f"dynamic dimension {name!r} is empty in the example; give it at least one element"
            )
        symbols.append(DimSymbol(name, size, step, tuple(where)))
    return symbols


def resize(examples: tuple[np.ndarray, ...], symbols: list[DimSymbol], growth: int) -> tuple[np.ndarray, ...]:
    """The examples with each symbol's axes grown by ``growth × step`` (repeating the last slice)."""
    out = list(examples)
    for symbol in symbols:
        extra = growth * symbol.step
        for index, axis in symbol.places:
            last = np.take(out[index], [-1], axis=axis)
            out[index] = np.concatenate([out[index], np.repeat(last, extra, axis=axis)], axis=axis)
    return tuple(out)


def trace_twice(net: Block, examples: tuple[np.ndarray, ...], symbols: list[DimSymbol]) -> TraceResult:
    """Trace once (no dynamic dimensions) or twice, and keep the size-dependent values symbolic."""
    first, _ = trace_model(net, examples)
    if not symbols:
        return first
    second, _ = trace_model(net, resize(examples, symbols, 1))
    paths = {id(block): name or type(net).__name__ for name, block in net.named_blocks()}
    return _merge(first, second, symbols, paths)


def _merge(
    first: TraceResult, second: TraceResult, symbols: list[DimSymbol], paths: dict[int, str]
) -> TraceResult:
    by_change = {(s.size, s.size + s.step): s.name for s in symbols}
    if set(first.traces) != set(second.traces):
        raise TraceError("cannot trace forward: different blocks are called when the dynamic dimensions grow")
    merged = TraceResult()
    for key, one in first.traces.items():
        other = second.traces[key]
        where = paths.get(key, type(one.block).__name__)
        if one.parameters != other.parameters:
            raise TraceError(f"cannot trace block {where!r}: its parameters change with the input size")
        if len(one.constants) != len(other.constants) or any(
            a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes()
            for a, b in zip(one.constants, other.constants, strict=True)
        ):
            raise TraceError(
                f"cannot trace a constant in block {where!r}: it depends on the input size or "
                "values (arrays built from x.shape become constants; derive them from x with ops)"
            )
        document = _merge_json(
            one.spec.model_dump(mode="json"), other.spec.model_dump(mode="json"), by_change, where, []
        )
        spec = GraphSpec.model_validate(document)
        _check_symbols_bound(spec, where)
        merged.traces[key] = BlockTrace(one.block, spec, one.parameters, one.constants)
    return merged


def _merge_json(a: Any, b: Any, by_change: dict[tuple[int, int], str], where: str, trail: list[Any]) -> Any:
    if type(a) is not type(b):
        raise _difference(where, trail, a, b)
    if isinstance(a, dict):
        if a.keys() != b.keys():
            raise _difference(where, trail, a, b)
        return {k: _merge_json(a[k], b[k], by_change, where, [*trail, k]) for k in a}
    if isinstance(a, list):
        if len(a) != len(b):
            raise _difference(where, trail, a, b)
        return [
            _merge_json(x, y, by_change, where, [*trail, i])
            for i, (x, y) in enumerate(zip(a, b, strict=True))
        ]
    if a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)):  # NaN scalars agree
        return a
    symbol = by_change.get((a, b)) if isinstance(a, int) and not isinstance(a, bool) else None
    in_shape = (trail[:1] == ["inputs"] and "shape" in trail) or (trail[:1] == ["nodes"] and "shape" in trail)
    if symbol is not None and in_shape:
        return symbol
    raise _difference(where, trail, a, b)


def _difference(where: str, trail: list[Any], a: Any, b: Any) -> TraceError:
    location = ".".join(str(t) for t in trail)
    return TraceError(
        f"cannot trace block {where!r} with dynamic dimensions: the graph recorded at the "
        f"example's sizes differs from the one at larger sizes: {location} is {a!r} vs {b!r}. "
        "Either forward depends on state outside its inputs, or a value is computed from a "
        "dynamic size: write -1 or x.shape[i] (for a dynamic axis i) only as a reshape target, "
        "or export with fewer dynamic dimensions (dynamic_batch=False, dynamic_axes)"
    )


def _check_symbols_bound(spec: GraphSpec, where: str) -> None:
    bound = {d for graph_input in spec.inputs for d in graph_input.shape if isinstance(d, str)}
    for node in spec.nodes:
        for dim in node.attrs.get("shape", []) if node.op == "reshape" else []:
            if isinstance(dim, str) and dim not in bound:
                raise TraceError(
                    f"cannot trace block {where!r}: a reshape uses dynamic size {dim!r}, which none "
                    "of the block's own inputs carries"
                )
