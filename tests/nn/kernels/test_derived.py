"""``nn.kernels.derived``: what is derived from a weight is served again only while the weight's
bits are the ones it was derived from (compared bit for bit, so -0.0 is not 0.0 and a NaN is
itself), and the memory it keeps is bounded."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from test_conv import assert_refused_by_budget, record_calls, use_numpy_kernels

from modelpack import nn
from modelpack.nn.kernels import conv, derived, winograd, winograd3d
from modelpack.nn.kernels.columns import Geometry


@pytest.fixture(autouse=True)
def _empty() -> Iterator[None]:
    derived.clear()
    yield
    derived.clear()


class _Counting:
    """A derivation that counts its calls (each one a fresh array)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, weight: np.ndarray) -> np.ndarray:
        self.calls += 1
        return weight * 2


def _weight(seed: int = 0, shape: tuple[int, ...] = (4, 3, 3, 3)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_served_again_while_the_bits_are_unchanged() -> None:
    weight, compute = _weight(), _Counting()
    first = derived.derived(weight, "double", compute)
    again = derived.derived(weight, "double", compute)
    assert compute.calls == 1 and again is first
    np.testing.assert_array_equal(again, weight * 2)
    assert not again.flags.writeable  # (a caller cannot damage what the next one is served)
    assert derived.derived(weight[:], "double", compute) is first  # a view of the same values
    derived.derived(weight, "triple", compute)  # another kind is derived on its own
    assert compute.calls == 2


@pytest.mark.parametrize("change", ["one value", "sign of a zero", "the whole array"])
def test_derived_again_after_an_in_place_change(change: str) -> None:
    weight, compute = _weight(), _Counting()
    weight[0, 0, 0, 0] = 0.0
    derived.derived(weight, "double", compute)
    if change == "one value":
        weight[1, 2, 0, 1] += 1  # d2l's ``net[0].weight.data()[:] += 1``, one value of it
    elif change == "sign of a zero":
        weight[0, 0, 0, 0] = -0.0  # equal as a float, another bit pattern
    else:
        weight[...] = _weight(seed=1)
    served = derived.derived(weight, "double", compute)
    assert compute.calls == 2
    assert np.array_equal(served.view(np.uint32), (weight * 2).view(np.uint32))


def test_bits_not_values_decide() -> None:
    weight, compute = _weight(), _Counting()
    weight[0, 0, 0, 0] = np.nan  # unequal to itself as a float, yet the same bits
    derived.derived(weight, "double", compute)
    derived.derived(weight, "double", compute)
    assert compute.calls == 1


def test_a_strided_weight_is_not_kept() -> None:
    weight, compute = _weight(shape=(4, 6, 3, 3))[:, ::2], _Counting()
    first = derived.derived(weight, "double", compute)
    second = derived.derived(weight, "double", compute)
    assert compute.calls == 2 and second is not first
    np.testing.assert_array_equal(second, weight * 2)


def test_what_is_kept_stays_under_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    weight_bytes = _weight().nbytes
    monkeypatch.setattr(derived, "MAX_BYTES", 10 * weight_bytes)  # an entry is 2 weights' bytes
    weights, compute = [_weight(seed) for seed in range(8)], _Counting()
    for weight in weights:
        derived.derived(weight, "double", compute)
    assert derived._held <= derived.MAX_BYTES and len(derived._entries) == 5
    derived.derived(weights[-1], "double", compute)  # the most recent are kept
    assert compute.calls == 8
    derived.derived(weights[0], "double", compute)  # the least recent were dropped
    assert compute.calls == 9
    big = _weight(shape=(4, 4, 3, 3))  # 2 × 576 bytes: over a quarter of the bound, not kept
    monkeypatch.setattr(derived, "MAX_BYTES", 4 * big.nbytes)
    derived.derived(big, "double", compute)
    derived.derived(big, "double", compute)
    assert compute.calls == 11


def test_winograd_follows_a_weight_changed_in_place() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 32, 8, 8)).astype(np.float32)
    weight = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    g = Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    winograd.forward(x, weight, None, g, (8, 8), keep_transform=True)
    weight *= 0.5
    weight[3, 4, 1, 1] = 7.0
    kept = winograd.forward(x, weight, None, g, (8, 8), keep_transform=True)
    derived.clear()
    assert np.array_equal(kept, winograd.forward(x, weight, None, g, (8, 8), keep_transform=True))


def test_a_layer_at_inference_sees_its_weight_changed_through_data() -> None:
    layer = nn.Conv2D(32, 3, padding=1, in_channels=32)
    layer.initialize(init="xavier", seed=0)
    x = np.random.default_rng(1).standard_normal((8, 32, 8, 8)).astype(np.float32)
    before = np.asarray(layer(x))
    layer.weight.data()[:] += 1  # d2l 5.2's edit of a parameter in place
    after = np.asarray(layer(x))
    derived.clear()
    assert not np.array_equal(before, after)
    assert np.array_equal(after, np.asarray(layer(x)))


def test_the_kept_copy_is_counted_by_a_loaded_models_budget() -> None:
    layer = nn.Conv2D(32, 3, padding=1, in_channels=32, use_bias=False)
    layer.initialize(init="xavier", seed=0)
    x = np.random.default_rng(1).standard_normal((32, 32, 4, 4)).astype(np.float32)
    weight, g = layer.weight.data(), Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    transformed = 36 * 32 * 32 * 4  # bytes: it fits, the copy of the weight after it does not
    assert_refused_by_budget(layer, x, transformed + weight.nbytes // 2, r"the copy of its weight",
                             lambda: winograd.forward(x, weight, None, g, (4, 4), keep_transform=True))


def test_no_flipped_kernels_transform_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """The input gradient's flipped kernel (numpy's kernels: a flipped Winograd forward) is a
    fresh array each backward: keeping its transform would only fill the cache with copies
    never served. Only the layer's own weight is kept, by an inference call."""
    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(winograd, "MIN_TILES", 1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 32, 4, 4)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    g = conv.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    calls = record_calls(monkeypatch, winograd, "forward")
    _, saved = conv.forward(x, w, None, g)
    conv.backward(np.ones_like(x), saved, w, g)
    assert calls == [x.shape]  # the flipped forward's
    assert not derived._entries
    conv.forward(x, w, None, g, backward=False)
    assert [key[1] for key in derived._entries] == [w.ctypes.data]


def test_a_compiled_training_forward_keeps_the_layers_transform(numba_kernels: None) -> None:
    """On the compiled transforms a training forward's transform is kept for its backward
    (``winograd.gradients``), which makes no other: one entry, the layer's weight's."""
    from modelpack.nn.kernels import backend

    backend.use("numba")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 32, 8, 8)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    g = conv.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    assert winograd.trains(x, w, g)
    _, saved = conv.forward(x, w, None, g)
    conv.backward(np.ones_like(x), saved, w, g)
    assert [key[1] for key in derived._entries] == [w.ctypes.data]


def test_a_3d_inference_keeps_its_transform_and_follows_an_in_place_change() -> None:
    rng = np.random.default_rng(3)
    c = winograd3d.MIN_CHANNELS
    x = rng.standard_normal((2, c, 4, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((c, c, 3, 3, 3)).astype(np.float32)
    g = conv.Geometry((3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1))
    assert winograd3d.usable(x, weight, g)
    conv.forward(x, weight, None, g, backward=False)
    assert len(derived._entries) == 1
    weight[2, 1, 0, 2, 1] += 1
    kept = conv.forward(x, weight, None, g, backward=False)[0]
    derived.clear()
    assert np.array_equal(kept, winograd3d.forward(x, weight, None, g, (4, 6, 6)))


def test_an_object_array_is_derived_every_call_and_not_kept() -> None:
    """Its items are references, not bits to compare (numpy refuses to view them as integers)."""
    weight, compute = np.array([1.5, 2.5], dtype=object), _Counting()
    derived.derived(weight, "double", compute)
    assert list(derived.derived(weight, "double", compute)) == [3.0, 5.0]
    assert compute.calls == 2 and not derived._entries
