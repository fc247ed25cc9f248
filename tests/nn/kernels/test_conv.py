"""``nn.kernels.conv`` against a direct reference: for each kernel tap, the strided slice of the
padded input it reads, contracted with that tap's weights in float64 (no im2col, no layout
change, no GEMM over taps). Random shapes from hypothesis: 1–3 spatial axes, strides,
padding, dilation, groups (depthwise included), non-square kernels and inputs.

Tolerance: float32 results within ``atol=1e-4·scale, rtol=1e-4`` of the float64 reference,
``scale`` the largest reference magnitude (the kernels sum up to a few hundred float32
products in an order BLAS chooses). Both column layouts (channels last and first) are checked,
and the backward against the same reference's adjoint; the layers and their gradients also
against torch where it is installed.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack.nn.kernels import conv as kernels
from modelpack.nn.kernels import conv_grads, im2col
from modelpack.nn.kernels import transposed as transposed_kernels

RTOL, ATOL = 1e-4, 1e-4

T = TypeVar("T")


@st.composite
def geometries(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, ...], int, int, int]:
    """(geometry, input spatial sizes, batch, channels per group, outputs per group)."""
    dims = draw(st.integers(1, 3))
    kernel, strides, padding, dilation, sizes = [], [], [], [], []
    for _ in range(dims):
        k, s, d = draw(st.integers(1, 4 if dims < 3 else 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
        p = draw(st.integers(0, k))
        span = d * (k - 1) + 1
        for values, value in ((kernel, k), (strides, s), (padding, p), (dilation, d)):
            values.append(value)
        sizes.append(draw(st.integers(max(1, span - 2 * p), max(1, span - 2 * p) + (6 if dims < 3 else 2))))
    groups = draw(st.integers(1, 3))
    in_per_group = draw(st.sampled_from([1, 2, 5, 8]))
    out_per_group = draw(st.integers(1, 4))
    geometry = kernels.Geometry(tuple(kernel), tuple(strides), tuple(padding), tuple(dilation), groups)
    return geometry, tuple(sizes), draw(st.integers(1, 3)), in_per_group, out_per_group


def _padded(x: np.ndarray, padding: tuple[int, ...]) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), *((p, p) for p in padding)))


def _reads(g: kernels.Geometry, offset: tuple[int, ...], out: tuple[int, ...]) -> tuple[slice, ...]:
    """The padded input's positions tap ``offset`` reads, written out independently."""
    return (slice(None), slice(None), *(slice(j * d, j * d + (o - 1) * s + 1, s)
                                        for j, o, s, d in zip(offset, out, g.strides, g.dilation, strict=True)))


def reference_forward(x: np.ndarray, w: np.ndarray, g: kernels.Geometry) -> np.ndarray:
    x64, w64 = _padded(x.astype(np.float64), g.padding), w.astype(np.float64)
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    out_sizes = tuple((size - (d * (k - 1) + 1)) // s + 1 for size, k, s, d in
                      zip(x64.shape[2:], g.kernel, g.strides, g.dilation, strict=True))
    result = np.zeros((n, o, *out_sizes))
    og = o // g.groups
    for offset in itertools.product(*map(range, g.kernel)):
        part = x64[_reads(g, offset, out_sizes)]
        for group in range(g.groups):
            inputs = part[:, group * cg:(group + 1) * cg]
            taps = w64[(slice(group * og, (group + 1) * og), slice(None), *offset)]
            result[:, group * og:(group + 1) * og] += np.einsum("nc...,oc->no...", inputs, taps)
    return result


def reference_backward(x: np.ndarray, w: np.ndarray, grad: np.ndarray, g: kernels.Geometry
                       ) -> tuple[np.ndarray, np.ndarray]:
    """∂⟨out, grad⟩/∂x and /∂w, tap by tap, in float64."""
    x64, w64, g64 = _padded(x.astype(np.float64), g.padding), w.astype(np.float64), grad.astype(np.float64)
    o, cg = w.shape[:2]
    og = o // g.groups
    grad_x, grad_w = np.zeros_like(x64), np.zeros_like(w64)
    out_sizes = grad.shape[2:]
    for offset in itertools.product(*map(range, g.kernel)):
        reads = _reads(g, offset, out_sizes)
        for group in range(g.groups):
            gs, cs = slice(group * og, (group + 1) * og), slice(group * cg, (group + 1) * cg)
            inputs = x64[reads][:, cs]
            n = grad.shape[0]
            grad_w[(gs, slice(None), *offset)] += np.einsum(
                "nop,ncp->oc", g64[:, gs].reshape(n, og, -1), inputs.reshape(n, cg, -1))
            target = grad_x[reads]
            target[:, cs] += np.einsum("no...,oc->nc...", g64[:, gs], w64[(gs, slice(None), *offset)])
    crop = (slice(None), slice(None), *(slice(p, p + s) for p, s in zip(g.padding, x.shape[2:], strict=True)))
    return grad_x[crop], grad_w


def assert_near(ours: np.ndarray, expected: np.ndarray) -> None:
    assert ours.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=ATOL * scale)


def assert_backward_near(grad: np.ndarray, saved: kernels.Saved, x: np.ndarray, w: np.ndarray,
                         g: kernels.Geometry) -> None:
    """Both gradients of ``kernels.backward`` equal the float64 reference's."""
    grad_x, grad_w = kernels.backward(grad, saved, w, g)
    expected_x, expected_w = reference_backward(x, w, grad, g)
    assert_near(grad_x, expected_x)
    assert_near(grad_w, expected_w)


def assert_forward_and_gradients_near(x: np.ndarray, w: np.ndarray, bias: np.ndarray, g: kernels.Geometry, *,
                                      training: bool) -> kernels.Saved:
    """``kernels.forward`` (with ``bias``) equals the float64 reference's, a fresh C-contiguous
    array; in ``training``, both gradients too (``assert_backward_near``), and each alone when
    the other is not asked for. Returns what the forward saved (the path it took)."""
    out, saved = kernels.forward(x, w, bias, g, backward=training)
    assert out.shape == (x.shape[0], w.shape[0], *g.out_sizes(x.shape[2:])) and out.flags.c_contiguous
    assert_near(out, reference_forward(x, w, g) + bias.reshape(1, -1, *(1,) * (x.ndim - 2)))
    if training:
        grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
        assert_backward_near(grad, saved, x, w, g)
        assert kernels.backward(grad, saved, w, g, need_x=False)[0] is None
        assert kernels.backward(grad, saved, w, g, need_weight=False)[1] is None
    return saved


def use_numpy_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy kernels, whatever is installed (numba's loops take some shapes first)."""
    from modelpack.nn.kernels import backend

    monkeypatch.setattr(backend, "_chosen", "numpy")
    monkeypatch.setattr(backend, "_module", None)


def record_calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[tuple[int, ...]]:
    """The shape of the first argument of each call of ``module.name`` (which still runs)."""
    calls: list[tuple[int, ...]] = []
    original = getattr(module, name)
    monkeypatch.setattr(module, name, lambda first, *args, **kwargs: calls.append(first.shape)
                        or original(first, *args, **kwargs))
    return calls


def at_thread_counts(call: Callable[[], T]) -> list[T]:
    """``call()`` at 1 and then 2 of ``parallel``'s threads (the count put back)."""
    from modelpack.nn.kernels import parallel

    before = parallel.threads()
    try:
        results = []
        for threads in (1, 2):
            parallel.set_threads(threads)
            results.append(call())
    finally:
        parallel.set_threads(before)
    return results


def backward_at_thread_counts(grad: np.ndarray, saved: kernels.Saved, w: np.ndarray, g: kernels.Geometry
                              ) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """``kernels.backward`` at 1 and then 2 of ``parallel``'s threads."""
    return at_thread_counts(lambda: kernels.backward(grad, saved, w, g))


@functools.cache
def blas_rows_independent() -> bool:
    """Whether numpy's BLAS gives each row of a product the same bits however many rows the
    call has (probed on one thread, as split passes run their GEMMs). OpenBLAS's kernels for
    most CPUs do; its Haswell kernels (``OPENBLAS_CORETYPE=Haswell``) do not, and there a
    product split over the batch differs from the whole one in the last bits."""
    from modelpack.nn.kernels import blas

    rng = np.random.default_rng(0)
    with blas.serial():
        for m, n, k in ((96, 8, 27), (486, 8, 144), (60, 300, 70)):
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((k, n)).astype(np.float32)
            if not np.array_equal(a @ b, np.concatenate([a[: m // 3] @ b, a[m // 3:] @ b])):
                return False
    return True


def assert_split_equal(split: np.ndarray, whole: np.ndarray, err_msg: str = "") -> None:
    """A result computed with its GEMMs split over the batch equals the whole one: bit for bit
    when the BLAS allows (``blas_rows_independent``), else to float32 rounding of the sums
    (relative 1e-5 of the largest value)."""
    if blas_rows_independent():
        np.testing.assert_array_equal(split, whole, err_msg=err_msg)
    else:
        scale = float(np.max(np.abs(whole))) if whole.size else 0.0
        np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-5 * scale, err_msg=err_msg)


def assert_refused_by_budget(layer: object, x: np.ndarray, limit: int, what: str, run: Callable[[], object]) -> None:
    """``run()`` inside ``layer``'s call with ``limit`` bytes of activations is refused, naming
    the file (hostile.mpk) and ``what`` (a pattern) it would have allocated."""
    from modelpack.errors import LimitError
    from modelpack.io.limits import Limits
    from modelpack.nn.budget import ActivationBudget, guarded_call, limit_activations

    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=limit)))
    with pytest.raises(LimitError, match=rf"hostile\.mpk: .*{what}"):
        guarded_call(layer, layer._activation_guard, (x,), forward=lambda _: run())  # type: ignore[attr-defined]


def assert_each_charge_refused(monkeypatch: pytest.MonkeyPatch, module: object, what: str,
                                make: Callable[[], tuple[object, np.ndarray]]) -> None:
    """A call of the layer ``make()`` builds (on its input) charges ``what`` through ``module``'s
    budget before allocating it: a budget that holds every charge before it but only half of it
    refuses the call, naming it and the file."""
    charged: list[tuple[int, str]] = []
    budget = module.budget  # type: ignore[attr-defined]
    original = budget.charge
    monkeypatch.setattr(budget, "charge", lambda size, name: charged.append((size, name)) or original(size, name))
    layer, x = make()
    layer(x)  # type: ignore[operator]
    at = [name for _, name in charged].index(what)
    before = sum(size for size, _ in charged[:at])
    layer, x = make()
    assert_refused_by_budget(layer, x, before + charged[at][0] // 2, what, lambda: layer(x))  # type: ignore[operator]


def assert_forward_is_im2cols(forward: Callable[..., np.ndarray], x: np.ndarray, w: np.ndarray,
                              g: kernels.Geometry, rng: np.random.Generator) -> None:
    """``forward(x, w, bias, g, out_sizes[, activation])`` gives im2col's channels-first forward
    to float32 rounding (within 1e-5: its GEMMs may sum in another order), with a bias, without
    one, and with an activation applied in place."""
    from modelpack.nn.activations import relu_into

    bias = rng.standard_normal(w.shape[0]).astype(np.float32)
    out_sizes = g.out_sizes(x.shape[2:])
    reference, _ = kernels.forward(x, w, bias, g, last=False)
    near = {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(forward(x, w, bias, g, out_sizes), reference, **near)
    np.testing.assert_allclose(forward(x, w, None, g, out_sizes), kernels.forward(x, w, None, g, last=False)[0],
                               **near)
    activated = forward(x, w, bias, g, out_sizes, lambda a: relu_into(a, a))
    np.testing.assert_allclose(activated, np.maximum(reference, 0), **near)


def assert_weight_grad_is_im2cols(weight_grad: Callable[..., np.ndarray], x: np.ndarray, w: np.ndarray,
                                  g: kernels.Geometry, rng: np.random.Generator) -> None:
    """``weight_grad(grad, x, g, w.shape)`` gives the channels-first backward's weight gradient
    (within 1e-5 of its largest value: other blocks of positions are summed), and the same bits
    whether the batch is split over 2 threads or runs on 1."""
    out, saved = kernels.forward(x, w, None, g, last=False)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    reference = kernels.backward(grad, saved, w, g, need_x=False)[1]
    assert reference is not None
    results = at_thread_counts(lambda: weight_grad(grad, x, g, w.shape))
    np.testing.assert_allclose(results[0], reference, rtol=1e-5, atol=1e-5 * float(np.abs(reference).max()))
    np.testing.assert_array_equal(results[0], results[1])


def _draw_arrays(data: st.DataObject, g: kernels.Geometry, sizes: tuple[int, ...], batch: int,
                 cg: int, og: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((batch, cg * g.groups, *sizes)).astype(np.float32)
    w = rng.standard_normal((og * g.groups, cg, *g.kernel)).astype(np.float32)
    return x, w


@settings(max_examples=60, deadline=None)
@given(drawn=geometries(), data=st.data(), last=st.booleans(), with_bias=st.booleans())
def test_forward_and_backward_match_the_direct_reference(drawn, data, last, with_bias) -> None:
    g, sizes, batch, cg, og = drawn
    x, w = _draw_arrays(data, g, sizes, batch, cg, og)
    bias = np.linspace(-1, 1, og * g.groups, dtype=np.float32) if with_bias else None
    out, saved = kernels.forward(x, w, bias, g, last=last)
    expected = reference_forward(x, w, g) + (0 if bias is None else bias.reshape(1, -1, *(1,) * len(sizes)))
    assert out.dtype == np.float32
    assert_near(out, expected)

    grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    grad_x, grad_w = kernels.backward(grad, saved, w, g)
    expected_x, expected_w = reference_backward(x, w, grad, g)
    assert grad_x is not None and grad_w is not None
    assert_near(grad_x, expected_x)
    assert_near(grad_w, expected_w)
    assert_near(conv_grads.bias(grad), grad.astype(np.float64).sum(axis=(0, *range(2, grad.ndim))))


@settings(max_examples=40, deadline=None)
@given(drawn=geometries(), data=st.data(), left=st.booleans())
def test_a_channels_first_weight_gradient_either_way_round(drawn, data, left) -> None:
    """The weight's gradient from channels-first columns, the columns on the left of the
    product (``COLUMNS_LEFT_MIN_POSITIONS``) or the output's gradient: grouped, strided,
    dilated, 1–3 axes, against the reference."""
    g, sizes, batch, cg, og = drawn
    x, w = _draw_arrays(data, g, sizes, batch, cg, og)
    out, saved = kernels.forward(x, w, None, g, last=False)
    grad = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_grads, "COLUMNS_LEFT_MIN_POSITIONS", 0 if left else 1 << 60)
        grad_w = kernels.backward(grad, saved, w, g, need_x=False)[1]
    assert grad_w is not None and grad_w.shape == w.shape
    assert_near(grad_w, reference_backward(x, w, grad, g)[1])


@settings(max_examples=40, deadline=None)
@given(drawn=geometries(), data=st.data())
def test_transposed_convolution_is_the_adjoint(drawn, data) -> None:
    """⟨conv(x), y⟩ = ⟨x, conv_transpose(y)⟩ with the same weight, and the transpose's own
    gradients are the convolution's (reference) forward and weight gradient."""
    g, sizes, batch, cg, og = drawn
    x, w = _draw_arrays(data, g, sizes, batch, cg, og)
    out_sizes = reference_forward(x, w, g).shape[2:]
    y = np.random.default_rng(2).standard_normal((batch, og * g.groups, *out_sizes)).astype(np.float32)
    # Output padding makes the transposed output cover x's trailing positions the conv skipped.
    output_padding = tuple(n + 2 * p - ((o - 1) * s + d * (k - 1) + 1) for n, p, o, s, d, k in
                           zip(sizes, g.padding, out_sizes, g.strides, g.dilation, g.kernel, strict=True))
    if any(a >= s for a, s in zip(output_padding, g.strides, strict=True)):
        return  # not expressible as a transposed convolution (MXNet's output_padding < stride)
    transposed = transposed_kernels.transpose_forward(y, w, None, g, output_padding)
    expected, _ = reference_backward(x, w, y, g)
    assert_near(transposed, expected)

    grad = np.random.default_rng(3).standard_normal(transposed.shape).astype(np.float32)
    grad_y, grad_w = transposed_kernels.transpose_backward(grad, y, w, g)
    assert grad_y is not None and grad_w is not None
    assert_near(grad_y, reference_forward(grad, w, g))
    _, expected_w = reference_backward(grad, w, y, g)  # the weight's gradient of ⟨conv(grad), y⟩
    assert_near(grad_w, expected_w)
    # A first layer's: the weight's alone (its own path, no input's gradient made first)
    no_x, alone = transposed_kernels.transpose_backward(grad, y, w, g, need_x=False)
    assert no_x is None and alone is not None
    assert_near(alone, expected_w)
    assert transposed_kernels.transpose_backward(grad, y, w, g, need_x=False, need_weight=False) == (None, None)


@pytest.mark.parametrize(("kernel", "strides", "groups"), [
    ((4, 4), (2, 2), 1), ((4, 4), (2, 2), 2), ((4,), (2,), 1), ((3,), (2,), 3), ((2, 3, 2), (2, 1, 2), 2),
])
def test_a_transposed_first_layer_takes_the_weight_gradient_alone_on_numpy(kernel, strides, groups) -> None:
    """Without the input's gradient, the weight's comes from the gradient's columns directly
    (ungrouped block by block, grouped strip by strip): against the reference on numpy's path."""
    from modelpack.nn.kernels import backend

    dims = len(kernel)
    g = kernels.Geometry(kernel, strides, (1,) * dims, (1,) * dims, groups)
    rng = np.random.default_rng(4)
    y = rng.standard_normal((3, 2 * groups, *(5,) * dims)).astype(np.float32)
    w = rng.standard_normal((2 * groups, 3, *kernel)).astype(np.float32)
    before = backend.name()
    try:
        backend.use("numpy")
        transposed = transposed_kernels.transpose_forward(y, w, None, g, (0,) * dims)
        grad = rng.standard_normal(transposed.shape).astype(np.float32)
        no_x, grad_w = transposed_kernels.transpose_backward(grad, y, w, g, need_x=False)
    finally:
        backend.use(before)
    assert no_x is None and grad_w is not None
    assert_near(grad_w, reference_backward(grad, w, y, g)[1])


def test_the_layout_heuristic() -> None:
    assert not kernels.channels_last(3, (3, 3), 1024)  # few channels
    assert not kernels.channels_last(64, (1, 1), 64)  # 1×1
    assert kernels.channels_last(16, (3, 3), 1024)
    assert kernels.channels_last(8, (3, 3), 1024)  # a few channels of a small map
    assert not kernels.channels_last(3, (7, 7), 112 * 112)  # a stem's: few channels, a large map
    assert not kernels.channels_last(8, (3, 3), 64 * 64)
    assert kernels.channels_last(16, (3, 3), 64 * 64)
    assert not kernels.channels_last(16, (3, 3), 1024, backward=False)  # inference, large maps
    assert kernels.channels_last(64, (3, 3), 64, backward=False)
    assert kernels.channels_last(16, (3, 3), 256, backward=False)  # (ResNet's 3×3/2 on 32×32)
    assert not kernels.channels_last(16, (3, 3), 257, backward=False)
    # grouped: channels first at inference, and in training with few channels a group
    assert not kernels.channels_last(16, (3, 3), 196, backward=False, groups=32)
    assert kernels.channels_last(16, (3, 3), 196, groups=32)
    assert not kernels.channels_last(8, (3, 3), 196, groups=32)
    assert kernels.channels_last(8, (3, 3), 196)  # (ungrouped, the same shape: last)
    # windows side by side (a ViT's patches): channels first at inference only
    assert not kernels.channels_last(3, (16, 16), 196, backward=False, strides=(16, 16))
    assert kernels.channels_last(3, (16, 16), 196, strides=(16, 16))
    assert kernels.channels_last(16, (3, 3), 196, backward=False, strides=(2, 2))


@settings(max_examples=25, deadline=None)
@given(drawn=geometries(), data=st.data(), wide=st.booleans())
def test_layers_and_gradients_match_torch(drawn, data, wide) -> None:
    """The layers through autograd (the kernels' default layout choice, wide channels included
    so that channels-last columns are taken) against torch's functional convolution, float32
    on both sides; same tolerance as against the reference."""
    torch = pytest.importorskip("torch")
    from modelpack import autograd, nn

    g, sizes, batch, cg, og = drawn
    if wide:
        cg, og = cg * 4, og * 4
    dims = len(sizes)
    x, w = _draw_arrays(data, g, sizes, batch, cg, og)
    layer = {1: nn.Conv1D, 2: nn.Conv2D, 3: nn.Conv3D}[dims](
        og * g.groups, g.kernel, strides=g.strides, padding=g.padding, dilation=g.dilation, groups=g.groups,
        in_channels=cg * g.groups)
    layer.initialize()
    layer.weight.set_data(w)
    layer.bias.set_data(np.linspace(-1, 1, og * g.groups, dtype=np.float32))
    variable = autograd.Variable(x)
    with autograd.record():
        out = layer(variable)
    head = np.random.default_rng(4).standard_normal(out.shape).astype(np.float32)
    out.backward(head)

    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(layer.bias.data(), requires_grad=True)
    conv = getattr(torch.nn.functional, f"conv{dims}d")
    expected = conv(tx, tw, tb, stride=g.strides, padding=g.padding, dilation=g.dilation, groups=g.groups)
    expected.backward(torch.tensor(head))
    assert_near(out.value, expected.detach().numpy().astype(np.float64))
    assert_near(variable.grad, tx.grad.numpy().astype(np.float64))
    assert_near(layer.weight.grad(), tw.grad.numpy().astype(np.float64))
    assert_near(layer.bias.grad(), tb.grad.numpy().astype(np.float64))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("last", [True, False])
def test_depthwise_against_the_reference(dims, multiplier, last) -> None:
    """Depthwise (one input channel per group) at stride 1 and 2, the shapes MobileNet-style
    blocks use: both layouts, forward and backward (stride 1 takes the flipped correlation)."""
    rng = np.random.default_rng(dims * 10 + multiplier)
    for strides, dilation in (((1,) * dims, (1,) * dims), ((2,) * dims, (1,) * dims), ((1,) * dims, (2,) * dims)):
        g = kernels.Geometry((3,) * dims, strides, (1,) * dims, dilation, 6)
        x = rng.standard_normal((2, 6, *(7,) * dims)).astype(np.float32)
        w = rng.standard_normal((6 * multiplier, 1, *(3,) * dims)).astype(np.float32)
        out, saved = kernels.forward(x, w, None, g, last=last)
        assert_near(out, reference_forward(x, w, g))
        grad = rng.standard_normal(out.shape).astype(np.float32)
        grad_x, grad_w = kernels.backward(grad, saved, w, g)
        expected_x, expected_w = reference_backward(x, w, grad, g)
        assert grad_x is not None and grad_w is not None
        assert_near(grad_x, expected_x)
        assert_near(grad_w, expected_w)


@pytest.mark.parametrize(("strides", "padding", "groups", "taken"), [
    ((1, 1), (0, 0), 1, True),  # MobileNet's pointwise convolution
    ((1, 1), (0, 0), 2, True),
    ((2, 2), (0, 0), 1, False),  # strided: its columns subsample the input
    ((1, 1), (1, 0), 1, False),  # padded: its columns are the padded input
])
def test_a_pointwise_inference_reads_its_input_in_place(monkeypatch, strides, padding, groups, taken) -> None:
    """An inference call of a 1×1 convolution at stride 1, unpadded, multiplies the input
    itself, bit for bit as its columns do (on the numpy kernels: numba's loops take a narrow
    grouped one first)."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, im2col, "forward_pointwise")
    rng = np.random.default_rng(7)
    g = kernels.Geometry((1, 1), strides, padding, (1, 1), groups)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, 1, 1)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    out, _ = kernels.forward(x, w, bias, g, backward=False)
    assert bool(calls) is taken
    expected, _ = kernels.forward(x, w, bias, g, last=False)
    np.testing.assert_array_equal(out, expected)
    reference = reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1)
    assert_near(out, reference)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize(("channels", "kernel", "side"), [
    (1, 5, 12),  # channels first (LeNet's first convolution)
    (6, 5, 9),  # channels last (its second)
    (8, 1, 6),  # pointwise, inference
    (16, 3, 9),  # shifted, inference
])
def test_a_convolutions_own_activation_runs_in_place_on_its_output(activation, channels, kernel, side) -> None:
    """A ReLU or sigmoid of the layer's own, applied by the kernel to each chunk of its output,
    gives the bits the activation layer after it gives, in inference and in training (the
    output and the input's and weight's gradients)."""
    from modelpack import autograd, nn

    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, channels, side, side)).astype(np.float32)
    layer = nn.Conv2D(4, kernel, activation=activation, in_channels=channels)
    chain = nn.Sequential()
    chain.add(nn.Conv2D(4, kernel, in_channels=channels), nn.Activation(activation))
    layer.initialize(seed=0)
    chain.initialize(seed=0)
    chain[0].weight.set_data(layer.weight.data())
    chain[0].bias.set_data(layer.bias.data() + 0.1)
    layer.bias.set_data(layer.bias.data() + 0.1)
    np.testing.assert_array_equal(layer(x), chain(x))
    head = rng.standard_normal(layer(x).shape).astype(np.float32)
    results = []
    for net, conv in ((layer, layer), (chain, chain[0])):
        variable = autograd.Variable(x)
        with autograd.record():
            out = net(variable)
        out.backward(head)
        results.append((out.value, variable.grad, conv.weight.grad()))
    for ours, theirs in zip(*results, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_an_activation_of_recorded_operands_is_not_in_place(monkeypatch, activation) -> None:
    """A convolution run op by op under recording (its forward replaced: no layer rule), its
    weight a recorded operand, applies its activation to the whole output as before."""
    from modelpack import autograd, nn

    layer = nn.Conv2D(4, 3, activation=activation, in_channels=3)
    layer.initialize(seed=0)
    x = np.random.default_rng(9).standard_normal((2, 3, 8, 8)).astype(np.float32)
    expected = layer(x)
    original = nn.Conv2D.forward
    monkeypatch.setattr(nn.Conv2D, "forward", lambda self, *args: original(self, *args))
    with autograd.record():
        out = layer(x)
    np.testing.assert_allclose(np.asarray(getattr(out, "value", out)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 5, 7, 6), (1, 4, 9), (2, 3, 2, 3, 5)])
def test_the_bias_gradient_split_over_channels_has_the_same_bits(monkeypatch, shape) -> None:
    """From ``BIAS_SPLIT_POSITIONS`` and ``BIAS_SPLIT_VALUES`` on, channels are summed on the
    threads: each channel's sum the same as whole (a non-contiguous gradient too)."""
    from modelpack.nn.kernels import parallel

    grad = np.random.default_rng(9).standard_normal((*shape[:1], *shape[2:], shape[1])).astype(np.float32)
    grad = np.moveaxis(grad, -1, 1)
    whole = conv_grads.bias(grad)
    before = parallel.threads()
    try:
        parallel.set_threads(2)
        monkeypatch.setattr(conv_grads, "BIAS_SPLIT_POSITIONS", 0)
        monkeypatch.setattr(conv_grads, "BIAS_SPLIT_VALUES", 0)
        calls: list[int] = []
        original = parallel._in_parallel
        monkeypatch.setattr(parallel, "_in_parallel", lambda run, chunks: calls.append(len(chunks)) or original(run, chunks))
        split = conv_grads.bias(grad)
    finally:
        parallel.set_threads(before)
    assert calls == [2]  # the channels went to the threads
    np.testing.assert_array_equal(split, whole)
    assert_near(split, grad.astype(np.float64).sum(axis=(0, *range(2, grad.ndim))))


@pytest.mark.parametrize(("in_sizes", "kernel", "strides", "padding", "dilation", "expected"), [
    ((7, 9), (3, 3), (1, 1), (1, 1), (1, 1), (7, 9)),
    ((7, 9), (3, 5), (2, 3), (0, 2), (2, 1), (2, 3)),
    ((5,), (5,), (1,), (0,), (1,), (1,)),
    ((1, 1), (3, 3), (4096, 4096), (4000, 4000), (1, 1), (2, 2)),
])
def test_out_sizes(in_sizes, kernel, strides, padding, dilation, expected) -> None:
    """(n + 2p − (d·(k − 1) + 1)) // s + 1 per axis."""
    assert kernels.Geometry(kernel, strides, padding, dilation).out_sizes(in_sizes) == expected


def test_an_input_smaller_than_the_kernels_extent_is_refused() -> None:
    from modelpack.errors import InputError

    g = kernels.Geometry((3, 5), (1, 1), (0, 1), (1, 2))
    with pytest.raises(InputError, match=r"^input of spatial size \(2, 11\) \(after padding\) is smaller than "
                                         r"the kernel's extent \(3, 9\)$"):
        g.out_sizes((2, 9))
    with pytest.raises(InputError, match=r"spatial size \(3, 8\) .* extent \(3, 9\)$"):
        g.out_sizes((3, 6))
