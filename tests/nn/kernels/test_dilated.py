"""``nn.kernels.dilated``: a dilated stride-1 convolution run on the input's phases, against the
float64 tap-by-tap reference of ``test_conv``; its four maps are two pairs of transposes.

Tolerance: float32 within ``test_conv.assert_near``'s (the phases' convolution runs on
Winograd's transforms, ``test_winograd``'s numbers); the maps move values and are checked as
exact adjoints in float64."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv import (
    assert_forward_and_gradients_near,
    assert_near,
    assert_refused_by_budget,
    record_calls,
    reference_forward,
    use_numpy_kernels,
)

from modelpack import nn
from modelpack.nn.kernels import backend, dilated, parallel, winograd
from modelpack.nn.kernels import conv as kernels


def _case(seed: int, batch: int, c: int, o: int, sizes: tuple[int, int], padding: tuple[int, int],
          dilation: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, kernels.Geometry]:
    rng = np.random.default_rng(seed)
    g = kernels.Geometry((3, 3), (1, 1), padding, dilation)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    return x, w, rng.standard_normal(o).astype(np.float32), g


@pytest.mark.parametrize(("sizes", "padding", "dilation"), [
    ((20, 20), (2, 2), (2, 2)),  # 'same' padding, phases of 10
    ((17, 19), (2, 2), (2, 2)),  # odd outputs: phases of 9 and 8, 10 and 9
    ((30, 30), (3, 3), (3, 2)),  # a dilation per axis
    ((22, 21), (0, 1), (2, 2)),  # less padding than the reach: a smaller output
    ((18, 18), (5, 5), (2, 2)),  # more: phases reading only padding at the edges
])
@pytest.mark.parametrize("training", [True, False])
def test_it_matches_the_reference(numba_kernels, sizes, padding, dilation, training) -> None:
    """Forward (with its bias) and both gradients, phases of equal and unequal lengths."""
    backend.use("numba")
    x, w, bias, g = _case(sum(sizes), 4, 32, 32, sizes, padding, dilation)
    out_sizes = g.out_sizes(sizes)
    assert dilated.usable(x, w, g, out_sizes, backward=training)
    saved = assert_forward_and_gradients_near(x, w, bias, g, training=training)
    assert saved.phases is not None


@pytest.mark.parametrize(("batch", "c", "sizes", "strides", "dilation", "backward", "taken"), [
    (4, 32, (20, 20), (1, 1), (2, 2), True, True),
    (4, 32, (20, 20), (1, 1), (1, 1), True, False),  # not dilated
    (4, 32, (39, 39), (2, 2), (2, 2), True, False),  # strided
    (4, 32, (14, 14), (1, 1), (2, 2), True, False),  # phases of 7 (MIN_PHASE_SIZE)
    (4, 16, (20, 20), (1, 1), (2, 2), True, False),  # 16 channels: no Winograd training forward
    (4, 16, (20, 20), (1, 1), (2, 2), False, True),  # ... but its inference
    (1, 160, (20, 20), (1, 1), (2, 2), False, False),  # more than winograd.MAX_CHANNELS
])
def test_it_is_taken_where_the_phases_run_on_winograd(numba_kernels, monkeypatch, batch, c, sizes, strides,
                                                      dilation, backward, taken) -> None:
    """Only where the phases' convolution takes the compiled Winograd transforms; the same
    results either way."""
    backend.use("numba")
    calls = record_calls(monkeypatch, dilated, "split")
    rng = np.random.default_rng(c)
    g = kernels.Geometry((3, 3), strides, dilation, dilation)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
    out = kernels.forward(x, w, None, g, backward=backward)[0]
    assert bool(calls) == taken
    assert_near(out, reference_forward(x, w, g))


def test_numpys_kernels_keep_the_dilated_paths(monkeypatch) -> None:
    """Without the compiled transforms the phases are not taken (numpy's stride-1 paths are no
    faster than its dilated ones)."""
    use_numpy_kernels(monkeypatch)
    x, w, _, g = _case(3, 4, 32, 32, (20, 20), (2, 2), (2, 2))
    assert not dilated.usable(x, w, g, g.out_sizes((20, 20)), backward=True)
    assert not dilated.usable(x, w, g, g.out_sizes((20, 20)), backward=False)


@pytest.mark.parametrize(("sizes", "padding", "dilation"), [
    ((17, 19), (2, 2), (2, 2)), ((30, 31), (3, 1), (3, 2)), ((9, 12), (0, 4), (2, 3)), ((5, 5), (6, 6), (4, 4)),
])
def test_its_maps_are_transposes(sizes, padding, dilation) -> None:
    """``split``/``join_input`` and ``join``/``split_output`` are adjoint pairs: for random
    arrays, ⟨split(x), P⟩ = ⟨x, join_input(P)⟩ and ⟨join(Y), G⟩ = ⟨Y, split_output(G)⟩ exactly
    in float64 (each map moves values, never adds two); every value of x lands in at most one
    phase, each output position comes from exactly one."""
    rng = np.random.default_rng(sum(sizes))
    g = kernels.Geometry((3, 3), (1, 1), padding, dilation)
    out_sizes = g.out_sizes(sizes)
    x = rng.standard_normal((2, 3, *sizes))
    phases = dilated.split(x, g, out_sizes)
    p = rng.standard_normal(phases.shape)
    assert np.isclose(np.sum(phases * p), np.sum(x * dilated.join_input(p, g, x.shape, out_sizes)), rtol=1e-12)
    lengths = phases.shape[2:]
    y = rng.standard_normal((phases.shape[0], 4, *(n - 2 for n in lengths)))
    grad = rng.standard_normal((2, 4, *out_sizes))
    assert np.isclose(np.sum(dilated.join(y, g, 2, out_sizes) * grad), np.sum(y * dilated.split_output(grad, g, out_sizes)),
                      rtol=1e-12)
    assert np.count_nonzero(phases) <= x.size  # (x has no zeros: only its values, and padding)
    ones = dilated.join(np.ones_like(y), g, 2, out_sizes)
    assert (ones == 1).all()


def test_its_phases_split_over_threads_give_the_same_array(monkeypatch) -> None:
    """``split`` fills chunks of the batch on ``parallel``'s threads, each zeroing its own
    phases' borders: the same array as on one thread."""
    x, w, _, g = _case(4, 5, 3, 3, (17, 19), (5, 1), (2, 3))
    out_sizes = g.out_sizes((17, 19))
    before = parallel.threads()
    try:
        parallel.set_threads(1)
        alone = dilated.split(x, g, out_sizes)
        parallel.set_threads(3)
        monkeypatch.setattr(parallel, "ELEMENTWISE_MIN_ELEMENTS", 1)
        assert np.array_equal(dilated.split(x, g, out_sizes), alone)
    finally:
        parallel.set_threads(before)


def test_its_phases_count_against_the_budget(numba_kernels) -> None:
    """A hostile padding: the phases are refused before they are allocated, naming the file."""
    backend.use("numba")
    layer = nn.Conv2D(32, 3, padding=3000, dilation=2, in_channels=32)
    layer.initialize(seed=0)
    x = np.ones((2, 32, 4, 4), np.float32)
    g, w = layer._geometry(), np.asarray(layer.weight.data())
    assert dilated.usable(x, w, g, g.out_sizes((4, 4)), backward=False)
    assert winograd.compiled(x.dtype)
    assert_refused_by_budget(layer, x, 2**24, r"its input's phases",
                             lambda: kernels.forward(x, w, None, g, backward=False))
