"""hybridize(backend="onnxruntime"): inference on onnxruntime, equal (within float32 tolerance)
to the numpy reference; training, new shapes and changed weights handled as the runtime's
docstring says.

Float32 tolerance: rtol 1e-4, atol 1e-5, as tests/interop/test_onnx_export.py (onnxruntime sums
in its own order; fused Conv → BatchNorm rounds once less).
"""

from __future__ import annotations

import copy
import io
import pickle
import sys
import warnings

import numpy as np
import pytest
from models import MLP, WithConstant, ready

import modelpack
from modelpack import autograd, nn
from modelpack.errors import LimitError, UnsupportedBlockError, UsageError
from modelpack.io.limits import Limits

pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")

TOL = {"rtol": 1e-4, "atol": 1e-5}
RNG = np.random.default_rng(0)


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _cnn() -> nn.Sequential:
    net = nn.Sequential()
    net.add(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(2),
            nn.Conv2D(16, 3, strides=2), nn.GlobalAvgPool2D(), nn.Dense(5))
    return ready(net, _x(2, 3, 12, 12))


class _Counted:
    """Counts the numpy calls of a block (its ``_call_numpy``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, block: nn.Block) -> None:
        self.calls = 0
        numpy_call = block._call_numpy

        def counted(*args):
            self.calls += 1
            return numpy_call(*args)

        monkeypatch.setattr(block, "_call_numpy", counted)


@pytest.mark.parametrize("build, shape", [
    (lambda: ready(MLP(16, 4), _x(2, 6)), (6,)),
    (lambda: ready(WithConstant(), _x(2, 4)), (4,)),
    (_cnn, (3, 12, 12)),
])
def test_inference_runs_on_onnxruntime_and_matches_numpy(monkeypatch, build, shape):
    net = build()
    x, other = _x(5, *shape), _x(2, *shape)
    want, want_other = net(x), net(other)
    counted = _Counted(monkeypatch, net)
    net.hybridize(backend="onnxruntime")
    np.testing.assert_allclose(net(x), want, **TOL)  # first call at this shape: numpy
    assert counted.calls >= 1  # (and the export's check of its trace)
    counted.calls = 0
    for _ in range(2):
        np.testing.assert_allclose(net(x), want, **TOL)  # then onnxruntime
    assert counted.calls == 0
    np.testing.assert_allclose(net(other), want_other, **TOL)  # a new batch size: numpy once
    np.testing.assert_allclose(net(other), want_other, **TOL)
    assert counted.calls == 1
    assert len(net._runtime._sessions) == 1  # one graph for every batch size


def test_a_loaded_model_runs_on_onnxruntime():
    net = _cnn()
    buffer = io.BytesIO()
    modelpack.export(net, buffer)
    loaded = modelpack.load(io.BytesIO(buffer.getvalue()))
    x = _x(4, 3, 12, 12)
    want = net(x)
    loaded.hybridize(backend="onnxruntime")
    loaded(x)
    np.testing.assert_allclose(loaded(x), want, **TOL)
    assert loaded._runtime._sessions


def test_the_first_call_at_a_shape_is_checked_by_the_activation_budget():
    """A loaded model's budget refuses an input too large for it although the model runs on
    onnxruntime: the first call at each shape runs on numpy, whose layers charge the budget."""
    buffer = io.BytesIO()
    modelpack.export(_cnn(), buffer)
    loaded = modelpack.load(io.BytesIO(buffer.getvalue()), limits=Limits(max_activation_bytes=200_000))
    loaded.hybridize(backend="onnxruntime")
    small = _x(2, 3, 12, 12)
    loaded(small)
    loaded(small)
    with pytest.raises(LimitError, match="activation"):
        loaded(_x(64, 3, 12, 12))


@pytest.mark.parametrize("change", ["in place", "set_data"])
def test_changed_weights_build_a_new_session(change):
    net = _cnn()
    x = _x(3, 3, 12, 12)
    net.hybridize(backend="onnxruntime")
    net(x)
    net(x)
    weight = net[0].weight
    if change == "in place":
        weight.data()[:] += 0.5
    else:
        weight.set_data(weight.data() * 2)
    got = net(x)
    net.hybridize(backend=None)
    np.testing.assert_allclose(got, net(x), **TOL)


def test_a_block_trained_between_its_inference_calls_is_not_exported_at_every_step(monkeypatch):
    """A GAN's generator makes samples each step and is trained in between: its calls run on
    numpy, and the session is built again only once two calls in a row find the same weights."""
    from modelpack.interop.onnx import export

    net = _cnn()
    x = _x(3, 3, 12, 12)
    net.hybridize(backend="onnxruntime")
    net(x)
    exports = []
    translate = export.to_model_proto
    monkeypatch.setattr(export, "to_model_proto", lambda *a, **k: exports.append(a) or translate(*a, **k))
    weight = net[0].weight
    for _ in range(4):
        weight.data()[:] += 0.01  # a training step
        got = net(x)
    assert not exports
    net.hybridize(backend=None)
    want = net(x)
    np.testing.assert_array_equal(got, want)  # numpy's own result
    net.hybridize(backend="onnxruntime")
    net(x)
    exports.clear()
    weight.data()[:] += 0.01
    net(x)  # changed: numpy, the state noted
    net(x)  # the same again: built anew
    assert len(exports) == 1
    found = net(x)  # onnxruntime's
    net.hybridize(backend=None)
    np.testing.assert_allclose(found, net(x), **TOL)


def test_a_child_added_after_the_session_was_built_builds_a_new_one():
    net = nn.Sequential()
    net.add(nn.Dense(6, activation="relu"))
    ready(net, _x(2, 4))
    x = _x(3, 4)
    net.hybridize(backend="onnxruntime")
    net(x)
    net(x)
    net.add(nn.Dense(2))
    net[1].initialize()
    got = net(x)
    assert got.shape == (3, 2)
    net.hybridize(backend=None)
    np.testing.assert_allclose(got, net(x), **TOL)


def test_a_child_replaced_after_the_session_was_built_builds_a_new_one():
    net = ready(MLP(8, 3), _x(2, 5))
    x = _x(2, 5)
    net.hybridize(backend="onnxruntime")
    net(x)
    net(x)
    net.output = nn.Dense(3, in_units=8)  # as many parameters, none of them the old ones
    net.output.initialize(seed=7)
    got = net(x)
    net.hybridize(backend=None)
    np.testing.assert_allclose(got, net(x), **TOL)


def test_training_runs_on_numpy_with_gradients():
    net = _cnn()
    x = _x(3, 3, 12, 12)
    net.hybridize(backend="onnxruntime")
    net(x)
    net(x)
    with autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    assert np.abs(net[0].weight.grad()).sum() > 0
    with autograd.train_mode():  # BatchNorm on batch statistics: numpy's
        trained = net(x)
    net.hybridize(backend=None)
    with autograd.train_mode():
        np.testing.assert_array_equal(trained, net(x))


def test_calls_with_inputs_other_than_arrays_run_on_numpy():
    class Scaled(nn.Block):
        def __init__(self):
            super().__init__()
            self.fc = nn.Dense(3)

        def forward(self, x, scale):
            return self.fc(x) * scale

    net = ready(Scaled(), _x(2, 4), 2.0)
    x = _x(2, 4)
    want = net(x, 3.0)
    net.hybridize(backend="onnxruntime")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            np.testing.assert_array_equal(net(x, 3.0), want)
    assert not net._runtime._sessions


def test_a_network_the_exporter_refuses_runs_on_numpy_with_a_warning(monkeypatch):
    net = ready(MLP(8, 3), _x(2, 5))
    x = _x(2, 5)
    want = net(x)

    exports = []

    def refuse(*args, **kwargs):
        exports.append(args)
        raise UnsupportedBlockError("no ONNX operator for this")

    monkeypatch.setattr("modelpack.interop.onnx.export.to_model_proto", refuse)
    net.hybridize(backend="onnxruntime")
    with pytest.warns(RuntimeWarning, match="MLP runs on numpy.*no ONNX operator for this") as caught:
        np.testing.assert_array_equal(net(x), want)
    assert caught[0].filename == __file__  # the warning points at the call of the block
    other = _x(3, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once
        np.testing.assert_array_equal(net(x), want)
        net(other)  # another batch size: the same graph, not tried again
        net(other)
    assert len(exports) == 1


def test_a_refusal_for_some_inputs_leaves_the_others_on_onnxruntime(monkeypatch):
    """The CNN takes any spatial size (global pooling): each size is a graph of its own, and a
    refused one does not send the others to numpy."""
    from modelpack.interop.onnx import export

    net = _cnn()
    translate = export.to_model_proto

    def refuse_large(block, example, **kwargs):
        if example[0].shape[-1] >= 16:
            raise UnsupportedBlockError("not from 16 on")
        return translate(block, example, **kwargs)

    monkeypatch.setattr(export, "to_model_proto", refuse_large)
    small, large, larger = _x(2, 3, 12, 12), _x(2, 3, 16, 16), _x(2, 3, 20, 20)
    want_small, want_large, want_larger = net(small), net(large), net(larger)
    net.hybridize(backend="onnxruntime")
    with pytest.warns(RuntimeWarning, match="not from 16 on") as caught:
        for _ in range(2):
            np.testing.assert_array_equal(net(large), want_large)
            np.testing.assert_allclose(net(small), want_small, **TOL)
            np.testing.assert_array_equal(net(larger), want_larger)
    assert len(caught) == 1  # the first refusal says why; the next one is as quiet
    assert len(net._runtime._sessions) == 1 and len(net._runtime._refused) == 2


def test_a_session_onnxruntime_cannot_build_runs_on_numpy_with_a_warning():
    """float64: onnxruntime's CPU kernels have no double Conv (its session refuses the graph)."""
    net = _cnn()
    net.cast("float64")
    x = _x(2, 3, 12, 12).astype(np.float64)
    want = net(x)
    net.hybridize(backend="onnxruntime")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            np.testing.assert_array_equal(net(x), want)
    assert [w.category for w in caught] == [RuntimeWarning] and "cast" not in str(caught[0].message)
    assert net._runtime._refused and not net._runtime._sessions


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda net: pickle.loads(pickle.dumps(net))],
                         ids=["deepcopy", "pickle"])
def test_a_copied_block_builds_sessions_of_its_own(duplicate):
    net = ready(MLP(8, 3), _x(2, 5))
    x = _x(2, 5)
    net.hybridize(backend="onnxruntime")
    net(x)
    twin = duplicate(net)
    assert not twin._runtime._sessions
    twin.output.bias.data()[:] += 1  # its own weights: the original's session is not its
    twin(x)
    np.testing.assert_allclose(twin(x), net(x) + 1, **TOL)
    assert twin._runtime._sessions


def test_hybridize_without_the_backend_goes_back_to_numpy(monkeypatch):
    net = ready(MLP(8, 3), _x(2, 5))
    x = _x(2, 5)
    net.hybridize(backend="onnxruntime")
    net(x)
    net.hybridize()
    assert net._runtime is None
    counted = _Counted(monkeypatch, net)
    net(x)
    net(x)
    assert counted.calls == 2


def test_an_unknown_backend_is_refused():
    with pytest.raises(UsageError, match="unknown backend 'tensorrt'; the one there is: 'onnxruntime'"):
        ready(MLP(8, 3), _x(2, 5)).hybridize(backend="tensorrt")


def test_without_onnxruntime_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UsageError, match=r"pip install 'modelpack\[onnx\]'"):
        ready(MLP(8, 3), _x(2, 5)).hybridize(backend="onnxruntime")


def test_sessions_use_modelpacks_thread_count(monkeypatch):
    from modelpack.nn.kernels import parallel

    monkeypatch.setattr(parallel, "_threads", 1)
    net = ready(MLP(8, 3), _x(2, 5))
    net.hybridize(backend="onnxruntime")
    x = _x(2, 5)
    net(x)
    session = next(iter(net._runtime._sessions.values())).session
    assert session.get_session_options().intra_op_num_threads == 1
