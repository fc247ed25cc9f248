"""BatchNorm's arithmetic, forward and backward, as few passes over the data as it takes.

The normalisation folds into one scale and one shift per channel (scale = γ/√(var + ε),
shift = β − mean·scale), applied in place to one buffer; the statistics are sums along the
contiguous axis (numpy's pairwise sums) of an (outer, C, inner) view. The backward recomputes
the normalised input from the saved statistics rather than keeping an input-sized array alive
between the passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import parallel

__all__ = ["Stats", "affine_terms", "batch_norm", "batch_norm_backward"]


@dataclass
class Stats:
    """The statistics a forward normalised with: per channel, and whether they were the batch's."""

    mean: np.ndarray
    inv_std: np.ndarray
    batch: bool


def _three(array: np.ndarray, axis: int) -> np.ndarray:
    """(outer, C, inner) view of ``array`` with the channels ``axis`` in the middle."""
    outer = int(np.prod(array.shape[:axis], dtype=np.int64))
    return array.reshape(outer, array.shape[axis], -1)


# Up to this many elements, a per-channel operand is laid out as a whole (C, inner) plane: a
# ufunc then runs one contiguous loop per example, where a (C, 1) operand broadcast along
# short rows runs one loop per row (BatchNorm's affine pass on 32×32×16×16 float32 values:
# 108 µs broadcast, 69 µs with planes, the same bits).
PLANE_ELEMENTS = 1 << 16


def _per_channel(values: np.ndarray, three: np.ndarray) -> np.ndarray:
    """One value per channel, as an operand that broadcasts against (outer, C, inner)."""
    inner = three.shape[2]
    if 1 < inner and values.size * inner <= PLANE_ELEMENTS:
        return np.repeat(values, inner).reshape(1, values.size, inner)
    return values[None, :, None]


def _channel_sum(three: np.ndarray) -> np.ndarray:
    return parallel.total(lambda part: part.sum(axis=2).sum(axis=0), three)


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ a·b per channel of two (outer, C, inner) arrays, without their product's temporary."""
    parts = parallel.over_batch(lambda rows: np.einsum("ijk,ijk->j", a[rows], b[rows]), a.shape[0], a.size,
                                chunks=parallel.REDUCTION_CHUNKS)
    return sum(parts[1:], parts[0])


def _centred(three: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return parallel.ufunc(np.subtract, three, _per_channel(mean, three), out=np.empty_like(three))


def batch_statistics(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and biased variance per channel along ``axis``, in x's dtype."""
    three = _three(x, axis)
    count = x.dtype.type(three.shape[0] * three.shape[2])
    mean = _channel_sum(three) / count
    centred = _centred(three, mean)
    var = _channel_dot(centred, centred) / count
    return mean.astype(x.dtype, copy=False), var.astype(x.dtype, copy=False)


def affine_terms(mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray,
                 epsilon: float, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inv_std, scale, shift) per channel: the normalisation as ``x·scale + shift``."""
    inv_std = (1 / np.sqrt(var.astype(dtype) + dtype.type(epsilon))).astype(dtype, copy=False)
    scale = inv_std if gamma is None else gamma * inv_std
    return inv_std, scale, beta - mean * scale


def batch_norm(x: np.ndarray, axis: int, mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None,
               beta: np.ndarray, epsilon: float, *, batch: bool) -> tuple[np.ndarray, Stats]:
    """γ·(x − mean)/√(var + ε) + β per channel along ``axis`` (γ None: 1), and the statistics."""
    dtype = x.dtype
    inv_std, scale, shift = affine_terms(mean, var, gamma, beta, epsilon, dtype)
    three = _three(x, axis)
    scales, shifts = _per_channel(scale, three), _per_channel(shift, three)
    out = parallel.affine(three, scales, shifts, out=np.empty_like(three))
    return out.reshape(x.shape), Stats(mean.astype(dtype, copy=False), inv_std, batch)


def batch_norm_backward(grad: np.ndarray, x: np.ndarray, axis: int, stats: Stats, gamma: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the input, γ and β. With batch statistics the mean and variance depend on
    x too: ∂x = γ·inv_std·(g − mean(g) − x̂·mean(g·x̂)); with running ones, γ·inv_std·g."""
    g3, x3 = _three(grad, axis), _three(x, axis)
    x_hat = _centred(x3, stats.mean)
    parallel.ufunc(np.multiply, x_hat, _per_channel(stats.inv_std, x3), out=x_hat)
    grad_beta = _channel_sum(g3)
    grad_gamma = _channel_dot(g3, x_hat)
    scale = stats.inv_std if gamma is None else gamma * stats.inv_std
    if not stats.batch:
        grad_x = parallel.ufunc(np.multiply, g3, _per_channel(scale, g3), out=x_hat)
        return grad_x.reshape(x.shape), grad_gamma, grad_beta
    count = grad.dtype.type(g3.shape[0] * g3.shape[2])
    grad_x = x_hat  # reused in place: −x̂·mean(g·x̂) + g − mean(g), then times the scale
    parallel.ufunc(np.multiply, grad_x, _per_channel(-grad_gamma / count, g3), out=grad_x)
    parallel.ufunc(np.add, grad_x, g3, out=grad_x)
    parallel.ufunc(np.subtract, grad_x, _per_channel(grad_beta / count, g3), out=grad_x)
    parallel.ufunc(np.multiply, grad_x, _per_channel(scale, g3), out=grad_x)
    return grad_x.reshape(x.shape), grad_gamma, grad_beta
