"""What each MXNet operator becomes: a registered layer where a Gluon layer maps (here), else
graph ops (``graph_ops``).

One table, ``LOWERINGS``: MXNet operator name (legacy and numpy-mode spellings alike) → a
function that reads the node's attributes and inputs and adds layers or ops to the builder.
An attribute a lowering does not read, other than speed and training hints, is refused: a
converted model must compute what MXNet computed, never something close to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...errors import (
    FormatError,
    MissingParameterError,
    ModelpackError,
    UnknownOpError,
    UnsupportedBlockError,
)
from ...nn.activations import ACTIVATIONS, ELU, Activation, LeakyReLU
from ...nn.basic import Dense, Dropout, Embedding, Flatten
from ...nn.block import Block
from ...nn.norm import BatchNorm, LayerNorm
from ...nn.registry import files_in
from ..imported import TRANSLATION_ERRORS
from .builder import Builder, InputShapesNeeded
from .symbol import Attrs, Symbol

__all__ = ["LOWERINGS", "READS_ITSELF", "Node", "known_mxnet_ops", "float_dtype", "lowers"]


@dataclass
class Node:
    """One MXNet node being lowered: its attributes, and its inputs as graph values or arrays."""

    symbol: Symbol
    index: int
    attrs: Attrs
    builder: Builder
    values: Callable[[int], str]  # input position -> graph value (a parameter becomes a node)
    arrays: Callable[[int], np.ndarray | None]  # input position -> parameter array, if it is one
    lookup: Callable[[int], np.ndarray | None]  # symbol node index -> parameter array, if it is one

    @property
    def where(self) -> str:
        return self.symbol.where(self.index)

    @property
    def name(self) -> str:
        return self.symbol.nodes[self.index].name

    @property
    def arity(self) -> int:
        return len(self.symbol.nodes[self.index].inputs)

    def value(self, position: int) -> str:
        """The graph value at input ``position``, which the operator reads: a node with fewer
        inputs than its operator takes is refused (a damaged symbol's)."""
        if position >= self.arity:
            raise FormatError(
                f"{self.where}: has {self.arity} input(s); its operator reads input {position}"
            )
        return self.values(position)

    def param(self, position: int, role: str) -> np.ndarray:
        """The parameter array at input ``position`` (the layer's ``role``: weight, bias...)."""
        array = self.arrays(position) if position < self.arity else None
        if array is None:
            raise MissingParameterError(
                f"{self.where}: its {role} (input {position}) is not in the parameter file"
            )
        return array

    def refuse(self, what: str) -> UnsupportedBlockError:
        return UnsupportedBlockError(f"{self.where}: {what} has no modelpack equivalent")

    def layer_name(self) -> str:
        """A child name from MXNet's: the weight's prefix (``dense0``), else the node's name."""
        for suffix in ("_fwd", "_output"):
            if self.name.endswith(suffix):
                return self.name[: -len(suffix)]
        return self.name

    def add_layer(self, block: Block, x: str, **arrays: np.ndarray) -> str:
        block.set_parameters(arrays, source=self.where)
        return self.builder.layer(self.layer_name(), block, x)


Lowering = Callable[[Node], "str | list[str]"]  # the node's output value, or each of its outputs
LOWERINGS: dict[str, Lowering] = {}
# Operator -> the input positions its lowering reads from the symbol itself (a fused RNN's
# packed parameters, its zero begin states): conversion does not lower the nodes behind them.
READS_ITSELF: dict[str, Callable[[Symbol, int], set[int]]] = {}


lowers = files_in(LOWERINGS)  # @lowers("Convolution", ...) files a lowering under those operators


def known_mxnet_ops() -> list[str]:
    return sorted(LOWERINGS)


def lower(node: Node) -> list[str]:
    op = node.symbol.nodes[node.index].op
    fn = LOWERINGS.get(op)
    if fn is None:
        raise UnknownOpError(
            f"{node.where}: MXNet operator {op!r} is not supported; supported: {', '.join(known_mxnet_ops())}"
        )
    try:
        out = fn(node)
    except InputShapesNeeded:
        raise
    except ValueError as exc:  # a layer refusing what the file gives it (nn's UsageErrors among them)
        raise FormatError(f"{node.where}: {exc}") from None
    except ModelpackError:
        raise
    except TRANSLATION_ERRORS as exc:  # (imported's list: the same as ONNX's translators)
        raise FormatError(
            f"{node.where}: its attributes or inputs are not what MXNet's {op} takes "
            f"({type(exc).__name__}: {exc})"
        ) from None
    unused = node.attrs.unused()
    if unused:
        shown = ", ".join(f"{k}={node.attrs.raw[k]!r}" for k in unused)
        raise UnsupportedBlockError(
            f"{node.where}: attribute {shown} is not supported (the result would differ)"
        )
    return [out] if isinstance(out, str) else out


def float_dtype(node: Node, array: np.ndarray) -> str:
    """A float weight's dtype name (the layer's dtype); other dtypes are refused."""
    if array.dtype.name not in ("float16", "float32", "float64"):
        raise node.refuse(f"a {array.dtype} weight")
    return array.dtype.name


# -- layers -------------------------------------------------------------------------------------


@lowers("FullyConnected")
def _dense(node: Node) -> str:
    no_bias = node.attrs.flag("no_bias", False)
    weight = node.param(1, "weight")
    units = node.attrs.integer("num_hidden")
    if weight.ndim != 2 or weight.shape[0] != units:
        raise node.refuse(f"a weight of shape {weight.shape} for num_hidden={units}")
    arrays = {"weight": weight} if no_bias else {"weight": weight, "bias": node.param(2, "bias")}
    block = Dense(units, use_bias=not no_bias, flatten=node.attrs.flag("flatten", True),
                  in_units=weight.shape[1], dtype=float_dtype(node, weight))
    return node.add_layer(block, node.value(0), **arrays)


@lowers("BatchNorm", "_contrib_SyncBatchNorm")
def _batchnorm(node: Node) -> str:
    if node.attrs.flag("output_mean_var", False):
        raise node.refuse("output_mean_var=True")
    node.attrs.integer("ndev", 1)
    node.attrs.text("key", "")
    gamma = node.param(1, "gamma")
    arrays = {"gamma": gamma, "beta": node.param(2, "beta"), "running_mean": node.param(3, "moving_mean"),
              "running_var": node.param(4, "moving_var")}
    block = BatchNorm(
        axis=node.attrs.integer("axis", 1), momentum=node.attrs.number("momentum", 0.9),
        epsilon=node.attrs.number("eps", 1e-3), scale=not node.attrs.flag("fix_gamma", True),
        use_global_stats=node.attrs.flag("use_global_stats", False), in_channels=gamma.shape[0],
        dtype=float_dtype(node, gamma),
    )
    return node.add_layer(block, node.value(0), **arrays)


@lowers("LayerNorm")
def _layernorm(node: Node) -> str:
    if node.attrs.flag("output_mean_var", False):
        raise node.refuse("output_mean_var=True")
    gamma = node.param(1, "gamma")
    block = LayerNorm(axis=node.attrs.integer("axis", -1), epsilon=node.attrs.number("eps", 1e-5),
                      in_channels=gamma.shape[0], dtype=float_dtype(node, gamma))
    return node.add_layer(block, node.value(0), gamma=gamma, beta=node.param(2, "beta"))


@lowers("Embedding")
def _embedding(node: Node) -> str:
    weight = node.param(1, "weight")
    dims = (node.attrs.integer("input_dim"), node.attrs.integer("output_dim"))
    if weight.shape != dims:
        raise node.refuse(f"a weight of shape {weight.shape} for (input_dim, output_dim)={dims}")
    node.attrs.text("dtype", "float32")  # the weight's own dtype decides
    return node.add_layer(Embedding(*dims, dtype=float_dtype(node, weight)), node.value(0), weight=weight)


@lowers("Dropout")
def _dropout(node: Node) -> str:
    if node.attrs.text("mode", "training") != "training":
        raise node.refuse("dropout applied at inference (mode='always')")
    rate = node.attrs.number("p", 0.5)
    if not 0.0 <= rate < 1.0:
        raise node.refuse(f"rate p={rate}")
    return node.add_layer(Dropout(rate, axes=node.attrs.integers("axes", ())), node.value(0))


@lowers("Flatten", "flatten")
def _flatten(node: Node) -> str:
    return node.add_layer(Flatten(), node.value(0))


@lowers("Activation")
def _activation(node: Node) -> str:
    act = node.attrs.text("act_type")
    x = node.value(0)
    if act in ACTIVATIONS:
        return node.add_layer(Activation(act), x)
    b = node.builder
    if act == "log_sigmoid":  # log σ(x) = -softplus(-x)
        return b.op("negative", b.op("softrelu", b.op("negative", x)))
    if act == "mish":  # x · tanh(softplus(x))
        return b.op("multiply", x, b.op("tanh", b.op("softrelu", x)))
    raise node.refuse(f"act_type {act!r}")


SELU_ALPHA, SELU_LAMBDA = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


@lowers("LeakyReLU")
def _leaky(node: Node) -> str:
    act = node.attrs.text("act_type", "leaky")
    x, b = node.value(0), node.builder
    if act == "leaky":
        return node.add_layer(LeakyReLU(node.attrs.number("slope", 0.25)), x)
    if act == "elu":
        return node.add_layer(ELU(node.attrs.number("slope", 0.25)), x)
    if act == "rrelu":  # random slopes while training; their mean at inference
        middle = (node.attrs.number("lower_bound", 0.125) + node.attrs.number("upper_bound", 0.334)) / 2
        return node.add_layer(LeakyReLU(middle), x)
    if act == "gelu":
        return node.add_layer(Activation("gelu"), x)
    if act == "selu":
        return b.op("multiply", b.op("elu", x, alpha=SELU_ALPHA), b.scalar(SELU_LAMBDA))
    if act == "prelu":
        alpha = node.param(1, "alpha")
        slope = node.value(1)
        if alpha.size != 1:  # one slope per channel (axis 1)
            a, _, _ = b.shapes(x)
            slope = b.op("reshape", slope, shape=[1, alpha.size] + [1] * (len(a) - 2))
        negative = b.op("multiply", x, slope)
        return b.op("where", b.op("greater", x, b.scalar(0.0)), x, negative)
    raise node.refuse(f"act_type {act!r}")


# The other tables' operators register themselves; imported last, as they use ``lowers``.
from . import array_ops, graph_ops, recurrent, resize, spatial  # noqa: E402, F401
