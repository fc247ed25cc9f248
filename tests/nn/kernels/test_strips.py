"""``nn.kernels.strips``: a convolution over large planes in strips of output rows, and its
weight's gradient, against im2col's channels-first forward and backward (the reference its
GEMMs repeat strip by strip), at any strip size; which calls take it; what it charges to the
activation budget."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv import (
    assert_each_charge_refused,
    assert_forward_is_im2cols,
    assert_refused_by_budget,
    assert_weight_grad_is_im2cols,
    record_calls,
    use_numpy_kernels,
)

from modelpack import nn
from modelpack.nn.kernels import conv, parallel, strips
from modelpack.nn.kernels.columns import Geometry

# (input shape, weight shape, kernel, strides, padding, dilation, groups)
GEOMETRIES = [
    ((2, 3, 30, 31), (8, 3, 7, 7), (7, 7), (2, 2), (3, 3), (1, 1), 1),  # a 7×7/2 stem
    ((2, 4, 5, 12, 13), (6, 4, 3, 3, 3), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),  # a C3D stem
    ((2, 6, 17, 19), (12, 3, 3, 3), (3, 3), (1, 2), (2, 1), (2, 1), 2),  # groups, dilation, strides
    ((3, 4, 200), (6, 4, 5), (5,), (1,), (2,), (1,), 1),  # 1-D
    ((1, 2, 9, 9), (4, 2, 3, 3), (3, 3), (1, 1), (0, 0), (1, 1), 1),  # unpadded: the input itself
    ((2, 2, 11, 10), (4, 2, 2, 5), (2, 5), (3, 2), (1, 2), (2, 3), 1),  # taps in some phases only
]


@pytest.mark.parametrize(("shape", "wshape", "kernel", "strides", "padding", "dilation", "groups"), GEOMETRIES)
@pytest.mark.parametrize("strip_bytes", [1, 700, 1 << 22])  # a row a strip; a few (the last short); all
def test_strips_compute_what_im2col_computes(shape, wshape, kernel, strides, padding, dilation, groups,
                                             strip_bytes, monkeypatch) -> None:
    """im2col's channels-first forward, to float32 rounding (within 1e-5: BLAS may sum a
    strip's narrower GEMM in another order); the bias and the activation applied per strip; a
    strided (non-contiguous) input read as is."""
    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(strips, "STRIP_BYTES", strip_bytes)
    rng = np.random.default_rng(len(shape) + strip_bytes)
    x = rng.standard_normal((*shape[:-1], 2 * shape[-1])).astype(np.float32)[..., ::2]
    w = rng.standard_normal(wshape).astype(np.float32)
    assert_forward_is_im2cols(strips.forward, x, w, Geometry(kernel, strides, padding, dilation, groups), rng)


@pytest.mark.parametrize(("shape", "wshape", "kernel", "strides", "padding", "dilation", "groups"), GEOMETRIES)
@pytest.mark.parametrize("strip_bytes", [1, 700, 1 << 22])
def test_the_weight_gradient_is_im2cols(shape, wshape, kernel, strides, padding, dilation, groups, strip_bytes,
                                        monkeypatch) -> None:
    """``weight_grad`` gives the channels-first backward's weight gradient, at any thread count."""
    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(strips, "STRIP_BYTES", strip_bytes)
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    rng = np.random.default_rng(len(shape) + strip_bytes)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(wshape).astype(np.float32)
    assert_weight_grad_is_im2cols(strips.weight_grad, x, w, Geometry(kernel, strides, padding, dilation, groups),
                                  rng)


def _stem(side: int) -> tuple[nn.Conv2D, np.ndarray]:
    layer = nn.Conv2D(8, 7, strides=2, padding=3, in_channels=3)
    layer.initialize(seed=0)
    return layer, np.random.default_rng(side).standard_normal((2, 3, side, side)).astype(np.float32)


def test_large_planes_go_in_strips(monkeypatch) -> None:
    """A stem on 3×400×400 (147 × 40,000 column values an example) goes in strips, inference
    and training (keeping no columns: its backward gathers them again, and gives the
    channels-first reference's gradients); on 3×64×64 (147 × 1,024) it stays on im2col."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, strips, "forward")
    grads = record_calls(monkeypatch, strips, "weight_grad")
    layer, x = _stem(400)
    layer(x)
    assert calls == [x.shape]
    small, y = _stem(64)
    small(y)
    assert calls == [x.shape]
    w = layer.weight.array()
    g = layer._geometry()
    out, saved = conv.forward(x, w, None, g, backward=True)
    assert calls == [x.shape, x.shape]
    assert saved.in_strips and saved.cols is x
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    grad_x, grad_w = conv.backward(grad, saved, w, g)
    assert grads == [grad.shape]
    reference = conv.backward(grad, conv.forward(x, w, None, g, last=False)[1], w, g)
    for ours, theirs in zip((grad_x, grad_w), reference, strict=True):
        assert ours is not None and theirs is not None
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * float(np.abs(theirs).max()))


def test_its_weight_gradient_products_count_against_the_budget() -> None:
    """``weight_grad``'s per-example products are charged before they are made: 20,000 examples
    of 3×1×1 (15 MB of phase planes, 94 MB of products) under 32 MB are refused, naming the
    products."""
    layer, _ = _stem(8)
    x = np.broadcast_to(np.ones((1, 3, 1, 1), np.float32), (20000, 3, 1, 1))  # many examples, 12 bytes held
    g = layer._geometry()
    grad = np.ones((20000, 8, *g.out_sizes((1, 1))), np.float32)
    assert_refused_by_budget(layer, x, 2**25, r"its examples' weight-gradient products",
                             lambda: strips.weight_grad(grad, x, g, layer.weight.shape))


@pytest.mark.parametrize("what", ["its strips of columns", "its output"])
def test_its_buffers_count_against_the_budget(what, monkeypatch) -> None:
    """The strips' buffers and the output are charged before they are made."""
    use_numpy_kernels(monkeypatch)
    assert_each_charge_refused(monkeypatch, strips, what, lambda: _stem(400))
