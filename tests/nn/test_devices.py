"""MXNet's device API (``X.ctx``, ``as_in_ctx``) inside a custom forward, as d2l writes it."""

from __future__ import annotations

import numpy
import pytest

import modelpack
from modelpack import autograd, nn, npx
from modelpack.errors import UsageError
from modelpack.nn.devices import NDArray, on_device
from tests.models import export_bytes


class MyDense(nn.Block):
    """d2l's custom-layer chapter, as the book writes it."""

    def __init__(self, units, in_units, **kwargs):
        super().__init__(**kwargs)
        self.weight = self.params.get("weight", shape=(in_units, units))
        self.bias = self.params.get("bias", shape=(units,))

    def forward(self, x):
        linear = numpy.dot(x, self.weight.data(ctx=x.ctx)) + self.bias.data(ctx=x.ctx)
        return npx.relu(linear)


class UsesLayerOutput(nn.Block):
    """The encoder pattern: ask a registered layer's output for its device."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.rnn = modelpack.gluon.rnn.GRU(3)

    def forward(self, tokens):
        X = self.embedding(tokens).swapaxes(0, 1)
        state = self.rnn.begin_state(batch_size=X.shape[1], ctx=X.ctx)
        return self.rnn(X, state)


def test_a_custom_forward_reads_ctx_of_its_inputs_and_exports(tmp_path):
    net = MyDense(3, 5)
    net.initialize(seed=0)
    x = numpy.random.default_rng(0).random((2, 5), dtype=numpy.float32)
    y = net(x)
    assert type(y) is NDArray and y.ctx == npx.cpu() and y.as_in_ctx(npx.cpu()) is y
    loaded = modelpack.load(__import__("io").BytesIO(export_bytes(net, example=x)))
    numpy.testing.assert_array_equal(loaded(x), y)


def test_registered_layer_outputs_inside_a_custom_forward_have_ctx():
    net = UsesLayerOutput()
    net.initialize(seed=1)
    out, state = net(numpy.array([[1, 2, 3], [4, 5, 6]]))
    assert out.shape == (3, 2, 3) and out.ctx == npx.cpu() and state[0].ctx == npx.cpu()


def test_a_script_gets_ndarrays_while_the_layers_inside_compute_on_plain_arrays():
    """d2l's predict does int(y.argmax(axis=2).reshape(1)) and y.asnumpy() on a network's
    output; the layers it calls still get plain arrays (their kernels' fast paths take those)."""
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4))
    net.initialize(seed=0)
    seen = []
    net[1].register_forward_pre_hook(lambda block, args: seen.append(type(args[0])))
    x = numpy.arange(3, dtype=numpy.float32).reshape(1, 3)
    out = net(x)
    assert type(out) is NDArray and out.ctx == npx.cpu() and seen == [numpy.ndarray]
    assert int(out.argmax(axis=1).reshape(1)) == int(numpy.argmax(out.asnumpy()))
    assert type(net[1](net[0](x))) is NDArray  # layers a script calls, an NDArray in
    numpy.testing.assert_array_equal(net(on_device(x)), out)


def test_a_scripts_parameter_data_carries_its_gradient():
    """d2l's Trainer.clip_gradients reads p.data().grad and scales it in place; writes to
    p.data() reach the parameter; a frozen parameter's data has no gradient (as in MXNet)."""
    net = nn.Dense(2, in_units=3)
    net.initialize(seed=1)
    assert type(net.weight.grad()) is numpy.ndarray  # (zeros before the first backward)
    with autograd.record():
        loss = (net(numpy.ones((4, 3), dtype=numpy.float32)) ** 2).sum()
        read = net.weight.data()  # while recording: the leaf, holding the plain array
    assert type(read) is autograd.Variable and type(read.value) is numpy.ndarray
    loss.backward()
    data = net.weight.data()
    assert isinstance(data, NDArray) and numpy.shares_memory(data, net.weight.array())
    expected = net.weight.grad().copy()
    numpy.testing.assert_array_equal(data.grad, expected)
    data.grad[:] *= 0.5
    numpy.testing.assert_array_equal(net.weight.grad(), expected * 0.5)
    data[:] = 0
    assert not net.weight.array().any()
    net.bias.grad_req = "null"
    assert net.bias.data().grad is None


def test_a_forward_reads_plain_parameter_arrays():
    seen = []

    class Reads(nn.Block):
        def __init__(self):
            super().__init__()
            self.weight = self.params.get("weight", shape=(3,))

        def forward(self, x):
            seen.append(type(self.weight.data()))
            return x * self.weight.data()

    net = Reads()
    net.initialize()
    net(numpy.ones(3, dtype=numpy.float32))
    assert seen == [numpy.ndarray]


def test_autograd_values_and_traced_stand_ins_have_ctx_too():
    net = MyDense(3, 5)
    net.initialize(seed=2)
    with autograd.record():
        loss = net(numpy.ones((2, 5), dtype=numpy.float32)).sum()
    assert loss.ctx == npx.cpu()
    loss.backward()
    assert net.weight.grad().shape == (5, 3)


def test_a_gpu_is_refused_rather_than_ignored():
    x = on_device(numpy.zeros(2))
    with pytest.raises(UsageError, match="^device gpu\\(0\\): modelpack computes with numpy on the CPU"):
        x.as_in_ctx("gpu(0)")
    assert npx.gpu(1) == "gpu(1)"  # a name, as MXNet gives one on a machine without GPUs
    with pytest.raises(UsageError, match="^device gpu\\(1\\): modelpack computes with numpy on the CPU"):
        modelpack.np.ones(2, ctx=npx.gpu(1))


def test_ndarray_extras():
    x = on_device(numpy.arange(3.0))
    plain = x.asnumpy()
    assert type(plain) is numpy.ndarray and plain is not x and plain.tolist() == [0.0, 1.0, 2.0]
    assert x.as_in_context(npx.cpu()) is x and x.context == npx.cpu()
    target = numpy.zeros(3)
    assert x.copyto(target) is target and target.tolist() == [0.0, 1.0, 2.0]
    assert repr(x) == "NDArray([0., 1., 2.])"
    assert x.grad is None  # no gradient before attach_grad, as in MXNet
    assert float(on_device(numpy.array([3.5]))) == 3.5 and int(on_device(numpy.array([[2]]))) == 2
    assert on_device(numpy.ones((2, 3))).sum(axis=[0, 1]) == 6.0  # MXNet's list of axes
    assert on_device(([numpy.ones(1)], 3))[0][0].ctx == npx.cpu()


def test_attach_grad_gradients_match_torch():
    """d2l's from-scratch models: ``w.attach_grad()``, numpy and npx code on it inside
    ``record()``, ``backward``, then ``w -= lr * w.grad`` in place. Gradients against torch's
    (float32, rtol 1e-5)."""
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(0)
    X = rng.normal(size=(5, 4)).astype(numpy.float32)
    W0, b0 = rng.normal(size=(4, 3)).astype(numpy.float32), rng.normal(size=3).astype(numpy.float32)
    y = numpy.array([0, 2, 1, 1, 0])
    W, b = on_device(W0.copy()), on_device(b0.copy())
    W.attach_grad()
    b.attach_grad()
    assert W.grad.tolist() == numpy.zeros((4, 3)).tolist()  # zeros until the first backward
    with autograd.record():
        H = npx.relu(numpy.dot(X, W) + b)  # an op of the table, a numpy function, an operator
        H_exp = numpy.exp(H - H.max(axis=1, keepdims=True))
        y_hat = H_exp / H_exp.sum(1, keepdims=True)
        loss = -numpy.log(y_hat[numpy.arange(5), y]).mean() + (W.reshape(-1) ** 2).sum() + b.T.mean()
    loss.backward()
    tW, tb = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    tH = torch.relu(torch.tensor(X) @ tW + tb)
    t_loss = torch.nn.functional.cross_entropy(tH, torch.tensor(y)) + (tW.reshape(-1) ** 2).sum() + tb.mean()
    t_loss.backward()
    numpy.testing.assert_allclose(float(loss), t_loss.item(), rtol=1e-5)
    numpy.testing.assert_allclose(W.grad, tW.grad.numpy(), rtol=1e-5, atol=1e-7)
    numpy.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-5, atol=1e-7)
    grad = W.grad.copy()
    W -= 0.1 * W.grad  # d2l's SGD, in place: the next record sees the new values
    numpy.testing.assert_allclose(W, W0 - 0.1 * grad, rtol=1e-6)
    assert type(W * 2) is NDArray and W.grad.ctx == npx.cpu()  # results outside record are plain NDArrays
    with autograd.record():
        z = (W * W).sum()
    z.backward()
    numpy.testing.assert_allclose(W.grad, 2 * W, rtol=1e-6)  # grad_req "write": replaced


def test_attach_grad_add_and_what_has_no_gradient():
    x = on_device(numpy.array([1.0, 2.0]))
    x.attach_grad(grad_req="add")
    for _ in range(2):
        with autograd.record():
            y = (x * x).sum()
        y.backward()
    assert x.grad.tolist() == [4.0, 8.0]  # two backwards added up
    x.grad[:] = 0  # d2l zeroes an "add" gradient in place
    assert x.grad.tolist() == [0.0, 0.0]
    u = x.detach()
    with autograd.record():
        y = (u * x).sum()  # u is off the tape: its factor is a constant
    y.backward()
    assert x.grad.tolist() == [1.0, 2.0]
    with autograd.record(), pytest.raises(modelpack.UnknownOpError, match=r"numpy.multiply.accumulate with axis on a Variable: not in the op set"):
        x.cumprod()  # a method that is not an op is refused while recording, never run off the tape
    assert x.cumprod().tolist() == [1.0, 2.0]  # and is numpy's outside


def test_devices_print_as_mxnet_contexts():
    """d2l prints ``npx.cpu(), npx.gpu(), npx.gpu(1)``: MXNet shows (cpu(0), gpu(0), gpu(1))."""
    from modelpack import npx

    assert repr((npx.cpu(), npx.gpu(), npx.gpu(1))) == "(cpu(0), gpu(0), gpu(1))"
    assert npx.cpu() == "cpu(0)" and str(npx.gpu(1)) == "gpu(1)"
