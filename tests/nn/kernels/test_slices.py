"""``nn.kernels.slices``: a 3-D convolution whose columns are gathered once per input depth
slice, and its weight's gradient, against im2col's channels-first forward and backward, at any
block size; which calls take it; what it charges to the activation budget."""

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
from modelpack.nn.kernels import conv, parallel, slices
from modelpack.nn.kernels.columns import Geometry

# (input shape, weight shape, kernel, strides, padding, dilation)
GEOMETRIES = [
    ((2, 3, 5, 12, 13), (6, 3, 3, 3, 3), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)),  # a C3D stem
    ((2, 2, 9, 11, 10), (4, 2, 3, 3, 2), (3, 3, 2), (2, 2, 1), (1, 0, 1), (1, 2, 1)),  # strided depth
    ((3, 2, 6, 8, 8), (5, 2, 3, 1, 3), (3, 1, 3), (3, 1, 2), (0, 1, 2), (1, 1, 1)),  # stride over the kernel
    ((1, 2, 4, 6, 7), (3, 2, 1, 3, 3), (1, 3, 3), (1, 1, 1), (0, 0, 0), (1, 1, 1)),  # one depth tap, unpadded
]
PARAMETERS = ("shape", "wshape", "kernel", "strides", "padding", "dilation")


def _arrays(shape, wshape, seed):
    rng = np.random.default_rng(seed)
    wide = rng.standard_normal((*shape[:-1], 2 * shape[-1])).astype(np.float32)
    return wide[..., ::2], rng.standard_normal(wshape).astype(np.float32), rng


@pytest.mark.parametrize(PARAMETERS, GEOMETRIES)
@pytest.mark.parametrize("chunk_bytes", [1, 3000, 1 << 22])  # a depth a block; a few (the last short); all
def test_slices_compute_what_im2col_computes(shape, wshape, kernel, strides, padding, dilation, chunk_bytes,
                                             monkeypatch) -> None:
    """im2col's channels-first forward, to float32 rounding (within 1e-5: the GEMMs sum the
    taps in another order); the bias and the activation applied; a strided input read as is."""
    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(slices, "CHUNK_BYTES", chunk_bytes)
    x, w, rng = _arrays(shape, wshape, chunk_bytes)
    assert_forward_is_im2cols(slices.forward, x, w, Geometry(kernel, strides, padding, dilation), rng)


@pytest.mark.parametrize(PARAMETERS, GEOMETRIES)
@pytest.mark.parametrize("chunk_bytes", [1, 3000, 1 << 22])
def test_the_weight_gradient_is_im2cols(shape, wshape, kernel, strides, padding, dilation, chunk_bytes,
                                        monkeypatch) -> None:
    """``weight_grad`` gives the channels-first backward's weight gradient, at any thread count."""
    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(slices, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    x, w, rng = _arrays(shape, wshape, chunk_bytes)
    assert_weight_grad_is_im2cols(slices.weight_grad, x, w, Geometry(kernel, strides, padding, dilation), rng)


def _stem(depth_dilation: int = 1) -> tuple[nn.Conv3D, np.ndarray]:
    """A C3D-style stem whose columns are large (81 × 14,400 values an example)."""
    layer = nn.Conv3D(4, 3, padding=1, dilation=(depth_dilation, 1, 1), in_channels=3)
    layer.initialize(seed=0)
    return layer, np.random.default_rng(0).standard_normal((2, 3, 4 + 2 * depth_dilation, 60, 60)).astype(np.float32)


def test_large_3d_planes_go_in_slices(monkeypatch) -> None:
    """A C3D-style stem goes in slices, inference and training (keeping no columns: its backward
    gathers them again and gives the channels-first reference's gradients); dilated along the
    depth it goes in strips; a 2-D stem never."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, slices, "forward")
    grads = record_calls(monkeypatch, slices, "weight_grad")
    layer, x = _stem()
    layer(x)
    assert calls == [x.shape]
    dilated, y = _stem(depth_dilation=2)
    strip_calls = record_calls(monkeypatch, conv.strips, "forward")
    dilated(y)
    assert calls == [x.shape] and strip_calls == [y.shape]
    flat = nn.Conv2D(8, 7, strides=2, padding=3, in_channels=3)
    flat.initialize(seed=0)
    flat(np.ones((1, 3, 400, 400), np.float32))
    assert calls == [x.shape] and len(strip_calls) == 2
    w, g = layer.weight.array(), layer._geometry()
    out, saved = conv.forward(x, w, None, g, backward=True)
    assert calls == [x.shape, x.shape]
    assert saved.in_slices and saved.cols is x
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    grad_x, grad_w = conv.backward(grad, saved, w, g)
    assert grads == [grad.shape]
    reference = conv.backward(grad, conv.forward(x, w, None, g, last=False)[1], w, g)
    for ours, theirs in zip((grad_x, grad_w), reference, strict=True):
        assert ours is not None and theirs is not None
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * float(np.abs(theirs).max()))


@pytest.mark.parametrize("what", [slices.COLUMNS_CHARGE, "its output"])
def test_its_buffers_count_against_the_budget(what, monkeypatch) -> None:
    """The slices' buffers and the output are charged before they are made."""
    use_numpy_kernels(monkeypatch)
    assert_each_charge_refused(monkeypatch, slices, what, _stem)


def test_its_weight_gradient_products_count_against_the_budget() -> None:
    """``weight_grad``'s per-example products are charged before they are made: 40,000 examples
    of 3×1×1×1 (4 outputs × 81 taps each: 52 MB of products) under 32 MB are refused."""
    layer, _ = _stem()
    x = np.broadcast_to(np.ones((1, 3, 1, 1, 1), np.float32), (40000, 3, 1, 1, 1))
    g = layer._geometry()
    grad = np.ones((40000, 4, *g.out_sizes((1, 1, 1))), np.float32)
    assert_refused_by_budget(layer, x, 2**25, r"its examples' weight-gradient products",
                             lambda: slices.weight_grad(grad, x, g, layer.weight.shape))


@pytest.mark.parametrize(("shape", "kernel", "strides", "taken"), [
    ((2, 8, 6, 12, 12), 3, 1, True),  # small columns too (im2col's before)
    ((2, 8, 6, 32, 32), (1, 3, 3), (1, 2, 2), True),  # one depth tap: GEMMs a depth at a time still
    ((2, 8, 6, 14, 14), 3, 2, False),  # 7×7 output planes: im2col's one GEMM an example
])
def test_which_3d_convolutions_go_in_slices_at_inference(shape, kernel, strides, taken, monkeypatch) -> None:
    """Inference takes slices wherever ``MIN_PLANE`` holds (Winograd's 3-D path aside: 8
    channels are too few for it), giving im2col's outputs."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, slices, "forward")
    layer = nn.Conv3D(32, kernel, strides=strides, padding=1, in_channels=shape[1])
    layer.initialize(seed=0)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    out = layer(x)
    assert calls == ([x.shape] if taken else [])
    reference, _ = conv.forward(x, layer.weight.array(), layer.bias.array(), layer._geometry(), last=False)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)
