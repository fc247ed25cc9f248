"""Inference fusion: a convolution, the BatchNorm after it and a ReLU after that run as one
step, in a ``Sequential`` and in a ``GraphBlock`` (a traced custom block, or a model converted
from MXNet, such as a gluoncv ResNet's residual blocks).

At inference a BatchNorm is ``x·scale + shift`` per channel (its running statistics), so it
folds into the convolution before it (weight·scale, bias·scale + shift), and a ReLU then
runs in place on the convolution's output: two passes over the activations and two arrays
fewer per chain. d2l's and gluoncv's CNNs are built of such chains (``bench/compute.py``'s
MobileNet-style forward: 2.14 → 1.74 ms, one thread), and DCGAN's generator of transposed
ones (the BatchNorm scales a transposed weight's columns, its output channels; the decoder's
forward at 2 threads 11.5 → 11.1 ms). Results agree with the unfused layers to float rounding
(the folded weight is rounded once more).

In a graph, where the chain's values are each read by the next step alone, the BatchNorm and
the ReLU instead run in place on the convolution's output (``in_place_step``): the layers' own
arithmetic, so a loaded model gives the bits of the custom block it was traced from, which
computes them one by one (a ResNet-18-style residual block on 32×16×32×32 values, one thread:
7.2–8.2 → 6.5–7.4 ms).

Only what would compute the same values is fused: the layers' own classes (not subclasses),
channel-first BatchNorm of the convolution's dtype, plain inference (no autograd recording,
no tracing, no ``nn.training()``), and no Gluon forward hooks on any of the layers, which
would have to see the intermediate arrays. A loaded model's activation budget covers the
fused step as the convolution's call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from . import budget, hooks
from .activations import Activation, relu_into
from .block import Block
from .conv import Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose
from .graph_spec import GraphNode, GraphSpec
from .mode import is_training
from .norm import BatchNorm

__all__ = ["enabled", "steps", "foldable", "is_relu", "step", "in_place_step", "Chain", "graph_chains"]

_CONVOLUTIONS = (Conv1D, Conv2D, Conv3D, Conv1DTranspose, Conv2DTranspose, Conv3DTranspose)

Step = Callable[[Any], Any]


def enabled() -> bool:
    """Whether a forward on this thread may fuse: plain inference, nothing watching the calls."""
    return hooks.active() is None and not is_training()


def steps(blocks: Sequence[Block]) -> Iterator[Step]:
    """The blocks as callables in order, each fusable chain as one."""
    i = 0
    while i < len(blocks):
        conv, norm = blocks[i], _at(blocks, i + 1)
        if norm is None or not foldable(conv, norm):
            yield conv
            i += 1
            continue
        relu = is_relu(_at(blocks, i + 2))
        yield step(conv, norm, relu)
        i += 3 if relu else 2


def foldable(conv: Block, norm: Block) -> bool:
    """Whether ``norm`` folds into ``conv`` when it reads ``conv``'s output alone: exactly a
    convolution without an activation of its own and a channel-first BatchNorm of its dtype,
    neither with forward hooks."""
    return (
        type(norm) is BatchNorm
        and _unhooked(norm)
        and type(conv) in _CONVOLUTIONS
        and _unhooked(conv)
        and conv._act is None  # type: ignore[attr-defined]
        and norm._axis == 1
        and norm._dtype == conv._dtype  # type: ignore[attr-defined]
    )


def is_relu(block: Block | None) -> bool:
    """Whether ``block`` is exactly a ReLU ``Activation`` without forward hooks (a step may
    apply it in place)."""
    return type(block) is Activation and _unhooked(block) and block._activation == "relu"


def _at(blocks: Sequence[Block], index: int) -> Block | None:
    return blocks[index] if index < len(blocks) else None


def _unhooked(block: Block) -> bool:
    return not block._forward_hooks  # None, or every hook detached


def step(conv: Any, norm: Block, relu: bool) -> Step:
    """``conv``, then ``norm``, then a ReLU if ``relu``, as one convolution (``foldable`` first):
    the BatchNorm folded into its weight and bias, the ReLU in place."""
    affine = cast(BatchNorm, norm).inference_affine

    def run(x: Any) -> Any:
        return conv.folded_forward(x, affine, relu=relu)

    guard = conv._activation_guard
    if guard is None:
        return run
    return lambda x: budget.guarded_call(conv, guard, (x,), forward=run)


def in_place_step(conv: Block, norm: Block, relu: bool) -> Step:
    """``conv``'s call, then ``norm``'s inference and a ReLU if ``relu`` written over its output
    (``foldable`` first; the output is read by the chain alone): the layers' own arithmetic,
    their bits, and two arrays fewer."""
    batch_norm = cast(BatchNorm, norm)

    def run(x: Any) -> Any:
        out = batch_norm.inference_in_place(conv(x))
        return relu_into(out, out) if relu else out

    return run


# -- in a graph ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """Nodes that may run as one fused step: a layer call (a convolution?), the layer call that
    alone reads its value (a BatchNorm?), and what alone reads that (a ReLU?, or None); the
    blocks are checked when the graph runs. Positions in the graph's nodes."""

    conv: int
    norm: int
    relu: int | None


def graph_chains(graph: GraphSpec) -> list[Chain]:
    """Every layer call whose one value is read by one other single-value layer call alone (and
    is not returned): a convolution and its BatchNorm, if the blocks prove to be; with the ReLU
    op or layer call that alone reads the second value, where there is one."""
    readers: dict[str, list[int]] = {}
    for position, node in enumerate(graph.nodes):
        for name in node.inputs:
            readers.setdefault(name, []).append(position)
    returned = set(graph.outputs.values)

    def only_reader(value: str) -> int | None:
        found = readers.get(value, [])
        return found[0] if len(found) == 1 and value not in returned else None

    def one_to_one(node: GraphNode) -> bool:
        return len(node.inputs) == 1 and len(node.outputs) == 1

    def layer_call(node: GraphNode) -> bool:
        return (node.op == "layer" and one_to_one(node) and node.attrs.get("args") is None
                and node.attrs.get("returns", "single") == "single")

    chains = []
    for position, node in enumerate(graph.nodes):
        norm = only_reader(node.outputs[0]) if layer_call(node) else None
        if norm is None or not layer_call(graph.nodes[norm]):
            continue
        relu = only_reader(graph.nodes[norm].outputs[0])
        if relu is not None:
            after = graph.nodes[relu]
            if not (layer_call(after) or (after.op == "relu" and one_to_one(after) and not after.attrs)):
                relu = None
        chains.append(Chain(position, norm, relu))
    return chains
