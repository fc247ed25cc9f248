"""Each registered layer type as ONNX nodes: one function per type, in ``LAYERS``.

The known traps, handled here once: ``Gemm`` takes modelpack's (units, in) weight with
``transB=1``; Dense flattens like Gluon (all axes but the first, ``Flatten(axis=1)``) and
applies to the last axis otherwise (``MatMul``); pooling always writes its strides (ONNX's
default is 1, not the window) and its pads per side (begin of every axis, then end);
``ceil_mode`` keeps torch's rule, which onnxruntime follows; ``count_include_pad`` is written
both ways; BatchNorm is written in inference mode from the running statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...nn.block import Block
from .emitter import Emitter, Value

__all__ = ["LAYERS", "activation"]

LayerEmitter = Callable[[Emitter, Block, dict[str, Any], Value, str, np.dtype], str]


def activation(em: Emitter, name: str, x: str, dtype: np.dtype, **attrs: Any) -> str:
    """One of modelpack's activations (``nn.activations.ACTIVATIONS`` and the two with alpha)."""
    simple = {
        "relu": "Relu",
        "sigmoid": "Sigmoid",
        "tanh": "Tanh",
        "softrelu": "Softplus",
        "softsign": "Softsign",
    }
    if name in simple:
        return em.node(simple[name], [x], name)
    if name == "leaky_relu":
        return em.node("LeakyRelu", [x], name, alpha=float(attrs.get("alpha", 0.01)))
    if name == "elu":
        return em.node("Elu", [x], name, alpha=float(attrs.get("alpha", 1.0)))
    if name == "silu":
        return em.node("Mul", [x, em.node("Sigmoid", [x])], "silu")
    if name == "gelu_tanh":  # x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2
        cube = em.node("Mul", [x, em.node("Mul", [x, x])])
        inner = em.node("Add", [x, em.node("Mul", [cube, em.constant(0.044715, dtype)])])
        scaled = em.node("Mul", [inner, em.constant(0.7978845608028654, dtype)])
        one_plus = em.node("Add", [em.node("Tanh", [scaled]), em.constant(1.0, dtype)])
        return em.node("Mul", [em.node("Mul", [x, one_plus]), em.constant(0.5, dtype)], "gelu")
    if name == "swish":
        beta = em.node("Mul", [x, em.constant(float(attrs.get("beta", 1.0)), dtype)])
        return em.node("Mul", [x, em.node("Sigmoid", [beta])], "swish")
    if name == "selu":
        return em.node("Selu", [x], "selu")
    if name == "gelu":  # opset 17 has no Gelu: x·(1 + erf(x/√2))/2
        scaled = em.node("Mul", [x, em.constant(0.7071067811865476, dtype)])
        one_plus = em.node("Add", [em.node("Erf", [scaled]), em.constant(1.0, dtype)])
        return em.node("Mul", [em.node("Mul", [x, one_plus]), em.constant(0.5, dtype)], "gelu")
    raise em.refuse(f"activation {name!r} has no ONNX translation")


def _param(em: Emitter, block: Block, path: str, name: str) -> str:
    return em.initializer(block.params[name].array(), f"{path}.{name}" if path else name)


def _then_activation(em: Emitter, c: dict[str, Any], y: str, dtype: np.dtype) -> str:
    return activation(em, c["activation"], y, dtype) if c.get("activation") else y


def _dense(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
    h, rank = em.as_dtype(x, dtype), x.ndim
    if c["flatten"] and rank > 2:
        h, rank = em.node("Flatten", [h], "flatten", axis=1), 2
    weight = _param(em, block, path, "weight")
    bias = [_param(em, block, path, "bias")] if c["use_bias"] else []
    if rank == 2:
        y = em.node("Gemm", [h, weight, *bias], "dense", transB=1)
    else:
        y = em.node("MatMul", [h, em.node("Transpose", [weight], perm=[1, 0])], "dense")
        y = em.node("Add", [y, *bias], "dense") if bias else y
    return _then_activation(em, c, y, dtype)


def _conv(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
    """Conv, or ConvTranspose for a config with ``output_padding``: its weight (in, out / groups,
    *kernel) is ONNX's layout too, and with pads and output_padding explicit ONNX's output size
    is modelpack's, (n − 1)·s − 2p + d·(k − 1) + 1 + output_padding."""
    inputs = [em.as_dtype(x, dtype), _param(em, block, path, "weight")]
    if c["use_bias"]:
        inputs.append(_param(em, block, path, "bias"))
    padding = list(c["padding"])
    transpose = {"output_padding": list(c["output_padding"])} if "output_padding" in c else {}
    y = em.node(
        "ConvTranspose" if transpose else "Conv",
        inputs,
        "conv_transpose" if transpose else "conv",
        kernel_shape=list(c["kernel_size"]),
        strides=list(c["strides"]),
        pads=padding + padding,
        dilations=list(c["dilation"]),
        **transpose,
        group=c["groups"],
    )
    return _then_activation(em, c, y, dtype)


def _pool(op: str) -> LayerEmitter:
    def emit(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
        kernel, strides, padding = (
            list(c["pool_size"]),
            list(c["strides"] or c["pool_size"]),
            list(c["padding"]),
        )
        h = em.as_dtype(x, dtype)
        ceil = bool(c["ceil_mode"])
        ends = list(padding)
        sizes = [n for n in x.static_dims()[2:] if n is not None]
        if ceil and len(sizes) == len(kernel):
            # Fixed sizes: the exact window count as explicit end padding (ONNX's own ceil rule
            # lets a last window start in the right padding, torch's and modelpack's do not).
            ends = [_end_pad(n, k, s, p) for n, k, s, p in zip(sizes, kernel, strides, padding, strict=True)]
            ceil = False
        attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": strides, "ceil_mode": int(ceil)}
        if op == "AveragePool":
            include = bool(c["count_include_pad"])
            if include and any(e > p for e, p in zip(ends, padding, strict=True)):
                # count the real padding but not the window's overhang past it: pad with zeros,
                # then average over what lies inside the padded input
                h = em.node("Pad", [h, em.ints([0, 0, *padding, 0, 0, *padding])], "pad")
                # the padded input may already reach past the last window (ONNX's floor rule
                # then ignores the rest): an end pad is never negative
                ends = [max(0, e - p) for e, p in zip(ends, padding, strict=True)]
                padding, include = [0] * len(padding), False
            attrs["count_include_pad"] = int(include)
        return em.node(op, [h], op.lower(), pads=padding + ends, **attrs)

    return emit


def _end_pad(size: int, kernel: int, stride: int, pad: int) -> int:
    """End padding giving ``ceil_mode``'s window count (torch's rule) with ONNX's floor rule."""
    span = size + 2 * pad - kernel
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad:
        out -= 1
    return max(0, (out - 1) * stride + kernel - size - pad)


def _batchnorm(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
    gamma = block.params["gamma"].array() if c["scale"] else np.ones(block.params["gamma"].shape, dtype)
    names = [em.initializer(gamma, f"{path}.gamma" if path else "gamma")]
    names += [_param(em, block, path, name) for name in ("beta", "running_mean", "running_var")]
    h = em.as_dtype(x, dtype)
    if c["axis"] % x.ndim == 1:
        return em.node(
            "BatchNormalization", [h, *names], "batchnorm", epsilon=c["epsilon"], momentum=c["momentum"]
        )
    # another channel axis: move it to 1 and back
    perm = list(range(x.ndim))
    perm.insert(1, perm.pop(c["axis"] % x.ndim))
    inverse = list(np.argsort(perm))
    moved = em.node("Transpose", [h], perm=perm)
    normed = em.node("BatchNormalization", [moved, *names], epsilon=c["epsilon"], momentum=c["momentum"])
    return em.node("Transpose", [normed], "batchnorm", perm=[int(i) for i in inverse])


def _layernorm(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
    channels = block.params["gamma"].shape
    gamma = block.params["gamma"].array() if c["scale"] else np.ones(channels, dtype)
    inputs = [em.as_dtype(x, dtype), em.initializer(gamma, f"{path}.gamma" if path else "gamma")]
    if c["center"]:
        inputs.append(_param(em, block, path, "beta"))
    axis = c["axis"] % x.ndim
    if axis == x.ndim - 1:
        return em.node("LayerNormalization", inputs, "layernorm", axis=-1, epsilon=c["epsilon"])
    perm = list(range(x.ndim))
    perm.append(perm.pop(axis))
    inverse = [int(i) for i in np.argsort(perm)]
    moved = em.node("Transpose", [inputs[0]], perm=perm)
    normed = em.node("LayerNormalization", [moved, *inputs[1:]], axis=-1, epsilon=c["epsilon"])
    return em.node("Transpose", [normed], "layernorm", perm=inverse)


def _instancenorm(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
    """ONNX InstanceNormalization, with gamma and beta always applied (as modelpack does)."""
    names = [_param(em, block, path, "gamma"), _param(em, block, path, "beta")]
    h = em.as_dtype(x, dtype)
    axis = c["axis"] % x.ndim
    if axis == 1:
        return em.node("InstanceNormalization", [h, *names], "instancenorm", epsilon=c["epsilon"])
    perm = list(range(x.ndim))
    perm.insert(1, perm.pop(axis))
    moved = em.node("Transpose", [h], perm=perm)
    normed = em.node("InstanceNormalization", [moved, *names], epsilon=c["epsilon"])
    return em.node("Transpose", [normed], "instancenorm", perm=[int(i) for i in np.argsort(perm)])


def _groupnorm(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
    """MXNet's GroupNorm has one gamma and beta per *group*: the input seen as (N, groups, rest)
    is an instance norm whose channels are the groups, with exactly those scales (ONNX's own
    GroupNormalization changed its scale's meaning between opsets 18 and 21)."""
    h = em.as_dtype(x, dtype)
    grouped = em.node("Reshape", [h, em.ints([0, c["num_groups"], -1])])
    names = [_param(em, block, path, "gamma"), _param(em, block, path, "beta")]
    normed = em.node("InstanceNormalization", [grouped, *names], epsilon=c["epsilon"])
    return em.node("Reshape", [normed, em.node("Shape", [h])], "groupnorm")


def _reflection_pad(
    em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype
) -> str:
    """MXNet's pad_width (before, after per axis) as ONNX's pads (every begin, then every end)."""
    width = list(c["padding"])
    pads = width[0::2] + width[1::2]
    return em.node("Pad", [em.as_dtype(x, dtype), em.ints(pads)], "reflection_pad", mode="reflect")


def _prelu(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
    alpha = block.params["alpha"].array()
    if alpha.shape[0] > 1 and x.ndim > 1:  # one slope per channel (axis 1): ONNX broadcasts from the end
        alpha = alpha.reshape(alpha.shape[0], *([1] * (x.ndim - 2)))
    slope = em.initializer(alpha, f"{path}.alpha" if path else "alpha")
    return em.node("PRelu", [em.as_dtype(x, dtype), slope], "prelu")


def _embedding(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
    indices = x.name if np.issubdtype(x.dtype, np.integer) else em.as_dtype(x, np.dtype(np.int64))
    return em.node("Gather", [_param(em, block, path, "weight"), indices], "embedding", axis=0)


def _plain(op: str, **attrs: Any) -> LayerEmitter:
    def emit(em: Emitter, block: Block, c: dict[str, Any], x: Value, path: str, dtype: np.dtype) -> str:
        return em.node(op, [em.as_dtype(x, dtype)], op.lower(), **attrs)

    return emit


LAYERS: dict[str, LayerEmitter] = {
    "Dense": _dense,
    # every dimension: the configs and the ONNX operators are the same up to the sizes' length
    **{f"Conv{d}D{kind}": _conv for kind in ("", "Transpose") for d in (1, 2, 3)},
    **{f"MaxPool{d}D": _pool("MaxPool") for d in (1, 2, 3)},
    **{f"AvgPool{d}D": _pool("AveragePool") for d in (1, 2, 3)},
    **{f"GlobalAvgPool{d}D": _plain("GlobalAveragePool") for d in (1, 2, 3)},
    **{f"GlobalMaxPool{d}D": _plain("GlobalMaxPool") for d in (1, 2, 3)},
    "Identity": _plain("Identity"),
    "BatchNorm": _batchnorm,
    "LayerNorm": _layernorm,
    "InstanceNorm": _instancenorm,
    "GroupNorm": _groupnorm,
    "ReflectionPad2D": _reflection_pad,
    "Embedding": _embedding,
    "Dropout": _plain("Identity"),
    "Flatten": _plain("Flatten", axis=1),
    "Activation": lambda em, b, c, x, p, d: activation(em, c["activation"], em.as_dtype(x, d), d),
    "LeakyReLU": lambda em, b, c, x, p, d: activation(
        em, "leaky_relu", em.as_dtype(x, d), d, alpha=c["alpha"]
    ),
    "ELU": lambda em, b, c, x, p, d: activation(em, "elu", em.as_dtype(x, d), d, alpha=c["alpha"]),
    "SELU": lambda em, b, c, x, p, d: activation(em, "selu", em.as_dtype(x, d), d),
    "Swish": lambda em, b, c, x, p, d: activation(em, "swish", em.as_dtype(x, d), d, beta=c["beta"]),
    "GELU": lambda em, b, c, x, p, d: activation(
        em, "gelu" if c["approximation"] == "erf" else "gelu_tanh", em.as_dtype(x, d), d
    ),
    "PReLU": _prelu,
}
