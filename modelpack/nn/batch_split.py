"""Inference on a large batch as one slice of it per thread, the whole model on each slice.

``kernels.parallel`` splits each layer's passes over the batch: a ResNet-18-style forward hands
work to its pool some forty times, and the small element-wise passes (BatchNorm, ReLU, the
residual sums) and the Python between numpy's calls run on one thread. Where every example's
output depends on that example alone, the model can instead run whole on a slice of the batch
on each thread: one hand-off a call, and one thread's Python runs while the other's numpy does
(each thread's BLAS on one core, its kernels planning for one thread). Measured at 2 threads on
``bench/compute.py``'s forwards, whole and split alternating in one process, ratio of medians of
60: the ResNet-18-style net loaded from its archive 0.89 and 0.90 (36.6 → 32.4 ms), the
MobileNet-style block 0.92 and 0.93, the CNN 0.81. With the compiled kernels (the ``accel``
extra), whose passes run without the interpreter between them, the MobileNet-style block lost
(1.17–1.19), so calls are split on numpy's kernels only.

A call is split only where that computes what the whole batch would:

- at inference, with no Gluon forward hook and no hybridize runtime anywhere in the model, on
  numpy's kernels and the threads ``kernels.parallel`` may use (autograd's recording and
  tracing watch every block call, and a watched call is never split);
- at the outermost block call, with one numpy array of at least ``MIN_ELEMENTS`` values and
  ``MIN_ROWS`` examples a thread;
- after the model has run once unsplit, which finishes deferred initialisation and the state
  a graph builds on its first call, so the threads share only what they read;
- for models whose every example's output depends on that example alone (``rows_rank``):
  modelpack's own layers that compute each example alone (convolutions, pooling, dense,
  activations, dropout at inference, BatchNorm and LayerNorm off the batch axis, flatten,
  embeddings), ``Sequential`` stacks of them, and graphs (a traced custom block, as loading
  gives it back) whose nodes are such layers and element-wise ops on values of the same rank
  or on scalars. A user's own block, or any other op, is run whole.

The slices' results, arrays with the batch first, are joined along the batch. They equal the
whole batch's to float rounding, not bit for bit: a GEMM over fewer rows may add in another
order. Any error on a slice runs the whole batch again unsplit, so an error and its message
are those of the unsplit call.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .kernels import backend, blas, parallel
from .mode import is_training

if TYPE_CHECKING:
    from .basic import Dense
    from .block import Block
    from .norm import BatchNorm, LayerNorm

__all__ = ["MIN_ELEMENTS", "MIN_ROWS", "nested", "outermost", "rows_rank"]

# Below these, a call is short enough that one hand-off (~70 µs on a 2-vCPU VM) is a large part
# of it, or a slice too small for its layers' own passes.
MIN_ELEMENTS = 1 << 16
MIN_ROWS = 2

_state = threading.local()  # .nested: this thread runs inside an outermost block call
_warm: weakref.WeakSet[Block] = weakref.WeakSet()  # blocks that ran once unsplit (the first call)

class _Kinds(NamedTuple):
    """The classes and op names the rules below name."""

    same_rank: tuple[type, ...]  # layers whose output keeps the input's rank, each example alone
    convolution: type
    norms: tuple[type[BatchNorm], type[LayerNorm]]  # their statistics off the batch axis only
    dense: type[Dense]
    flatten: type
    embedding: type
    sequential: type
    graph: type
    unary: frozenset[str]  # element-wise graph ops
    binary: frozenset[str]


@functools.cache
def _kinds() -> _Kinds:
    """``_Kinds``, imported on first use: the layers and the ops import ``block``, which imports
    this module."""
    from . import activations, basic, compose, conv, norm, pooling
    from .graph import GraphBlock
    from .ops.elementwise import ELEMENTWISE_BINARY, ELEMENTWISE_UNARY

    same = (conv._Conv, pooling._Pool, pooling._GlobalPool, activations.Activation, activations.LeakyReLU,
            activations.ELU, activations.PReLU, activations.SELU, activations.Swish, activations.GELU,
            basic.Dropout, compose.Identity)
    return _Kinds(same, conv._Conv, (norm.BatchNorm, norm.LayerNorm), basic.Dense, basic.Flatten,
                  basic.Embedding, compose.Sequential, GraphBlock, ELEMENTWISE_UNARY, ELEMENTWISE_BINARY)


def _layer_rank(block: Any, rank: int) -> int | None:
    """The rank of a layer's output from its input's, where it computes each example alone."""
    kinds = _kinds()
    if isinstance(block, kinds.same_rank):
        return rank
    if isinstance(block, kinds.norms):
        return rank if -rank <= block._axis < rank and block._axis % rank else None
    if isinstance(block, kinds.dense):
        return 2 if block._flatten else rank
    if isinstance(block, kinds.flatten):
        return 2
    if isinstance(block, kinds.embedding):
        return rank + 1
    return None


def _convolves(block: Block) -> bool:
    """Whether the model holds a convolution: where its layers' own splits gain least. A stack
    of Dense layers runs its GEMMs on BLAS's threads, which scale better than single-threaded
    halves (784-1024-1024-10, batch 256, 2 threads: 6.2 ms whole, 7.1 split)."""
    convolution = _kinds().convolution
    return any(isinstance(child, convolution) for _, child in block.named_blocks())


def rows_rank(block: Block, rank: int) -> int | None:
    """The rank of ``block``'s output for an input of ``rank`` axes, the batch first, when each
    example's output is computed from that example alone; else None."""
    if rank < 2 or block._forward_hooks or block._runtime is not None:  # (hooks: none, or all detached)
        return None
    if not all(param.is_initialized for param in block._reg_params.values()):
        return None  # (its first call would initialise it: on both threads at once)
    kind, kinds = type(block), _kinds()
    if not kind.__module__.startswith("modelpack."):  # a user's subclass may compute otherwise
        return None
    if kind is kinds.sequential:
        for child in block._children.values():
            found = rows_rank(child, rank)
            if found is None:
                return None
            rank = found
        return rank
    if kind is kinds.graph:
        return _graph_rank(block, rank)
    return _layer_rank(block, rank)


def _graph_rank(block: Any, rank: int) -> int | None:
    """``rows_rank`` of a graph: one input, the batch its first (dynamic) axis; each node a
    layer call of a block that computes by rows, or an element-wise op on values of the batch of
    one rank (or on scalars); its outputs all values of the batch."""
    graph, kinds = block._graph, _kinds()
    if graph is None or len(graph.inputs) != 1 or not isinstance(graph.inputs[0].shape[0], str):
        return None
    if len(graph.inputs[0].shape) != rank:
        return None
    ranks: dict[str, int] = {graph.inputs[0].name: rank}  # the batch's values
    scalars: set[str] = set()
    for node in graph.nodes:
        if node.op == "scalar":
            scalars.update(node.outputs)
            continue
        if len(node.outputs) != 1 or not node.inputs or not set(node.inputs) <= ranks.keys() | scalars:
            return None
        batch = [ranks[name] for name in node.inputs if name in ranks]
        if not batch or len(set(batch)) != 1:
            return None
        if node.op == "layer":
            child = block._children.get(node.attrs.get("block"))
            if (len(node.inputs) != 1 or child is None or node.attrs.get("args") is not None
                    or node.attrs.get("returns", "single") != "single"):
                return None
            found = rows_rank(child, batch[0])
        elif node.op in kinds.unary and len(node.inputs) == 1:
            found = batch[0]
        elif node.op in kinds.binary and len(node.inputs) == 2:
            found = batch[0]
        else:
            return None
        if found is None:
            return None
        ranks[node.outputs[0]] = found
    outputs = graph.outputs
    if outputs.kind != "single" or not all(name in ranks for name in outputs.values):
        return None
    return ranks[outputs.values[0]]


def nested() -> bool:
    """Whether this thread runs inside a block call already (or a chunk of a split pass)."""
    return getattr(_state, "nested", False) or parallel.inside()


def outermost(block: Block, args: tuple[Any, ...], call: Callable[[tuple[Any, ...]], Any]) -> Any:
    """``call(args)``, the outermost block call on this thread: on slices of the batch in
    parallel where that computes the same (see the module's doc), else as it is."""
    _state.nested = True
    try:
        if not _splittable(block, args):
            out = call(args)
            _warm.add(block)
            return out
        out = _split(args[0], call)
        if block._hybridized:  # (its export traces on the last call's inputs: the whole batch's)
            object.__setattr__(block, "_last_inputs", args)
        return out
    finally:
        _state.nested = False


def _splittable(block: Block, args: tuple[Any, ...]) -> bool:
    if len(args) != 1 or type(args[0]) is not np.ndarray:
        return False
    x = args[0]
    threads = parallel.threads()
    return (threads > 1 and x.ndim >= 2 and x.shape[0] >= MIN_ROWS * threads and x.size >= MIN_ELEMENTS
            and block in _warm and not is_training() and backend.compiled() is None and blas.usable()
            and _convolves(block) and rows_rank(block, x.ndim) is not None)


def _split(x: np.ndarray, call: Callable[[tuple[Any, ...]], Any]) -> Any:
    count = parallel.threads()
    bounds = [x.shape[0] * i // count for i in range(count + 1)]
    rows = [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]

    def run(chunk: slice) -> Any:
        with parallel.alone():
            return call((x[chunk],))

    try:
        with blas.serial():
            parts = parallel.in_parallel(run, rows)
        if all(type(part) is np.ndarray and part.ndim and part.shape[0] == chunk.stop - chunk.start
               for part, chunk in zip(parts, rows, strict=True)):
            return np.concatenate(parts)
    except Exception:  # noqa: BLE001  (the whole batch again: its error, worded for its shapes)
        pass
    return call((x,))
