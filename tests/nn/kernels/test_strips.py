"""``nn.kernels.strips``: an inference convolution over large planes in strips of output rows,
against im2col's channels-first forward (the reference its GEMMs repeat strip by strip), at
any strip size; which calls take it; what it charges to the activation budget."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv import record_calls, use_numpy_kernels

from modelpack import nn
from modelpack.errors import LimitError
from modelpack.io.limits import Limits
from modelpack.nn.activations import relu_into
from modelpack.nn.budget import ActivationBudget, limit_activations
from modelpack.nn.kernels import conv, strips
from modelpack.nn.kernels.columns import Geometry

# (input shape, weight shape, kernel, strides, padding, dilation, groups)
GEOMETRIES = [
    ((2, 3, 30, 31), (8, 3, 7, 7), (7, 7), (2, 2), (3, 3), (1, 1), 1),  # a 7×7/2 stem
    ((2, 4, 5, 12, 13), (6, 4, 3, 3, 3), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),  # a C3D stem
    ((2, 6, 17, 19), (12, 3, 3, 3), (3, 3), (1, 2), (2, 1), (2, 1), 2),  # groups, dilation, strides
    ((3, 4, 200), (6, 4, 5), (5,), (1,), (2,), (1,), 1),  # 1-D
    ((1, 2, 9, 9), (4, 2, 3, 3), (3, 3), (1, 1), (0, 0), (1, 1), 1),  # unpadded: the input itself
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
    wide = rng.standard_normal((*shape[:-1], 2 * shape[-1])).astype(np.float32)
    x = wide[..., ::2]
    w = rng.standard_normal(wshape).astype(np.float32)
    bias = rng.standard_normal(wshape[0]).astype(np.float32)
    g = Geometry(kernel, strides, padding, dilation, groups)
    out_sizes = g.out_sizes(x.shape[2:])
    reference, _ = conv.forward(x, w, bias, g, last=False)
    near = {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(strips.forward(x, w, bias, g, out_sizes), reference, **near)
    np.testing.assert_allclose(strips.forward(x, w, None, g, out_sizes),
                               conv.forward(x, w, None, g, last=False)[0], **near)
    activated = strips.forward(x, w, bias, g, out_sizes, lambda a: relu_into(a, a))
    np.testing.assert_allclose(activated, np.maximum(reference, 0), **near)


def _stem(side: int) -> tuple[nn.Conv2D, np.ndarray]:
    layer = nn.Conv2D(8, 7, strides=2, padding=3, in_channels=3)
    layer.initialize(seed=0)
    return layer, np.ones((2, 3, side, side), np.float32)


def test_only_inference_on_large_planes_goes_in_strips(monkeypatch) -> None:
    """A stem's inference on 3×400×400 (147 × 40,000 column values an example) goes in strips;
    on 3×64×64 (147 × 1,024) it stays on im2col, and so does a forward that will be
    differentiated (its backward reads whole columns)."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, strips, "forward")
    layer, x = _stem(400)
    layer(x)
    assert calls == [x.shape]
    small, y = _stem(64)
    small(y)
    assert calls == [x.shape]
    w = layer.weight.data()
    conv.forward(x, w, None, layer._geometry(), backward=True)
    assert calls == [x.shape]


@pytest.mark.parametrize("what", ["its strips of columns", "its output"])
def test_its_buffers_count_against_the_budget(what, monkeypatch) -> None:
    """The strips' buffers and the output are charged before they are made: a budget that
    holds what comes before but not the named one refuses the call, naming it and the file."""
    use_numpy_kernels(monkeypatch)
    charged: list[tuple[int, str]] = []
    original = strips.budget.charge
    monkeypatch.setattr(strips.budget, "charge", lambda size, what: charged.append((size, what)) or original(size, what))
    layer, x = _stem(400)
    layer(x)
    at = [name for _, name in charged].index(what)
    padding = sum(size for size, name in charged[:at])
    layer, x = _stem(400)
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=padding + charged[at][0] // 2)))
    with pytest.raises(LimitError, match=rf"hostile\.mpk: .*{what}"):
        layer(x)
