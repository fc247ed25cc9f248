"""MXNet operators that become graph ops rather than layers: element-wise arithmetic (tensor
and scalar forms, legacy and numpy-mode spellings), softmax, shapes, casts and reductions.

Each entry adds to ``lowering.LOWERINGS``; ``lowering`` imports this module once, last.
"""

from __future__ import annotations

from typing import Any

from ...nn.ops.neural import LRN_MAX_SIZE
from .lowering import Lowering, Node, lowers
from .reshape import mxnet_reshape, symbolic_shape

__all__: list[str] = []

# -- element-wise arithmetic ------------------------------------------------------------------

_BINARY = {
    "add": ("elemwise_add", "broadcast_add", "broadcast_plus", "_plus", "_Plus", "_add", "_npi_add"),
    "subtract": ("elemwise_sub", "broadcast_sub", "broadcast_minus", "_minus", "_Minus", "_sub",
                 "_npi_subtract"),
    "multiply": ("elemwise_mul", "broadcast_mul", "_mul", "_Mul", "_npi_multiply"),
    "divide": ("elemwise_div", "broadcast_div", "_div", "_Div", "_npi_true_divide"),
    "power": ("broadcast_power", "_power", "_Power", "_npi_power"),
    "maximum": ("broadcast_maximum", "_maximum", "_Maximum", "_npi_maximum"),
    "minimum": ("broadcast_minimum", "_minimum", "_Minimum", "_npi_minimum"),
    "matmul": ("_npi_matmul",),
}
# op name -> (modelpack op, scalar on the left?)
_SCALAR = {
    "add": (("_plus_scalar", "_PlusScalar", "_npi_add_scalar"), False),
    "subtract": (("_minus_scalar", "_MinusScalar", "_npi_subtract_scalar"), False),
    "rsubtract": (("_rminus_scalar", "_RMinusScalar", "_npi_rsubtract_scalar"), True),
    "multiply": (("_mul_scalar", "_MulScalar", "_npi_multiply_scalar"), False),
    "divide": (("_div_scalar", "_DivScalar", "_npi_true_divide_scalar"), False),
    "rdivide": (("_rdiv_scalar", "_RDivScalar", "_npi_rtrue_divide_scalar"), True),
    "power": (("_power_scalar", "_PowerScalar", "_npi_power_scalar"), False),
    "rpower": (("_rpower_scalar", "_RPowerScalar", "_npi_rpower_scalar"), True),
    "maximum": (("_maximum_scalar", "_MaximumScalar", "_npi_maximum_scalar"), False),
    "minimum": (("_minimum_scalar", "_MinimumScalar", "_npi_minimum_scalar"), False),
}
_UNARY = {
    "negative": ("negative", "_npi_negative"), "abs": ("abs", "_npi_absolute"), "exp": ("exp", "_npi_exp"),
    "log": ("log", "_npi_log"), "sqrt": ("sqrt", "_npi_sqrt"), "square": ("square", "_npi_square"),
    "sin": ("sin", "_npi_sin"), "cos": ("cos", "_npi_cos"), "relu": ("relu", "_npx_relu"),
    "sigmoid": ("sigmoid", "_npx_sigmoid"), "tanh": ("tanh", "_npi_tanh"),
    "reciprocal": ("reciprocal", "_npi_reciprocal"), "sign": ("sign", "_npi_sign"),
    "floor": ("floor", "_npi_floor"), "ceil": ("ceil", "_npi_ceil"), "expm1": ("expm1", "_npi_expm1"),
    "log1p": ("log1p", "_npi_log1p"), "softsign": ("softsign",), "tan": ("tan", "_npi_tan"),
    "arcsin": ("arcsin", "_npi_arcsin"), "arccos": ("arccos", "_npi_arccos"),
    "arctan": ("arctan", "_npi_arctan"), "sinh": ("sinh", "_npi_sinh"), "cosh": ("cosh", "_npi_cosh"),
    "arcsinh": ("arcsinh", "_npi_arcsinh"), "arccosh": ("arccosh", "_npi_arccosh"),
    "arctanh": ("arctanh", "_npi_arctanh"), "erf": ("erf", "_npx_erf"),  # (npx.erf records "erf")
}
# Comparisons: legacy operators give 1/0 in the input's dtype, numpy-mode ones booleans.
_COMPARE = {
    "greater": (("_greater", "broadcast_greater"), ("_greater_scalar",), ("_npi_greater",),
                ("_npi_greater_scalar",)),
    "greater_equal": (("_greater_equal", "broadcast_greater_equal"), ("_greater_equal_scalar",),
                      ("_npi_greater_equal",), ("_npi_greater_equal_scalar",)),
    "less": (("_lesser", "broadcast_lesser"), ("_lesser_scalar",), ("_npi_less",), ("_npi_less_scalar",)),
    "less_equal": (("_lesser_equal", "broadcast_lesser_equal"), ("_lesser_equal_scalar",),
                   ("_npi_less_equal",), ("_npi_less_equal_scalar",)),
    "equal": (("_equal", "broadcast_equal"), ("_equal_scalar",), ("_npi_equal",), ("_npi_equal_scalar",)),
    "not_equal": (("_not_equal", "broadcast_not_equal"), ("_not_equal_scalar",), ("_npi_not_equal",),
                  ("_npi_not_equal_scalar",)),
}


def _binary(op: str) -> Lowering:
    return lambda node: node.builder.op(op, node.value(0), node.value(1))


def _scalar(op: str, left: bool) -> Lowering:
    base = op[1:] if op in ("rsubtract", "rdivide", "rpower") else op

    def lower_scalar(node: Node) -> str:
        value: float | int = node.attrs.number("scalar", 1.0)
        if node.attrs.flag("is_int", False) and float(value).is_integer():
            value = int(value)  # keeps an integer tensor integer, as MXNet does
        b = node.builder
        x, s = node.value(0), b.scalar(value)
        return b.op(base, s, x) if left else b.op(base, x, s)

    return lower_scalar


def _unary(op: str) -> Lowering:
    return lambda node: node.builder.op(op, node.value(0))


for _op, _names in _BINARY.items():
    lowers(*_names)(_binary(_op))
for _op, (_names, _left) in _SCALAR.items():
    lowers(*_names)(_scalar(_op, _left))
for _op, _names in _UNARY.items():
    lowers(*_names)(_unary(_op))


def _compare(op: str, scalar: bool, legacy: bool) -> Lowering:
    def lower_compare(node: Node) -> str:
        b, x = node.builder, node.value(0)
        node.attrs.flag("is_int", False)  # the scalar's type: no effect on a comparison
        other = b.scalar(node.attrs.number("scalar")) if scalar else node.value(1)
        result = b.op(op, x, other)
        return b.op("cast", result, dtype=b.dtype(x)) if legacy else result

    return lower_compare


for _op, (_legacy, _legacy_scalar, _numpy, _numpy_scalar) in _COMPARE.items():
    lowers(*_legacy)(_compare(_op, False, True))
    lowers(*_legacy_scalar)(_compare(_op, True, True))
    lowers(*_numpy)(_compare(_op, False, False))
    lowers(*_numpy_scalar)(_compare(_op, True, False))


@lowers("rsqrt")
def _rsqrt(node: Node) -> str:
    b = node.builder
    return b.op("reciprocal", b.op("sqrt", node.value(0)))


@lowers("round", "trunc", "fix", "_npi_trunc", "_npi_fix")
def _round_away(node: Node) -> str:
    """MXNet's ``round`` takes halves away from zero (numpy's rounds them to even): sign(x) *
    floor(|x| + 0.5), exact; ``trunc``/``fix``: sign(x) * floor(|x|)."""
    b, x = node.builder, node.value(0)
    magnitude = b.op("abs", x)
    if node.symbol.nodes[node.index].op == "round":
        magnitude = b.op("add", magnitude, b.scalar(0.5))
    return b.op("multiply", b.op("sign", x), b.op("floor", magnitude))


@lowers("clip", "_npi_clip")
def _clip(node: Node) -> str:
    a_min = node.attrs.optional_number("a_min")
    a_max = node.attrs.optional_number("a_max")
    return node.builder.op("clip", node.value(0), a_min=a_min, a_max=a_max)


@lowers("hard_sigmoid", "_npx_hard_sigmoid")
def _hard_sigmoid(node: Node) -> str:
    """clip(alpha * x + beta, 0, 1), MXNet's defaults alpha 0.2, beta 0.5."""
    b = node.builder
    scaled = b.op("multiply", node.value(0), b.scalar(node.attrs.number("alpha", 0.2)))
    shifted = b.op("add", scaled, b.scalar(node.attrs.number("beta", 0.5)))
    return b.op("clip", shifted, a_min=0.0, a_max=1.0)


@lowers("_copy", "identity", "_npi_copy", "BlockGrad", "stop_gradient", "make_loss", "_NoGradient")
def _identity(node: Node) -> str:
    return node.value(0)


@lowers("ones_like", "_npi_ones_like")
def _ones_like(node: Node) -> str:  # x ** 0 is 1 everywhere, NaN and inf included, in x's dtype
    return node.builder.op("power", node.value(0), node.builder.scalar(0))


@lowers("zeros_like", "_npi_zeros_like")
def _zeros_like(node: Node) -> str:
    b = node.builder
    return b.op("multiply", b.op("power", node.value(0), b.scalar(0)), b.scalar(0))


# -- softmax ------------------------------------------------------------------------------------


def _softmax(op: str) -> Lowering:
    def lower_softmax(node: Node) -> str:
        if node.attrs.flag("use_length", False):
            raise node.refuse("use_length=True")
        if node.attrs.text("dtype", "None") not in ("None", "float32"):
            raise node.refuse(f"dtype {node.attrs.raw.get('dtype')}")
        b, x = node.builder, node.value(0)
        temperature = node.attrs.optional_number("temperature")
        if temperature is not None and temperature != 1.0:
            x = b.op("divide", x, b.scalar(temperature))
        return b.op(op, x, axis=node.attrs.integer("axis", -1))

    return lower_softmax


lowers("softmax", "_npx_softmax")(_softmax("softmax"))
lowers("log_softmax", "_npx_log_softmax")(_softmax("log_softmax"))


@lowers("SoftmaxActivation")
def _softmax_activation(node: Node) -> str:
    """``channel``: over axis 1; ``instance``: over the last axis (MXNet flattens the leading
    axes into rows)."""
    mode = node.attrs.text("mode", "instance")
    if mode not in ("instance", "channel"):
        raise node.refuse(f"mode {mode!r}")
    return node.builder.op("softmax", node.value(0), axis=1 if mode == "channel" else -1)


@lowers("SoftmaxOutput", "Softmax")
def _softmax_output(node: Node) -> str:
    """The Module API's training head: at inference, a softmax over axis 1 (``multi_output``)
    or over the last axis (MXNet flattens the leading axes into rows); its label input is not
    read."""
    for training_only in _SOFTMAX_OUTPUT_TRAINING:
        node.attrs.text(training_only, "")  # loss scaling and label handling: no effect forward
    node.attrs.flag("preserve_shape", False)  # the last axis either way
    axis = 1 if node.attrs.flag("multi_output", False) else -1
    return node.builder.op("softmax", node.value(0), axis=axis)


_SOFTMAX_OUTPUT_TRAINING = ("grad_scale", "ignore_label", "use_ignore", "normalization", "out_grad",
                            "smooth_alpha")


# -- shapes ---------------------------------------------------------------------------------------


@lowers("Reshape", "reshape", "_npx_reshape", "_np_reshape")
def _reshape(node: Node) -> str:
    op = node.symbol.nodes[node.index].op
    x, b = node.value(0), node.builder
    if op == "_np_reshape":
        target = node.attrs.integers("newshape")
        if node.attrs.text("order", "C") != "C":
            raise node.refuse("Fortran-order reshape")
        codes = "numpy"
    else:
        target = node.attrs.integers("newshape" if op == "_npx_reshape" else "shape")
        codes = "npx" if op == "_npx_reshape" else "legacy"
        if node.attrs.flag("reverse", False):
            raise node.refuse("reverse=True")
    if codes == "numpy" or all(d > 0 or d == -1 for d in target) and target.count(-1) <= 1:
        if any(d < -1 for d in target) or target.count(-1) > 1:
            raise node.refuse(f"newshape {target}")
        return b.op("reshape", x, shape=list(target))
    a, c, names = b.shapes(x)
    outs = [mxnet_reshape(shape, target, codes, node.where) for shape in (a, c)]
    return b.op("reshape", x, shape=symbolic_shape(outs[0], outs[1], names, node.where))


@lowers("transpose", "_np_transpose", "_npi_transpose")
def _transpose(node: Node) -> str:
    axes = node.attrs.optional_integers("axes")
    return node.builder.op("transpose", node.value(0), axes=list(axes) if axes else None)


@lowers("SwapAxis", "swapaxes", "_npi_swapaxes")
def _swapaxes(node: Node) -> str:
    first, second = node.attrs.integer("dim1", 0), node.attrs.integer("dim2", 0)
    b, x = node.builder, node.value(0)
    rank = len(b.shapes(x)[0])
    axes = list(range(rank))
    try:
        axes[first], axes[second] = axes[second], axes[first]
    except IndexError:
        raise node.refuse(f"swapping axes {first} and {second} of a {rank}-D array") from None
    return b.op("transpose", x, axes=axes)


@lowers("Concat", "concat", "_npi_concatenate", "stack", "_npi_stack")
def _concat(node: Node) -> str:
    op = node.symbol.nodes[node.index].op
    stack = op in ("stack", "_npi_stack")
    axis = node.attrs.integer("dim", 1) if op in ("Concat", "concat") else node.attrs.integer("axis", 0)
    count = node.attrs.integer("num_args", node.arity)
    if count != node.arity:
        raise node.refuse(f"num_args={count} with {node.arity} inputs")
    values = [node.value(i) for i in range(node.arity)]
    return node.builder.op("stack" if stack else "concatenate", *values, axis=axis)


@lowers("expand_dims", "_npi_expand_dims")
def _expand_dims(node: Node) -> str:
    return node.builder.op("expand_dims", node.value(0), axis=node.attrs.integer("axis"))


@lowers("squeeze", "_np_squeeze")
def _squeeze(node: Node) -> str:
    axis = node.attrs.optional_integers("axis")
    return node.builder.op("squeeze", node.value(0), axis=list(axis) if axis else None)


@lowers("Cast", "cast", "_npi_astype", "amp_cast")
def _cast(node: Node) -> str:
    dtype = node.attrs.text("dtype")
    node.attrs.flag("copy", True)
    if dtype not in ("float16", "float32", "float64", "uint8", "int8", "int32", "int64", "bool"):
        raise node.refuse(f"a cast to {dtype}")
    return node.builder.op("cast", node.value(0), dtype=dtype)


def _reduce(op: str) -> Lowering:
    def lower_reduce(node: Node) -> str:
        if node.attrs.flag("exclude", False):
            raise node.refuse("exclude=True")
        if node.attrs.text("dtype", "None") != "None" or node.attrs.text("initial", "None") != "None":
            raise node.refuse("a reduction dtype or initial value")
        axis = node.attrs.optional_integers("axis")
        attrs: dict[str, Any] = {"keepdims": node.attrs.flag("keepdims", False)}
        if axis:
            attrs["axis"] = list(axis) if len(axis) > 1 else axis[0]
        return node.builder.op(op, node.value(0), **attrs)

    return lower_reduce


lowers("sum", "_np_sum")(_reduce("sum"))
lowers("mean", "_npi_mean")(_reduce("mean"))
lowers("max", "_np_max")(_reduce("max"))
lowers("min", "_np_min")(_reduce("min"))
lowers("prod", "_np_prod")(_reduce("prod"))


def _arg_extreme(op: str) -> Lowering:
    """Legacy ``argmax``/``argmin`` give the index as a float of the input's dtype; numpy-mode
    ones as int64. Without an axis, the index into the flattened array."""

    def lower_arg(node: Node) -> str:
        b, x = node.builder, node.value(0)
        legacy = not node.symbol.nodes[node.index].op.startswith("_npi_")
        axis = node.attrs.optional_integers("axis")
        keepdims = node.attrs.flag("keepdims", False)
        if axis is not None and len(axis) != 1:  # (one axis, or None: MXNet's only forms)
            raise node.refuse(f"axis={node.attrs.raw['axis']!r}")
        if axis is None:
            rank = len(b.shapes(x)[0])
            result = b.op(op, b.op("reshape", x, shape=[-1]), axis=0)
            if keepdims or legacy:  # legacy MXNet gives shape (1,), numpy mode a 0-d array
                result = b.op("reshape", result, shape=[1] * rank if keepdims else [1])
        else:
            result = b.op(op, x, axis=axis[0], keepdims=keepdims)
        return b.op("cast", result, dtype=b.dtype(x)) if legacy else result

    return lower_arg


lowers("argmax", "_npi_argmax")(_arg_extreme("argmax"))
lowers("argmin", "_npi_argmin")(_arg_extreme("argmin"))


@lowers("norm")
def _norm(node: Node) -> str:
    """The legacy ``norm``: the 2-norm (or 1-norm) over ``axis``, all axes by default (then a
    shape (1,) array, as MXNet gives)."""
    b, x = node.builder, node.value(0)
    order = node.attrs.integer("ord", 2)
    if order not in (1, 2):
        raise node.refuse(f"ord={order}")
    if node.attrs.text("out_dtype", "None") != "None":
        raise node.refuse("out_dtype")
    axis = node.attrs.optional_integers("axis")
    keepdims = node.attrs.flag("keepdims", False)
    attrs: dict[str, Any] = {"keepdims": keepdims}
    if axis:
        attrs["axis"] = list(axis) if len(axis) > 1 else axis[0]
    total = b.op("sum", b.op("abs", x) if order == 1 else b.op("multiply", x, x), **attrs)
    result = total if order == 1 else b.op("sqrt", total)
    return result if axis or keepdims else b.op("reshape", result, shape=[1])


@lowers("L2Normalization")
def _l2_normalization(node: Node) -> str:
    """x / sqrt(sum(x^2) + eps) over each example (``instance``), over axis 1 (``channel``), or
    over the spatial axes of each channel (``spatial``)."""
    b, x = node.builder, node.value(0)
    rank = len(b.shapes(x)[0])
    mode = node.attrs.text("mode", "instance")
    axes = {"instance": list(range(1, rank)), "channel": [1], "spatial": list(range(2, rank))}.get(mode)
    if not axes:
        raise node.refuse(f"mode {mode!r} on a {rank}-D input")
    squares = b.op("sum", b.op("multiply", x, x), axis=axes if len(axes) > 1 else axes[0], keepdims=True)
    norm = b.op("sqrt", b.op("add", squares, b.scalar(node.attrs.number("eps", 1e-10))))
    return b.op("divide", x, norm)


@lowers("LRN")
def _lrn(node: Node) -> str:
    """Local response normalisation across channels (MXNet's AlexNet- and GoogLeNet-era
    symbols); ``knorm`` is the op's bias (MXNet's default 2, ONNX's 1)."""
    size = node.attrs.integer("nsize")
    if not 1 <= size <= LRN_MAX_SIZE or size % 2 == 0:  # (MXNet takes odd windows only)
        raise node.refuse(f"nsize={size}")
    return node.builder.op("lrn", node.value(0), size=size, alpha=node.attrs.number("alpha", 1e-4),
                           beta=node.attrs.number("beta", 0.75), bias=node.attrs.number("knorm", 2.0))


@lowers("_rnn_param_concat")
def _rnn_param_concat(node: Node) -> str:
    """Gluon's join of a fused RNN's parameters (the RNN lowering reads it itself); elsewhere a
    concatenation like any other."""
    count = node.attrs.integer("num_args", node.arity)
    if count != node.arity:
        raise node.refuse(f"num_args={count} with {node.arity} inputs")
    values = [node.value(i) for i in range(node.arity)]
    return node.builder.op("concatenate", *values, axis=node.attrs.integer("dim", 1))


@lowers("_zeros", "_ones", "_full", "_npi_zeros", "_npi_ones", "_npi_full")
def _filled(node: Node) -> str:
    """A constant array; a size 0 (MXNet's "inferred later", as in Gluon's zero begin states
    of a recurrent layer, which the RNN lowering reads itself) has no fixed value here."""
    op = node.symbol.nodes[node.index].op
    shape = node.attrs.integers("shape")
    if 0 in shape:
        raise node.refuse(f"shape={shape} (a size 0 is inferred by MXNet from where it is used)")
    value = 0.0 if op.endswith("zeros") else 1.0 if op.endswith("ones") else node.attrs.number("value")
    dtype = node.attrs.text("dtype", "float32")
    if dtype not in ("float16", "float32", "float64", "int32", "int64", "uint8", "int8", "bool"):
        raise node.refuse(f"dtype {dtype}")
    node.attrs.text("ctx", "")  # where MXNet would allocate it
    return node.builder.op("full", shape=list(shape), value=value, dtype=dtype)
