"""``modelpack.autograd``'s API and tape: recording modes, what is refused while recording,
``backward``'s rules, and that loaded models (declarative and traced) train like the original."""

from __future__ import annotations

import numpy as np
import pytest

import modelpack
from modelpack import autograd, nn
from modelpack.errors import AutogradError, UnknownOpError
from modelpack.nn import functional as F


def test_recording_and_training_modes():
    assert not autograd.is_recording() and not autograd.is_training()
    with autograd.record():
        assert autograd.is_recording() and autograd.is_training()
        with autograd.pause():
            assert not autograd.is_recording() and not autograd.is_training()
            with autograd.train_mode():
                assert autograd.is_training() and not autograd.is_recording()
        with autograd.predict_mode():
            assert autograd.is_recording() and not autograd.is_training()
    with autograd.record(train_mode=False):
        assert autograd.is_recording() and not autograd.is_training()
    assert not autograd.is_recording() and not autograd.is_training()


def test_dropout_follows_the_recording_mode():
    layer, x = nn.Dropout(0.5), np.ones((20, 20), np.float32)
    with autograd.record():
        assert (layer(autograd.Variable(x)).value == 0).any()
    with autograd.record(train_mode=False):
        assert np.array_equal(layer(autograd.Variable(x)).value, x)


def test_variables_outside_record_give_plain_arrays():
    x = autograd.Variable(np.array([1.0, -2.0]))
    y = x * 2 + 1
    assert type(y) is np.ndarray and y.tolist() == [3.0, -3.0]
    assert np.asarray(x).tolist() == [1.0, -2.0] and float(x.sum()) == -1.0


def test_what_would_lose_a_gradient_is_refused_while_recording():
    x = autograd.Variable(np.array([[1.0, -2.0], [3.0, 4.0]]))
    with autograd.record():
        with pytest.raises(AutogradError, match=r"converting a Variable to a plain numpy array inside "
                                                r"autograd\.record\(\) would cut it from the tape"):
            np.asarray(x)
        with pytest.raises(UnknownOpError, match=r"numpy\.cumprod on a Variable: not in the op set, so it has no "
                                                 r"gradient \(ops: abs, add, "):
            np.cumprod(x)
        with pytest.raises(UnknownOpError, match=r"numpy\.add\.reduce on a Variable: not in the op set"):
            np.add.reduce(x)
        with pytest.raises(UnknownOpError, match=r"numpy\.exp with out on a Variable"):
            np.exp(x, out=np.empty((2, 2)))
        with pytest.raises(UnknownOpError, match=r"indexing a Variable with \(array\(\[0\.5\]\), 0\): not in the "
                                                 r"op set as called, so it has no gradient \(index arrays must hold "
                                                 r"integers, not float64\)"):
            x[np.array([0.5]), 0]
        with pytest.raises(AutogradError, match=r"in-place assignment to a Variable cannot be differentiated"):
            x[0] = 1.0
        kept = x.detach()  # cutting on purpose is allowed
        assert isinstance(kept, np.ndarray)


def test_numpy_and_functional_calls_record_the_op_set():
    x = autograd.Variable(np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]]))
    with autograd.record():
        y = F.sum(F.softmax(x, axis=1) * np.exp(x), axis=0)  # nn.functional reaches autograd through nn.hooks
        z = np.concatenate([y, np.tanh(x).mean(axis=0)]).reshape(2, 3).T[1:, ::-1]
        loss = np.sum(z.astype("float32")) + x.max()
    assert loss.node is not None and loss.node.name == "add"
    loss.backward()
    eps, grad = 1e-6, np.zeros_like(x.value)
    for index in np.ndindex(x.shape):  # central differences of the same function in float64

        def f(v: np.ndarray) -> float:
            s = np.exp(v - v.max(axis=1, keepdims=True))
            y = ((s / s.sum(axis=1, keepdims=True)) * np.exp(v)).sum(axis=0)
            z = np.concatenate([y, np.tanh(v).mean(axis=0)]).reshape(2, 3).T[1:, ::-1]
            return float(z.sum() + v.max())

        up, down = x.value.copy(), x.value.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (f(up) - f(down)) / (2 * eps)
    np.testing.assert_allclose(x.grad, grad, rtol=1e-5, atol=1e-5)  # float32 cast inside: ~1e-7 relative


def test_non_scalar_backward_uses_ones_and_head_gradients_are_checked():
    x = autograd.Variable(np.array([1.0, 2.0, 3.0]))
    with autograd.record():
        y = x * x
    y.backward(retain_graph=True)
    assert x.grad.tolist() == [2.0, 4.0, 6.0]
    y.backward(np.array([1.0, 0.0, 0.5]))  # accumulates into the leaf's .grad
    assert x.grad.tolist() == [4.0, 4.0, 9.0]
    with pytest.raises(AutogradError, match=r"backward reached multiply again after an earlier backward freed its "
                                            r"graph; pass retain_graph=True"):
        y.backward()
    with autograd.record():
        y = x * x
    with pytest.raises(AutogradError, match=r"head gradient has shape \(2,\), but the head has shape \(3,\)"):
        y.backward(np.ones(2))
    with pytest.raises(AutogradError, match=r"backward needs a value computed inside autograd\.record\(\) from "
                                            r"parameters or Variables, got ndarray"):
        autograd.backward([np.ones(3)])


def test_frozen_network_output_is_no_variable():
    net = nn.Dense(2, in_units=3)
    net.initialize(seed=0)
    for param in net.collect_params().values():
        param.grad_req = "null"
    with autograd.record():
        out = net(np.ones((1, 3), np.float32))
    assert not isinstance(out, autograd.Variable) and isinstance(out, np.ndarray)  # nothing to differentiate


class Shared(nn.Block):
    """A custom forward in plain numpy that uses one layer twice."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Dense(4, in_units=4, activation="tanh")
        self.scale = nn.Parameter("scale", shape=(4,))

    def forward(self, x):
        h = self.body(self.body(x))
        return np.maximum(h * self.scale.data(), -0.5) + F.relu(x)[:, :4]


def _grads(net: nn.Block, x: np.ndarray) -> dict[str, np.ndarray]:
    with autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    return {name: p.grad().copy() for name, p in net.collect_params().items() if p.grad_req != "null"}


def test_traced_and_declarative_archives_train_like_the_original(tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    custom = Shared()
    custom.initialize(init=nn.init.Normal(0.5), seed=2)
    custom(x)
    modelpack.export(custom, tmp_path / "custom.mpk", example=x)
    loaded = modelpack.load(tmp_path / "custom.mpk")
    assert type(loaded) is nn.GraphBlock
    original, replayed = _grads(custom, x), _grads(loaded, x)
    assert list(replayed) == list(original) == ["scale", "body.weight", "body.bias"]
    for name in original:  # numpy calls on Variables and graph nodes record the same VJPs
        np.testing.assert_array_equal(replayed[name], original[name], err_msg=name)
    assert np.abs(original["body.weight"]).sum() > 0

    net = nn.Sequential()
    net.add(nn.Conv2D(3, 3, in_channels=2, activation="relu"), nn.BatchNorm(in_channels=3), nn.GlobalAvgPool2D(),
            nn.Flatten(), nn.Dense(2, in_units=3))
    net.initialize(seed=1)
    modelpack.export(net, tmp_path / "cnn.mpk")
    images = np.random.default_rng(1).normal(size=(2, 2, 5, 5)).astype(np.float32)
    expected, found = _grads(net, images), _grads(modelpack.load(tmp_path / "cnn.mpk"), images)
    for name in expected:
        np.testing.assert_array_equal(found[name], expected[name], err_msg=name)


def test_a_long_chain_does_not_exhaust_the_stack():
    x = autograd.Variable(np.array(1.0))
    with autograd.record():
        y = x
        for _ in range(5000):
            y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001**5000, rtol=1e-9)


def test_a_vjp_giving_the_wrong_shape_is_an_internal_error(monkeypatch):
    from modelpack.autograd import vjps

    monkeypatch.setitem(vjps.VJPS, "negative", lambda g, out, inputs, attrs: [np.ones(7)])
    x = autograd.Variable(np.ones(3))
    with autograd.record():
        y = -x
    with pytest.raises(AutogradError, match=r"internal error: gradient of shape \(7,\) for a value of shape \(3,\) "
                                            r"made by a leaf"):
        y.backward()


def _parameters(*names: str) -> list[nn.Parameter]:
    params = [nn.Parameter(name, shape=(3,)) for name in names]
    for param in params:
        param.initialize(init="ones")
    return params


def test_parameters_never_share_a_gradient_array():
    """add's VJP hands both parents the head gradient itself: each parameter gets its own
    array, apart from the caller's (d2l's gradient clipping scales ``grad`` in place)."""
    a, b = _parameters("a", "b")
    with autograd.record():
        total = a.data() + b.data()
    head = np.array([1.0, 2.0, 3.0], np.float32)
    total.backward(head)
    assert not np.shares_memory(a.grad(), b.grad()) and not np.shares_memory(a.grad(), head)
    a.grad()[:] *= 2
    assert b.grad().tolist() == [1.0, 2.0, 3.0] and head.tolist() == [1.0, 2.0, 3.0]
    (c,) = _parameters("c")
    with autograd.record():
        column = c.data().reshape(3, 1)
    head = np.array([[1.0], [2.0], [3.0]], np.float32)
    column.backward(head)  # reshape's VJP: a view of the caller's array, held by nothing else
    assert not np.shares_memory(c.grad(), head) and c.grad().tolist() == [1.0, 2.0, 3.0]


def test_a_gradient_nothing_else_holds_is_kept_without_a_copy(monkeypatch):
    """The Dense VJP's new products go to the parameters as they are (a copy each cost 0.75 ms
    of the MLP's training step); the caller's head gradient is copied."""
    received: dict[str, bool] = {}
    receive = nn.Parameter._receive_grad

    def spy(param: nn.Parameter, grad: np.ndarray, *, owned: bool = False) -> None:
        received[param.name] = owned
        receive(param, grad, owned=owned)

    monkeypatch.setattr(nn.Parameter, "_receive_grad", spy)
    net = nn.Dense(4, in_units=3)
    net.initialize(seed=0)
    with autograd.record():
        loss = net(np.ones((2, 3), np.float32)).sum()
    loss.backward()
    assert received == {"weight": True, "bias": True}
    (d,) = _parameters("d")
    head = np.ones(3, np.float32)
    with autograd.record():
        leaf = d.data()
    leaf.backward(head)
    assert received["d"] is False and not np.shares_memory(d.grad(), head)


def test_swapaxes_method_records_like_numpys_function():
    """d2l's ``d2l.swapaxes(x, 0, 1)`` is ``x.swapaxes(0, 1)`` on an RNN's output; its gradient
    is the upstream one swapped back (exact)."""
    x = autograd.Variable(np.arange(6.0).reshape(2, 3, 1))
    weights = np.arange(6.0).reshape(3, 2, 1)
    with autograd.record():
        y = x.swapaxes(0, 1)
        loss = (y * weights).sum()
    assert y.shape == (3, 2, 1) and np.array_equal(y.value, np.swapaxes(x.value, 0, 1))
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.swapaxes(weights, 0, 1))


def test_variables_have_the_op_tables_ndarray_methods():
    """Every ``OpDef.methods`` name is a Variable method, recorded as its op: d2l's ``accuracy``
    takes ``y_hat.argmax(axis=1)`` of a value computed under record()."""
    from modelpack.autograd.variable import _METHOD_OPS

    rng = np.random.default_rng(0)
    value = rng.normal(size=(3, 4))
    calls = {
        "sum": ((), {"axis": 1}), "mean": ((0,), {}), "max": ((), {"keepdims": True}), "min": ((1,), {}),
        "prod": ((), {}), "var": ((), {"ddof": 1}), "std": ((0,), {}), "argmax": ((), {"axis": 1}),
        "argmin": ((0,), {}), "cumsum": ((), {"axis": 1}), "clip": ((-0.5, 0.5), {}),
        "take": (([2, 0],), {"axis": 1}), "swapaxes": ((0, 1), {}), "squeeze": ((), {}),
        "repeat": ((2,), {"axis": 0}), "dot": ((value.T,), {}),
    }
    assert set(calls) == set(_METHOD_OPS)  # a new method in the op table gets a line here
    x = autograd.Variable(value)
    with autograd.record():
        for name, (args, kwargs) in calls.items():
            got = getattr(x, name)(*args, **kwargs)
            assert isinstance(got, autograd.Variable) and got.node.name == _METHOD_OPS[name].name, name
            np.testing.assert_array_equal(got.value, getattr(value, name)(*args, **kwargs), err_msg=name)


def test_a_method_of_a_variable_is_differentiated_by_its_op():
    x = autograd.Variable(np.array([-2.0, -0.25, 0.5, 3.0]))
    with autograd.record():
        y = (x.clip(-1.0, 1.0) * np.arange(4.0)).cumsum().sum()
    y.backward()
    # element i is counted 4 - i times by cumsum().sum(), scaled by i, and clipped at the ends
    np.testing.assert_array_equal(x.grad, [0.0, 1 * 3, 2 * 2, 0.0])


def test_boolean_and_integer_queries_of_a_variable_are_computed_on_its_value():
    value = np.array([[0.5, np.nan], [-1.0, 2.0]])
    x = autograd.Variable(value)
    with autograd.record():
        assert not isinstance(x.all(), autograd.Variable)
        np.testing.assert_array_equal((x > 0).any(axis=1), [True, True])
        np.testing.assert_array_equal(x.argsort(axis=1), value.argsort(axis=1))
        assert x.tolist()[1] == [-1.0, 2.0]
        np.testing.assert_array_equal(np.isnan(x), np.isnan(value))
        assert np.count_nonzero(x > 0) == 2 and np.allclose(x, x, equal_nan=True)
        rows, cols = (x < 0).nonzero()
        assert (rows.tolist(), cols.tolist()) == ([1], [0])
        assert np.isnan(x).asnumpy().sum() == 1  # MXNet arrays: asnumpy works


def test_an_ndarray_method_outside_the_op_set_is_refused_on_a_variable():
    x = autograd.Variable(np.array([0.4, 1.6]))
    with pytest.raises(modelpack.UnsupportedFeatureError, match=r"^Variable\.cumprod\(\) is not supported by modelpack: it is not in the op set, so it has no gradient; use numpy's functions and operators on it \(the op set\), or x\.detach\(\) to cut it from the tape on purpose$"):
        x.cumprod()
    assert not hasattr(x, "no_such_attribute") and not hasattr(x, "__no_such_dunder__")


def test_d2l_control_flow_gradient_with_a_norm():
    """preliminaries/autograd: a loop on ``np.linalg.norm`` of a recorded value; the result is
    linear in ``a``, so ``a.grad == d / a``."""

    def f(a):
        b = a * 2
        while np.linalg.norm(b) < 1000:
            b = b * 2
        return b if b.sum() > 0 else 100 * b

    a = autograd.Variable(np.array(0.7321))
    with autograd.record():
        d = f(a)
    d.backward()
    np.testing.assert_allclose(a.grad, d.value / a.value, rtol=1e-12)


def test_d2l_accuracy_of_a_recorded_prediction():
    def accuracy(y_hat, y):  # the book's d2l.accuracy, verbatim
        if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
            y_hat = y_hat.argmax(axis=1)
        cmp = y_hat.astype(y.dtype) == y
        return float(cmp.astype(y.dtype).sum())

    net = nn.Dense(3)
    net.initialize()
    X, y = np.random.default_rng(1).normal(size=(8, 5)).astype(np.float32), np.array([0, 1, 2, 0, 1, 2, 0, 1])
    with autograd.record():
        y_hat = net(X)
        assert accuracy(y_hat, y) == float((y_hat.value.argmax(axis=1) == y).sum())
