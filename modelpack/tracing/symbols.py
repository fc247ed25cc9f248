"""Symbolic dimensions: which input sizes may change after loading, found by tracing again.

A dimension is dynamic when declared so: axis 0 of every input is ``"batch"`` (unless
``dynamic_batch=False``), and ``dynamic_axes={input: {axis: name}}`` names others (one name
shared by several axes ties them, as ONNX does); inputs are numbered in the order of the
flattened example (a list of states counts as its arrays). Tracing runs once on the example
and once with each dynamic dimension grown by a distinct step (a third time, growing them in
another proportion, when two sizes could explain one value). The graphs must be identical
except for integers that are sizes (``nn.sizes``: an input's shape, a reshape target, the
shape of an array made with ``np.zeros((x.shape[0], h))``, a slice bound, a repeat count),
which become expressions over the block's own dynamic input sizes (``4*batch``). Anything
else that differs is refused: the graph would only be right for the example's sizes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelpackError, TraceError, UsageError
from ..nn import ops, structure
from ..nn.block import Block
from ..nn.graph_spec import SPECIAL_OPS, GraphSpec
from ..nn.sizes import SYMBOL_PATTERN, SizeExpr
from .record import BlockTrace, TraceResult, trace_model

__all__ = ["DimSymbol", "plan_symbols", "resize", "growth", "trace_symbolic"]

_SYMBOL = re.compile(SYMBOL_PATTERN)


@dataclass(frozen=True)
class DimSymbol:
    """A named dynamic dimension: its size in the example and where it appears."""

    name: str
    size: int
    step: int  # growth in the second trace; distinct per symbol so values identify it
    places: tuple[tuple[int, int], ...]  # (input index, axis)
    by_default: bool = False  # declared by dynamic_batch (axis 0 of every input)


def plan_symbols(
    examples: tuple[np.ndarray, ...],
    *,
    dynamic_batch: bool,
    dynamic_axes: Mapping[int, Mapping[int, str]] | None,
) -> list[DimSymbol]:
    """Validate the declared dynamic dimensions against the (flat) example; one symbol per name."""
    places: dict[str, list[tuple[int, int]]] = {}
    owner: dict[tuple[int, int], str] = {}
    default: set[str] = set()

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
        default.add("batch")
    for index, axes in (dynamic_axes or {}).items():
        for axis, name in axes.items():
            declare(name, index, axis)
    symbols = []
    for step, (name, where) in enumerate(places.items(), start=1):
        sizes = {int(examples[i].shape[a]) for i, a in where}
        if len(sizes) != 1:
            shown = ", ".join(f"input {i} axis {a}: {examples[i].shape[a]}" for i, a in where)
            raise UsageError(
                f"dynamic dimension {name!r} has different sizes in the example ({shown})"
                + (_batch_hint(examples) if name in default else "")
            )
        size = sizes.pop()
        if size == 0:
            raise UsageError(
                f"dynamic dimension {name!r} is empty in the example; give it at least one element"
            )
        symbols.append(DimSymbol(name, size, step, tuple(where), name in default))
    return symbols


def _batch_hint(examples: tuple[np.ndarray, ...] | None = None) -> str:
    """The fix when axis 0 is not the batch: time-major inputs, recurrent states."""
    shown = "{0: {1: 'batch'}}"
    return (
        ". If axis 0 of an input is not its batch (time-major sequences (T, N, C), recurrent "
        "states (layers, N, hidden)), export with dynamic_batch=False and dynamic_axes naming "
        f"each input's batch axis, e.g. dynamic_axes={shown}"
    )


def growth(symbols: list[DimSymbol], direction: int) -> dict[str, int]:
    """How much each symbol grows in trace ``direction`` (1, 2, ...): by its step, then in
    proportions no earlier direction used, so that two sizes never grow alike twice."""
    return {s.name: s.step * (1 if direction == 1 else direction + i) for i, s in enumerate(symbols)}


def resize(
    examples: tuple[np.ndarray, ...], symbols: list[DimSymbol], extra: Mapping[str, int]
) -> tuple[np.ndarray, ...]:
    """The (flat) examples with each symbol's axes grown by ``extra[name]`` (repeating the last slice)."""
    out = list(examples)
    for symbol in symbols:
        for index, axis in symbol.places:
            last = np.take(out[index], [-1], axis=axis)
            out[index] = np.concatenate(
                [out[index], np.repeat(last, extra[symbol.name], axis=axis)], axis=axis
            )
    return tuple(out)


class _Ambiguous(Exception):
    """Two sizes explain a value at the traced sizes; one more trace tells them apart."""


def trace_symbolic(net: Block, examples: tuple[Any, ...], symbols: list[DimSymbol]) -> TraceResult:
    """Trace once (no dynamic dimensions) or more, and keep the size-dependent values symbolic."""
    first, _ = trace_model(net, examples)
    if not symbols:
        return first
    traces = [first, _trace_grown(net, examples, symbols, 1)]
    paths = {id(block): name or type(net).__name__ for name, block in net.named_blocks()}
    try:
        return _merge(traces, symbols, paths)
    except _Ambiguous:
        traces.append(_trace_grown(net, examples, symbols, 2))
        return _merge(traces, symbols, paths)


def _trace_grown(
    net: Block, examples: tuple[Any, ...], symbols: list[DimSymbol], direction: int
) -> TraceResult:
    extra = growth(symbols, direction)
    tree, leaves = structure.flatten(list(examples))
    grown = structure.unflatten(tree, list(resize(tuple(leaves), symbols, extra)))
    try:
        result, _ = trace_model(net, tuple(grown))
    except (ModelpackError, ValueError, TypeError, IndexError) as exc:
        sizes = ", ".join(f"{s.name}={s.size + extra[s.name]}" for s in symbols)
        hint = _batch_hint() if any(s.by_default for s in symbols) else ""
        raise TraceError(
            f"cannot trace forward with dynamic sizes: it fails at {sizes}: {exc}{hint}"
        ) from exc
    return result


def _points(symbols: list[DimSymbol], count: int) -> list[dict[str, int]]:
    """The global sizes of each trace."""
    points = [{s.name: s.size for s in symbols}]
    for direction in range(1, count):
        extra = growth(symbols, direction)
        points.append({s.name: s.size + extra[s.name] for s in symbols})
    return points


def _merge(traces: list[TraceResult], symbols: list[DimSymbol], paths: dict[int, str]) -> TraceResult:
    points = _points(symbols, len(traces))
    keys = set(traces[0].traces)
    if any(set(t.traces) != keys for t in traces[1:]):
        raise TraceError("cannot trace forward: different blocks are called when the dynamic dimensions grow")
    merged = TraceResult()
    for key, one in traces[0].traces.items():
        blocks = [t.traces[key] for t in traces]
        where = paths.get(key, type(one.block).__name__)
        if any(b.parameters != one.parameters for b in blocks[1:]):
            raise TraceError(f"cannot trace block {where!r}: its parameters change with the input size")
        merger = _Merger(blocks, symbols, points, where)
        spec = GraphSpec.model_validate(merger.document())
        merged.traces[key] = BlockTrace(one.block, spec, one.parameters, merger.constants, one.loops)
    return merged


class _Merger:
    """One block's traces → one graph whose sizes are expressions over its dynamic inputs."""

    def __init__(
        self, blocks: list[BlockTrace], symbols: list[DimSymbol], points: list[dict[str, int]], where: str
    ) -> None:
        self.blocks, self.symbols, self.points, self.where = blocks, symbols, points, where
        self.docs = [b.spec.model_dump(mode="json") for b in blocks]
        self.constants = self._merge_constants()
        self.basis: dict[str, list[int]] = {}  # name -> its value in each trace

    def document(self) -> dict[str, Any]:
        inputs = self._bind_inputs()
        rest = {k: self._merge([d[k] for d in self.docs], [k]) for k in self.docs[0] if k != "inputs"}
        return {"inputs": inputs, **rest}

    # -- inputs: their changing dimensions are the block's own dynamic sizes -------------------
    def _bind_inputs(self) -> list[dict[str, Any]]:
        lists = [d["inputs"] for d in self.docs]
        if any(len(x) != len(lists[0]) for x in lists):
            raise self._difference(["inputs"], len(lists[0]), len(lists[-1]))
        global_values = {s.name: [p[s.name] for p in self.points] for s in self.symbols}
        bound = []
        for index, graph_input in enumerate(lists[0]):
            shapes = [x[index]["shape"] for x in lists]
            if any(
                len(s) != len(shapes[0]) or x[index]["dtype"] != graph_input["dtype"]
                for s, x in zip(shapes, lists, strict=True)
            ):
                raise self._difference(["inputs", index], shapes[0], shapes[-1])
            shape: list[Any] = []
            for axis, values in enumerate(zip(*shapes, strict=True)):
                if len(set(values)) == 1:
                    shape.append(values[0])
                    continue
                name = next((n for n, v in global_values.items() if v == list(values)), None)
                name = name or f"{graph_input['name']}_{axis}"
                self.basis.setdefault(name, list(values))
                shape.append(name)
            bound.append({**graph_input, "shape": shape})
        return bound

    # -- everything else: equal, or a size that an expression explains ----------------------------
    def _merge(self, values: list[Any], trail: list[Any]) -> Any:
        first = values[0]
        if any(type(v) is not type(first) for v in values):
            raise self._difference(trail, first, values[-1])
        if isinstance(first, dict):
            if any(v.keys() != first.keys() for v in values):
                raise self._difference(trail, first, values[-1])
            return {k: self._merge([v[k] for v in values], [*trail, k]) for k in first}
        if isinstance(first, list):
            if any(len(v) != len(first) for v in values):
                raise self._difference(trail, len(first), len(values[-1]), lengths=True)
            return [self._merge([v[i] for v in values], [*trail, i]) for i in range(len(first))]
        if all(v == first or _both_nan(v, first) for v in values):  # NaN scalars agree
            return first
        if isinstance(first, int) and not isinstance(first, bool) and self._is_size(trail):
            return self._fit(values, trail)
        raise self._difference(trail, first, values[-1])

    def _is_size(self, trail: list[Any]) -> bool:
        if len(trail) < 4 or trail[0] != "nodes" or trail[2] != "attrs":
            return False
        op = self.docs[0]["nodes"][trail[1]]["op"]
        return op not in SPECIAL_OPS and trail[3] in ops.op_def(op).sizes

    def _fit(self, values: list[int], trail: list[Any]) -> str:
        names = list(self.basis)
        candidates = [(n,) for n in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        fits = []
        for group in candidates:
            points = [({n: self.basis[n][j] for n in group}, v) for j, v in enumerate(values)]
            expr = SizeExpr.fit(group, points)
            if expr is not None:
                fits.append(expr)
        if not fits:
            raise self._difference(trail, values[0], values[-1], size=True)
        if len({str(f) for f in fits}) > 1 and len(self.points) < 3 and len(self.symbols) > 1:
            raise _Ambiguous
        best = min(fits, key=lambda f: (f.offset != 0, f.divisor != 1, f.scale != 1, len(f.names)))
        return str(best)

    # -- constants made from sizes become ops that make them -----------------------------------
    def _merge_constants(self) -> list[np.ndarray]:
        lists = [b.constants for b in self.blocks]
        if any(len(c) != len(lists[0]) for c in lists):
            raise self._constant_error()
        kept: list[np.ndarray] = []
        renamed: dict[str, str | None] = {}
        for k, arrays in enumerate(zip(*lists, strict=True)):
            same = all(
                a.shape == arrays[0].shape
                and a.dtype == arrays[0].dtype
                and a.tobytes() == arrays[0].tobytes()
                for a in arrays
            )
            if same:
                renamed[f"#const{k}"] = f"#const{len(kept)}"
                kept.append(arrays[0])
                continue
            made = [nodes for nodes in (_maker(a) for a in arrays) if nodes is not None]
            if len(made) != len(arrays) or any([n[0] for n in m] != [n[0] for n in made[0]] for m in made):
                raise self._constant_error()
            renamed[f"#const{k}"] = None
            for doc, nodes in zip(self.docs, made, strict=True):
                doc["nodes"] = [
                    replaced
                    for node in doc["nodes"]
                    for replaced in (
                        _splice(node, nodes)
                        if node["op"] == "constant" and node["attrs"]["name"] == f"#const{k}"
                        else [node]
                    )
                ]
        for doc in self.docs:
            for node in doc["nodes"]:
                if node["op"] == "constant":
                    node["attrs"] = {"name": renamed[node["attrs"]["name"]]}
        return kept

    def _constant_error(self) -> TraceError:
        return TraceError(
            f"cannot trace a constant in block {self.where!r}: it depends on the input size or values "
            "in a way no op reproduces (np.zeros/ones/full/arange of sizes from x.shape are; other "
            "arrays built from x.shape are not: derive them from x with ops)" + self._hint()
        )

    # -- messages ----------------------------------------------------------------------------------
    def _hint(self) -> str:
        return _batch_hint() if any(s.by_default for s in self.symbols) else ""

    def _difference(
        self, trail: list[Any], a: Any, b: Any, *, lengths: bool = False, size: bool = False
    ) -> TraceError:
        grown = ", ".join(f"{s.name} {s.size}->{self.points[1][s.name]}" for s in self.symbols)
        location = ".".join(str(t) for t in trail)
        if lengths and trail == ["nodes"]:
            loops = [
                f"{line.strip(' ()')} ({n} vs {m} steps)"
                for (line, n), (_, m) in zip(self.blocks[0].loops, self.blocks[1].loops, strict=False)
                if n != m
            ]
            looped = f" Unrolled loops that changed: {'; '.join(loops)}." if loops else ""
            return TraceError(
                f"cannot trace block {self.where!r} with dynamic sizes: forward records {a} operations "
                f"at the example's sizes but {b} when they grow ({grown}): a Python loop runs once per "
                f"element of a dynamic axis.{looped} Loop over a fixed axis, or declare that axis "
                "fixed (dynamic_batch=False, dynamic_axes)" + self._hint()
            )
        what = (
            "a size that is no product or ratio of the block's dynamic input sizes"
            if size
            else "a value computed from a dynamic size, or state outside forward's inputs"
        )
        return TraceError(
            f"cannot trace block {self.where!r} with dynamic sizes: {location} is {_short(a)} at the "
            f"example's sizes but {_short(b)} when they grow ({grown}); it is {what}. Use sizes from "
            "x.shape only in reshape/zeros/ones/full/arange/repeat/tile/slices, or -1 in reshape; "
            "or export with fewer dynamic dimensions (dynamic_batch=False, dynamic_axes)" + self._hint()
        )


def _both_nan(a: Any, b: Any) -> bool:
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _maker(array: np.ndarray) -> list[tuple[str, dict[str, Any]]] | None:
    """The nodes that make ``array`` if it is that simple — ``full``, or ``arange`` (reshaped when
    it lies along one axis of several, as ``np.arange(n)[:, None]``) — with their attributes;
    the sizes in them differ per trace and are merged afterwards."""
    if array.size == 0 or array.dtype.kind not in "biuf":
        return None
    flat = array.reshape(-1)
    first = flat[0].item()
    if np.all(flat == flat[0]) and first == first:  # one value everywhere (not NaN)
        return [("full", {"shape": [int(d) for d in array.shape], "value": first, "dtype": array.dtype.name})]
    long_axes = [d for d in array.shape if d != 1]
    if len(long_axes) == 1 and array.dtype.kind in "iuf" and len(flat) >= 2:
        start, step = flat[0].item(), (flat[1] - flat[0]).item()
        if float(start).is_integer() and float(step).is_integer() and step > 0:
            start, step = int(start), int(step)
            stop = start + step * len(flat)
            if np.array_equal(np.arange(start, stop, step, dtype=array.dtype), flat):
                nodes = [("arange", {"start": start, "stop": stop, "step": step, "dtype": array.dtype.name})]
                if array.ndim != 1:
                    nodes.append(("reshape", {"shape": [int(d) for d in array.shape]}))
                return nodes
    return None


def _splice(constant: dict[str, Any], nodes: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Graph nodes that make what the ``constant`` node read, defining the same output."""
    (output,) = constant["outputs"]
    names = [f"{output}_{i}" for i in range(len(nodes) - 1)] + [output]
    return [
        {"op": op, "inputs": [names[i - 1]] if i else [], "outputs": [names[i]], "attrs": attrs}
        for i, (op, attrs) in enumerate(nodes)
    ]
