"""from_torch / to_torch: torch → modelpack → torch round trips on random architectures.

Outputs agree within float32 tolerance (rtol 1e-4, atol 1e-5: convolutions and norms sum in a
different order; measured worst 2e-6 on these sizes); weights come back bitwise. Modules the
table cannot translate faithfully are refused, naming their path, class and attribute.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

import modelpack
from modelpack import nn
from modelpack.errors import UnsupportedBlockError
from modelpack.nn import registry

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[torch]'): the bridge needs it")
tnn = torch.nn
from modelpack.interop.torch import bridge, from_torch, to_torch  # noqa: E402

TOL = {"rtol": 1e-4, "atol": 1e-5}


def _run(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module.eval()(torch.from_numpy(x)).numpy()


def _same_weights(a, b) -> None:
    """Bitwise equal; an affine-free BatchNorm comes back affine, with weight 1 and bias 0."""
    sa, sb = a.state_dict(), b.state_dict()
    for name in sa:
        if name.endswith("num_batches_tracked"):  # training bookkeeping, not kept by modelpack
            continue
        assert sa[name].dtype == sb[name].dtype and torch.equal(sa[name], sb[name]), name
    for name in set(sb) - set(sa):
        assert name.endswith((".weight", ".bias")), name
        assert torch.equal(sb[name], torch.ones_like(sb[name]) if name.endswith("weight") else torch.zeros_like(sb[name]))


def _round_trip(module, x: np.ndarray):
    module.eval()
    net = from_torch(module, example=x)
    expected = _run(module, x)
    np.testing.assert_allclose(net(x), expected, **TOL)
    back = to_torch(net)
    np.testing.assert_allclose(_run(back, x), expected, **TOL)
    _same_weights(module, back)
    return net, back


def _randomize_norms(module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, tnn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
            if isinstance(m, (tnn.modules.batchnorm._BatchNorm, tnn.LayerNorm)) and m.weight is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


# -- random architectures --------------------------------------------------------------------

activations = st.sampled_from([tnn.ReLU, tnn.Sigmoid, tnn.Tanh, tnn.Softplus, tnn.Softsign, tnn.GELU, tnn.SiLU,
                               lambda: tnn.LeakyReLU(0.2), lambda: tnn.ELU(0.7)])


@st.composite
def mlps(draw):
    width = draw(st.integers(1, 6))
    layers, features = [], width
    for _ in range(draw(st.integers(1, 4))):
        out = draw(st.integers(1, 6))
        layers.append(tnn.Linear(features, out, bias=draw(st.booleans())))
        features = out
        extra = draw(st.sampled_from(["act", "ln", "ln-plain", "bn", "dropout", "nested", "none"]))
        if extra == "act":
            layers.append(draw(activations)())
        elif extra == "ln":
            layers.append(tnn.LayerNorm(features, eps=draw(st.sampled_from([1e-5, 1e-3]))))
        elif extra == "ln-plain":
            layers.append(tnn.LayerNorm(features, elementwise_affine=False))
        elif extra == "bn":
            layers.append(tnn.BatchNorm1d(features, momentum=draw(st.sampled_from([0.1, 0.3])),
                                          affine=draw(st.booleans())))
        elif extra == "dropout":
            layers.append(tnn.Dropout(draw(st.sampled_from([0.0, 0.5]))))
        elif extra == "nested":
            layers.append(tnn.Sequential(tnn.Linear(features, features), draw(activations)()))
    return tnn.Sequential(*layers), (draw(st.integers(1, 3)), width)


@st.composite
def cnns(draw):
    channels = draw(st.integers(1, 3))
    height, width = draw(st.integers(6, 11)), draw(st.integers(6, 11))
    groups = draw(st.sampled_from([1, channels]))
    out = groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    conv = tnn.Conv2d(channels, out, kernel, stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                      padding=(draw(st.integers(0, 1)), draw(st.integers(0, 1))),
                      dilation=(draw(st.integers(1, 2)), 1), groups=groups, bias=draw(st.booleans()))
    layers = [conv, tnn.BatchNorm2d(out), draw(activations)()]
    pool_kernel = (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    pool = dict(kernel_size=pool_kernel, stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                padding=(draw(st.integers(0, pool_kernel[0] // 2)), draw(st.integers(0, pool_kernel[1] // 2))),
                ceil_mode=draw(st.booleans()))
    if draw(st.booleans()):
        layers.append(tnn.MaxPool2d(**pool))
    else:
        layers.append(tnn.AvgPool2d(**pool, count_include_pad=draw(st.booleans())))
    head = draw(st.sampled_from(["flatten", "gap", "gmp"]))
    if head == "gap":
        layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten()]
    elif head == "gmp":
        layers += [tnn.AdaptiveMaxPool2d((1, 1)), tnn.Flatten()]
    else:
        layers += [tnn.Dropout2d(0.1), tnn.Flatten()]
    module = tnn.Sequential(*layers)
    try:
        with torch.no_grad():
            features = module.eval()(torch.zeros(1, channels, height, width)).shape[1]
    except RuntimeError:  # the input is too small for these layers
        reject()
    module.append(tnn.Linear(features, 3))
    return module, (draw(st.integers(1, 3)), channels, height, width)


@settings(max_examples=40, deadline=None)
@given(mlps(), st.integers(0, 2**31 - 1))
def test_mlp_round_trip(model_and_shape, seed):
    module, shape = model_and_shape
    torch.manual_seed(seed)
    _randomize_norms(module)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    _round_trip(module, x)


@settings(max_examples=40, deadline=None)
@given(cnns(), st.integers(0, 2**31 - 1))
def test_cnn_round_trip(model_and_shape, seed):
    module, shape = model_and_shape
    _randomize_norms(module)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    _round_trip(module, x)


def test_a_small_vgg_style_cnn_nobody_here_wrote_for_modelpack(tmp_path):
    """The shape of torchvision's VGG/AlexNet heads, built in torch (torchvision is not installable)."""
    torch.manual_seed(0)
    module = tnn.Sequential(
        tnn.Sequential(tnn.Conv2d(3, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(inplace=True),
                       tnn.Conv2d(8, 8, 3, padding="same"), tnn.ReLU(inplace=True), tnn.MaxPool2d(2, 2)),
        tnn.Sequential(tnn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU(),
                       tnn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(),
        tnn.Sequential(tnn.Dropout(0.5), tnn.Linear(16, 10)),
    )
    _randomize_norms(module)
    x = np.random.default_rng(1).standard_normal((2, 3, 17, 13)).astype(np.float32)
    net, _ = _round_trip(module, x)
    modelpack.export(net, tmp_path / "vgg.mpk")
    np.testing.assert_allclose(modelpack.load(tmp_path / "vgg.mpk")(x), _run(module, x), **TOL)


def test_embedding_and_float64():
    module = tnn.Sequential(tnn.Embedding(10, 4), tnn.Flatten(), tnn.Linear(12, 2)).double()
    net = from_torch(module)
    indices = np.array([[1, 2, 9], [0, 0, 3]])
    with torch.no_grad():
        expected = module(torch.from_numpy(indices)).numpy()
    assert net[0].weight.dtype == np.float64
    np.testing.assert_allclose(net(indices), expected, rtol=1e-12)
    _same_weights(module, to_torch(net))


def test_children_keep_their_names():
    from collections import OrderedDict

    module = tnn.Sequential(OrderedDict(features=tnn.Sequential(OrderedDict(conv=tnn.Conv2d(1, 2, 1))),
                                        head=tnn.Flatten()))
    net = from_torch(module)
    assert list(net.collect_params()) == ["features.conv.weight", "features.conv.bias"]
    assert list(to_torch(net).state_dict()) == ["features.conv.weight", "features.conv.bias"]


# -- modelpack → torch -------------------------------------------------------------------------


def test_modelpack_layers_with_fused_activations_and_flattening():
    net = nn.Sequential()
    net.add(nn.Conv2D(4, (3, 2), strides=(2, 1), padding=(1, 0), activation="softrelu"),
            nn.BatchNorm(scale=False, center=False), nn.Dense(5, activation="silu"), nn.LayerNorm(center=False),
            nn.Dense(3, flatten=False), nn.LeakyReLU(0.3), nn.ELU(0.5), nn.Dropout(0.2))
    net.initialize(seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float32)
    net(x)
    net[1].running_mean.set_data(np.full(4, 0.3, np.float32))
    net[1].gamma.set_data(np.full(4, 5.0, np.float32))  # ignored: scale=False
    module = to_torch(net)
    assert type(module[0]).__name__ == "ActivatedConv2d" and type(module[2]).__name__ == "DenseLinear"
    np.testing.assert_allclose(_run(module, x), net(x), **TOL)
    again = from_torch(module, example=x)
    np.testing.assert_allclose(again(x), net(x), **TOL)


# -- refusals --------------------------------------------------------------------------------


class Custom(tnn.Module):
    def forward(self, x):
        return x * 2


class MyLinear(tnn.Linear):
    def forward(self, x):
        return super().forward(x) + 1


@pytest.mark.parametrize(("module", "message"), [
    (tnn.Sequential(tnn.Linear(2, 2), Custom()), r"torch module '1' \(Custom\) has no modelpack equivalent; supported: .*Linear"),
    (tnn.Sequential(tnn.Sequential(MyLinear(2, 2))), r"torch module '0\.0' \(MyLinear\) has no modelpack equivalent"),
    (tnn.Conv2d(1, 1, 3, padding_mode="reflect"), r"torch module '\(top level\)' \(Conv2d\): padding_mode='reflect'"),
    (tnn.MaxPool2d(3, dilation=2), r"\(MaxPool2d\): dilation=2 \(only \(1, 1\)"),
    (tnn.AvgPool2d(2, divisor_override=3), r"\(AvgPool2d\): divisor_override=3"),
    (tnn.LayerNorm((2, 3)), r"normalized_shape=\(2, 3\) \(modelpack normalises one axis\)"),
    (tnn.Embedding(3, 2, max_norm=1.0), r"\(Embedding\): max_norm=1\.0"),
    (tnn.Softplus(beta=2), r"\(Softplus\): beta=2"),
    (tnn.GELU(approximate="tanh"), r"\(GELU\): approximate='tanh'"),
    (tnn.BatchNorm1d(3, track_running_stats=False), r"track_running_stats=False"),
    (tnn.BatchNorm1d(3, momentum=None), r"momentum=None"),
    (tnn.Flatten(2), r"\(Flatten\): start_dim=2"),
    (tnn.AdaptiveAvgPool2d(2), r"\(AdaptiveAvgPool2d\): output_size=2"),
    (tnn.LazyLinear(3), r"\(LazyLinear\) has no modelpack equivalent"),
    (tnn.Conv2d(1, 1, 2, padding="same"), r"padding='same' with kernel_size=\(2, 2\) pads unevenly"),
    (tnn.Linear(2, 2).half().bfloat16(), r"parameters of dtype bfloat16"),
    (tnn.ConvTranspose1d(1, 1, 2, stride=1, dilation=3, output_padding=2),
     r"\(ConvTranspose1d\): output_padding=\(2,\) is not smaller than stride=\(1,\)"),
])
def test_untranslatable_modules_are_refused(module, message):
    with pytest.raises(UnsupportedBlockError, match=message):
        from_torch(module)


def test_to_torch_refusals():
    graph = nn.GraphBlock()
    with pytest.raises(UnsupportedBlockError, match=r"block '\(top level\)' \(Graph\) has no torch equivalent here; supported: .*Dense"):
        to_torch(graph)
    net = nn.Sequential()
    net.add(nn.Dense(3))
    with pytest.raises(UnsupportedBlockError, match=r"block '0' \(Dense\): in_units is not known yet"):
        to_torch(net)
    with pytest.raises(UnsupportedBlockError, match=r"\(BatchNorm\): axis=2"):
        to_torch(nn.BatchNorm(axis=2, in_channels=3))
    with pytest.raises(UnsupportedBlockError, match=r"\(Dropout\): Dropout axes=\[1\]"):
        to_torch(nn.Dropout(0.5, axes=(1,)))


def test_the_example_check_catches_a_wrong_translation(monkeypatch):
    module = tnn.Linear(3, 2)
    original = bridge._from_module

    def off_by_one(m, path):
        net = original(m, path)
        net.bias.set_data(net.bias.data() + 1)
        return net

    monkeypatch.setattr(bridge, "_from_module", off_by_one)
    with pytest.raises(UnsupportedBlockError, match=r"output differs from the torch module's on the example: .*largest difference 1"):
        from_torch(module, example=np.zeros((1, 3), np.float32))


def test_from_torch_restores_training_mode():
    module = tnn.Sequential(tnn.Linear(2, 2), tnn.Dropout(0.5)).train()
    from_torch(module, example=np.ones((1, 2), np.float32))
    assert all(m.training for m in module.modules())


def test_rows_for_layers_not_registered_are_skipped():
    from modelpack.interop.torch.layers import _ALL_ROWS, ROWS

    known = set(registry.known_layers())
    assert {row.modelpack for row in ROWS} == {row.modelpack for row in _ALL_ROWS} & known
    assert "Dense" in {row.modelpack for row in ROWS}


# -- rows that apply once their layer types land (checked on merges with the branches adding them)


def _registered(*names):
    missing = [n for n in names if n not in registry.known_layers()]
    return pytest.mark.skipif(bool(missing), reason=f"modelpack has no {', '.join(missing)} layer yet: its row waits for it")


@_registered("Conv1D", "MaxPool1D", "AvgPool1D", "GlobalAvgPool1D", "Identity")
def test_one_dimensional_layers(tmp_path):
    torch.manual_seed(0)
    module = tnn.Sequential(tnn.Conv1d(3, 4, 3, stride=2, padding=1), tnn.ReLU(), tnn.MaxPool1d(2, ceil_mode=True),
                            tnn.AvgPool1d(3, 1, 1, count_include_pad=False), tnn.AdaptiveAvgPool1d(1), tnn.Flatten(),
                            tnn.Identity(), tnn.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((2, 3, 11)).astype(np.float32)
    _round_trip(module, x)


@_registered("Conv3D", "MaxPool3D", "AvgPool3D", "GlobalMaxPool3D")
def test_three_dimensional_layers():
    torch.manual_seed(0)
    module = tnn.Sequential(tnn.Conv3d(2, 3, (1, 2, 3), stride=(1, 2, 1), padding=(0, 1, 1)), tnn.MaxPool3d(2, ceil_mode=True),
                            tnn.AvgPool3d((1, 2, 2)), tnn.AdaptiveMaxPool3d(1), tnn.Flatten())
    _round_trip(module, np.random.default_rng(0).standard_normal((2, 2, 4, 7, 6)).astype(np.float32))


@_registered("RNN", "LSTM", "GRU")
@pytest.mark.parametrize(("make", "shape"), [
    (lambda: tnn.LSTM(3, 5, num_layers=2, bidirectional=True), (4, 2, 3)),
    (lambda: tnn.GRU(3, 4, batch_first=True), (2, 6, 3)),
    (lambda: tnn.RNN(3, 4, nonlinearity="relu", bias=False, num_layers=2), (5, 2, 3)),
    (lambda: tnn.LSTM(3, 6, proj_size=2), (3, 2, 3)),
], ids=["lstm-2-layers-bidirectional", "gru-batch-first", "rnn-relu-no-bias", "lstm-projected"])
def test_recurrent_layers(tmp_path, make, shape):
    torch.manual_seed(0)
    module = make().eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    net = from_torch(module, example=x)
    with torch.no_grad():
        expected = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(net(x), expected, **TOL)
    back = to_torch(net)
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(x))[0].numpy(), expected, **TOL)
    if module.bias:  # without biases torch has none; modelpack's are zeros and come back as such
        _same_weights(module, back)
    torch.save(module.state_dict(), tmp_path / "rnn.pt")
    fresh = from_torch(module)
    fresh.initialize(force_reinit=True, seed=3)
    fresh.load_parameters(tmp_path / "rnn.pt")
    np.testing.assert_allclose(fresh(x), expected, **TOL)


@_registered("PReLU", "SELU", "GELU", "Swish")
def test_catalogue_activations():
    torch.manual_seed(0)
    module = tnn.Sequential(tnn.Conv2d(2, 3, 1), tnn.PReLU(3), tnn.SELU(), tnn.Flatten(), tnn.Linear(12, 4), tnn.PReLU())
    with torch.no_grad():
        module[1].weight.uniform_(-0.5, 0.5)
    _round_trip(module, np.random.default_rng(0).standard_normal((2, 2, 2, 2)).astype(np.float32))
    net = nn.Sequential()
    net.add(registry.layer_type("GELU").build({"approximation": "tanh"}), registry.layer_type("Swish").build({"beta": 1.0}))
    back = to_torch(net)
    assert [type(m).__name__ for m in back] == ["GELU", "SiLU"] and back[0].approximate == "tanh"
    x = np.linspace(-4, 4, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(_run(back, x), net(x), **TOL)
    with pytest.raises(UnsupportedBlockError, match=r"block '\(top level\)' \(Swish\): beta=2\.0 \(torch's SiLU is beta 1\)"):
        to_torch(registry.layer_type("Swish").build({"beta": 2.0}))


# -- transposed convolutions, instance and group norms, reflection padding -------------------------


@st.composite
def transposed_convolutions(draw):
    dims = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    conv = getattr(tnn, f"ConvTranspose{dims}d")(
        groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), kernel, stride=stride,
        padding=tuple(draw(st.integers(0, k - 1)) for k in kernel),
        output_padding=tuple(draw(st.integers(0, s - 1)) for s in stride),
        dilation=dilation, groups=groups, bias=draw(st.booleans()))
    shape = (draw(st.integers(1, 2)), conv.in_channels, *(draw(st.integers(2, 5)) for _ in range(dims)))
    try:
        with torch.no_grad():
            empty = conv(torch.zeros(shape)).numel() == 0
    except RuntimeError:  # output_padding or padding out of range for these sizes
        reject()
    if empty:  # torch gives an empty output where modelpack refuses one
        reject()
    return conv, shape


@settings(max_examples=30, deadline=None)
@given(transposed_convolutions(), st.integers(0, 2**31 - 1))
def test_transposed_convolution_round_trip(conv_and_shape, seed):
    conv, shape = conv_and_shape
    torch.manual_seed(seed % 2**31)
    module = tnn.Sequential(conv, tnn.ReLU())
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    net, back = _round_trip(module, x)
    assert type(net[0]).__name__ == f"Conv{len(shape) - 2}DTranspose"


def test_a_fused_activation_on_a_transposed_convolution_goes_to_torch():
    net = nn.Sequential()
    net.add(nn.Conv2DTranspose(3, 3, strides=2, padding=1, output_padding=1, activation="tanh", in_channels=2))
    net.initialize(seed=1)
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 5)).astype(np.float32)
    back = to_torch(net)
    assert type(back[0]).__name__ == "ActivatedConvTranspose2d"
    np.testing.assert_allclose(_run(back, x), net(x), **TOL)
    np.testing.assert_allclose(from_torch(back)(x), net(x), **TOL)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 3, 2, 3, 4)])
def test_instance_norm_round_trip(affine, shape):
    module = getattr(tnn, f"InstanceNorm{len(shape) - 2}d")(3, eps=1e-3, affine=affine)
    if affine:
        with torch.no_grad():
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.5, 0.5)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    net = from_torch(tnn.Sequential(module), example=x)
    back = to_torch(net)
    assert type(back[0]).__name__ == "AnyRankInstanceNorm"
    np.testing.assert_allclose(_run(back, x), _run(module, x), **TOL)
    _same_weights(tnn.Sequential(module), back)


def test_instance_norm_with_running_statistics_is_refused():
    with pytest.raises(UnsupportedBlockError, match=r"\(InstanceNorm2d\): track_running_stats=True"):
        from_torch(tnn.InstanceNorm2d(3, track_running_stats=True))


def _group_norm(groups, channels, weight=None, bias=None):
    module = tnn.GroupNorm(groups, channels, eps=1e-3, affine=weight is not None)
    if weight is not None:
        with torch.no_grad():
            module.weight.copy_(torch.tensor(weight, dtype=torch.float32))
            module.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return module


@pytest.mark.parametrize("shape", [(2, 6, 4), (2, 6, 3, 3)])
def test_a_torch_group_norm_constant_within_groups_becomes_modelpacks(shape):
    module = _group_norm(3, 6, [0.5, 0.5, 2.0, 2.0, -1.0, -1.0], [0.1, 0.1, 0.0, 0.0, 3.0, 3.0])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    net = from_torch(module, example=x)
    assert type(net).__name__ == "GroupNorm"
    np.testing.assert_array_equal(net.gamma.data(), np.array([0.5, 2.0, -1.0], np.float32))
    np.testing.assert_array_equal(net.beta.data(), np.array([0.1, 0.0, 3.0], np.float32))
    back = to_torch(net)
    assert type(back).__name__ == "PerGroupNorm"
    np.testing.assert_allclose(_run(back, x), _run(module, x), **TOL)
    plain = from_torch(_group_norm(2, 6), example=x)
    np.testing.assert_array_equal(plain.gamma.data(), np.ones(2, np.float32))


def test_a_torch_group_norm_with_per_channel_affine_stays_exact():
    rng = np.random.default_rng(1)
    module = _group_norm(2, 4, rng.uniform(0.5, 1.5, 4), rng.uniform(-1, 1, 4))
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    net = from_torch(module, example=x)
    assert [type(b).__name__ for b in net.children.values()] == ["GroupNorm", "BatchNorm"]
    np.testing.assert_allclose(net(x), _run(module, x), **TOL)
    np.testing.assert_allclose(_run(to_torch(net), x), _run(module, x), **TOL)


def test_modelpacks_group_norm_goes_to_torch_with_its_per_group_scales():
    net = nn.Sequential()
    net.add(nn.Conv2D(6, 1, in_channels=2), nn.GroupNorm(3, epsilon=1e-4))
    net.initialize(seed=0)
    net[1].gamma.set_data(np.array([0.5, -2.0, 1.5], np.float32))
    net[1].beta.set_data(np.array([1.0, 0.0, -0.5], np.float32))
    x = np.random.default_rng(2).standard_normal((2, 2, 3, 4)).astype(np.float32)
    back = to_torch(net)
    np.testing.assert_allclose(_run(back, x), net(x), **TOL)
    again = from_torch(back, example=x)
    np.testing.assert_array_equal(again[1].gamma.data(), net[1].gamma.data())


@pytest.mark.parametrize("padding", [1, (2, 0, 1, 3), (0, 1, 2, 1)])
def test_reflection_pad_round_trip(padding):
    module = tnn.Sequential(tnn.ReflectionPad2d(padding), tnn.Conv2d(2, 3, 2))
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 5)).astype(np.float32)
    net, _ = _round_trip(module, x)
    assert type(net[0]).__name__ == "ReflectionPad2D"
