"""The last line of defence of tracing: run the graph that would be saved against ``forward``.

Export refuses unless the graph, rebuilt exactly as ``load`` would rebuild it, gives the same
outputs as the original ``forward`` on the example and on a random input whose dynamic
dimensions take sizes neither trace saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelpackError, TraceError
from ..nn import structure
from ..nn.block import Block
from .symbols import DimSymbol, growth, resize

__all__ = ["check_trace"]

# Same numpy operations run in the same order, so results are normally bitwise equal; the
# tolerance only forgives BLAS kernels choosing another blocking for another batch size.
RTOL = 1e-6


def check_trace(net: Block, loaded: Block, examples: tuple[Any, ...], symbols: list[DimSymbol]) -> None:
    """Raise TraceError if ``loaded`` computes anything else than ``net``.

    The random input's dynamic sizes grow in proportions no trace used (``growth`` direction
    3), so a size expression that only fitted the traced sizes is caught here. Each call gets
    its own lists and tuples: a forward that changes a state list in place (d2l's Transformer
    decoder does) must not hand the other call a changed one.
    """
    rng = np.random.default_rng(0)
    tree, leaves = structure.flatten(list(examples))
    grown = resize(tuple(leaves), symbols, growth(symbols, 3)) if symbols else tuple(leaves)
    for label, values in (("the example", leaves), ("a random input", list(_random_like(grown, rng)))):
        with np.errstate(all="ignore"):
            try:
                want = net(*structure.unflatten(tree, values))
            except ModelpackError:
                raise
            except Exception as exc:
                raise TraceError(f"cannot verify the trace: forward fails on {label}: {exc!r}") from exc
            got = loaded(*structure.unflatten(tree, values))
        problem = _compare(want, got)
        if problem:
            raise TraceError(
                f"the traced graph differs from forward on {label}: {problem}; forward probably "
                "depends on something tracing cannot see"
            )


def _random_like(examples: tuple[np.ndarray, ...], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Random inputs like the examples: integers (and floats holding only whole numbers, as
    MXNet-style token ids do) within the example's range, other floats at its scale."""
    out = []
    for array in examples:
        whole = array.dtype.kind == "f" and array.size and bool(np.all(array == np.round(array)))
        if array.dtype == np.bool_:
            out.append(rng.random(array.shape) < 0.5)
        elif np.issubdtype(array.dtype, np.integer) or whole:
            low, high = (int(array.min()), int(array.max())) if array.size else (0, 1)
            out.append(rng.integers(low, high, size=array.shape, endpoint=True).astype(array.dtype))
        else:
            finite = array[np.isfinite(array)] if array.size else array
            scale = float(np.std(finite)) if finite.size else 1.0
            center = float(np.mean(finite)) if finite.size else 0.0
            out.append((rng.normal(size=array.shape) * (scale or 1.0) + center).astype(array.dtype))
    return tuple(out)


def _compare(want: Any, got: Any) -> str | None:
    if isinstance(want, (tuple, list)) and structure.has_nesting(want):
        want_tree, want_leaves = structure.flatten(want)
        got_tree, got_leaves = structure.flatten(got)
        if want_tree != got_tree:
            shown = structure.describe(want_tree), structure.describe(got_tree)
            return f"outputs are {shown[0]}, the graph gives {shown[1]}"
        want, got = tuple(want_leaves), tuple(got_leaves)
    if isinstance(want, dict):
        if not isinstance(got, dict) or list(want) != list(got):
            return f"outputs are a dict with keys {list(want)}, the graph gives {type(got).__name__}"
        pairs = [(want[k], got[k]) for k in want]
    elif isinstance(want, (tuple, list)):
        if type(got) is not type(want) or len(got) != len(want):
            return f"outputs are a {type(want).__name__} of {len(want)}, the graph gives {type(got).__name__}"
        pairs = list(zip(want, got, strict=True))
    else:
        pairs = [(want, got)]
    for index, (a, b) in enumerate(pairs):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output {index} is {a.dtype}{a.shape}, the graph gives {b.dtype}{b.shape}"
        if a.dtype.kind in "fc":
            finite = np.isfinite(a)
            scale = float(np.max(np.abs(a[finite]))) if finite.any() else 0.0
            if not np.allclose(a, b, rtol=RTOL, atol=RTOL * scale, equal_nan=True):
                return f"output {index} differs by up to {float(np.nanmax(np.abs(a - b)))}"
        elif not np.array_equal(a, b):
            return f"output {index} differs"
    return None
