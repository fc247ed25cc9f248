"""to_onnx of the layer types beyond the CNN/MLP core: transposed convolutions, group and
instance norms, reflection padding, Concatenate, Lambda, and the recurrent layers and cells.

onnxruntime is the oracle, at the example's batch size and another (the batch stays symbolic;
for time-major recurrent inputs it is axis 1). Float32 tolerance: rtol 1e-5, atol 1e-6, except
rtol 1e-4 / atol 1e-5 where onnxruntime sums in its own order (convolutions over several
channels, norms, recurrences over several steps).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from models import flat_outputs

from modelpack import nn
from modelpack.errors import InputError, UnsupportedBlockError, UsageError
from modelpack.nn import registry, rnn

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
from modelpack.interop.onnx import to_onnx  # noqa: E402
from modelpack.interop.onnx.export import STRUCTURAL  # noqa: E402
from modelpack.interop.onnx.export_layers import LAYERS  # noqa: E402
from modelpack.interop.onnx.export_recurrent import RECURRENT, REFUSED  # noqa: E402

TOL = {"rtol": 1e-5, "atol": 1e-6}
SUMS = {"rtol": 1e-4, "atol": 1e-5}


def _grow(array, batch, axis=0):
    shape = list(array.shape)
    shape[axis] = batch
    return np.resize(np.moveaxis(array, axis, 0), [shape[axis]] + shape[:axis] + shape[axis + 1:]).transpose(
        list(range(1, axis + 1)) + [0] + list(range(axis + 1, array.ndim))) if axis else np.resize(array, shape)


def check(tmp_path, net, inputs, tol=SUMS, batch_axes=None, other=3, **export):
    """Export ``net`` on ``inputs`` (a tuple of forward's arguments), run both at two batch sizes."""
    path = tmp_path / "net.onnx"
    net(*inputs)  # sizes deferred parameters
    to_onnx(net, path, example=inputs, **export)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    flat = flat_outputs(list(inputs))
    axes = batch_axes or [0] * len(flat)
    for batch in (None, other):
        args = inputs
        if batch is not None:
            grown = iter([_grow(a, batch, axis) for a, axis in zip(flat, axes, strict=True)])
            args = tuple([next(grown) for _ in a] if isinstance(a, list) else next(grown) for a in inputs)
        feed = dict(zip([i.name for i in session.get_inputs()], flat_outputs(list(args)), strict=True))
        expected = flat_outputs(net(*args))
        found = session.run(None, feed)
        assert len(found) == len(expected)
        for f, e in zip(found, expected, strict=True):
            assert f.dtype == e.dtype and f.shape == e.shape, (f.shape, e.shape)
            np.testing.assert_allclose(f, e, **tol)
    return onnx.load(str(path))


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- transposed convolutions ---------------------------------------------------------------------


@st.composite
def transposed(draw):
    dims = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    layer = {1: nn.Conv1DTranspose, 2: nn.Conv2DTranspose, 3: nn.Conv3DTranspose}[dims](
        groups * draw(st.integers(1, 2)), kernel, strides=strides,
        padding=tuple(draw(st.integers(0, k - 1)) for k in kernel),
        output_padding=tuple(draw(st.integers(0, s - 1)) for s in strides),
        dilation=tuple(draw(st.integers(1, 2)) for _ in range(dims)), groups=groups,
        activation=draw(st.sampled_from([None, "relu"])), use_bias=draw(st.booleans()))
    shape = (2, groups * draw(st.integers(1, 2)), *(draw(st.integers(2, 5)) for _ in range(dims)))
    return layer, shape


@settings(max_examples=25, deadline=None)
@given(transposed(), st.integers(0, 2**31 - 1))
def test_random_transposed_convolutions(tmp_path_factory, layer_and_shape, seed):
    layer, shape = layer_and_shape
    net = nn.Sequential()
    net.add(layer)
    net.initialize(seed=seed)
    x = _x(shape, seed)
    try:
        net(x)
    except InputError:  # padding past the output
        reject()
    check(tmp_path_factory.mktemp("onnx"), net, (x,))


# -- norms and padding ---------------------------------------------------------------------------


def _set_affine(block, seed):
    rng = np.random.default_rng(seed)
    for name in ("gamma", "beta"):
        param = getattr(block, name)
        param.set_data(rng.uniform(-2, 2, param.shape).astype(np.float32))


@pytest.mark.parametrize(("groups", "shape"), [(1, (2, 4, 3)), (2, (2, 4, 3, 5)), (4, (2, 4, 2, 2, 3)), (3, (1, 6, 7))])
def test_groupnorm_has_one_gamma_and_beta_per_group(tmp_path, groups, shape):
    net = nn.Sequential()
    net.add(nn.GroupNorm(groups, epsilon=1e-3))
    net.initialize()
    x = _x(shape) * 3 + 1
    net(x)
    _set_affine(net[0], groups)
    model = check(tmp_path, net, (x,))
    assert "GroupNormalization" not in {n.op_type for n in model.graph.node}


@pytest.mark.parametrize(("axis", "shape"), [(1, (2, 3, 5)), (1, (2, 3, 4, 4)), (-1, (2, 4, 5, 3)), (2, (2, 3, 4, 5))])
def test_instancenorm(tmp_path, axis, shape):
    net = nn.Sequential()
    net.add(nn.InstanceNorm(axis=axis, epsilon=1e-4))
    net.initialize()
    x = _x(shape) * 2
    net(x)
    _set_affine(net[0], 1)
    check(tmp_path, net, (x,))


@pytest.mark.parametrize("padding", [1, (0, 0, 0, 0, 1, 2, 3, 0), (0, 0, 0, 0, 0, 0, 2, 1)])
def test_reflection_pad(tmp_path, padding):
    net = nn.Sequential()
    net.add(nn.ReflectionPad2D(padding), nn.Conv2D(2, 3, in_channels=2))
    net.initialize(seed=1)
    check(tmp_path, net, (_x((2, 2, 4, 5)),))


def test_concatenate_and_lambdas(tmp_path):
    join = nn.Concatenate(axis=1)
    join.add(nn.Dense(3, activation="tanh"), nn.Lambda("sigmoid"), nn.Identity())
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=5), join, nn.HybridLambda("softmax"), nn.Lambda(np.exp))
    net.initialize(seed=2)
    check(tmp_path, net, (_x((2, 5)),), tol=TOL)


def test_a_lambda_with_two_inputs_in_a_traced_forward(tmp_path):
    class Two(nn.Block):
        def __init__(self):
            super().__init__()
            self.add = nn.Lambda("maximum")

        def forward(self, a, b):
            return self.add(a, b) * 2

    check(tmp_path, Two(), (_x((2, 3)), _x((2, 3), 1)), tol=TOL)


# -- recurrent layers ----------------------------------------------------------------------------


class WithStates(nn.Block):
    """A recurrent layer called with explicit states (and lengths), as a traced forward does."""

    def __init__(self, layer, lengths=False):
        super().__init__()
        self.layer = layer
        self.lengths = lengths

    def forward(self, x, states, *lengths):
        return self.layer(x, states, *lengths)


@st.composite
def recurrent(draw):
    kind = draw(st.sampled_from(["RNN", "LSTM", "GRU"]))
    config = dict(num_layers=draw(st.integers(1, 2)), layout=draw(st.sampled_from(["TNC", "NTC"])),
                  bidirectional=draw(st.booleans()))
    if kind == "RNN":
        config["activation"] = draw(st.sampled_from(["relu", "tanh"]))
    return kind, config, draw(st.booleans()), draw(st.integers(1, 4)), draw(st.integers(1, 3))


@settings(max_examples=25, deadline=None)
@given(recurrent(), st.integers(0, 2**31 - 1))
def test_random_recurrent_layers(tmp_path_factory, case, seed):
    kind, config, with_states, steps, features = case
    layer = getattr(rnn, kind)(3, **config)
    layer.initialize(seed=seed)
    batch_axis = 1 if config["layout"] == "TNC" else 0
    shape = [steps, 2, features] if batch_axis else [2, steps, features]
    x = _x(shape, seed)
    layer(x)
    rng = np.random.default_rng(seed)
    for param in layer.collect_params().values():  # biases too (initialised to zeros)
        param.set_data(rng.uniform(-0.7, 0.7, param.shape).astype(np.float32))
    axes = {0: {batch_axis: "batch"}}
    tmp = tmp_path_factory.mktemp("onnx")
    if not with_states:
        net = nn.Sequential()
        net.add(layer)
        check(tmp, net, (x,), batch_axes=[batch_axis], dynamic_batch=False, dynamic_axes=axes)
        return
    states = [s + _x(s.shape, seed + 1) for s in layer.begin_state(batch_size=2)]
    check(tmp, WithStates(layer), (x, states), batch_axes=[batch_axis] + [1] * len(states),
          dynamic_batch=False, dynamic_axes={**axes, **{i + 1: {1: "batch"} for i in range(len(states))}})


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_layers_with_sequence_lengths(tmp_path, kind, bidirectional):
    layer = getattr(rnn, kind)(4, num_layers=2, bidirectional=bidirectional, use_sequence_length=True)
    layer.initialize(seed=5)
    x = _x((5, 3, 2))
    states = layer.begin_state(batch_size=3)
    lengths = np.array([5, 2, 3], np.float32)
    layer(x, states, lengths)
    check(tmp_path, WithStates(layer), (x, states, lengths), batch_axes=[1] + [1] * len(states) + [0],
          dynamic_batch=False,
          dynamic_axes={0: {1: "batch"}, **{i + 1: {1: "batch"} for i in range(len(states))},
                        len(states) + 1: {0: "batch"}})


def test_the_sequence_length_stays_dynamic(tmp_path):
    net = nn.Sequential()
    net.add(rnn.LSTM(3, layout="NTC", bidirectional=True), nn.Dense(2, flatten=False))
    net.initialize(seed=1)
    x = _x((2, 4, 3))
    net(x)
    to_onnx(net, tmp_path / "lstm.onnx", example=x, dynamic_axes={0: {1: "time"}})
    session = ort.InferenceSession(str(tmp_path / "lstm.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", "time", 3]
    for shape in ((2, 4, 3), (3, 7, 3), (1, 1, 3)):
        y = _x(shape, 2)
        np.testing.assert_allclose(session.run(None, {"input": y})[0], net(y), **SUMS)


def test_projected_or_clipped_lstms_are_refused_saying_why(tmp_path):
    net = nn.Sequential()
    net.add(rnn.LSTM(3, projection_size=2))
    net.initialize()
    net(_x((2, 2, 3)))
    with pytest.raises(UnsupportedBlockError, match=r"ONNX's LSTM has no projection"):
        to_onnx(net, tmp_path / "x.onnx", example=_x((2, 2, 3)), dynamic_batch=False)
    assert not (tmp_path / "x.onnx").exists()


# -- recurrent cells -----------------------------------------------------------------------------


class Step(nn.Block):
    """One step of a cell, with states or without (zeros)."""

    def __init__(self, cell, with_states=True):
        super().__init__()
        self.cell = cell
        self.with_states = with_states

    def forward(self, x, states=None):
        return self.cell(x, states) if self.with_states else self.cell(x)


def _cells():
    sequential = rnn.SequentialRNNCell()
    sequential.add(rnn.LSTMCell(4, activation="softsign", recurrent_activation="sigmoid"))
    sequential.add(rnn.DropoutCell(0.5))
    sequential.add(rnn.ResidualCell(rnn.GRUCell(4)))
    sequential.add(rnn.ZoneoutCell(rnn.RNNCell(4, activation="relu"), zoneout_outputs=0.3, zoneout_states=0.2))
    return {
        "rnn": rnn.RNNCell(4),
        "lstm": rnn.LSTMCell(4),
        "gru": rnn.GRUCell(4),
        "sequential": sequential,
    }


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "sequential"])
@pytest.mark.parametrize("with_states", [True, False])
def test_recurrent_cells(tmp_path, name, with_states):
    cell = _cells()[name]
    cell.initialize(seed=3)
    x = _x((2, 4))
    cell(x)
    rng = np.random.default_rng(4)
    for param in cell.collect_params().values():
        param.set_data(rng.uniform(-0.8, 0.8, param.shape).astype(np.float32))
    if with_states:
        states = [s + _x(s.shape, 6) for s in cell.begin_state(batch_size=2)]
        check(tmp_path, Step(cell), (x, states))
    else:
        check(tmp_path, Step(cell, with_states=False), (x,))


def test_a_traced_unroll_of_cells(tmp_path):
    class Encoder(nn.Block):
        def __init__(self):
            super().__init__()
            self.cell = rnn.GRUCell(3)

        def forward(self, x):
            outputs, states = self.cell.unroll(3, x, layout="NTC", merge_outputs=True)
            return outputs, states[0]

    net = Encoder()
    net.initialize(seed=0)
    check(tmp_path, net, (_x((2, 3, 2)),))


# -- coverage -------------------------------------------------------------------------------------


def test_every_layer_type_has_an_onnx_translation():
    """A new layer type without one (and without a stated reason) fails CI."""
    translated = {*LAYERS, *RECURRENT, *STRUCTURAL, "Sequential", "Graph"}
    assert set(registry.known_layers()) - translated == set(REFUSED)
    assert set(REFUSED) == {"BidirectionalCell"}


def test_a_stepped_bidirectional_cell_is_refused_before_onnx(tmp_path):
    """Its forward refuses (Gluon's rule), so tracing stops with that reason, naming the cell."""

    class Both(nn.Block):
        def __init__(self):
            super().__init__()
            self.cell = rnn.BidirectionalCell(rnn.GRUCell(2), rnn.GRUCell(2))

        def forward(self, x, states):
            return self.cell(x, states)

    net = Both()
    with pytest.raises(UsageError, match="a BidirectionalCell cannot be stepped; use unroll"):
        net.initialize()
        to_onnx(net, tmp_path / "x.onnx", example=(_x((2, 3)), [_x((2, 2)), _x((2, 2))]))


def test_onnx_reference_evaluator_agrees_on_the_new_layers(tmp_path):
    """A second oracle: onnx's own reference implementation of each operator."""
    from onnx.reference import ReferenceEvaluator

    net = nn.Sequential()
    net.add(nn.ReflectionPad2D(1), nn.Conv2DTranspose(4, 3, strides=2, padding=1, output_padding=1),
            nn.GroupNorm(2), nn.InstanceNorm(), nn.GlobalAvgPool2D(), nn.Flatten())
    net.initialize(seed=4)
    x = _x((2, 3, 4, 5))
    net(x)
    _set_affine(net[2], 7)
    _set_affine(net[3], 8)
    to_onnx(net, tmp_path / "cnn.onnx", example=x)
    found = ReferenceEvaluator(str(tmp_path / "cnn.onnx")).run(None, {"input": x})[0]
    np.testing.assert_allclose(found, net(x), **SUMS)
    for kind in ("LSTM", "GRU", "RNN"):
        seq = nn.Sequential()
        extra = {"activation": "tanh"} if kind == "RNN" else {}  # onnx.reference's RNN has tanh only
        seq.add(getattr(rnn, kind)(3, num_layers=2, bidirectional=True, layout="NTC", **extra))
        seq.initialize(seed=5)
        x = _x((2, 4, 3))
        seq(x)
        to_onnx(seq, tmp_path / "rnn.onnx", example=x)
        found = ReferenceEvaluator(str(tmp_path / "rnn.onnx")).run(None, {"input": x})[0]
        np.testing.assert_allclose(found, seq(x), **SUMS)


# -- random architectures of the new layers, and one nobody here wrote ---------------------------


@st.composite
def stylers(draw):
    """Image-to-image nets: reflection pads, convolutions, group/instance norms, transposed convs."""
    net = nn.Sequential()
    channels = draw(st.sampled_from([2, 4]))
    if draw(st.booleans()):
        net.add(nn.ReflectionPad2D(draw(st.integers(1, 2))))
    net.add(nn.Conv2D(channels, draw(st.integers(1, 3)), strides=draw(st.integers(1, 2))))
    norm = draw(st.sampled_from(["group", "instance", "batch"]))
    net.add(nn.GroupNorm(draw(st.sampled_from([1, 2])), epsilon=1e-3) if norm == "group"
            else nn.InstanceNorm(epsilon=1e-3, scale=True) if norm == "instance" else nn.BatchNorm())
    net.add(nn.Activation(draw(st.sampled_from(["relu", "tanh", "sigmoid"]))))
    net.add(nn.Conv2DTranspose(draw(st.integers(1, 3)), draw(st.integers(1, 3)), strides=2,
                               padding=draw(st.integers(0, 1)), output_padding=draw(st.integers(0, 1))))
    shape = (2, draw(st.integers(1, 3)), draw(st.integers(5, 9)), draw(st.integers(5, 9)))
    return net, shape


@settings(max_examples=20, deadline=None)
@given(stylers(), st.integers(0, 2**31 - 1))
def test_random_image_to_image_nets(tmp_path_factory, net_and_shape, seed):
    net, shape = net_and_shape
    net.initialize(seed=seed)
    x = _x(shape, seed)
    try:
        net(x)
    except InputError:
        reject()
    rng = np.random.default_rng(seed)
    for name, param in net.collect_params().items():
        if name.endswith(("gamma", "beta", "running_mean")):
            param.set_data(rng.uniform(-1, 1, param.shape).astype(np.float32))
    check(tmp_path_factory.mktemp("onnx"), net, (x,))


def test_a_torch_style_transfer_net_goes_through_modelpack_to_onnxruntime(tmp_path):
    """fast-neural-style's layer kinds, written in torch by its authors' recipe (reflection
    padding before each convolution, affine instance norms, a transposed-convolution decoder)."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from modelpack.interop.torch import from_torch

    tnn = torch.nn
    torch.manual_seed(0)

    def conv(cin, cout, k, stride):
        return [tnn.ReflectionPad2d(k // 2), tnn.Conv2d(cin, cout, k, stride), tnn.InstanceNorm2d(cout, affine=True),
                tnn.ReLU()]

    module = tnn.Sequential(*conv(3, 8, 9, 1), *conv(8, 16, 3, 2), *conv(16, 16, 3, 1),
                            tnn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1),
                            tnn.GroupNorm(4, 8), tnn.ReLU(), tnn.ReflectionPad2d(4), tnn.Conv2d(8, 3, 9))
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (tnn.InstanceNorm2d, tnn.GroupNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = _x((2, 3, 12, 10))
    net = from_torch(module.eval(), example=x)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    check(tmp_path, net, (x,))
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, **SUMS)
