"""``to_onnx``: any modelpack model as an ONNX file (opset 17) that onnxruntime runs.

The model is first described as ``export`` describes it (a custom Block's ``forward`` is
traced on ``example`` into a graph and checked against forward), so only registered layers
and registered ops remain. Then it is walked once, on two samples (the example, and the
example with every dynamic size grown by one): each layer and op writes its ONNX nodes
(``export_layers``, ``export_ops``) and computes its numpy result, which gives every value's
rank, dtype and fixed sizes to the next step. The batch size (and any ``dynamic_axes``)
stays a named, symbolic dimension in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ... import __version__, tracing
from ...errors import UnsupportedBlockError, UsageError
from ...format import architecture
from ...io.paths import PathOrFile, atomic_writer, describe
from ...nn import ops, registry, structure
from ...nn.block import Block
from ...nn.graph import GraphBlock
from ...nn.graph_spec import GraphSpec
from ...nn.sizes import resolve
from .emitter import Emitter, Value, onnx_dtype
from .export_layers import LAYERS
from .export_ops import OPS
from .export_recurrent import RECURRENT, REFUSED

__all__ = ["to_onnx", "OPSET", "to_model_proto"]

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17: the oldest runtime that reads opset 17 reads it
_MAX_PROTO_BYTES = 2**31 - 2**20  # protobuf's 2 GiB limit, with room for the graph itself


def to_onnx(
    net: Block,
    path: PathOrFile,
    example: Any = None,
    *,
    dynamic_batch: bool = True,
    dynamic_axes: Mapping[int, Mapping[int, str]] | None = None,
) -> None:
    """Write ``net`` as an ONNX model that computes what ``net`` computes at inference.

    ``example`` (an input array, or a tuple of them) fixes the input shapes; it is needed for a
    custom Block (its ``forward`` is traced) and for a model whose first layer does not fix
    its input's shape (a convolution). Axis 0 of every input stays dynamic (``batch``)
    unless ``dynamic_batch=False``; ``dynamic_axes={input: {axis: name}}`` frees others.

    >>> modelpack.interop.onnx.to_onnx(net, "mlp.onnx", example=x)  # doctest: +SKIP
    """
    model = to_model_proto(
        net, example, dynamic_batch=dynamic_batch, dynamic_axes=dynamic_axes, where=describe(path)
    )
    with atomic_writer(path) as handle:
        handle.write(model.SerializeToString())


def to_model_proto(
    net: Block,
    example: Any = None,
    *,
    dynamic_batch: bool = True,
    dynamic_axes: Mapping[int, Mapping[int, str]] | None = None,
    where: str = "<onnx>",
) -> onnx.ModelProto:
    """The ONNX ``ModelProto`` that ``to_onnx`` writes (checked by onnx's checker)."""
    from ...api import _as_example  # the one rule for example inputs (a late import: api is above interop)

    examples = _as_example(example)
    traces, symbols = tracing.trace_for_export(
        net, examples, dynamic_batch=dynamic_batch, dynamic_axes=dynamic_axes
    )
    tree, arrays, ties = architecture.describe_for_export(net, traces)
    model = architecture.build_model(tree, dict(arrays), where, ties)
    if traces is not None and examples is not None:
        tracing.check_trace(net, model, examples, symbols)
    if examples is None:
        examples = _synthesize(model)
    arguments, flat = structure.flatten(list(examples))  # recurrent states nest: (x, [h, c])
    examples = tuple(flat)
    specs = _input_specs(model, examples, dynamic_batch, dynamic_axes or {})
    em = Emitter(where)
    inputs = []
    for (name, dims), array in zip(specs, examples, strict=True):
        em.taken.add(name)
        inputs.append(Value(name, (array, _grown(array, dims))))
    result = _emit_block(em, model, list(structure.unflatten(arguments, inputs)), "")
    outputs = _name_outputs(em, result)
    if sum(t.ByteSize() for t in em.initializers) > _MAX_PROTO_BYTES:
        raise UsageError(f"{where}: the weights exceed the 2 GiB a single ONNX file can hold")
    graph = helper.make_graph(
        em.nodes,
        "modelpack",
        [
            helper.make_tensor_value_info(name, onnx_dtype(a.dtype), dims)
            for (name, dims), a in zip(specs, examples, strict=True)
        ],
        [helper.make_tensor_value_info(name, onnx_dtype(v.dtype), v.static_dims()) for name, v in outputs],
        em.initializers,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="modelpack",
        producer_version=__version__,
    )
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


# -- inputs ---------------------------------------------------------------------------------


def _synthesize(model: Block) -> tuple[np.ndarray, ...]:
    """Inputs for a model whose first layer fixes their shape (else ask for an example)."""
    if isinstance(model, GraphBlock):
        raise UsageError("to_onnx needs example= for a traced model (the graph's input sizes)")
    block = model
    while registry.type_name_of(block) == "Sequential" and block.children:
        block = next(iter(block.children.values()))
    type_name = registry.type_name_of(block)
    config = block.get_config() if type_name is not None else {}
    if type_name == "Dense" and config["in_units"]:
        return (np.zeros((2, config["in_units"]), config["dtype"]),)
    if type_name in ("BatchNorm", "LayerNorm") and config["in_channels"]:
        return (np.zeros((2, config["in_channels"]), config["dtype"]),)
    raise UsageError(
        f"to_onnx needs example= (an input array): the first layer ({type_name}) does not "
        "fix its input's shape"
    )


def _input_specs(
    model: Block,
    examples: tuple[np.ndarray, ...],
    dynamic_batch: bool,
    dynamic_axes: Mapping[int, Mapping[int, str]],
) -> list[tuple[str, list[int | str]]]:
    """Each input's ONNX name and dims (a name marks a dynamic size)."""
    if isinstance(model, GraphBlock):
        spec = GraphSpec.model_validate(model.get_config()["graph"])
        return [(i.name, list(i.shape)) for i in spec.inputs]
    specs = []
    for index, array in enumerate(examples):
        dims: list[int | str] = list(array.shape)
        if dynamic_batch and array.ndim:
            dims[0] = "batch"
        for axis, name in dynamic_axes.get(index, {}).items():
            dims[axis] = name
        specs.append(("input" if len(examples) == 1 else f"input_{index}", dims))
    return specs


def _grown(array: np.ndarray, dims: list[int | str]) -> np.ndarray:
    """The second sample: every dynamic size one larger (data repeated, so indices stay valid)."""
    shape = tuple(d + 1 if isinstance(spec, str) else d for d, spec in zip(array.shape, dims, strict=True))
    return np.resize(array, shape) if array.size else np.zeros(shape, array.dtype)


# -- the walk ----------------------------------------------------------------------------------


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _emit_block(em: Emitter, block: Block, inputs: list[Any], path: str) -> Any:
    """``block`` called on ``inputs`` (Values, lists of them for states, None where absent):
    its nodes, and its result as the same structure of Values as ``block`` returns."""
    type_name = registry.type_name_of(block) or ""
    if type_name == "Sequential":
        x = inputs[0]
        for name, child in block.children.items():
            x = _emit_block(em, child, [x], _join(path, name))
        return x
    if isinstance(block, GraphBlock):
        return _emit_graph(em, block, inputs, path)
    if type_name in STRUCTURAL:
        return STRUCTURAL[type_name](em, block, inputs, path)
    if type_name in RECURRENT:
        names = RECURRENT[type_name](em, block, block.get_config(), inputs, path, _emit_block)  # type: ignore[attr-defined, unused-ignore]
        return _with_samples(block, inputs, names)
    emit = LAYERS.get(type_name)
    if emit is None or len(inputs) != 1:
        why = f" ({REFUSED[type_name]})" if type_name in REFUSED else ""
        raise UnsupportedBlockError(
            f"{em.where}: block {path or '(top level)'!r} ({type_name}) has no ONNX translation{why}; "
            f"translated layers: {', '.join(sorted({*LAYERS, *RECURRENT, *STRUCTURAL}))}"
        )
    with np.errstate(all="ignore"):
        samples = (np.asarray(block(inputs[0].samples[0])), np.asarray(block(inputs[0].samples[1])))
    name = emit(em, block, block.get_config(), inputs[0], path, samples[0].dtype)
    return Value(name, samples)


def _samples(args: list[Any], run: int) -> list[Any]:
    """The arguments (a structure of Values) as the arrays of one sample run."""
    return [
        a.samples[run] if isinstance(a, Value) else None if a is None else _samples(list(a), run)
        for a in args
    ]


def _with_samples(block: Block, inputs: list[Any], names: Any) -> Any:
    """The ONNX names an emitter gave, as Values holding what ``block`` returns on both samples."""
    with np.errstate(all="ignore"):
        runs = [block(*_samples(inputs, run)) for run in (0, 1)]
    tree, leaves = structure.flatten(names)
    found = [structure.values_of(tree, r) for r in runs]
    values = [Value(n, (np.asarray(a), np.asarray(b))) for n, a, b in zip(leaves, *found, strict=True)]
    return structure.unflatten(tree, values)


def _concatenate(em: Emitter, block: Block, inputs: list[Any], path: str) -> Value:
    """Gluon's Concatenate: each child on the same input, joined (in numpy's common dtype)."""
    outs = [_emit_block(em, child, inputs, _join(path, name)) for name, child in block.children.items()]
    if not outs:
        raise em.refuse(f"block {path!r} (Concatenate) has no children to join")
    axis = block.get_config()["axis"]  # type: ignore[attr-defined, unused-ignore]
    first, second = (np.concatenate([o.samples[run] for o in outs], axis=axis) for run in (0, 1))
    names = [em.as_dtype(o, first.dtype) for o in outs]
    return Value(em.node("Concat", names, "concatenate", axis=axis), (first, second))


def _lambda(em: Emitter, block: Block, inputs: list[Any], path: str) -> Any:
    """A Lambda names an op whose attributes all have defaults: that op, with them."""
    op = block.get_config()["function"]  # type: ignore[attr-defined, unused-ignore]
    attrs = ops.op_def(op).attrs.model_validate({}).model_dump()
    where = f"{em.where}: block {path or '(top level)'!r} (Lambda {op!r})"
    outs = _emit_op(em, op, attrs, list(inputs), {}, [{}, {}], where)
    return list(outs) if ops.op_def(op).returns_list(attrs) else outs[0]


# Layer types whose translation is made of other blocks' (Sequential and Graph are walked above).
STRUCTURAL: dict[str, Any] = {"Concatenate": _concatenate, "Lambda": _lambda, "HybridLambda": _lambda}


def _emit_graph(em: Emitter, block: GraphBlock, inputs: list[Value], path: str) -> Any:
    config = block.get_config()
    spec = GraphSpec.model_validate(config["graph"])
    _, inputs = structure.flatten(list(inputs))  # nested arguments (states) as the graph's inputs
    symbols: dict[str, tuple[str, int]] = {}
    sizes: list[dict[str, int]] = [{}, {}]
    values: dict[str, Value] = {}
    for graph_input, value in zip(spec.inputs, inputs, strict=True):
        values[graph_input.name] = value
        for axis, dim in enumerate(graph_input.shape):
            if isinstance(dim, str):
                symbols.setdefault(dim, (value.name, axis))
                for run in (0, 1):
                    sizes[run].setdefault(dim, int(np.shape(value.samples[run])[axis]))
    params = dict(block.named_parameters())
    constants = block.constants
    for position, node in enumerate(spec.nodes):
        where = f"{em.where}: block {path or '(top level)'!r} graph node {position} ({node.op})"
        ins = [values[name] for name in node.inputs]
        if node.op == "layer":
            child: Block = block
            for part in node.attrs["block"].split("."):
                child = child.children[part]
            args = ins if node.attrs.get("args") is None else structure.unflatten(
                {"kind": "list", "items": node.attrs["args"]}, ins
            )
            result = _emit_block(em, child, list(args), _join(path, node.attrs["block"]))
            returns = node.attrs.get("returns", "single")
            if returns == "tree":
                results = structure.values_of(node.attrs["tree"], result)
            else:
                results = [result] if returns == "single" else list(result)
        elif node.op in ("parameter", "constant"):
            if node.op == "parameter":
                array, label = params[node.attrs["name"]].array(), _join(path, node.attrs["name"])
            else:
                array = constants[int(node.attrs["name"].removeprefix("#const"))]
                label = f"{path}{node.attrs['name']}"
            results = [Value(em.initializer(array, label), (array, array))]
        elif node.op == "scalar":
            results = [Value("", (node.attrs["value"], node.attrs["value"]))]
        else:
            results = _emit_op(em, node.op, dict(node.attrs), ins, symbols, sizes, where)
        for name, value in zip(node.outputs, results, strict=True):
            values[name] = value
    return spec.outputs.pack([values[name] for name in spec.outputs.values])


def _emit_op(
    em: Emitter,
    op: str,
    attrs: dict[str, Any],
    ins: list[Value],
    symbols: Mapping[str, tuple[str, int]],
    sizes: list[dict[str, int]],
    where: str,
) -> list[Value]:
    """An op's nodes and its result(s) on both samples (several for ``split`` and the like)."""
    writer = OPS.get(op)
    if writer is None:
        raise UnsupportedBlockError(
            f"{where}: op {op!r} has no ONNX translation; translated ops: {', '.join(sorted(OPS))}"
        )
    definition = ops.op_def(op)
    samples = []
    for run in (0, 1):
        # size attributes name dynamic sizes (or expressions of them): bound as the graph binds them
        run_attrs = {k: resolve(v, sizes[run]) if k in definition.sizes else v for k, v in attrs.items()}
        with np.errstate(all="ignore"):
            samples.append(definition.fn(*[v.samples[run] for v in ins], **run_attrs))
    several = definition.returns_list(attrs)
    if several:
        outs = [Value("", (np.asarray(a), np.asarray(b))) for a, b in zip(*samples, strict=True)]
    else:
        outs = [Value("", (np.asarray(samples[0]), np.asarray(samples[1])))]
    out = outs[0]
    if writer.cast == "result":
        xs = [em.as_dtype(v, out.dtype) for v in ins]
    elif writer.cast == "common":
        common = np.result_type(*[v.sample for v in ins])
        xs = [em.as_dtype(v, common) for v in ins]
    else:
        xs = [em.constant(v.sample) if v.is_scalar else v.name for v in ins]
    names = writer.emit(em, xs, attrs, ins, outs if several else out, symbols)  # type: ignore[arg-type]
    for value, name in zip(outs, [names] if isinstance(names, str) else names, strict=True):
        value.name = name
    return outs


def _name_outputs(em: Emitter, result: Any) -> list[tuple[str, Value]]:
    """Graph outputs under readable names: ``output``, or ``output_<i>``, or a dict's keys."""
    if isinstance(result, Value):
        named = [("output", result)]
    elif isinstance(result, dict):
        named = list(result.items())
    else:  # a tuple, list or nested structure (y, [h, c]): its values in order
        named = [(f"output_{i}", value) for i, value in enumerate(structure.flatten(result)[1])]
    outputs = []
    for name, value in named:
        source = em.constant(value.sample) if value.is_scalar else value.name
        final = em.fresh(name)
        em.nodes.append(helper.make_node("Identity", [source], [final], name=em.fresh(f"/{final}/Identity")))
        outputs.append((final, value))
    return outputs
