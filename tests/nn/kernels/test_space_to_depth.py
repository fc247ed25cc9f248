"""``nn.kernels.space_to_depth``: a strided 2-D convolution run as a stride-1 one on the input's
phases stacked as channels, against the float64 tap-by-tap reference of ``test_conv``; its two
pairs of maps are transposes.

Tolerance: float32 within ``test_conv.assert_near``'s (the inner convolution runs on
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
from modelpack.nn.kernels import backend, parallel, space_to_depth
from modelpack.nn.kernels import conv as kernels


# 48 outputs: ``direct``'s compiled loops take convolutions of at most 128 input × output
# channels first.
def _case(seed: int, batch: int, c: int, o: int, sizes: tuple[int, int], kernel: tuple[int, int],
          strides: tuple[int, int], padding: tuple[int, int]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, kernels.Geometry]:
    rng = np.random.default_rng(seed)
    g = kernels.Geometry(kernel, strides, padding, (1, 1))
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((o, c, *kernel)).astype(np.float32)
    return x, w, rng.standard_normal(o).astype(np.float32), g


@pytest.mark.parametrize(("c", "sizes", "kernel", "strides", "padding"), [
    (3, (67, 67), (11, 11), (4, 4), (0, 0)),  # AlexNet's first layer, on a smaller image
    (3, (66, 70), (11, 11), (4, 4), (1, 2)),  # padded, the phases running past x unequally
    (8, (30, 29), (5, 5), (2, 2), (2, 2)),  # 5×5/2 'same': 32 stacked channels
    (6, (33, 40), (5, 9), (2, 3), (1, 4)),  # a stride and kernel per axis (3×3 inside)
    (16, (21, 30), (3, 5), (1, 2), (1, 2)),  # strided along one axis only: 2 phases
    (8, (24, 24), (6, 6), (2, 2), (7, 7)),  # padding wider than the kernel: phases of padding only
])
@pytest.mark.parametrize("training", [True, False])
def test_it_matches_the_reference(numba_kernels, c, sizes, kernel, strides, padding, training) -> None:
    """Forward (with its bias) and both gradients."""
    backend.use("numba")
    x, w, bias, g = _case(sum(sizes), 4, c, 48, sizes, kernel, strides, padding)
    out_sizes = g.out_sizes(sizes)
    assert space_to_depth.usable(x, w, g, out_sizes, backward=training)
    saved = assert_forward_and_gradients_near(x, w, bias, g, training=training)
    assert saved.stacked is not None


@pytest.mark.parametrize(("c", "kernel", "strides", "groups", "backward", "taken"), [
    (3, (11, 11), (4, 4), 1, True, True),
    (3, (11, 11), (4, 4), 1, False, True),
    (8, (5, 5), (2, 2), 1, True, True),
    (8, (3, 3), (2, 2), 1, True, False),  # 2×2 inside: not Winograd's 3×3
    (8, (7, 7), (2, 2), 1, True, False),  # 4×4 inside
    (8, (7, 7), (3, 3), 1, True, False),  # 3×3 inside, but 81 taps for 49 (MAX_ADDED_TAPS)
    (8, (5, 5), (1, 1), 1, True, False),  # not strided
    (16, (5, 5), (2, 2), 2, True, False),  # grouped
    (1, (5, 5), (2, 2), 1, False, False),  # 4 stacked channels: too few for Winograd
    (48, (5, 5), (2, 2), 1, False, False),  # 192: more than winograd.MAX_CHANNELS
])
def test_it_is_taken_where_the_inner_convolution_runs_on_winograd(numba_kernels, monkeypatch, c, kernel, strides,
                                                                  groups, backward, taken) -> None:
    """Only where the stacked phases' convolution is one Winograd's transforms take, with few
    padded taps; the same results either way."""
    backend.use("numba")
    calls = record_calls(monkeypatch, space_to_depth, "split")
    rng = np.random.default_rng(c)
    g = kernels.Geometry(kernel, strides, (1, 1), (1, 1), groups)
    x = rng.standard_normal((4, c, 60, 60)).astype(np.float32)
    w = rng.standard_normal((48, c // groups, *kernel)).astype(np.float32)
    out = kernels.forward(x, w, None, g, backward=backward)[0]
    assert bool(calls) == taken
    assert_near(out, reference_forward(x, w, g))


def test_numpys_kernels_take_it_for_inference_only(monkeypatch) -> None:
    """On numpy's Winograd transforms an inference call gains (AlexNet's layer 16.7 → 12.2 ms);
    a training forward has no Winograd to run on there."""
    use_numpy_kernels(monkeypatch)
    x, w, bias, g = _case(5, 4, 3, 48, (67, 67), (11, 11), (4, 4), (0, 0))
    out_sizes = g.out_sizes((67, 67))
    assert space_to_depth.usable(x, w, g, out_sizes, backward=False)
    assert not space_to_depth.usable(x, w, g, out_sizes, backward=True)
    out, saved = kernels.forward(x, w, bias, g, backward=False)
    assert_near(out, reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1))


@pytest.mark.parametrize(("sizes", "kernel", "strides", "padding"), [
    ((67, 67), (11, 11), (4, 4), (0, 0)), ((66, 70), (11, 11), (4, 4), (1, 2)), ((33, 40), (5, 9), (2, 3), (1, 4)),
    ((9, 9), (6, 6), (2, 2), (7, 7)),
])
def test_its_maps_are_transposes(sizes, kernel, strides, padding) -> None:
    """``split``/``join_input`` and ``inner_weight``/``outer_weight`` are adjoint pairs: for
    random arrays ⟨split(x), P⟩ = ⟨x, join_input(P)⟩ and ⟨cut(w), V⟩ = ⟨w, outer_weight(V)⟩
    exactly in float64 (each map moves values, never adds two); every value of x lands in at
    most one phase, and the inner kernel holds the outer one's values and zeros only."""
    rng = np.random.default_rng(sum(sizes))
    g = kernels.Geometry(kernel, strides, padding, (1, 1))
    out_sizes = g.out_sizes(sizes)
    x = rng.standard_normal((2, 3, *sizes))
    stacked = space_to_depth.split(x, g, out_sizes)
    assert stacked.shape == (2, 3 * strides[0] * strides[1], *(o + 2 for o in out_sizes))
    p = rng.standard_normal(stacked.shape)
    assert np.isclose(np.sum(stacked * p), np.sum(x * space_to_depth.join_input(p, g, x.shape)), rtol=1e-12)
    assert np.count_nonzero(stacked) <= x.size  # (x has no zeros: only its values, and padding)
    w = rng.standard_normal((4, 3, *kernel))
    cut = space_to_depth.inner_weight(w, g)
    assert cut.shape == (4, 3 * strides[0] * strides[1], 3, 3)
    v = rng.standard_normal(cut.shape)
    assert np.isclose(np.sum(cut * v), np.sum(w * space_to_depth.outer_weight(v, g, w.shape)), rtol=1e-12)
    assert np.count_nonzero(cut) == w.size and np.isin(cut[cut != 0], w).all()


def test_its_maps_split_over_threads_give_the_same_arrays(monkeypatch) -> None:
    """``split`` and ``join_input`` run chunks of the batch on ``parallel``'s threads (each
    chunk zeroing its own phases' borders): the same arrays as on one thread."""
    rng = np.random.default_rng(9)
    g = kernels.Geometry((11, 11), (4, 4), (1, 2), (1, 1))
    x = rng.standard_normal((5, 3, 66, 70))
    out_sizes = g.out_sizes(x.shape[2:])
    before = parallel.threads()
    try:
        parallel.set_threads(1)
        alone = space_to_depth.split(x, g, out_sizes)
        grad = rng.standard_normal(alone.shape)
        back_alone = space_to_depth.join_input(grad, g, x.shape)
        parallel.set_threads(3)
        monkeypatch.setattr(parallel, "ELEMENTWISE_MIN_ELEMENTS", 1)
        assert np.array_equal(space_to_depth.split(x, g, out_sizes), alone)
        assert np.array_equal(space_to_depth.join_input(grad, g, x.shape), back_alone)
    finally:
        parallel.set_threads(before)


def test_its_phases_count_against_the_budget(numba_kernels) -> None:
    """A hostile padding: the stacked phases are refused before they are allocated, naming
    the file."""
    backend.use("numba")
    layer = nn.Conv2D(32, 11, strides=4, padding=3000, in_channels=3)
    layer.initialize(seed=0)
    x = np.ones((2, 3, 4, 4), np.float32)
    g, w = layer._geometry(), np.asarray(layer.weight.data())
    assert space_to_depth.usable(x, w, g, g.out_sizes((4, 4)), backward=False)
    assert_refused_by_budget(layer, x, 2**24, r"its input's phases",
                             lambda: kernels.forward(x, w, None, g, backward=False))
