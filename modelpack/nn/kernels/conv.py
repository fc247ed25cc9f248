"""Convolution on channel-first batches, forward and backward, in any number
of spatial dimensions (grouped, depthwise, strided, dilated, padded).

Both directions are im2col and GEMM: a strided view holds every receptive field, one copy lays
them out as a matrix of columns, and BLAS does the arithmetic. The columns come in two layouts,
chosen by shape (``channels_last``):

- channels last, (N·P, K·C/G) per group (P output positions, K kernel taps): the input is
  transposed to channels-last once, in the same copy that pads it, so each window is read as
  runs of kw·C/G contiguous values, and one GEMM over every example computes every output; the
  transposition back to channels-first is folded into the pass that adds the bias;
- channels first, (N, C/G·K, P): runs of ow values, one GEMM per example (one einsum for a
  depthwise convolution) writing the channel-first output directly. It wins for few input
  channels (a network's first layer), 1×1 kernels, and inference on large maps; columns of
  megabytes an example (a stem) are never held whole, but gathered a strip at a time (``strips``).

Both layouts, and the geometry of where each output reads, live in ``columns``; the
forward's products on them in ``im2col``; here, which path a call takes. The backward
reuses the forward's columns: the weight's gradient is one GEMM of them with the output's
gradient, the input's is the transposed GEMM scattered back (col2im: a GEMM and a strided add
per kernel tap, never a loop over pixels), or at stride 1 where it is faster, a
correlation with the flipped kernel (``shifted``). A transposed convolution is the
input-gradient of a convolution, so it runs on the same code (``transposed``). A dilated one at
stride 1 may run as an undilated one on the input's phases (``dilated``), a strided one as a
stride-1 one on them stacked as channels (``space_to_depth``). A large pass runs each chunk
of the batch (its copies and GEMMs together) on one of ``parallel``'s threads with BLAS held
to one thread (``parallel.split``); a small one runs whole, its GEMMs on BLAS's threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import budget
from . import (
    banded,
    col2im,
    conv_grads,
    depthwise,
    dilated,
    direct,
    im2col,
    parallel,
    shifted,
    slices,
    space_to_depth,
    strips,
    winograd,
    winograd3d,
)
from .columns import (
    Geometry,
    Sizes,
    channels_last,
    rows_of,
    windows,
)

__all__ = ["Geometry", "Saved", "windows", "channels_last", "forward", "backward"]


@dataclass
class Saved:
    """What the backward needs from the forward: the columns, their layout and the sizes."""

    cols: np.ndarray  # last: (N·P, G, K·C/G); first: (N, G, C/G·K, P); direct: the input itself
    last: bool
    in_shape: tuple[int, ...]
    out_sizes: Sizes
    direct: bool = False  # computed by the compiled loops (``direct``), which need no columns
    deferred: bool = False  # computed by ``shifted`` or ``banded``: cols is the input
    in_strips: bool = False  # computed by ``strips``: cols is the input, no columns kept
    in_slices: bool = False  # computed by ``slices``: cols is the input, no columns kept
    winograd: bool = False  # computed by ``winograd3d``: cols is the input
    phases: Saved | None = None  # computed on the input's phases (``dilated``): their own Saved
    stacked: Saved | None = None  # computed on the phases stacked as channels (``space_to_depth``)


# A training forward with at most this many output channels runs on ``shifted`` and leaves
# im2col to the backward (only the weight's gradient reads the columns): the columns' GEMM has
# that few columns and ran at ~40 GFLOP/s. Measured at 2 threads, batch 32, 16 channels on
# 32×32: forward 3.6 → 1.5 ms, gathering the columns in the backward 1.0 ms; at 32 and 64
# channels the GEMM is efficient and deferring lost. Wider ones defer too on large planes
# (``shifted.large``, where ``shifted`` sums the last axis's taps on the output side): forward
# and backward at 2 threads, im2col → deferred (ms): 3×3×3 32 → 32 on 4×8×28×28 54.8 → 25.7,
# 3×3 64 → 64 on 8×56×56 40.6 → 28.6, 128 → 128 on 16×28×28 62.7 → 52.5, 32 → 32 on 8×56×56
# 15.4 → 11.2, 64 → 64 on 32×32×32 61.9 → 42.0.
DEFERRED_MAX_OUTPUTS = 16


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
            *, last: bool | None = None, backward: bool = True,
            activation: Callable[[np.ndarray], object] | None = None) -> tuple[np.ndarray, Saved]:
    """Cross-correlation of x (N, C, *S) with weight (O, C/G, *K), plus bias: (out, saved);
    ``backward`` says whether a backward will reuse the columns (it picks their layout).
    ``activation`` (plain arrays only; ``activations.in_place``) then overwrites the output,
    on im2col's paths each chunk of the batch on its thread as it is computed, in cache."""
    c, groups = x.shape[1], g.groups
    out_sizes = g.out_sizes(x.shape[2:])

    def activated(out: np.ndarray) -> np.ndarray:
        if activation is not None:
            activation(out)
        return out

    if last is None and direct.usable(x, weight, g):
        out = direct.forward(x, weight, bias, g, activation)
        return out, Saved(x, False, x.shape, out_sizes, direct=True)
    plain = all(type(a) is np.ndarray for a in (x, weight, bias) if a is not None)  # (not recorded values)
    if last is None and plain and dilated.usable(x, weight, g, out_sizes, backward=backward):
        # An undilated convolution of the input's phases, on a path that takes no dilation.
        phases = dilated.split(x, g, out_sizes)
        out, inner = forward(phases, weight, bias, dilated.inner(g), backward=backward, activation=activation)
        return dilated.join(out, g, x.shape[0], out_sizes), Saved(x, False, x.shape, out_sizes, phases=inner)
    if last is None and plain and space_to_depth.usable(x, weight, g, out_sizes, backward=backward):
        # A stride-1 convolution of the phases stacked as channels, on Winograd's transforms.
        stacked, cut = space_to_depth.split(x, g, out_sizes), space_to_depth.inner_weight(weight, g)
        out, inner = forward(stacked, cut, bias, space_to_depth.inner(g), backward=backward,
                             activation=activation)
        return out, Saved(x, False, x.shape, out_sizes, stacked=inner)
    if last is None and not backward:  # an inference call: nothing will read columns
        unused = Saved(x, False, x.shape, out_sizes)  # (no backward follows)
        if im2col.pointwise(g) and type(x) is np.ndarray:
            return im2col.forward_pointwise(x, weight, bias, g, activation), unused
        if winograd.usable(x, weight, g) and type(x) is np.ndarray:
            return activated(winograd.forward(x, weight, bias, g, out_sizes, keep_transform=True)), unused
        if winograd3d.usable(x, weight, g) and type(x) is np.ndarray:
            return activated(winograd3d.forward(x, weight, bias, g, out_sizes, keep_transform=True)), unused
        if shifted.faster(c, g, out_sizes):
            return activated(shifted.forward(x, weight, bias, g, out_sizes)), unused
        if shifted.grouped_usable(x, weight, g, out_sizes) and type(x) is np.ndarray:
            return activated(shifted.last_axis_forward(x, weight, bias, g, out_sizes)), unused
        many_taps = math.prod(g.kernel) > depthwise.MAX_TAPS
        if depthwise.usable(x, weight, g, out_sizes) and not (many_taps and banded.usable(x, weight, g)):
            return depthwise.forward(x, weight, bias, g, activation), unused
        if banded.usable(x, weight, g):
            return banded.forward(x, weight, bias, g, out_sizes, activation), unused
        if depthwise.padded_usable(weight, g):
            return activated(depthwise.padded_forward(x, weight, bias, g, out_sizes)), unused
        if slices.usable(x, weight, g, out_sizes) and type(x) is np.ndarray:
            return slices.forward(x, weight, bias, g, out_sizes, activation), unused
        if strips.usable(weight, out_sizes) and type(x) is np.ndarray:
            return strips.forward(x, weight, bias, g, out_sizes, activation), unused
    if not plain:
        out, cols = im2col.forward_recorded(x, weight, bias, g, out_sizes)
        return activated(out), Saved(cols, False, x.shape, out_sizes)
    if last is None and winograd3d.usable(x, weight, g) and _flippable(g):
        # No columns kept: the backward's weight gradient transforms the input again, its input
        # gradient is the flipped kernel's forward (``winograd3d``'s numbers there).
        out = activated(winograd3d.forward(x, weight, bias, g, out_sizes))
        return out, Saved(x, False, x.shape, out_sizes, winograd=True)
    if last is None and backward and winograd.trains(x, weight, g):
        # The compiled transforms' forward, the weight's transform kept for the backward
        # (``deferred``: ``winograd.gradients``, both gradients in Winograd's domain).
        out = activated(winograd.forward(x, weight, bias, g, out_sizes, keep_transform=True))
        return out, Saved(x, True, x.shape, out_sizes, deferred=True)
    if last is None and banded.trainable(x, weight, g):
        # Banded GEMMs, no columns, the backward's GEMMs on the same planes (2 threads, 3×3/1 on
        # 8×128×56×56: 39.3 → 22.4 ms against shifted's blocks; 3×3/2 on 8×64×112×112: 37.2 →
        # 21.1 against im2col; small planes too, against im2col: 32×32×16×16 3.5 → 3.2 at stride
        # 1, 3.4 → 2.8 at stride 2, and the MobileNet-style training step 15.9 → 14.5).
        out = banded.forward(x, weight, bias, g, out_sizes, activation)
        return out, Saved(x, False, x.shape, out_sizes, deferred=True)
    if last is None and depthwise.padded_usable(weight, g) and not depthwise.fits(x):
        # Large planes: the taps' multiply-adds in blocks, no columns (9× the input for a 3×3);
        # measured at 2 threads, 3×3 on 8×128×56×56: training 75–81 → 65–67 ms. Smaller ones
        # (MobileNet-style 32×32×16×16: 7.7–8.1 against 11.3–11.5 ms) and strided ones keep im2col.
        out = activated(depthwise.padded_forward(x, weight, bias, g, out_sizes))
        return out, Saved(x, False, x.shape, out_sizes, deferred=True)
    o = weight.shape[0]
    if last is None and backward and shifted.usable(c, g, out_sizes) and (
            o <= DEFERRED_MAX_OUTPUTS or shifted.large(x, o, g, out_sizes)):
        out = activated(shifted.forward(x, weight, bias, g, out_sizes))
        return out, Saved(x, True, x.shape, out_sizes, deferred=True)
    if last is None:
        last = channels_last(c // groups, g.kernel, math.prod(out_sizes), backward=backward, groups=groups,
                             strides=g.strides)
        if not last and slices.usable(x, weight, g, out_sizes):  # no columns kept (its numbers there)
            out = slices.forward(x, weight, bias, g, out_sizes, activation)
            return out, Saved(x, False, x.shape, out_sizes, in_slices=True)
        if not last and strips.usable(weight, out_sizes):
            # No columns kept: forward, weight's and bias's gradients at 2 threads, whole → strips (min /
            # median of 11, ms): 7×7/2 on 8×3×224×224 28.9 / 30.4 → 25.7 / 28.0 (torch 13.9 / 15.6),
            # 3×3×3 on 4×3×8×56×56 10.1 / 11.5 → 8.7 / 10.4 (torch 4.2 / 5.5), since in slices.
            out = strips.forward(x, weight, bias, g, out_sizes, activation)
            return out, Saved(x, False, x.shape, out_sizes, in_strips=True)
    if last:
        out, cols = im2col.forward_last(x, weight, bias, g, out_sizes, activation)
        return out, Saved(cols, True, x.shape, out_sizes)
    out, cols = im2col.forward_first(x, weight, bias, g, out_sizes, activation)
    return out, Saved(cols, False, x.shape, out_sizes)


def _flippable(g: Geometry) -> bool:
    """Whether the input's gradient is a plain convolution of the output's: at stride 1, with
    padding no wider than the kernel's reach (its own padding is then span − 1 − padding)."""
    return all(s == 1 for s in g.strides) and all(p < s for p, s in zip(g.padding, g.span, strict=True))


def _full_correlation(grad: np.ndarray, weight: np.ndarray, g: Geometry, in_sizes: Sizes, *,
                      may_decline: bool = True) -> np.ndarray | None:
    """The input's gradient at stride 1 (``_flippable``): the output's gradient correlated with
    the flipped kernel, input and output channels swapped per group; None where scattering the
    taps back (col2im) is faster and ``may_decline`` (a forward that saved no columns to
    scatter, ``winograd3d``'s, passes False: then im2col's GEMM of the flipped kernel).
    Measured on d2l's shapes: for a depthwise convolution one einsum over windows, 3× faster,
    and with one output per channel (MobileNet's) the flipped convolution is depthwise too, its
    taps' multiply-adds (``depthwise``) faster again (32 channels of 16×16, batch 32, one
    thread: 1.55 → 0.93 ms); for an ungrouped one that ``shifted`` takes, 1.1–1.7× faster
    (16–64 channels on 8×8 to 32×32 maps), and on its small planes (not ``shifted.faster``)
    im2col's one GEMM of the gradient's columns faster again (128 channels on 4×4, batch 32,
    2 threads: 2.05 → 1.21 ms, col2im 1.5); elsewhere col2im. A 3×3 one of many channels
    takes ``winograd`` first, a 3-D k×3×3 one ``winograd3d`` (their numbers there)."""
    groups, dims = g.groups, len(g.kernel)
    o, cg = weight.shape[:2]
    padding = tuple(s - 1 - p for s, p in zip(g.span, g.padding, strict=True))
    flipped_geometry = Geometry(g.kernel, g.strides, padding, g.dilation, groups)
    one_input_each = im2col.depthwise_groups(weight, groups)
    if not one_input_each and winograd.usable(grad, weight.swapaxes(0, 1), flipped_geometry):
        swapped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].swapaxes(0, 1))
        return winograd.forward(grad, swapped, None, flipped_geometry, in_sizes)
    if not one_input_each and winograd3d.usable(grad, weight.swapaxes(0, 1), flipped_geometry):
        swapped = np.ascontiguousarray(weight[:, :, ::-1, ::-1, ::-1].swapaxes(0, 1))
        return winograd3d.forward(grad, swapped, None, flipped_geometry, in_sizes)
    if may_decline and not one_input_each and not shifted.usable(o, flipped_geometry, in_sizes):
        return None  # (``o``: the gradient's channels)
    split = weight.reshape(groups, o // groups, cg, *g.kernel)
    reversed_taps: tuple[slice, ...] = (slice(None),) * 3 + (slice(None, None, -1),) * dims
    swapped = np.ascontiguousarray(split[reversed_taps].swapaxes(1, 2))
    swapped = swapped.reshape(groups * cg, o // groups, *g.kernel)
    if one_input_each and o == groups:  # one output per group too: the flipped one is depthwise
        if depthwise.usable(grad, swapped, flipped_geometry, in_sizes):
            return depthwise.forward(grad, swapped, None, flipped_geometry)
        return depthwise.padded_forward(grad, swapped, None, flipped_geometry, in_sizes)
    if one_input_each:
        return forward(grad, swapped, None, flipped_geometry, last=False, backward=False)[0]
    if not shifted.faster(o, flipped_geometry, in_sizes, gradient=True):  # small planes: im2col's one GEMM
        return im2col.forward_last(grad, swapped, None, flipped_geometry, in_sizes)[0]
    return shifted.forward(grad, swapped, None, flipped_geometry, in_sizes)


def _col2im_last(rows: np.ndarray, weight: np.ndarray, g: Geometry, n: int, out_sizes: Sizes,
                 full: Sizes, padding: Sizes, sizes: Sizes, what: str) -> np.ndarray:
    """Σ over kernel taps of rows (G, N·P, O/G) times that tap's weights, each added onto a
    zeroed channels-last (N, *full, C) where the tap read: the col2im of rows @ weights,
    one tap at a time, so each product is contiguous and the sum never holds all taps; then
    laid out channel-first (N, C, *sizes), the padding cropped. Each example's sum is its
    own, so chunks of the batch run on their own threads, taps in the same order."""
    groups, cg = g.groups, weight.shape[1]
    channels, positions = groups * cg, math.prod(out_sizes)
    budget.charge(budget.nbytes((n, *full, channels), rows.dtype), "the full output it scatters into")
    budget.charge(budget.nbytes((n, channels, *sizes), rows.dtype), what)
    buffer = np.zeros((n, *full, groups, cg), rows.dtype)
    out = np.empty((n, channels, *sizes), rows.dtype)
    flat = weight.reshape(groups, weight.shape[0] // groups, cg, -1)  # (G, O/G, C/G, K)
    crop = (slice(None), *(slice(p, p + s) for p, s in zip(padding, sizes, strict=True)))
    inner = np.moveaxis(buffer.reshape(n, *full, channels)[crop], -1, 1)

    def run(b: slice) -> None:
        count = b.stop - b.start
        product = np.empty((groups, count * positions, cg), rows.dtype)
        mine = rows[:, b.start * positions:b.stop * positions]
        for tap, offset in enumerate(g.offsets()):
            np.matmul(mine, flat[..., tap], out=product)
            where = (b, *g.taps(offset, out_sizes))
            target = buffer[where]  # (n, *out, G, C/G)
            np.add(target, np.moveaxis(product.reshape(groups, count, *out_sizes, cg), 0, -2), out=target)
        np.copyto(out[b], inner[b])

    parallel.split(run, n, rows.shape[1] * math.prod(g.kernel) * channels * rows.shape[2])
    return out


def backward(grad: np.ndarray, saved: Saved, weight: np.ndarray, g: Geometry, *, need_x: bool = True,
             need_weight: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Gradients of the input and the weight from the output's (N, O, *out); the bias's is
    ``conv_grads.bias(grad)``."""
    n, c = saved.in_shape[:2]
    groups, o = g.groups, weight.shape[0]
    grad_x = grad_w = None
    if saved.phases is not None:  # the forward's phases: their backward, laid back in place
        grad_x, grad_w = backward(dilated.split_output(grad, g, saved.out_sizes), saved.phases, weight,
                                  dilated.inner(g), need_x=need_x, need_weight=need_weight)
        if grad_x is not None:
            grad_x = dilated.join_input(grad_x, g, saved.in_shape, saved.out_sizes)
        return grad_x, grad_w
    if saved.stacked is not None:  # the forward's stacked phases: their backward, laid back
        grad_x, grad_w = backward(grad, saved.stacked, space_to_depth.inner_weight(weight, g),
                                  space_to_depth.inner(g), need_x=need_x, need_weight=need_weight)
        if grad_x is not None:
            grad_x = space_to_depth.join_input(grad_x, g, saved.in_shape)
        if grad_w is not None:
            grad_w = space_to_depth.outer_weight(grad_w, g, weight.shape)
        return grad_x, grad_w
    if saved.direct:
        if need_weight:
            grad_w = direct.grad_weight(grad, saved.cols, g, weight.shape)
        if need_x:
            grad_x = direct.grad_input(grad, weight, g, saved.in_shape)
        return grad_x, grad_w
    if saved.winograd:  # the forward's tiles: the input's gradient is the flipped forward
        if need_weight:
            grad_w = winograd3d.weight_grad(grad, saved.cols, g, weight.shape)
        if need_x:
            grad_x = _full_correlation(grad, weight, g, saved.in_shape[2:], may_decline=False)
        return grad_x, grad_w
    if saved.deferred and banded.trainable(saved.cols, weight, g):  # the forward's banded GEMMs
        if need_x:
            grad_x = banded.grad_input(grad, weight, g, saved.in_shape)
        if need_weight:
            grad_w = banded.grad_weight(grad, saved.cols, g, weight.shape)
        return grad_x, grad_w
    if saved.last and saved.deferred and need_weight and winograd.gradients_usable(saved.cols, weight, g):
        # Both in Winograd's domain (its numbers there): the forward's transposed transforms,
        # the output gradient's tiles shared by the two.
        return winograd.gradients(grad, saved.cols, weight, g, need_x=need_x)
    if need_x and shifted.grad_input_usable(weight, g):
        grad_x = shifted.grad_input(grad, weight, g, saved.in_shape)
    elif need_x and _flippable(g):
        grad_x = _full_correlation(grad, weight, g, saved.in_shape[2:])
    scatter = need_x and grad_x is None  # col2im: the taps' products added back where they read
    if saved.last:
        if need_weight and saved.deferred and (shifted.large(saved.cols, o, g, saved.out_sizes)
                                               or shifted.faster(c, g, saved.out_sizes)):
            # Measured at 2 threads against the blocks below (ms): 3×3×3 32 → 32 on 4×8×28×28
            # 10.2 → 8.7, 3×3 64 on 8×56×56 10.8 → 9.5, 128 on 16×28×28 17.4 → 16.4, ResNet's 16
            # on 32×32×32 2.71 → 2.24; up to IM2COL_MAX_POSITIONS the blocks won (16 on 32×16×16
            # 1.05 against 1.42, on 32×8×8 0.59 against 0.99). (Blocks of examples end to end
            # here gave nothing: 2.4–2.5 on 32×32×32 with 2–8 examples a GEMM.)
            grad_w = shifted.last_axis_weight_grad(grad, saved.cols, g, weight.shape)
        elif need_weight and saved.deferred:  # its columns gathered block by block, never whole
            grad_w = conv_grads.weight_deferred(grad, saved.cols, g, saved.out_sizes, weight.shape)
        kept = need_weight and not saved.deferred
        rows = rows_of(grad, groups) if scatter or kept else None  # (G, N·P, O/G)
        if rows is not None and kept:
            grad_w = conv_grads.weight_last(rows, saved.cols, weight.shape, groups)
        if rows is not None and scatter:
            full = tuple(s + 2 * p for s, p in zip(saved.in_shape[2:], g.padding, strict=True))
            if col2im.usable(g):  # (a ResNet stage's 3×3/2 on 16 channels of 32×32, batch 32: 7.1 → 3.4 ms)
                grad_x = col2im.by_phases(rows, weight, None, g, saved.out_sizes, full, saved.in_shape[2:],
                                          "its input's gradient")
            else:
                grad_x = _col2im_last(rows, weight, g, n, saved.out_sizes, full, g.padding,
                                      saved.in_shape[2:], "its input's gradient")
        return grad_x, grad_w
    if saved.deferred:  # a depthwise forward's: its input, no columns
        grad_x_here, grad_w = depthwise.padded_backward(grad, saved.cols, weight, g, need_x=scatter,
                                                         need_weight=need_weight)
        return (grad_x_here if scatter else grad_x), grad_w
    per_example = grad.reshape(n, groups, o // groups, -1)  # (N, G, O/G, P)
    if need_weight and saved.in_strips:  # no columns kept: gathered again, strip by strip
        grad_w = strips.weight_grad(grad, saved.cols, g, weight.shape)
    elif need_weight and saved.in_slices:  # ... or slice by slice
        grad_w = slices.weight_grad(grad, saved.cols, g, weight.shape)
    elif need_weight:
        grad_w = conv_grads.weight_first(per_example, saved.cols, weight,
                                         depthwise=im2col.depthwise_groups(weight, groups))
    if scatter:
        grad_x = _col2im_first(per_example, weight, g, saved.in_shape, saved.out_sizes)
    return grad_x, grad_w


def _col2im_first(per_example: np.ndarray, weight: np.ndarray, g: Geometry, in_shape: tuple[int, ...],
                  out_sizes: Sizes) -> np.ndarray:
    """The input's gradient from the output's (N, G, O/G, P): each example's taps' products
    (N, C, *K, *out) added back onto a zeroed padded input where they read, then cropped;
    chunks of the batch on their own threads."""
    n, c = in_shape[:2]
    groups, o = g.groups, weight.shape[0]
    kernels = weight.reshape(1, groups, o // groups, -1)
    full = tuple(s + 2 * p for s, p in zip(in_shape[2:], g.padding, strict=True))
    padded = np.zeros((n, c, *full), dtype=per_example.dtype)

    def run(b: slice) -> None:
        products = im2col.product(np.swapaxes(kernels, -1, -2), per_example[b], "gko,ngop->ngkp")
        shares: np.ndarray = products.reshape(b.stop - b.start, c, *g.kernel, *out_sizes)
        for offset in g.offsets():
            target = (b, slice(None), *g.taps(offset, out_sizes))
            source: tuple[Any, ...] = (slice(None), slice(None), *offset)
            padded[target] += shares[source]

    parallel.split(run, n, per_example.size * c * math.prod(g.kernel) // groups)
    crop = (slice(None), slice(None), *(slice(p, p + s) for p, s in zip(g.padding, in_shape[2:],
                                                                           strict=True)))
    return padded[crop] if any(g.padding) else padded
