"""Neural-network ops, with MXNet's ``npx`` semantics: softmax (optionally masked by a length),
products of batches, sequence masking, normalisation, dropout, lookups and the fully
connected product.

Where numpy has no such function the call convention is MXNet's (``F.softmax(x, length,
axis=..., use_length=True)`` is ``npx.softmax``), so ``modelpack.npx`` re-exports them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from ... import random
from ..kernels import rowloops
from ..mode import is_training
from . import Attrs, json_value, on_floats, register_op

FloatDtype = Literal["float16", "float32", "float64"]


# -- softmax --------------------------------------------------------------------------------------


class SoftmaxAttrs(Attrs):
    axis: int = -1
    temperature: float | None = None
    # Masked by a second input, ``length`` (the shape of the data without ``axis``): positions
    # at or beyond an element's length get probability 0.
    use_length: bool = False
    dtype: FloatDtype | None = None


def _softmax_call(
    data: Any,
    length: Any = None,
    axis: int = -1,
    temperature: Any = None,
    use_length: bool = False,
    dtype: Any = None,
) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(length, (int, np.integer)) and not isinstance(length, bool):
        axis, length = int(length), None  # F.softmax(x, -1): numpy/torch style, the axis
    if use_length and length is None:
        raise TypeError("softmax(use_length=True) needs the length array")
    attrs = {
        "axis": int(axis),
        "temperature": None if temperature is None else float(json_value(temperature)),
        "use_length": bool(use_length),
        "dtype": None if dtype is None else np.dtype(dtype).name,
    }
    return ([data, length] if use_length else [data]), attrs


def _length_mask(x: np.ndarray, length: np.ndarray, axis: int) -> np.ndarray:
    """True where the position along ``axis`` is below the element's length."""
    axis %= x.ndim
    positions = np.arange(x.shape[axis]).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return positions < np.expand_dims(np.asarray(length), axis)


def _shifted(
    x: np.ndarray, length: np.ndarray | None, axis: int, temperature: float | None, dtype: str | None
) -> np.ndarray:
    """``x`` (divided by ``temperature``) less its max along ``axis``: both softmaxes start here,
    for stability. With a ``length``, positions past it are -inf and an empty row is shifted by 0
    (so it stays all -inf)."""
    x = np.asarray(x)
    if dtype is not None:
        x = x.astype(dtype)
    if temperature is not None and temperature != 1.0:
        x = x / x.dtype.type(temperature)
    if length is None:
        return x - np.max(x, axis=axis, keepdims=True)
    masked = np.where(_length_mask(x, length, axis), x, -np.inf).astype(x.dtype)
    top = np.max(masked, axis=axis, keepdims=True)
    return masked - np.where(np.isfinite(top), top, 0).astype(x.dtype)


def _row_sum(e: np.ndarray, axis: int) -> np.ndarray:
    """The sum of ``e`` along ``axis``, an empty (masked) row's 0 taken as 1: it then divides to
    all 0 and logs to all -inf."""
    total = np.sum(e, axis=axis, keepdims=True)
    return np.where(total == 0, 1, total).astype(e.dtype)


@register_op("softmax", attrs=SoftmaxAttrs, call=_softmax_call)
@on_floats
def softmax(
    x: np.ndarray,
    length: np.ndarray | None = None,
    axis: int = -1,
    temperature: float | None = None,
    use_length: bool = False,
    dtype: str | None = None,
) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``, shifted by the max for stability; with a
    ``length``, positions past it are 0 (an empty row is all 0)."""
    # Each step in place on the new array ``_shifted`` made (the same bits as a new array a
    # step); the division unbuffered along a long last axis (``rowloops``), the sum outside it.
    e = _shifted(x, length if use_length else None, axis, temperature, dtype)
    np.exp(e, out=e)
    total = _row_sum(e, axis)
    with rowloops.over_statistics(e.shape, axis):
        return np.divide(e, total, out=e)


@register_op("log_softmax", attrs=SoftmaxAttrs, call=_softmax_call)
@on_floats
def log_softmax(
    x: np.ndarray,
    length: np.ndarray | None = None,
    axis: int = -1,
    temperature: float | None = None,
    use_length: bool = False,
    dtype: str | None = None,
) -> np.ndarray:
    """x - logsumexp(x) along ``axis``, computed stably; with a ``length``, positions past it
    are -inf."""
    shifted = _shifted(x, length if use_length else None, axis, temperature, dtype)  # (a new array)
    log_total = np.log(_row_sum(np.exp(shifted), axis))
    with rowloops.over_statistics(shifted.shape, axis):  # (as softmax's division)
        return np.subtract(shifted, log_total, out=shifted)


# -- products -------------------------------------------------------------------------------------


@register_op("dot", numpy=(np.dot,), methods=("dot",))
def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.dot``: the matrix product for 2-D, the sum product over the last and second-to-last
    axes otherwise."""
    return np.asarray(np.dot(a, b))


class BatchDotAttrs(Attrs):
    transpose_a: bool = False
    transpose_b: bool = False


@register_op("batch_dot", attrs=BatchDotAttrs)
def batch_dot(
    a: np.ndarray, b: np.ndarray, transpose_a: bool = False, transpose_b: bool = False
) -> np.ndarray:
    """``npx.batch_dot``: a matrix product per leading index, (B, n, m) · (B, m, k) → (B, n, k)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim < 3 or a.ndim != b.ndim:
        raise ValueError(f"batch_dot takes two arrays of the same rank >= 3, got {a.shape} and {b.shape}")
    return np.matmul(
        np.swapaxes(a, -1, -2) if transpose_a else a, np.swapaxes(b, -1, -2) if transpose_b else b
    )


class FullyConnectedAttrs(Attrs):
    num_hidden: int = Field(default=0, ge=0)  # 0: taken from the weight
    no_bias: bool = False
    flatten: bool = True


def _fc_call(
    x: Any, weight: Any, bias: Any = None, num_hidden: int = 0, no_bias: bool = False, flatten: bool = True
) -> tuple[list[Any], dict[str, Any]]:
    no_bias = bool(no_bias) or bias is None
    attrs = {"num_hidden": int(num_hidden), "no_bias": no_bias, "flatten": bool(flatten)}
    return ([x, weight] if no_bias else [x, weight, bias]), attrs


@register_op("fully_connected", attrs=FullyConnectedAttrs, call=_fc_call)
def fully_connected(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    num_hidden: int = 0,
    no_bias: bool = False,
    flatten: bool = True,
) -> np.ndarray:
    """``npx.fully_connected``: x · weightᵀ + bias, weight (num_hidden, in); ``flatten`` first
    flattens all axes but the first, else the product applies to the last axis."""
    x, weight = np.asarray(x), np.asarray(weight)
    if num_hidden and weight.shape[0] != num_hidden:
        raise ValueError(f"fully_connected: weight {weight.shape} does not have num_hidden={num_hidden} rows")
    if flatten:
        x = x.reshape(x.shape[0], -1) if x.ndim else x.reshape(1, 1)
    out = x @ weight.T
    return out if no_bias or bias is None else out + bias


# -- sequences (time along ``axis``, batch along the other of the first two axes) ----------------


class SequenceAttrs(Attrs):
    use_sequence_length: bool = False
    axis: Literal[0, 1] = 0


class SequenceMaskAttrs(SequenceAttrs):
    value: float = 0.0


def _sequence_call(with_value: bool) -> Any:
    def call(
        data: Any, sequence_length: Any = None, use_sequence_length: bool = False, *rest: Any, **kwargs: Any
    ) -> tuple[list[Any], dict[str, Any]]:
        names = ["value", "axis"] if with_value else ["axis"]
        if len(rest) > len(names) or set(kwargs) - set(names):
            raise TypeError(f"unexpected arguments {rest} {sorted(set(kwargs) - set(names))}")
        options = {**dict(zip(names, rest, strict=False)), **kwargs}
        attrs: dict[str, Any] = {
            "use_sequence_length": bool(use_sequence_length),
            "axis": int(options.get("axis", 0)),
        }
        if with_value:
            attrs["value"] = float(json_value(options.get("value", 0.0)))
        if use_sequence_length and sequence_length is None:
            raise TypeError("use_sequence_length=True needs sequence_length")
        return ([data, sequence_length] if use_sequence_length else [data]), attrs

    return call


def _lengths(data: np.ndarray, sequence_length: np.ndarray | None, axis: int) -> np.ndarray:
    """Each batch element's length, as integers (MXNet passes them as floats)."""
    if sequence_length is None:
        return np.full(data.shape[1 - axis], data.shape[axis], dtype=np.int64)
    return np.asarray(sequence_length).astype(np.int64)


@register_op("sequence_mask", attrs=SequenceMaskAttrs, call=_sequence_call(True))
def sequence_mask(
    data: np.ndarray,
    sequence_length: np.ndarray | None = None,
    use_sequence_length: bool = False,
    value: float = 0.0,
    axis: int = 0,
) -> np.ndarray:
    """``npx.sequence_mask``: positions at or past each element's length set to ``value``."""
    data = np.asarray(data)
    if not use_sequence_length:
        return data
    lengths = _lengths(data, sequence_length, axis)
    steps = np.arange(data.shape[axis])
    keep = steps[:, None] < lengths[None, :] if axis == 0 else lengths[:, None] > steps[None, :]
    keep = keep.reshape(keep.shape + (1,) * (data.ndim - 2))
    return np.where(keep, data, data.dtype.type(value))


@register_op("sequence_last", attrs=SequenceAttrs, call=_sequence_call(False))
def sequence_last(
    data: np.ndarray,
    sequence_length: np.ndarray | None = None,
    use_sequence_length: bool = False,
    axis: int = 0,
) -> np.ndarray:
    """MXNet's ``SequenceLast``: each element's last valid step (the time axis removed)."""
    data = np.asarray(data)
    lengths = _lengths(data, sequence_length if use_sequence_length else None, axis)
    last = np.clip(lengths - 1, 0, data.shape[axis] - 1)
    batch = np.arange(data.shape[1 - axis])
    return data[last, batch] if axis == 0 else data[batch, last]


@register_op("sequence_reverse", attrs=SequenceAttrs, call=_sequence_call(False))
def sequence_reverse(
    data: np.ndarray,
    sequence_length: np.ndarray | None = None,
    use_sequence_length: bool = False,
    axis: int = 0,
) -> np.ndarray:
    """MXNet's ``SequenceReverse``: each element's first ``length`` steps reversed, the rest kept."""
    data = np.asarray(data)
    lengths = _lengths(data, sequence_length if use_sequence_length else None, axis)
    steps = np.arange(data.shape[axis])[:, None]
    source = np.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)  # (T, N)
    batch = np.arange(data.shape[1 - axis])[None, :]
    return data[source, batch] if axis == 0 else data[batch.T, source.T]


# -- normalisation, dropout, lookups, losses -----------------------------------------------------


class LayerNormAttrs(Attrs):
    axis: int = -1
    eps: float = Field(default=1e-5, ge=0.0)


@register_op("layer_norm", attrs=LayerNormAttrs)
def layer_norm(
    data: np.ndarray, gamma: np.ndarray, beta: np.ndarray, axis: int = -1, eps: float = 1e-5
) -> np.ndarray:
    """``npx.layer_norm``: (x - mean) / sqrt(var + eps) · gamma + beta over ``axis``."""
    data = np.asarray(data)
    axis %= data.ndim
    shape = [1] * data.ndim
    shape[axis] = data.shape[axis]
    mean = data.mean(axis=axis, keepdims=True, dtype=data.dtype)
    var = data.var(axis=axis, keepdims=True, dtype=data.dtype)
    out = (data - mean) / np.sqrt(var + data.dtype.type(eps))
    return out * np.asarray(gamma).reshape(shape) + np.asarray(beta).reshape(shape)


LRN_MAX_SIZE = 4096  # channels an LRN window may span: a bound on its passes (see window_sum)


class LRNAttrs(Attrs):
    size: int = Field(ge=1, le=LRN_MAX_SIZE)  # channels a window spans (ONNX's size, MXNet's nsize)
    alpha: float = 1e-4
    beta: float = 0.75
    bias: float = 1.0  # (MXNet's knorm, whose default is 2)


def lrn_window(size: int) -> tuple[int, int]:
    """The channels before and after each one that its window spans: ONNX's floor and ceil of
    (size − 1) / 2 (MXNet takes odd sizes only, where the two agree)."""
    return (size - 1) // 2, size // 2


def window_sum(values: np.ndarray, before: int, after: int) -> np.ndarray:
    """Σ values[:, c + d] for d in [−before, after] at each channel c (axis 1), zero past the ends:
    one pass per offset that reaches another channel (never more than 2·C − 1)."""
    channels = values.shape[1]
    total = values.copy()
    for offset in range(max(-before, 1 - channels), min(after, channels - 1) + 1):
        if offset > 0:
            total[:, :-offset] += values[:, offset:]
        elif offset < 0:
            total[:, -offset:] += values[:, :offset]
    return total


@register_op("lrn", attrs=LRNAttrs)
@on_floats
def lrn(data: np.ndarray, size: int = 1, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0
        ) -> np.ndarray:
    """Local response normalisation across channels (axis 1; AlexNet's, GoogLeNet's): x divided
    by (bias + alpha / size · Σ x² over the ``size`` channels around it) ** beta."""
    data = np.asarray(data)
    if data.ndim < 2:
        raise ValueError(f"lrn: needs a channel axis (N, C, ...), got shape {data.shape}")
    dtype = data.dtype.type
    scale = window_sum(data * data, *lrn_window(size)) * dtype(alpha / size) + dtype(bias)
    return data * np.power(scale, dtype(-beta))


class DropoutAttrs(Attrs):
    p: float = Field(default=0.5, ge=0.0, lt=1.0)
    axes: list[int] = Field(default_factory=list)


def dropout_mask(shape: tuple[int, ...], p: float, axes: list[int] | None, dtype: np.dtype,
                 rng: np.random.Generator) -> np.ndarray:
    """The scaled keep-mask: each element (or slice along ``axes``) kept with probability 1 - p.
    Also used by its gradient (``autograd.neural_vjps``), which redraws it from the saved state."""
    keep_shape = tuple(1 if i in set(axes or ()) else n for i, n in enumerate(shape))
    keep = rng.random(keep_shape) >= p
    return keep.astype(dtype) / dtype.type(1.0 - p)


def _dropout_call(
    data: Any, p: float = 0.5, mode: str = "training", axes: Any = None, **_: Any
) -> tuple[list[Any], dict[str, Any]]:
    if mode != "training":
        raise TypeError("dropout(): only mode='training' (drop while training) is supported")
    return [data], {"p": float(p), "axes": [int(a) for a in (axes or ())]}


@register_op("dropout", attrs=DropoutAttrs, call=_dropout_call)
def dropout(data: np.ndarray, p: float = 0.5, axes: list[int] | None = None) -> np.ndarray:
    """``npx.dropout``: the identity at inference; while training (``nn.training()``) each
    element (or slice along ``axes``, which share a mask) is zeroed with probability ``p`` and
    the rest scaled by 1 / (1 - p)."""
    data = np.asarray(data)
    if not is_training() or p == 0.0:
        return data
    # modelpack.random's "dropout" stream, as the Dropout layer: a seeded run drops the same.
    return data * dropout_mask(data.shape, p, axes, data.dtype, random.generator("dropout"))


class EmbeddingAttrs(Attrs):
    input_dim: int = Field(default=0, ge=0)  # 0: taken from the weight
    output_dim: int = Field(default=0, ge=0)


@register_op("embedding", attrs=EmbeddingAttrs)
def embedding(data: np.ndarray, weight: np.ndarray, input_dim: int = 0, output_dim: int = 0) -> np.ndarray:
    """``npx.embedding``: rows of ``weight`` (input_dim, output_dim) at the indices in ``data``;
    an index outside [0, input_dim) is refused."""
    weight = np.asarray(weight)
    if (input_dim and weight.shape[0] != input_dim) or (output_dim and weight.shape[1] != output_dim):
        raise ValueError(f"embedding: weight {weight.shape} is not ({input_dim}, {output_dim})")
    idx = np.asarray(data).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        raise ValueError(f"embedding: index out of range [0, {weight.shape[0]}): {idx.min()}..{idx.max()}")
    return weight[idx]


class SmoothL1Attrs(Attrs):
    scalar: float = Field(default=1.0, gt=0.0)


@register_op("smooth_l1", attrs=SmoothL1Attrs)
def smooth_l1(data: np.ndarray, scalar: float = 1.0) -> np.ndarray:
    """``npx.smooth_l1``: 0.5·(σx)² where |x| < 1/σ², else |x| - 0.5/σ² (σ = ``scalar``)."""
    data = np.asarray(data)
    sigma2 = data.dtype.type(scalar * scalar)
    small = np.abs(data) < 1 / sigma2
    return np.where(small, 0.5 * sigma2 * data * data, np.abs(data) - 0.5 / sigma2).astype(data.dtype)
