"""``nn.fusion``: a Sequential's Conv → BatchNorm → ReLU chains, and a loaded graph's where each
value is read by the next step alone, run folded at inference, give what the layers give one
by one (within float32 rounding: ``rtol=1e-5, atol=1e-5`` on outputs of order 1, the folded
weight rounded once more), and stay unfused wherever a fused call could differ: training,
autograd, forward hooks, subclasses, a BatchNorm on another axis or dtype, a convolution with
its own activation, a graph value read by another step or returned.
"""

from __future__ import annotations

import numpy as np
import pytest

import modelpack
from modelpack import autograd, nn, npx
from modelpack.nn import fusion

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def _with_statistics(norm: nn.BatchNorm, channels: int, rng: np.random.Generator) -> None:
    """Running statistics and affine parameters far from their initial values."""
    norm.running_mean.set_data(rng.normal(size=channels).astype(np.float32))
    norm.running_var.set_data(rng.uniform(0.2, 3.0, channels).astype(np.float32))
    norm.gamma.set_data(rng.normal(size=channels).astype(np.float32))
    norm.beta.set_data(rng.normal(size=channels).astype(np.float32))


def _chain(conv: nn.Block, norm: nn.Block | None, *tail: nn.Block, channels: int, x: np.ndarray,
           seed: int = 0) -> nn.Sequential:
    net = nn.Sequential()
    net.add(conv, *([norm] if norm is not None else []), *tail)
    net.initialize(init="xavier", seed=seed)
    net(x)  # deferred shapes known
    rng = np.random.default_rng(seed + 1)
    if isinstance(norm, nn.BatchNorm):
        _with_statistics(norm, channels, rng)
    if getattr(conv, "_use_bias", False):  # not the initial zeros: the fold must scale it
        conv.bias.set_data(rng.normal(size=channels).astype(np.float32))
    return net


def _one_by_one(net: nn.Sequential, x: np.ndarray) -> np.ndarray:
    for block in net:
        x = block(x)
    return x


def _spy(monkeypatch) -> list[str]:
    """Record which path each convolution took: 'folded' or 'plain'."""
    calls: list[str] = []
    folded, plain = nn.Conv2D.folded_forward, nn.Conv2D.forward

    def spy_folded(self, *args, **kwargs):
        calls.append("folded")
        return folded(self, *args, **kwargs)

    def spy_plain(self, *args, **kwargs):
        calls.append("plain")
        return plain(self, *args, **kwargs)

    for kind in (nn.Conv1D, nn.Conv2D, nn.Conv3D, nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose):
        monkeypatch.setattr(kind, "folded_forward", spy_folded)
        monkeypatch.setattr(kind, "forward", spy_plain)
    return calls


CASES = {
    "conv2d, bias, relu": (lambda: nn.Conv2D(8, 3, padding=1), (2, 3, 9, 9), True),
    "conv2d, no bias": (lambda: nn.Conv2D(8, 3, use_bias=False), (2, 3, 9, 9), True),
    "strided": (lambda: nn.Conv2D(8, 3, strides=2, padding=1), (3, 4, 10, 10), True),
    "depthwise": (lambda: nn.Conv2D(16, 3, padding=1, groups=16), (2, 16, 12, 12), True),
    "pointwise": (lambda: nn.Conv2D(24, 1), (2, 16, 9, 9), True),
    "shifted GEMMs": (lambda: nn.Conv2D(16, 3, padding=1), (2, 16, 12, 12), True),
    "conv1d": (lambda: nn.Conv1D(6, 5, padding=2), (3, 2, 20), True),
    "conv3d": (lambda: nn.Conv3D(4, 3, padding=1), (2, 2, 5, 6, 7), True),
    "no relu after": (lambda: nn.Conv2D(8, 3), (2, 3, 9, 9), False),
    "transposed 4×4/2": (lambda: nn.Conv2DTranspose(6, 4, strides=2, padding=1), (2, 5, 6, 6), True),
    "transposed grouped": (lambda: nn.Conv2DTranspose(6, 3, strides=2, groups=3, output_padding=1), (2, 9, 5, 5),
                           True),
    "transposed no bias": (lambda: nn.Conv2DTranspose(4, 3, use_bias=False), (2, 3, 6, 6), False),
    "transposed 1-d": (lambda: nn.Conv1DTranspose(5, 4, strides=2, padding=1), (3, 4, 11), True),
    "transposed 3-d": (lambda: nn.Conv3DTranspose(3, 2, strides=2), (2, 2, 3, 4, 5), True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_fused_chain_gives_the_layers_results(case, monkeypatch):
    make, shape, relu = CASES[case]
    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    conv = make()
    tail = (nn.Activation("relu"),) if relu else ()
    net = _chain(conv, nn.BatchNorm(), *tail, nn.Flatten(), channels=conv._channels, x=x)
    expected = _one_by_one(net, x)
    calls = _spy(monkeypatch)
    np.testing.assert_allclose(net(x), expected, **TOLERANCE)
    assert calls == ["folded"]


def test_batch_norm_without_scale_or_center_folds_as_it_normalises(monkeypatch):
    x = np.random.default_rng(4).normal(size=(2, 3, 8, 8)).astype(np.float32)
    net = _chain(nn.Conv2D(5, 3), nn.BatchNorm(scale=False, center=False), nn.Activation("relu"),
                 channels=5, x=x)
    expected = _one_by_one(net, x)
    calls = _spy(monkeypatch)
    np.testing.assert_allclose(net(x), expected, **TOLERANCE)
    assert calls == ["folded"]


def test_the_running_statistics_of_each_call_are_used(monkeypatch):
    """Nothing folded is kept between calls: a training step's new statistics count at once."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3, 8, 8)).astype(np.float32)
    net = _chain(nn.Conv2D(6, 3), nn.BatchNorm(), nn.Activation("relu"), channels=6, x=x)
    before = net(x)
    with nn.training():
        net(3 * x + 1)  # batch statistics: the running ones move
    after = net(x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _one_by_one(net, x), **TOLERANCE)


def test_deferred_shapes_are_inferred_through_a_fused_chain():
    x = np.random.default_rng(6).normal(size=(2, 3, 7, 7)).astype(np.float32)
    net = nn.Sequential()
    net.add(nn.Conv2D(4, 3), nn.BatchNorm(), nn.Activation("relu"))
    net.initialize(seed=0)
    out = net(x)  # the first call: every shape deferred until now
    assert out.shape == (2, 4, 5, 5)
    assert net[1].gamma.shape == (4,) and net[0].weight.shape == (4, 3, 3, 3)
    np.testing.assert_allclose(out, _one_by_one(net, x), **TOLERANCE)


class _Norm(nn.BatchNorm):
    pass


UNFUSED = {
    "training": lambda net, x: _in_training(net, x),
    "autograd": lambda net, x: _recorded(net, x),
    "hook on the norm": lambda net, x: (net[1].register_forward_hook(lambda *a: None), net(x))[1],
    "hook on the conv": lambda net, x: (net[0].register_forward_pre_hook(lambda *a: None), net(x))[1],
}


def _in_training(net, x):
    with nn.training():
        return net(x)


def _recorded(net, x):
    with autograd.record():
        return net(x)


@pytest.mark.parametrize("case", sorted(UNFUSED))
def test_no_fusion_where_the_layers_must_run_one_by_one(case, monkeypatch):
    x = np.random.default_rng(7).normal(size=(2, 3, 8, 8)).astype(np.float32)
    net = _chain(nn.Conv2D(4, 3), nn.BatchNorm(), nn.Activation("relu"), channels=4, x=x)
    calls = _spy(monkeypatch)
    UNFUSED[case](net, x)
    assert "folded" not in calls


@pytest.mark.parametrize("blocks", [
    lambda: (nn.Conv2D(4, 3, activation="relu"), nn.BatchNorm()),  # its own activation comes first
    lambda: (nn.Conv2D(4, 3), _Norm()),  # a subclass may compute anything
    lambda: (nn.Conv2D(4, 3), nn.BatchNorm(axis=2)),
    lambda: (nn.Conv2D(4, 3, dtype="float64"), nn.BatchNorm()),  # the norm is float32
    lambda: (nn.Conv2DTranspose(4, 3, activation="relu"), nn.BatchNorm()),
    lambda: (nn.Conv2D(4, 3), nn.Activation("relu")),  # nothing to fold
])
def test_chains_that_are_not_fused(blocks, monkeypatch):
    x = np.random.default_rng(8).normal(size=(2, 3, 8, 8)).astype(np.float32)
    net = nn.Sequential()
    net.add(*blocks())
    net.initialize(seed=0)
    expected = net(x)
    assert [type(step).__name__ for step in fusion.steps(list(net))] == [type(b).__name__ for b in net]
    np.testing.assert_array_equal(net(x), expected)


def test_a_relu_is_fused_only_after_a_norm_and_only_relu():
    net = nn.Sequential()
    net.add(nn.Conv2D(4, 3, in_channels=3), nn.BatchNorm(in_channels=4), nn.Activation("tanh"),
            nn.Conv2D(4, 3, in_channels=4), nn.BatchNorm(in_channels=4), nn.Activation("relu"), nn.Flatten())
    steps = list(fusion.steps(list(net)))
    assert len(steps) == 4  # [conv+norm], tanh, [conv+norm+relu], flatten
    assert steps[1] is net[2] and steps[3] is net[6]


def test_a_chain_whose_hooks_were_all_detached_is_fused_again(monkeypatch):
    x = np.random.default_rng(9).normal(size=(2, 3, 8, 8)).astype(np.float32)
    net = _chain(nn.Conv2D(4, 3), nn.BatchNorm(), nn.Activation("relu"), channels=4, x=x)
    handle = net[1].register_forward_hook(lambda *a: None)
    calls = _spy(monkeypatch)
    net(x)
    handle.detach()
    net(x)
    assert calls == ["plain", "folded"]


# -- in a graph: a traced custom block, loaded ----------------------------------------------------


class _Residual(nn.Block):
    """d2l's residual block: its chains are a graph's nodes once traced, not a Sequential's."""

    def __init__(self, relu_layer: bool = False) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2D(4, 3, padding=1, in_channels=4), nn.BatchNorm(in_channels=4)
        self.conv2, self.bn2 = nn.Conv2D(4, 3, padding=1, in_channels=4), nn.BatchNorm(in_channels=4)
        self.act = nn.Activation("relu") if relu_layer else None

    def forward(self, x):
        y = self.bn1(self.conv1(x))
        y = self.act(y) if self.act is not None else npx.relu(y)
        return npx.relu(self.bn2(self.conv2(y)) + x)


class _Reads(nn.Block):
    """A convolution's or BatchNorm's value read twice, or returned: no chain to fuse."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv, self.bn = nn.Conv2D(4, 3, padding=1, in_channels=4), nn.BatchNorm(in_channels=4)

    def forward(self, x):
        y = self.conv(x)
        z = self.bn(y)
        if self.how == "conv read twice":
            return z + y
        if self.how == "conv returned":
            return z, y
        return npx.relu(z), z  # "norm returned": conv and norm fuse, not the ReLU


def _loaded(block: nn.Block, x: np.ndarray, tmp_path) -> nn.Block:
    """``block`` with far-from-initial statistics, exported (traced) and loaded back."""
    block.initialize(init="xavier", seed=0)
    block(x)
    rng = np.random.default_rng(1)
    for norm in (b for b in block.children.values() if isinstance(b, nn.BatchNorm)):
        _with_statistics(norm, 4, rng)
    modelpack.export(block, tmp_path / "block.mpk", example=x)
    loaded = modelpack.load(tmp_path / "block.mpk")
    assert isinstance(loaded, nn.GraphBlock)
    return loaded


def _norm_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    forward = nn.BatchNorm.forward

    def spy(self, x):
        calls.append(1)
        return forward(self, x)

    monkeypatch.setattr(nn.BatchNorm, "forward", spy)
    return calls


@pytest.mark.parametrize("relu_layer", [False, True])  # npx.relu (an op node) or an Activation child
def test_a_graphs_chains_run_in_place_and_give_the_layers_bits(relu_layer, tmp_path, monkeypatch):
    x = np.random.default_rng(2).normal(size=(2, 4, 7, 7)).astype(np.float32)
    block = _Residual(relu_layer)
    loaded = _loaded(block, x, tmp_path)
    expected = block(x)
    calls, norms = _spy(monkeypatch), _norm_calls(monkeypatch)
    np.testing.assert_array_equal(loaded(x), expected)
    assert calls == ["plain", "plain"] and not norms  # each BatchNorm ran in place
    with nn.training():  # batch statistics: the layers one by one
        loaded(x)
    assert len(norms) == 2


@pytest.mark.parametrize("how", ["conv read twice", "conv returned", "norm returned"])
def test_a_value_read_elsewhere_is_not_overwritten(how, tmp_path, monkeypatch):
    x = np.random.default_rng(3).normal(size=(2, 4, 6, 6)).astype(np.float32)
    block = _Reads(how)
    loaded = _loaded(block, x, tmp_path)
    expected = block(x)
    norms = _norm_calls(monkeypatch)
    out = loaded(x)
    assert len(norms) == (0 if how == "norm returned" else 1)  # (its ReLU stays apart)
    for ours, theirs in zip(out if isinstance(out, tuple) else (out,),
                            expected if isinstance(expected, tuple) else (expected,), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_hooked_layer_in_a_graph_runs_apart(tmp_path, monkeypatch):
    x = np.random.default_rng(4).normal(size=(2, 4, 6, 6)).astype(np.float32)
    block = _Residual()
    loaded = _loaded(block, x, tmp_path)
    expected = block(x)
    seen: list[tuple[int, ...]] = []
    handle = loaded.bn2.register_forward_hook(lambda layer, inputs, output: seen.append(output.shape))
    norms = _norm_calls(monkeypatch)
    np.testing.assert_array_equal(loaded(x), expected)
    assert len(norms) == 1 and seen == [(2, 4, 6, 6)]  # bn2 apart, bn1 in place
    handle.detach()
    norms.clear()
    loaded(x)
    assert not norms


class _Stacked(nn.Block):
    """conv → BatchNorm → conv → BatchNorm → tanh: two chains back to back, neither with a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2D(4, 3, padding=1, in_channels=4), nn.BatchNorm(in_channels=4)
        self.conv2, self.bn2 = nn.Conv2D(4, 1, in_channels=4), nn.BatchNorm(in_channels=4)
        self.act = nn.Activation("tanh")

    def forward(self, x):
        return self.act(self.bn2(self.conv2(self.bn1(self.conv1(x)))))


def test_chains_back_to_back_both_run_in_place_and_only_a_relu_joins_them(tmp_path, monkeypatch):
    x = np.random.default_rng(5).normal(size=(2, 4, 6, 6)).astype(np.float32)
    block = _Stacked()
    loaded = _loaded(block, x, tmp_path)
    expected = block(x)
    norms = _norm_calls(monkeypatch)
    np.testing.assert_array_equal(loaded(x), expected)
    assert not norms


def test_a_batch_norm_in_place_is_its_forward_and_a_strided_array_gets_a_new_one():
    rng = np.random.default_rng(6)
    norm = nn.BatchNorm(in_channels=3)
    norm.initialize()
    _with_statistics(norm, 3, rng)
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    expected = norm(x)
    overwritten = x.copy()
    assert norm.inference_in_place(overwritten) is overwritten
    np.testing.assert_array_equal(overwritten, expected)
    strided = np.repeat(x, 2, axis=3)[..., ::2]
    result = norm.inference_in_place(strided)
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(strided, x)  # left as it was
