"""Transposed convolution on channel-first batches, forward and backward: the input-gradient of
the convolution whose weight it is (``conv``'s col2im), and its gradients through that
convolution's forward and backward.
"""

from __future__ import annotations

import math

import numpy as np

from .. import budget
from . import col2im, direct, rowloops, strips
from .columns import Geometry, Sizes, rows_of
from .conv import _col2im_last, backward, forward
from .conv_grads import weight_deferred

__all__ = ["transpose_sizes", "transpose_forward", "transpose_backward"]


def transpose_sizes(in_sizes: Sizes, g: Geometry, output_padding: Sizes) -> tuple[Sizes, Sizes]:
    """(uncropped, output) spatial sizes of a transposed convolution."""
    full = tuple((i - 1) * s + d * (k - 1) + 1 + a for i, s, d, k, a in
                 zip(in_sizes, g.strides, g.dilation, g.kernel, output_padding, strict=True))
    return full, tuple(f - 2 * p for f, p in zip(full, g.padding, strict=True))


def transpose_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
                      output_padding: Sizes) -> np.ndarray:
    """Transposed convolution of x (N, C, *S) with weight (C, O/G, *K): the input-gradient of
    the convolution whose weight it is, x standing for that convolution's output gradient."""
    n = x.shape[0]
    full, out_sizes = transpose_sizes(x.shape[2:], g, output_padding)
    channels = weight.shape[1] * g.groups
    if direct.usable(x, weight, g):
        out = direct.grad_input(x, weight, g, (n, channels, *out_sizes))
        if bias is not None:
            _add_bias(out, bias)
        return out
    if col2im.usable(g):
        # x as (G, N, P, C/G) rows without copying them: each example's is a transposed matrix,
        # which BLAS reads as it is (1-D DCGAN 4/2 on 16×64×256 at 2 threads: 1.19 → 0.98 ms)
        view = x.reshape(n, g.groups, x.shape[1] // g.groups, -1).transpose(1, 0, 3, 2)
        return col2im.by_phases(view, weight, bias, g, x.shape[2:], full, out_sizes, "its output")
    else:
        budget.charge(budget.nbytes((n, channels, *x.shape[2:]), x.dtype), "its products")  # per tap
        out = _col2im_last(rows_of(x, g.groups), weight, g, n, x.shape[2:], full, g.padding, out_sizes,
                           "its output")
    if bias is not None:
        _add_bias(out, bias)
    return out


def _add_bias(out: np.ndarray, bias: np.ndarray) -> None:
    """out (N, O, *S) += bias, one value per channel along each run (see ``rowloops``)."""
    with rowloops.long_rows(math.prod(out.shape[2:])):
        out += bias.reshape(1, -1, *(1,) * (out.ndim - 2))


def transpose_backward(grad: np.ndarray, x: np.ndarray, weight: np.ndarray, g: Geometry, *,
                       need_x: bool = True, need_weight: bool = True
                       ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Gradients of a transposed convolution's input and weight: its output's gradient goes
    through the convolution it is the transpose of. (Tried and left out: both gradients by
    phases, with no columns, each a GEMM per block shift on row-shifted views of the gradient
    laid out space-to-depth: one thread, CPU ms, im2col → phases, both gradients / the weight's
    alone: 1-D 4/2 on 16×64×256 3.18 → 3.10 / 2.07 → 1.90, 4×4/2 on 16×128×16×16 31.0 → 31.9 /
    16.3 → 18.7, on 32×128×8×8 14.1 → 16.6 / 6.8 → 9.3: its GEMMs' depth is s·O, not k·O, and
    it multiplies the dropped edge blocks.)"""
    # That convolution's output has exactly the input's sizes (output_padding < strides).
    if direct.usable(grad, weight, g):
        grad_x = direct.forward(grad, weight, None, g) if need_x else None
        grad_w = direct.grad_weight(x, grad, g, weight.shape) if need_weight else None
        return grad_x, grad_w
    if not need_x:
        # Only the weight's: the columns of grad multiplied with x, not first the GEMM of the
        # input's gradient that would have made them (a network's first layer: DCGAN's 4×4/2 128
        # → 64 on 32×8×8 at 2 threads, min of 5 alternating rounds on a busy machine, 12.2 → 6.3
        # ms ungrouped, 8.9 strip by strip; 1-D 4/2 64 → 32 on 16×256 1.86 → 1.02; the
        # compute.py decoder's training step, min of 7, 29.6 → 27.7 numpy, 29.2 → 26.2 numba).
        if not need_weight:
            return None, None
        if g.groups == 1:
            return None, weight_deferred(x, grad, g, x.shape[2:], weight.shape)
        return None, strips.weight_grad(x, grad, g, weight.shape)
    grad_x, saved = forward(grad, weight, None, g, last=True)
    grad_w = backward(x, saved, weight, g, need_x=False)[1] if need_weight else None
    return grad_x, grad_w
