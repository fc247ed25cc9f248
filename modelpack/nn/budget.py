"""The activation budget: how much memory a loaded model's forward may take, checked before
each allocation.

A 1 KB archive can describe a model whose forward asks for gigabytes (a padding of 30 000, a
graph that doubles a tensor thirty times, a broadcast to 16 GiB), and loading cannot see
that, since the sizes depend on the input. So a loaded model carries a budget: while one
call of it runs, the layers and graph ops that can grow an array beyond their inputs' size
(padding, im2col, matmul, concatenation, broadcasting, lookups) say what they are about to
allocate, from the input shapes and their config, *before* numpy allocates it; arrays a graph
holds count until the graph returns, and what a block allocated stops counting when it
returns. Going over raises ``LimitError`` naming the file, the block or graph node, and the
op; any other error inside a loaded model's forward is made to name the file and block too.

Models built in code are not limited unless asked (``limit_activations``). Layers call
``charge``; with no limited model running it costs one attribute lookup.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, LimitError, ModelpackError
from ..io.limits import Limits

if TYPE_CHECKING:
    from .block import Block

__all__ = [
    "ActivationBudget", "limit_activations", "guarded_call", "charge", "check", "hold", "release", "nbytes",
    "op_bytes",
]


@dataclass(frozen=True)
class ActivationBudget:
    """What one forward call of a model may hold: ``limits.max_activation_bytes``, or when
    that is None a limit scaled to the model's file and to the call's input (see ``Limits``)."""

    source: str
    limits: Limits
    model_bytes: int = 0

    def limit_for(self, args: Sequence[Any]) -> int:
        input_bytes = sum(int(getattr(arg, "nbytes", 0)) for arg in args)
        return self.limits.activation_limit(model_bytes=self.model_bytes, input_bytes=input_bytes)


@dataclass(frozen=True)
class _Guard:
    """Set on every block of a limited model: the budget, and the block's name for messages
    (``where``, formatted once rather than at each call)."""

    budget: ActivationBudget
    path: str
    kind: str
    where: str = field(init=False)

    def __post_init__(self) -> None:
        name = f"block {self.path!r}" if self.path else "the top-level block"
        object.__setattr__(self, "where", f"{name} ({self.kind})")


class _Run:
    """One forward call of a limited model: its limit and the bytes held so far."""

    def __init__(self, budget: ActivationBudget, limit: int) -> None:
        self.budget, self.limit, self.used = budget, limit, 0
        self.where = ""

    def charge(self, size: int, what: str) -> None:
        self.check(size, what)
        self.used += size

    def check(self, size: int, what: str) -> None:
        if self.used + size > self.limit:
            scaled = self.budget.limits.max_activation_bytes is None
            raise LimitError(
                f"{self.budget.source}: {self.where}: {what}",
                f"the activations this forward call would hold after allocating {size} bytes",
                self.used + size,
                limit="max_activation_bytes",
                allowed=self.limit,
                note=" (scaled to the model and the input)" if scaled else "",
            )


_state = threading.local()


def _running() -> _Run | None:
    return getattr(_state, "run", None)


def limit_activations(net: Block, budget: ActivationBudget | None) -> None:
    """Limit every forward call of ``net`` (and of each block in it) to ``budget``; None lifts it.

    Loading applies this to every model; for a model built in code it is opt-in:

    >>> budget = ActivationBudget("my net", Limits(max_activation_bytes=2**30))
    >>> limit_activations(net, budget)  # doctest: +SKIP
    """
    for path, block in net.named_blocks():
        guard = None if budget is None else _Guard(budget, path, type(block).__name__)
        object.__setattr__(block, "_activation_guard", guard)


def guarded_call(block: Block, guard: _Guard, args: tuple[Any, ...],
                 forward: Callable[..., Any] | None = None) -> Any:
    """Run ``block.forward`` (or ``forward``, computing in its place) inside the budget: a new
    run at the outermost limited call; what the block allocated stops counting when it
    returns (its result is the caller's to hold)."""
    run = _running()
    outermost = run is None
    if run is None:
        run = _Run(guard.budget, guard.budget.limit_for(args))
        _state.run = run
    used, where = run.used, run.where
    run.where = guard.where
    try:
        return (block.forward if forward is None else forward)(*args)
    except ModelpackError as exc:
        _name_the_file(exc, run)
        raise
    except (ValueError, TypeError, IndexError, ArithmeticError) as exc:
        # numpy refusing what this block asked of it; a loaded model's errors are ours to name.
        raise InputError(f"{run.budget.source}: {run.where}: cannot run on this input: {exc}") from exc
    except MemoryError as exc:  # below the budget: a limit raised beyond this machine's memory
        raise InputError(
            f"{run.budget.source}: {run.where}: cannot run on this input: out of memory with "
            f"{run.used} bytes of activations held (limit {run.limit}); use a smaller input"
        ) from exc
    finally:
        run.used, run.where = used, where
        if outermost:
            _state.run = None


def _name_the_file(exc: ModelpackError, run: _Run) -> None:
    """Prefix the file and block to an error raised inside (once: the innermost block names it)."""
    message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
    if message is not None and run.budget.source not in message:
        exc.args = (f"{run.budget.source}: {run.where}: {message}", *exc.args[1:])


def charge(size: int, what: str) -> None:
    """Count ``size`` bytes about to be allocated by the running limited model (if any)."""
    run = _running()
    if run is not None:
        run.charge(size, what)


def check(size: int, what: str) -> None:
    """Refuse an allocation of ``size`` bytes that would go over the budget (not counted:
    the caller counts what it keeps with ``hold``)."""
    run = _running()
    if run is not None:
        run.check(size, what)


def hold(results: Sequence[Any], inputs: Sequence[Any], what: str) -> list[int]:
    """Count arrays a graph keeps until it lets them go (``release``) or returns: those that
    are new, not views of inputs. Each one's bytes counted (none where no limited model runs)."""
    run = _running()
    if run is None:
        return [0] * len(results)
    sizes = [_owned_bytes(result, inputs) for result in results]
    run.charge(sum(sizes), what)
    return sizes


def release(size: int) -> None:
    """Stop counting ``size`` bytes ``hold`` counted: a graph let go of an array, now freed."""
    run = _running()
    if run is not None:
        run.used -= size


def nbytes(shape: Iterable[int], dtype: np.dtype | type) -> int:
    """Bytes of an array of this shape and dtype, in Python integers (no overflow)."""
    return math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize


# -- graph ops: the size of an op's result, from its inputs' shapes and its attributes ------

# Element-wise ops whose result takes the broadcast shape of their inputs.
_BROADCASTING = frozenset({
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "greater",
    "greater_equal", "less", "less_equal", "equal", "not_equal", "where", "floor_divide", "mod",
    "logical_and", "logical_or", "logical_xor", "fmod",
})
# Ops whose result may be larger than every input, each with its rule (elements, from the
# input shapes and the resolved attributes). Every other op gives at most as many elements as
# its largest input (element-wise on one input, reductions, views, softmax, norms, casts,
# sequence ops, pick, split); tests/test_budget.py checks every registered op against numpy.
_GROWING: dict[str, Callable[[list[tuple[int, ...]], list[Any], dict[str, Any]], int]] = {
    "matmul": lambda s, v, a: math.prod(_matmul_shape(s[0], s[1])),
    "batch_dot": lambda s, v, a: math.prod(_matmul_shape(
        _swap_last(s[0]) if a.get("transpose_a") else s[0],
        _swap_last(s[1]) if a.get("transpose_b") else s[1],
    )),
    "dot": lambda s, v, a: math.prod(_dot_shape(s[0], s[1])),
    "concatenate": lambda s, v, a: sum(math.prod(shape) for shape in s),
    "stack": lambda s, v, a: sum(math.prod(shape) for shape in s),
    "full": lambda s, v, a: math.prod(max(int(d), 0) for d in a["shape"]),
    "broadcast_to": lambda s, v, a: math.prod(max(int(d), 0) for d in a["shape"]),
    "arange": lambda s, v, a: _arange_length(a),
    "repeat": lambda s, v, a: math.prod(s[0]) * max(int(a["repeats"]), 0),
    "tile": lambda s, v, a: math.prod(s[0]) * math.prod(max(int(r), 0) for r in a["reps"]),
    "one_hot": lambda s, v, a: math.prod(s[0]) * max(int(a.get("depth", 0)), 0),
    "take": lambda s, v, a: math.prod(s[1]) * (
        1 if a.get("axis") is None else math.prod(s[0]) // max(s[0][a["axis"]], 1)),
    "getitem": lambda s, v, a: _index_elements(v, a),
    "embedding": lambda s, v, a: math.prod(s[0]) * (s[1][-1] if len(s[1]) == 2 else 1),
    "fully_connected": lambda s, v, a: 2 * (
        (s[0][0] if s[0] else 1) if a.get("flatten", True) else math.prod(s[0][:-1])
    ) * (s[1][0] if s[1] else 1),
    "topk": lambda s, v, a: 2 * math.prod(s[0]),  # values and indices (ret_typ "both")
}
# Ops that give integer indices whatever their input's dtype.
_INDICES = frozenset({"argmax", "argmin", "topk"})


def op_bytes(op: str, inputs: Sequence[Any], attrs: dict[str, Any]) -> int:
    """An upper bound on the bytes ``op`` allocates for its result, computed without running it
    (``attrs`` with size expressions resolved). A shape numpy would refuse to broadcast raises
    ValueError, as the op itself would."""
    shapes = [_shape(value) for value in inputs]
    if op in _BROADCASTING:
        ranked = [shape for shape in shapes if shape]  # (a scalar's () broadcasts to any shape)
        same = bool(ranked) and ranked.count(ranked[0]) == len(ranked)  # the common case, ~2 µs less
        elements = math.prod(ranked[0] if same else np.broadcast_shapes(*shapes))
    elif op in _GROWING:
        try:
            elements = _GROWING[op](shapes, list(inputs), attrs)
        except (IndexError, KeyError, ZeroDivisionError) as exc:  # shapes the op itself refuses
            raise ValueError(f"{op}: inputs of shapes {shapes} do not fit ({exc})") from None
    else:
        elements = max((math.prod(shape) for shape in shapes), default=1)
    return elements * _itemsize(op, inputs, attrs)


def _shape(value: Any) -> tuple[int, ...]:
    """``np.shape(value)``, without its ~1 µs for an array or a Python number."""
    if type(value) is np.ndarray:
        return value.shape
    return () if isinstance(value, (bool, int, float, complex)) else np.shape(value)


def _swap_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[:-2], shape[-1], shape[-2]) if len(shape) >= 2 else shape


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if not a or not b:
        raise ValueError("matmul: input operand does not have enough dimensions")
    rows = a[-2:-1] if len(a) > 1 else ()
    columns = b[-1:] if len(b) > 1 else ()
    return (*np.broadcast_shapes(a[:-2], b[:-2]), *rows, *columns)


def _dot_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """numpy.dot: a scalar scales the other; else a's axes but its last, then b's but its
    second-to-last (an outer product over the leading axes)."""
    if not a or not b:
        return a or b
    return (*a[:-1], *b[:-2], *b[-1:]) if len(b) > 1 else a[:-1]


def _arange_length(attrs: dict[str, Any]) -> int:
    start, stop, step = attrs.get("start", 0), attrs["stop"], attrs.get("step", 1)
    span = (stop - start) / step if step else math.inf
    return max(math.ceil(span), 0) if math.isfinite(span) else 0  # the op refuses an endless one


def _index_elements(values: list[Any], attrs: dict[str, Any]) -> int:
    """Elements of ``x[index]`` by numpy's rules, without indexing: basic items keep or shrink
    their axes, index arrays take the broadcast shape of them all (a boolean array: its
    number of True values)."""
    from .ops.indexing import decode_index  # late: ops imports the layers, which import this

    shape = tuple(np.shape(values[0]))
    index = decode_index(attrs["index"], tuple(values[1:]))
    consumed = sum(np.ndim(i) if isinstance(i, np.ndarray) and i.dtype == bool else
                   0 if i is None or i is Ellipsis else 1 for i in index)
    elements, axis, arrays = 1, 0, []
    for item in index:
        if item is None:
            continue
        if item is Ellipsis:
            skipped = max(len(shape) - consumed, 0)
            elements *= math.prod(shape[axis : axis + skipped])
            axis += skipped
        elif isinstance(item, slice):
            elements *= len(range(*item.indices(shape[axis]))) if axis < len(shape) else 1
            axis += 1
        elif isinstance(item, np.ndarray):
            if item.dtype == bool:
                arrays.append((int(np.count_nonzero(item)),))
                axis += item.ndim
            else:
                arrays.append(item.shape)
                axis += 1
        else:
            axis += 1  # an integer drops the axis
    elements *= math.prod(shape[axis:])
    if arrays:
        elements *= math.prod(np.broadcast_shapes(*arrays))
    return elements


def _itemsize(op: str, inputs: Sequence[Any], attrs: dict[str, Any]) -> int:
    """The result's item size, or an upper bound: a ``dtype`` attribute's; integer indices'
    8; floats and complex numbers keep their type (Python scalars are weak); integers and
    booleans may become 64-bit (int64 or float64)."""
    dtypes = [value.dtype for value in inputs if isinstance(value, (np.ndarray, np.generic))]
    if dtypes and dtypes.count(dtypes[0]) == len(dtypes):
        result = dtypes[0]  # one dtype: its own (np.result_type takes ~1 µs more)
    else:
        result = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    size = result.itemsize if result.kind in "fc" else max(result.itemsize, 8)
    if attrs.get("dtype") is not None:
        named = np.dtype(attrs["dtype"]).itemsize
        size = named if op == "cast" else max(size, named)
    if op in _INDICES:
        size = max(size, 8)
    return size


def _owned_bytes(value: Any, inputs: Sequence[Any]) -> int:
    if not isinstance(value, np.ndarray):
        return 0
    if value.base is None and not any(value is x for x in inputs):
        return value.nbytes  # owns its memory and is no input: new (counted, never less than it holds)
    if any(isinstance(x, np.ndarray) and np.may_share_memory(value, x) for x in inputs):
        return 0  # a view (transpose, indexing, reshape) allocates nothing new
    return value.nbytes
