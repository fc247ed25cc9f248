"""``convert``: MXNet files → a modelpack model, without MXNet.

Two ways in:

- a hybridized Gluon export, ``convert("net-symbol.json", "net-0000.params")``: the symbol
  JSON becomes layers and graph nodes (``lowering``), the parameters fill them;
- a parameter file alone plus a modelpack architecture (a Block, or an ``.mpk`` whose weights
  are replaced): ``convert("mlp.params", architecture=MLP())``.

Gluon's names are matched to modelpack's structured names: ``arg:``/``aux:`` prefixes are
dropped, and ``dense0_weight`` matches ``dense0.weight`` when no name matches exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ...errors import ExtraParameterError, FormatError, UnsupportedBlockError, UsageError
from ...format.architecture import limit_loaded
from ...io.limits import DEFAULT_LIMITS, Limits
from ...io.paths import PathOrFile, describe
from ...io.sniff import is_symbol_file
from ...nn.block import Block
from ..convert import load_architecture
from . import ndarray
from .builder import Builder, InputShape
from .lowering import READS_ITSELF, Node, lower
from .recurrent import rnn_input_shape
from .symbol import Attrs, Symbol, SymbolNode, read_symbol

__all__ = ["convert", "symbol_to_block", "gluon_parameters", "match_parameters", "match_names", "PREFIXES"]

PREFIXES = ("arg:", "aux:")  # an export's learned parameters and auxiliary states
# Operators that keep their input's rank: a graph input's rank is sought past them.
_RANK_KEEPING = {"Activation", "LeakyReLU", "BatchNorm", "LayerNorm", "Dropout", "softmax", "log_softmax",
                 "_copy", "identity", "BlockGrad", "relu", "sigmoid", "tanh", "_npx_relu", "_npx_sigmoid"}


def convert(
    *sources: PathOrFile,
    architecture: Block | PathOrFile | None = None,
    input_shapes: Mapping[str, InputShape] | None = None,
    allow_missing: bool = False,
    ignore_extra: bool = False,
    cast_dtype: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> Block:
    """A modelpack model from MXNet files (in any order): a symbol JSON and its parameter file,
    or a parameter file and ``architecture``.

    ``input_shapes={"data": (None, 3, 32, 32)}`` fixes a graph's input shapes (None: dynamic);
    it is needed only when a graph's input rank cannot be inferred from its first layer.

    >>> net = convert("mlp-symbol.json", "mlp-0000.params")   # doctest: +SKIP
    >>> modelpack.export(net, "mlp.mpk")                       # doctest: +SKIP
    """
    symbols: list[PathOrFile] = []
    params: list[PathOrFile] = []
    for source in sources:
        (params if ndarray.is_ndarray_file(source) else symbols).append(source)
    if len(params) != 1 or len(symbols) + (architecture is not None) != 1:
        neither = [source for source in symbols if not is_symbol_file(source)]
        damaged = (f"; {_names(neither)} start{'s' * (len(neither) == 1)} neither as an NDArray file "
                   "(MXNet's magic number) nor as a symbol's JSON: a damaged file, or one of another kind")
        raise UsageError(
            "convert takes one MXNet parameter file and either one -symbol.json file or an "
            f"architecture; found {len(params)} parameter file(s) ({_names(params)}), "
            f"{len(symbols)} other file(s) ({_names(symbols)}) and "
            f"{'an' if architecture is not None else 'no'} architecture"
            + (damaged if neither else "")
        )
    arrays = gluon_parameters(params[0], limits=limits)
    source = describe(params[0])
    if symbols:
        symbol = read_symbol(symbols[0], limits=limits)
        net = symbol_to_block(symbol, arrays, source=source, input_shapes=input_shapes,
                              ignore_extra=ignore_extra)
        limit_loaded(net, symbol.source, limits, sum(array.nbytes for array in arrays.values()))
        return net
    net = load_architecture(architecture, limits)
    net.set_parameters(
        match_parameters(arrays, net.collect_params()), source=source,
        allow_missing=allow_missing, ignore_extra=ignore_extra, cast_dtype=cast_dtype,
    )
    return net


def _names(paths: list[PathOrFile]) -> str:
    return ", ".join(describe(p) for p in paths) or "none"


def gluon_parameters(source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """A Gluon parameter file's arrays by name, ``arg:``/``aux:`` prefixes removed."""
    loaded = ndarray.load(source, limits=limits)
    if not isinstance(loaded, dict):
        raise FormatError(
            f"{describe(source)} holds {len(loaded)} unnamed arrays; a parameter file names each one"
        )
    return drop_prefixes(loaded, describe(source))


def drop_prefixes(named: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """The arrays without an export's ``arg:``/``aux:`` prefixes (a name left twice is refused)."""
    arrays: dict[str, np.ndarray] = {}
    for name, array in named.items():
        plain = name[4:] if name.startswith(PREFIXES) else name
        if plain in arrays:
            raise FormatError(f"{source}: parameter {plain!r} appears twice (with and without a prefix)")
        arrays[plain] = array
    return arrays


def match_parameters(arrays: Mapping[str, np.ndarray], model_names: Iterable[str]) -> dict[str, np.ndarray]:
    """``arrays`` renamed to the model's structured names where Gluon's flat names map to them
    (see ``match_names``); names that match nothing are kept, for the caller to report."""
    renamed = match_names(arrays, model_names)
    return {renamed[name]: array for name, array in arrays.items()}


# Gluon 1.9 saves a fused RNN layer's parameters under the names of the cells it would unfuse
# into: ``rnn._unfused.0.l_cell.i2h_weight`` (bidirectional) or ``rnn._unfused.0.i2h_weight``,
# for the layer's own ``rnn.l0_i2h_weight``.
_UNFUSED = re.compile(r"^(.*?)_unfused\.([0-9]+)\.(?:([lr])_cell\.)?((?:i2h|h2h|h2r)_(?:weight|bias))$")


def fused_rnn_name(name: str) -> str:
    """A recurrent layer's parameter name as the layer registers it (other names unchanged)."""
    match = _UNFUSED.match(name)
    if match is None:
        return name
    prefix, layer, direction, kind = match.groups()
    return f"{prefix}{direction or 'l'}{layer}_{kind}"


def match_names(names: Iterable[str], model_names: Iterable[str]) -> dict[str, str]:
    """Each name → the model name it stands for: itself when the model has it, else the one
    model name ``a.b`` whose dots as underscores give it (``a_b``), else itself. Gluon's
    ``_unfused`` names of recurrent layers are read as the layer's own (``fused_rnn_name``)."""
    wanted = set(model_names)
    flat: dict[str, list[str]] = {}
    for name in wanted:
        flat.setdefault(name.replace(".", "_"), []).append(name)
    renamed: dict[str, str] = {}
    taken: set[str] = set()
    for original in names:
        name = fused_rnn_name(original)
        candidates = flat.get(name, [])
        target = name if name in wanted or len(candidates) != 1 else candidates[0]
        if target in taken:
            raise FormatError(f"parameters {original!r} and another both map to {target!r}")
        taken.add(target)
        renamed[original] = target
    return renamed


def symbol_to_block(
    symbol: Symbol,
    arrays: Mapping[str, np.ndarray],
    *,
    source: str = "<parameters>",
    input_shapes: Mapping[str, InputShape] | None = None,
    ignore_extra: bool = False,
) -> Block:
    """The model a checked symbol describes, with ``arrays`` (prefixes removed) as weights."""
    nodes = symbol.nodes
    needed = _reachable(symbol)
    shapes = dict(input_shapes or {})
    builder = Builder(symbol.source, lambda name: _guess_shape(symbol, arrays, name))
    outputs: dict[int, list[str]] = {}
    params_read: dict[str, str] = {}
    used: set[str] = set()

    def value_of(index: int, position: int) -> str:
        source_index, output = nodes[index].inputs[position][:2]
        source_node = nodes[source_index]
        if source_node.op != "null":
            return _output(outputs, source_index, output, symbol.where(index))
        name = source_node.name
        if name in arrays:
            used.add(name)
            if name not in params_read:
                params_read[name] = builder.parameter(name, arrays[name])
            return params_read[name]
        if name not in builder.inputs:
            builder.add_input(name, shapes.pop(name, None))
        return builder.inputs[name].value

    def array_at(source_index: int) -> np.ndarray | None:
        source_node = nodes[source_index]
        if source_node.op == "null" and source_node.name in arrays:
            used.add(source_node.name)
            return arrays[source_node.name]
        return None

    for index in sorted(needed):
        node = nodes[index]
        if node.op == "null":
            continue
        context = Node(
            symbol, index, Attrs(node.attributes(), symbol.where(index)), builder,
            values=lambda position, i=index: value_of(i, position),  # type: ignore[misc]
            arrays=lambda position, i=index: array_at(nodes[i].inputs[position][0]),  # type: ignore[misc]
            lookup=array_at,
        )
        outputs[index] = lower(context)
    heads = []
    for node_index, output in symbol.heads:
        if nodes[node_index].op == "null":
            raise UnsupportedBlockError(
                f"{symbol.source}: an output is the variable {nodes[node_index].name!r}"
            )
        heads.append(_output(outputs, node_index, output, f"{symbol.source}: an output"))
    if shapes:
        raise UsageError(
            f"{symbol.source}: input_shapes names {sorted(shapes)}, which are not inputs "
            f"(inputs: {sorted(builder.inputs)})"
        )
    extra = [name for name in arrays if name not in used]
    if extra and not ignore_extra:
        raise ExtraParameterError(
            f"{source}: parameters {extra} are not used by {symbol.source}; pass ignore_extra=True "
            "if the files belong together"
        )
    order = {node.name: i for i, node in enumerate(nodes)}
    builder.inputs = dict(sorted(builder.inputs.items(), key=lambda item: order[item[0]]))
    return builder.finish(heads)


def _output(outputs: dict[int, list[str]], index: int, output: int, reader: str) -> str:
    """Output ``output`` of converted node ``index``, or an error naming what has it."""
    values = outputs[index]
    if output >= len(values):
        raise UnsupportedBlockError(
            f"{reader} reads output {output} of node {index}, which converts to {len(values)} output(s)"
        )
    return values[output]


def _reachable(symbol: Symbol) -> set[int]:
    """The nodes the outputs depend on, less those a lowering reads itself (``READS_ITSELF``)."""
    seen: set[int] = set()
    stack = [index for index, _ in symbol.heads]
    while stack:
        index = stack.pop()
        if index not in seen:
            seen.add(index)
            node = symbol.nodes[index]
            own = READS_ITSELF[node.op](symbol, index) if node.op in READS_ITSELF else set()
            stack.extend(entry[0] for position, entry in enumerate(node.inputs) if position not in own)
    return seen


def _guess_shape(symbol: Symbol, arrays: Mapping[str, np.ndarray], name: str) -> list[int | str] | None:
    """An input's shape from the first layer that fixes its rank (see ``builder``)."""
    frontier = [i for i, node in enumerate(symbol.nodes) if node.op == "null" and node.name == name]
    swapped = False  # past a swap of axes 0 and 1 (Gluon's NTC layout around a fused RNN)
    for _ in range(64):  # a chain of rank-keeping ops is short; bound it anyway
        for i, node in enumerate(symbol.nodes):
            for position, entry in enumerate(node.inputs):
                if node.op in _RNN_OPS and entry[0] in frontier:
                    return rnn_input_shape(symbol, dict(arrays), i, position, swapped)
        consumers = [(i, node) for i, node in enumerate(symbol.nodes)
                     if node.inputs and node.inputs[0][0] in frontier]
        for _, node in consumers:
            weight = _weight(symbol, arrays, node.inputs)
            if node.op == "FullyConnected" and weight is not None and weight.ndim == 2:
                return ["batch", int(weight.shape[1])]
            if node.op in ("Convolution", "Deconvolution") and weight is not None and 3 <= weight.ndim <= 5:
                attrs = Attrs(node.attributes(), "")
                channels = weight.shape[0] if node.op == "Deconvolution" else weight.shape[1] * attrs.integer(
                    "num_group", 1)
                return ["batch", int(channels), *_SPATIAL[weight.ndim - 2]]
            if node.op == "Embedding":
                return ["batch", "seq"]
        swaps = [node for _, node in consumers if node.op in _SWAPS]
        if swaps and all(_swaps_first_axes(node) for node in swaps):
            swapped = not swapped
        else:
            swaps = []
        frontier = [i for i, node in consumers
                    if node.op in _RANK_KEEPING or node.op in _SCALAR_OPS or (swaps and node.op in _SWAPS)]
        if not frontier:
            return None
    return None


def _swaps_first_axes(node: SymbolNode) -> bool:
    attrs = Attrs(node.attributes(), "")
    return {attrs.integer("dim1", 0), attrs.integer("dim2", 0)} == {0, 1}


_RNN_OPS = ("RNN", "_npx_rnn")
_SWAPS = ("SwapAxis", "swapaxes")
_SPATIAL = {1: ["width"], 2: ["height", "width"], 3: ["depth", "height", "width"]}


def _weight(
    symbol: Symbol, arrays: Mapping[str, np.ndarray], inputs: Sequence[list[int]]
) -> np.ndarray | None:
    if len(inputs) < 2:
        return None
    node = symbol.nodes[inputs[1][0]]
    return arrays.get(node.name) if node.op == "null" else None


_SCALAR_OPS = {"_plus_scalar", "_minus_scalar", "_mul_scalar", "_div_scalar", "_npi_add_scalar",
               "_npi_subtract_scalar", "_npi_multiply_scalar", "_npi_true_divide_scalar"}
