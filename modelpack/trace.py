"""Tracing: record what a custom Block's ``forward`` does as a graph of registered ops.

``trace_model(net, example)`` runs ``net`` once on the example with the layer library's
hooks routed here. Each custom (unregistered) Block that gets called has its ``forward`` run
on *stand-ins* (``Traced``) that carry the real values along, so every shape is known and the
trace checks itself as it goes. Calls to child layers, parameter reads, numpy ufuncs and array
functions (via ``__array_ufunc__``/``__array_function__``), operators and ``F.*`` calls on
stand-ins become nodes. Anything that cannot be recorded faithfully — Python control flow on
tensor values, numpy on raw data outside the op set, in-place changes to parameters —
raises ``TraceError`` naming the operation and the source line.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from . import ops, registry
from .errors import TraceError
from .nn import hooks
from .nn.block import Block
from .nn.graph import GraphInput, GraphNode, GraphOutputs, GraphSpec, ParameterSpec
from .nn.parameter import Parameter

__all__ = ["Traced", "TraceResult", "trace_model", "is_opaque"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


def _source_line() -> str:
    """``file:line: code`` of the innermost frame outside modelpack and numpy, if any."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if not path.startswith((_PACKAGE_DIR, _NUMPY_DIR)) and "<frozen" not in path:
            return f" (at {frame.filename}:{frame.lineno}: {(frame.line or '').strip()})"
    return ""


def refuse(what: str, why: str) -> TraceError:
    """A TraceError naming the operation, the reason and the user's source line."""
    return TraceError(f"cannot trace {what}: {why}{_source_line()}")


@dataclass
class BlockTrace:
    """What tracing recorded for one custom block."""

    block: Block
    spec: GraphSpec
    parameters: dict[str, ParameterSpec]
    constants: list[np.ndarray]


@dataclass
class TraceResult:
    """Traces of every custom block reached from the root, by block identity."""

    traces: dict[int, BlockTrace] = field(default_factory=dict)

    def for_block(self, block: Block) -> BlockTrace | None:
        return self.traces.get(id(block))


# -- stand-ins --------------------------------------------------------------------------------

_UFUNC_OPS: dict[Any, str] = {
    np.add: "add",
    np.subtract: "subtract",
    np.multiply: "multiply",
    np.divide: "divide",
    np.true_divide: "divide",
    np.power: "power",
    np.maximum: "maximum",
    np.minimum: "minimum",
    np.matmul: "matmul",
    np.negative: "negative",
    np.absolute: "abs",
    np.exp: "exp",
    np.log: "log",
    np.sqrt: "sqrt",
    np.square: "square",
    np.sin: "sin",
    np.cos: "cos",
    np.tanh: "tanh",
    np.greater: "greater",
    np.greater_equal: "greater_equal",
    np.less: "less",
    np.less_equal: "less_equal",
    np.equal: "equal",
    np.not_equal: "not_equal",
}


def _reduce_fn(op: str) -> Callable[..., Any]:
    def reduce(a: Any, axis: Any = None, keepdims: bool = False, **extra: Any) -> Any:
        if extra:
            raise refuse(f"numpy.{op}", f"unsupported arguments {sorted(extra)}")
        return _record(
            op, [a], {"axis": list(axis) if isinstance(axis, tuple) else axis, "keepdims": keepdims}
        )

    return reduce


def _np_reshape(a: Any, shape: Any = None, /, *args: Any, **kwargs: Any) -> Any:
    target = kwargs.pop("newshape", kwargs.pop("shape", shape))
    if args or kwargs:
        raise refuse("numpy.reshape", "order= and other options are not supported")
    return _record("reshape", [a], {"shape": _shape_list(target)})


_ARRAY_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    np.concatenate: lambda arrays, axis=0: _record("concatenate", list(arrays), {"axis": axis}),
    np.stack: lambda arrays, axis=0: _record("stack", list(arrays), {"axis": axis}),
    np.reshape: _np_reshape,
    np.transpose: lambda a, axes=None: _record(
        "transpose", [a], {"axes": None if axes is None else list(axes)}
    ),
    np.squeeze: lambda a, axis=None: _record(
        "squeeze", [a], {"axis": list(axis) if isinstance(axis, tuple) else axis}
    ),
    np.expand_dims: lambda a, axis: _record(
        "expand_dims", [a], {"axis": list(axis) if isinstance(axis, tuple) else axis}
    ),
    np.where: lambda c, a, b: _record("where", [c, a, b], {}),
    np.sum: _reduce_fn("sum"),
    np.mean: _reduce_fn("mean"),
    np.max: _reduce_fn("max"),
    np.min: _reduce_fn("min"),
    np.amax: _reduce_fn("max"),
    np.amin: _reduce_fn("min"),
}


def _shape_list(shape: Any) -> list[int]:
    items = shape if isinstance(shape, (tuple, list)) else (shape,)
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in items):
        raise refuse("reshape", f"the target shape {shape!r} must be made of Python ints")
    return [int(d) for d in items]


class Traced:
    """A stand-in for an array while tracing: a named graph value plus its real value.

    Supports numpy's operators, ufuncs and array functions from the op set; everything that
    would turn it into plain Python data (``bool()``, ``float()``, iteration) is refused,
    because the graph would silently bake in this one example's value.
    """

    __array_priority__ = 1000

    def __init__(self, graph: GraphBuilder, name: str, value: Any, *, parameter: str | None = None) -> None:
        self._graph = graph
        self._name = name
        self._value = value
        self._parameter = parameter

    # -- what is safe to read: static facts of the example ----------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self._value))

    @property
    def dtype(self) -> np.dtype:
        return np.asarray(self._value).dtype

    @property
    def ndim(self) -> int:
        return int(np.ndim(self._value))

    @property
    def size(self) -> int:
        return int(np.size(self._value))

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"Traced({self._name}, shape={self.shape}, dtype={self.dtype})"

    # -- refused: data-dependent Python -----------------------------------------------------
    def __bool__(self) -> bool:
        raise refuse(
            "bool() of a traced value",
            "Python control flow that depends on tensor values cannot be recorded as a graph; "
            "use np.where or a layer instead",
        )

    def __float__(self) -> float:
        raise refuse("float() of a traced value", "it would bake this example's value into the graph")

    def __int__(self) -> int:
        raise refuse("int() of a traced value", "it would bake this example's value into the graph")

    def __index__(self) -> int:
        raise refuse("using a traced value as an index", "indices must be constants")

    def __iter__(self) -> Any:
        raise refuse(
            "iterating over a traced value",
            "a Python loop over tensor data cannot be recorded; use array ops",
        )

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise refuse(
            "converting a traced value to a plain numpy array",
            "numpy code outside the op set would run on raw data and be baked into the graph",
        )

    def item(self, *args: Any) -> Any:
        raise refuse("ndarray.item()", "it would bake this example's value into the graph")

    def tolist(self) -> Any:
        raise refuse("ndarray.tolist()", "it would bake this example's value into the graph")

    def __setitem__(self, key: Any, value: Any) -> None:
        what = (
            f"in-place assignment to parameter {self._parameter!r}"
            if self._parameter
            else "in-place assignment (x[...] = ...)"
        )
        raise refuse(what, "in-place changes cannot be recorded; build a new value instead")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise refuse(f"ndarray.{name}", f"it is not in the op set ({', '.join(ops.known_ops())})")

    # -- operators ----------------------------------------------------------------------------
    def __add__(self, other: Any) -> Any:
        return _record("add", [self, other], {})

    def __radd__(self, other: Any) -> Any:
        return _record("add", [other, self], {})

    def __sub__(self, other: Any) -> Any:
        return _record("subtract", [self, other], {})

    def __rsub__(self, other: Any) -> Any:
        return _record("subtract", [other, self], {})

    def __mul__(self, other: Any) -> Any:
        return _record("multiply", [self, other], {})

    def __rmul__(self, other: Any) -> Any:
        return _record("multiply", [other, self], {})

    def __truediv__(self, other: Any) -> Any:
        return _record("divide", [self, other], {})

    def __rtruediv__(self, other: Any) -> Any:
        return _record("divide", [other, self], {})

    def __pow__(self, other: Any) -> Any:
        return _record("power", [self, other], {})

    def __rpow__(self, other: Any) -> Any:
        return _record("power", [other, self], {})

    def __matmul__(self, other: Any) -> Any:
        return _record("matmul", [self, other], {})

    def __rmatmul__(self, other: Any) -> Any:
        return _record("matmul", [other, self], {})

    def __neg__(self) -> Any:
        return _record("negative", [self], {})

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return _record("abs", [self], {})

    def __gt__(self, other: Any) -> Any:
        return _record("greater", [self, other], {})

    def __ge__(self, other: Any) -> Any:
        return _record("greater_equal", [self, other], {})

    def __lt__(self, other: Any) -> Any:
        return _record("less", [self, other], {})

    def __le__(self, other: Any) -> Any:
        return _record("less_equal", [self, other], {})

    def __eq__(self, other: Any) -> Any:
        return _record("equal", [self, other], {})

    def __ne__(self, other: Any) -> Any:
        return _record("not_equal", [self, other], {})

    __hash__ = object.__hash__

    def _inplace(self, op: str, other: Any) -> Any:
        if self._parameter is not None:
            raise refuse(
                f"in-place {op} on parameter {self._parameter!r}", "parameters must not change during forward"
            )
        return _record(op, [self, other], {})

    def __iadd__(self, other: Any) -> Any:
        return self._inplace("add", other)

    def __isub__(self, other: Any) -> Any:
        return self._inplace("subtract", other)

    def __imul__(self, other: Any) -> Any:
        return self._inplace("multiply", other)

    def __itruediv__(self, other: Any) -> Any:
        return self._inplace("divide", other)

    def __getitem__(self, index: Any) -> Any:
        encoded = ops.encode_index(index)
        if encoded is None:
            raise refuse(
                "indexing with a non-constant or advanced index",
                f"index {index!r} must be built from ints, slices, None and ...",
            )
        return _record("getitem", [self], {"index": encoded})

    # -- methods ------------------------------------------------------------------------------
    @property
    def T(self) -> Any:
        return _record("transpose", [self], {"axes": None})

    def reshape(self, *shape: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise refuse("ndarray.reshape", "order= is not supported")
        target = shape[0] if len(shape) == 1 else shape
        return _record("reshape", [self], {"shape": _shape_list(target)})

    def transpose(self, *axes: Any) -> Any:
        target = axes[0] if len(axes) == 1 else axes
        return _record("transpose", [self], {"axes": list(target) if target not in (None, ()) else None})

    def flatten(self) -> Any:
        return _record("reshape", [self], {"shape": [-1]})

    def astype(self, dtype: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise refuse("ndarray.astype", "only the dtype argument is supported")
        return _record("cast", [self], {"dtype": np.dtype(dtype).name})

    def sum(self, axis: Any = None, keepdims: bool = False) -> Any:
        return _reduce_fn("sum")(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Any:
        return _reduce_fn("mean")(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Any:
        return _reduce_fn("max")(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Any:
        return _reduce_fn("min")(self, axis, keepdims)

    # -- numpy dispatch -----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        name = f"numpy.{getattr(ufunc, '__name__', ufunc)}"
        if method != "__call__":
            raise refuse(f"{name}.{method}", "only plain ufunc calls are in the op set")
        if "out" in kwargs:
            raise refuse(f"{name}(..., out=...)", "in-place changes cannot be recorded")
        if kwargs:
            raise refuse(name, f"unsupported arguments {sorted(kwargs)}")
        op = _UFUNC_OPS.get(ufunc)
        if op is None:
            raise refuse(name, f"it is not in the op set ({', '.join(ops.known_ops())})")
        return _record(op, list(inputs), {})

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        handler = _ARRAY_FUNCTIONS.get(func)
        if handler is None:
            module = getattr(func, "__module__", "numpy") or "numpy"
            raise refuse(
                f"{module}.{func.__name__}", f"it is not in the op set ({', '.join(ops.known_ops())})"
            )
        return handler(*args, **kwargs)


def _first_traced(values: Any) -> Traced | None:
    for value in values:
        if isinstance(value, Traced):
            return value
        if isinstance(value, (list, tuple)):
            found = _first_traced(value)
            if found is not None:
                return found
    return None


def _record(op: str, inputs: list[Any], attrs: dict[str, Any]) -> Any:
    """Record ``op`` in the graph its traced inputs belong to (called by operators and F)."""
    traced = _first_traced(inputs)
    if traced is None:  # pragma: no cover - callers only get here with a stand-in
        return ops.op_def(op).fn(*inputs, **attrs)
    return traced._graph.add_op(op, inputs, attrs)


def apply(op: str, inputs: list[Any], attrs: dict[str, Any]) -> Any:
    """Run ``op`` eagerly, or record it if any input is a stand-in (used by ``nn.functional``)."""
    if _first_traced(inputs) is not None:
        return _record(op, inputs, attrs)
    return ops.op_def(op).fn(*inputs, **attrs)


# -- one graph per custom block ----------------------------------------------------------------


class GraphBuilder:
    """Accumulates the nodes of one custom block's forward."""

    def __init__(self, owner: Block, owner_path: str) -> None:
        self.owner = owner
        self.owner_path = owner_path or type(owner).__name__
        self.nodes: list[GraphNode] = []
        self.inputs: list[GraphInput] = []
        self.constants: list[np.ndarray] = []
        self._constant_ids: dict[int, str] = {}
        self._param_values: dict[int, Traced] = {}
        self._counter = 0
        # Relative paths of every descendant block and parameter, by identity.
        self.block_paths: dict[int, str] = {}
        self._collect_paths(owner, "")
        self.param_paths = {id(p): name for name, p in owner.named_parameters()}

    def _collect_paths(self, block: Block, prefix: str) -> None:
        for name, child in block.children.items():
            path = f"{prefix}{name}"
            self.block_paths.setdefault(id(child), path)
            self._collect_paths(child, path + ".")

    def _new_value(self) -> str:
        name = f"v{self._counter}"
        self._counter += 1
        return name

    def add_input(self, value: Any) -> Traced:
        array = np.asarray(value)
        name = f"x{len(self.inputs)}"
        self.inputs.append(GraphInput(name=name, dtype=array.dtype.name, shape=list(array.shape)))
        return Traced(self, name, value)

    def _operand(self, value: Any, op: str) -> tuple[str, Any]:
        """Name and real value of one op input: a stand-in, a scalar or a constant array."""
        if isinstance(value, Traced):
            if value._graph is not self:
                raise refuse(
                    op, f"a value traced in another block's forward ({value._graph.owner_path}) is used here"
                )
            return value._name, value._value
        if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
            name = self._new_value()
            self.nodes.append(GraphNode(op="scalar", outputs=[name], attrs={"value": value}))
            return name, value
        if isinstance(value, (np.ndarray, np.generic)):
            array = np.asarray(value)
            if array.dtype.hasobject or array.dtype.name not in ops.SUPPORTED_DTYPES:
                raise refuse(op, f"constant of dtype {array.dtype} cannot be stored")
            key = id(value)
            if key not in self._constant_ids:
                local = f"#const{len(self.constants)}"
                self.constants.append(array.copy())
                name = self._new_value()
                self.nodes.append(GraphNode(op="constant", outputs=[name], attrs={"name": local}))
                self._constant_ids[key] = name
            return self._constant_ids[key], value
        raise refuse(op, f"an input of type {type(value).__name__} is neither an array nor a number")

    def add_op(self, op: str, inputs: list[Any], attrs: dict[str, Any]) -> Traced:
        definition = ops.op_def(op)
        flat: list[Any] = []
        for value in inputs:
            if isinstance(value, (list, tuple)):  # concatenate/stack take a sequence
                flat.extend(value)
            else:
                flat.append(value)
        names, reals = zip(*(self._operand(v, op) for v in flat), strict=True) if flat else ((), ())
        definition.attrs.model_validate(attrs)
        with hooks.suspended():
            result = definition.fn(*reals, **attrs)
        name = self._new_value()
        self.nodes.append(GraphNode(op=op, inputs=list(names), outputs=[name], attrs=attrs))
        return Traced(self, name, result)

    def add_layer_call(
        self, block: Block, args: tuple[Any, ...], run: Callable[[tuple[Any, ...]], Any]
    ) -> Any:
        path = self.block_paths.get(id(block))
        if path is None:
            raise refuse(
                f"calling a {type(block).__name__} that is not a child of {self.owner_path}",
                "its parameters would not be saved; assign it as an attribute in __init__",
            )
        names, reals = (
            zip(*(self._operand(a, f"layer {path}") for a in args), strict=True) if args else ((), ())
        )
        result = run(tuple(reals))
        if isinstance(result, (tuple, list)):
            returns = "tuple" if isinstance(result, tuple) else "list"
            outputs = [self._new_value() for _ in result]
            wrapped: Any = type(result)(Traced(self, n, r) for n, r in zip(outputs, result, strict=True))
        else:
            returns, outputs = "single", [self._new_value()]
            wrapped = Traced(self, outputs[0], result)
        self.nodes.append(
            GraphNode(
                op="layer", inputs=list(names), outputs=outputs, attrs={"block": path, "returns": returns}
            )
        )
        return wrapped

    def read_parameter(self, param: Parameter) -> Traced:
        cached = self._param_values.get(id(param))
        if cached is not None:
            return cached
        path = self.param_paths.get(id(param))
        if path is None:
            raise refuse(
                f"reading parameter {param.structured_name!r}", f"it does not belong to {self.owner_path}"
            )
        with hooks.suspended():
            value = param.data()
        name = self._new_value()
        self.nodes.append(GraphNode(op="parameter", outputs=[name], attrs={"name": path}))
        traced = Traced(self, name, value, parameter=path)
        self._param_values[id(param)] = traced
        return traced

    def finish(self, result: Any) -> tuple[GraphSpec, Any]:
        """Close the graph on ``result``; return the spec and the real output."""
        kind: Literal["single", "tuple", "list", "dict"]
        keys: list[str] | None
        if isinstance(result, dict):
            keys = list(result)
            if not all(isinstance(k, str) for k in keys):
                raise refuse("returning a dict", "its keys must be strings")
            kind, items = "dict", [result[k] for k in keys]
        elif isinstance(result, (tuple, list)):
            kind, items, keys = ("tuple" if isinstance(result, tuple) else "list"), list(result), None
        else:
            kind, items, keys = "single", [result], None
        names = [self._output_name(item) for item in items]
        reals = [item._value if isinstance(item, Traced) else item for item in items]
        spec = GraphSpec(
            inputs=self.inputs, nodes=self.nodes, outputs=GraphOutputs(kind=kind, values=names, keys=keys)
        )
        if kind == "single":
            return spec, reals[0]
        if kind == "dict":
            return spec, dict(zip(keys or [], reals, strict=True))
        return spec, (tuple(reals) if kind == "tuple" else reals)

    def _output_name(self, item: Any) -> str:
        if isinstance(item, Traced):
            if item._graph is not self:
                raise refuse("returning a value", "it was traced in another block")
            return item._name
        if isinstance(item, (np.ndarray, np.generic, bool, int, float)):
            return self._operand(item, "return")[0]
        raise refuse("returning a value", f"a {type(item).__name__} is not an array")

    def own_parameters(self) -> dict[str, ParameterSpec]:
        specs = {}
        for name, param in self.owner.params.items():
            if param.dtype.name not in ("float16", "float32", "float64"):
                raise refuse(f"parameter {name!r}", f"dtype {param.dtype} is not a float dtype")
            specs[name] = ParameterSpec(
                shape=list(param.shape), dtype=param.dtype.name, trainable=param.grad_req != "null"
            )
        return specs


def is_opaque(block: Block) -> bool:
    """True when the whole subtree is registered layers (describable without tracing)."""
    if registry.type_name_of(block) is None or "forward" in vars(block):
        return False
    return all(is_opaque(child) for child in block.children.values())


class Tracer:
    """The hooks' interceptor: decides, per block call, whether to record, descend or trace."""

    def __init__(self, root: Block) -> None:
        self.result = TraceResult()
        self.stack: list[GraphBuilder | None] = [None]
        self.paths = {id(root): ""}
        self._index_paths(root, "")

    def _index_paths(self, block: Block, prefix: str) -> None:
        for name, child in block.children.items():
            path = f"{prefix}{name}"
            self.paths.setdefault(id(child), path)
            self._index_paths(child, path + ".")

    @property
    def graph(self) -> GraphBuilder | None:
        return self.stack[-1]

    def call_block(self, block: Block, args: tuple[Any, ...]) -> Any:
        graph = self.graph
        if graph is not None:
            # Inside a custom forward: the call is a node; its real output comes from running
            # the block on real values (which may trace the block itself).
            return graph.add_layer_call(block, args, lambda reals: self._run(block, reals))
        return self._run(block, args)

    def _run(self, block: Block, args: tuple[Any, ...]) -> Any:
        if is_opaque(block):
            with hooks.suspended():
                return block.forward(*args)
        if registry.type_name_of(block) is not None and "forward" not in vars(block):
            # A registered container with custom blocks inside: its own forward is known,
            # run it on real values so that the custom blocks inside are reached and traced.
            self.stack.append(None)
            try:
                return block.forward(*args)
            finally:
                self.stack.pop()
        return self._trace_custom(block, args)

    def _trace_custom(self, block: Block, args: tuple[Any, ...]) -> Any:
        if id(block) in self.result.traces:
            # Traced at its first call; later calls replay the same recorded graph.
            self.stack.append(None)
            try:
                with hooks.suspended():
                    return block.forward(*args)
            finally:
                self.stack.pop()
        for arg in args:
            if not isinstance(arg, (np.ndarray, np.generic, int, float)):
                raise refuse(
                    f"calling {type(block).__name__}",
                    f"argument of type {type(arg).__name__} is not an array",
                )
        builder = GraphBuilder(block, self.paths.get(id(block), ""))
        stand_ins = [builder.add_input(arg) for arg in args]
        self.stack.append(builder)
        try:
            result = block.forward(*stand_ins)
        finally:
            self.stack.pop()
        spec, real = builder.finish(result)
        self.result.traces[id(block)] = BlockTrace(block, spec, builder.own_parameters(), builder.constants)
        return real

    def read_parameter(self, param: Parameter) -> Any | None:
        graph = self.graph
        return graph.read_parameter(param) if graph is not None else None

    def write_parameter(self, param: Parameter) -> None:
        raise refuse(
            f"changing parameter {param.structured_name!r}", "parameters must not change during forward"
        )


def trace_model(net: Block, example: tuple[Any, ...]) -> tuple[TraceResult, Any]:
    """Run ``net`` on ``example`` with tracing on; return the traces and the real output."""
    tracer = Tracer(net)
    with np.errstate(all="ignore"), hooks.intercepting(tracer):
        output = net(*example)
    return tracer.result, output


# -- a symbolic batch: trace at two batch sizes, keep what changes as "batch" -------------------


def grow_batch(example: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The example with one more row on axis 0 (None when an input has no axis 0)."""
    grown = []
    for value in example:
        array = np.asarray(value)
        if array.ndim == 0 or array.shape[0] == 0:
            return None
        grown.append(np.concatenate([array, array[-1:]], axis=0))
    return tuple(grown)


def merge_batch(
    first: TraceResult, second: TraceResult, sizes: tuple[int, int], paths: dict[int, str]
) -> TraceResult:
    """One result whose batch-dependent values are symbolic; refuse any other difference."""
    if set(first.traces) != set(second.traces):
        raise refuse("forward", f"different blocks are called at batch sizes {sizes[0]} and {sizes[1]}")
    merged = TraceResult()
    for key, one in first.traces.items():
        other = second.traces[key]
        where = paths.get(key, "") or type(one.block).__name__
        if one.parameters != other.parameters:
            raise refuse(f"block {where!r}", "its parameters change with the batch size")
        if len(one.constants) != len(other.constants) or any(
            a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes()
            for a, b in zip(one.constants, other.constants, strict=True)
        ):
            raise refuse(
                f"a constant in block {where!r}",
                "it depends on the batch size or the input values "
                "(arrays built from x.shape become constants; derive them from x with ops instead)",
            )
        document = _merge_json(
            one.spec.model_dump(mode="json"), other.spec.model_dump(mode="json"), sizes, where, []
        )
        spec = GraphSpec.model_validate(document)
        _check_batch_symbol(spec, where)
        merged.traces[key] = BlockTrace(one.block, spec, one.parameters, one.constants)
    return merged


def _merge_json(a: Any, b: Any, sizes: tuple[int, int], where: str, trail: list[Any]) -> Any:
    if type(a) is not type(b):
        raise _shape_dependence(where, trail, a, b, sizes)
    if isinstance(a, dict):
        if a.keys() != b.keys():
            raise _shape_dependence(where, trail, a, b, sizes)
        return {k: _merge_json(a[k], b[k], sizes, where, [*trail, k]) for k in a}
    if isinstance(a, list):
        if len(a) != len(b):
            raise _shape_dependence(where, trail, a, b, sizes)
        return [
            _merge_json(x, y, sizes, where, [*trail, i]) for i, (x, y) in enumerate(zip(a, b, strict=True))
        ]
    if a == b:
        return a
    if isinstance(a, int) and (a, b) == sizes:
        if trail[:1] == ["inputs"]:
            return None  # an input dimension that follows the batch size
        if trail[:1] == ["nodes"] and "shape" in trail:
            return ops.BATCH
    raise _shape_dependence(where, trail, a, b, sizes)


def _shape_dependence(where: str, trail: list[Any], a: Any, b: Any, sizes: tuple[int, int]) -> TraceError:
    location = ".".join(str(t) for t in trail)
    return TraceError(
        f"cannot trace block {where!r} with a variable batch size: the graph recorded at batch "
        f"size {sizes[0]} differs from the one at {sizes[1]}: {location} is {a!r} vs {b!r}. "
        "Either forward depends on state outside its inputs, or a shape is computed from the "
        "batch size: write -1 or x.shape[0] where the batch goes, or export with "
        "dynamic_batch=False"
    )


def _check_batch_symbol(spec: GraphSpec, where: str) -> None:
    uses_batch = any(n.op == "reshape" and ops.BATCH in n.attrs.get("shape", []) for n in spec.nodes)
    first_is_batched = bool(spec.inputs) and bool(spec.inputs[0].shape) and spec.inputs[0].shape[0] is None
    if uses_batch and not first_is_batched:
        raise TraceError(
            f"cannot trace block {where!r} with a variable batch size: a reshape uses the batch "
            "size but the block's first input is not batched along axis 0"
        )
