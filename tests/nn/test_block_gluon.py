"""Gluon's Block API as d2l uses it: unique names, self.params.get, hybridize, summary, ...

Each d2l class below is the book's MXNet code with only the imports changed (``np.dot`` and
``npx.relu`` spelled ``@`` and ``F.relu`` until the wider op set lands).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from models import round_trip

import modelpack
from modelpack import nn
from modelpack.nn import functional as F
from modelpack.nn import init


def _number(name: str, hint: str) -> int:
    match = re.fullmatch(rf"{hint}(\d+)", name)
    assert match, f"{name!r} is not {hint}<n>"
    return int(match.group(1))


# -- names -----------------------------------------------------------------------------------
def test_instances_are_numbered_per_class_as_gluon_names_them():
    first, second = nn.Dense(3), nn.Dense(3)
    assert _number(second.name, "dense") == _number(first.name, "dense") + 1
    assert first.prefix == first.name + "_"
    conv, pool = nn.Conv2D(2, 3), nn.MaxPool2D()
    _number(conv.name, "conv")  # Gluon's hints: conv, pool, the activation's name
    _number(pool.name, "pool")
    _number(nn.Activation("relu").name, "relu")
    _number(nn.BatchNorm().name, "batchnorm")
    _number(nn.Sequential().name, "sequential")


def test_prefix_sets_the_name():
    block = nn.Dense(3, prefix="out_")
    assert (block.name, block.prefix) == ("out", "out_")
    assert nn.Block(prefix="plain").name == "plain"


class MySequential(nn.Block):
    """d2l 6.1, verbatim."""

    def add(self, block):
        # Here, `block` is an instance of a `Block` subclass, and we assume that
        # it has a unique name. We save it in the member variable `_children` of
        # the `Block` class, and its type is OrderedDict.
        self._children[block.name] = block

    def forward(self, X):
        # OrderedDict guarantees that members will be traversed in the order
        # they were added
        for block in self._children.values():
            X = block(X)
        return X


def test_d2l_my_sequential_builds_every_layer_and_round_trips():
    net = MySequential()
    net.add(nn.Dense(256, activation="relu"))
    net.add(nn.Dense(10))
    net.initialize(seed=0)
    X = np.random.default_rng(0).uniform(size=(2, 20))
    assert net(X).shape == (2, 10)
    assert len(net.children) == 2  # the second Dense did not replace the first
    reference = nn.Sequential()
    reference.add(*net.children.values())
    np.testing.assert_array_equal(net(X), reference(X))

    loaded = round_trip(net, X)
    assert list(loaded.collect_params()) == list(net.collect_params())
    for batch in (1, 2, 7):
        x = np.random.default_rng(batch).uniform(size=(batch, 20))
        assert loaded(x).tobytes() == net(x).tobytes()


# -- self.params.get ---------------------------------------------------------------------------
class MyDense(nn.Block):
    """d2l 6.4's custom layer (``np.dot``/``npx.relu`` as ``@``/``F.relu``)."""

    def __init__(self, units, in_units, **kwargs):
        super().__init__(**kwargs)
        self.weight = self.params.get("weight", shape=(in_units, units))
        self.bias = self.params.get("bias", shape=(units,))

    def forward(self, x):
        linear = x @ self.weight.data() + self.bias.data()
        return F.relu(linear)


def test_d2l_my_dense_declares_parameters_with_params_get():
    dense = MyDense(units=3, in_units=5)
    assert list(dense.params) == ["weight", "bias"]
    assert dense.params["weight"] is dense.weight and dense.weight.shape == (5, 3)
    dense.initialize(seed=1)
    x = np.random.default_rng(0).uniform(size=(2, 5)).astype(np.float32)
    expected = np.maximum(x @ dense.weight.data() + dense.bias.data(), 0)
    np.testing.assert_array_equal(dense(x), expected)


def test_d2l_my_dense_in_a_sequential_exports_traced_and_loads_in_a_fresh_process(tmp_path):
    net = nn.Sequential()
    net.add(MyDense(8, in_units=64), MyDense(1, in_units=8))
    net.initialize(seed=2)
    x = np.random.default_rng(0).uniform(size=(2, 64)).astype(np.float32)
    net(x)
    modelpack.export(net, tmp_path / "mydense.mpk", example=x)
    for batch in (1, 2, 7):
        np.save(tmp_path / f"x{batch}.npy", np.random.default_rng(batch).uniform(size=(batch, 64)).astype(np.float32))
    loader = textwrap.dedent("""
        import sys
        import numpy as np
        import modelpack
        net = modelpack.load(sys.argv[1])
        for batch in (1, 2, 7):
            np.save(f"{sys.argv[2]}/y{batch}.npy", net(np.load(f"{sys.argv[2]}/x{batch}.npy")))
        print(list(net.collect_params()))
    """)
    done = subprocess.run([sys.executable, "-c", loader, str(tmp_path / "mydense.mpk"), str(tmp_path)],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert done.stdout.strip() == "['0.weight', '0.bias', '1.weight', '1.bias']"
    for batch in (1, 2, 7):
        assert np.load(tmp_path / f"y{batch}.npy").tobytes() == net(np.load(tmp_path / f"x{batch}.npy")).tobytes()


class BatchNormScratch(nn.Block):
    """d2l 8.5's BatchNorm from scratch: its parameters, declared with initializers."""

    def __init__(self, num_features, num_dims, **kwargs):
        super().__init__(**kwargs)
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.gamma = self.params.get("gamma", shape=shape, init=init.One())
        self.beta = self.params.get("beta", shape=shape, init=init.Zero())


def test_d2l_batchnorm_scratch_parameters_take_their_initializers():
    block = BatchNormScratch(6, 4)
    block.initialize(init.Normal(1.0), seed=0)  # the parameters' own initializers win
    np.testing.assert_array_equal(block.gamma.data(), np.ones((1, 6, 1, 1), np.float32))
    np.testing.assert_array_equal(block.beta.data(), np.zeros((1, 6, 1, 1), np.float32))


def test_attribute_alias_of_a_declared_parameter_is_not_a_second_parameter():
    class Aliased(nn.Block):
        def __init__(self):
            super().__init__()
            self.w = self.params.get("weight", shape=(2, 2))
            self.b = self.params.get("bias", shape=(2,))

    block = Aliased()
    assert list(block.params) == ["weight", "bias"]
    assert list(block.collect_params()) == ["weight", "bias"]


# -- hybridization, scopes, contexts ---------------------------------------------------------
def test_hybrid_classes_are_the_plain_ones():
    assert nn.HybridBlock is nn.Block and nn.HybridSequential is nn.Sequential
    assert nn.HybridConcatenate is nn.Concatenate


def test_hybridize_name_scope_and_ctx_change_nothing():
    class Net(nn.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.hidden = nn.Dense(4, activation="relu")
                self.out = nn.Dense(2)

        def forward(self, x):
            return self.out(self.hidden(x))

    net = Net()
    net.initialize(init.Xavier(), ctx="cpu(0)", seed=3)
    x = np.random.default_rng(0).uniform(size=(3, 5)).astype(np.float32)
    before = net(x)
    assert net.hybridize() is None
    assert net.hybridize(static_alloc=True, static_shape=True) is None
    np.testing.assert_array_equal(net(x), before)
    assert list(net.collect_params()) == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    np.testing.assert_array_equal(net.hidden.weight.data(ctx="cpu(0)"), net.hidden.weight.data())


def test_hybrid_sequential_exports_as_sequential():
    net = nn.HybridSequential()
    net.add(nn.Dense(3, in_units=2))
    net.initialize(seed=0)
    net.hybridize()
    assert modelpack.inspect(io.BytesIO(_export(net))).architecture.type == "Sequential"


def _export(net) -> bytes:
    buffer = io.BytesIO()
    modelpack.export(net, buffer)
    return buffer.getvalue()


class GluonOneDense(nn.HybridBlock):
    """Gluon 1.x style: parameters arrive as keyword arguments of hybrid_forward."""

    def __init__(self, units, in_units, **kwargs):
        super().__init__(**kwargs)
        self.weight = self.params.get("weight", shape=(units, in_units))

    def hybrid_forward(self, F, x, weight):
        return F.tanh(F.matmul(x, F.transpose(weight)))


def test_hybrid_forward_gets_F_and_parameters_and_traces():
    block = GluonOneDense(3, 4)
    block.initialize(seed=0)
    x = np.random.default_rng(0).uniform(size=(2, 4)).astype(np.float32)
    np.testing.assert_array_equal(block(x), np.tanh(x @ block.weight.data().T))
    loaded = round_trip(block, x)
    assert loaded(x).tobytes() == block(x).tobytes()


class HybridNet(nn.HybridBlock):
    """d2l 13.1's HybridNet: ``F.npx.relu`` in Gluon 1.x's hybrid_forward."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = nn.Dense(4, in_units=3)
        self.output = nn.Dense(2, in_units=4)

    def hybrid_forward(self, F, x):
        x = F.npx.relu(self.hidden(x))
        return self.output(x)


def test_hybrid_forward_reaches_mxnets_np_and_npx_through_F():
    import modelpack.np
    import modelpack.npx

    assert F.npx is modelpack.npx and F.np is modelpack.np
    net = HybridNet()
    net.initialize(seed=0)
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    hidden = np.maximum(x @ net.hidden.weight.data().T + net.hidden.bias.data(), 0)
    expected = hidden @ net.output.weight.data().T + net.output.bias.data()
    np.testing.assert_allclose(net(x), expected, rtol=1e-6)
    net.hybridize()
    np.testing.assert_allclose(net(x), expected, rtol=1e-6)
    assert round_trip(net, x)(x).tobytes() == net(x).tobytes()


def test_block_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="Block does not implement forward"):
        nn.Block()(np.ones(2))


# -- traversal -----------------------------------------------------------------------------------
def test_register_child_and_apply_order():
    net = nn.Sequential()
    first, second = nn.Dense(2), nn.Dense(3)
    net.register_child(first)
    net.register_child(second, "head")
    assert list(net.children) == ["0", "head"]
    seen = []
    assert net.apply(lambda block: seen.append(block)) is net
    assert seen == [first, second, net]  # children first, then the block (Gluon's order)


def test_sequential_slice_keeps_the_container_type_and_config():
    cat = nn.Concatenate(axis=1)
    cat.add(nn.Dense(2), nn.Dense(3), nn.Dense(4))
    head = cat[:2]
    assert isinstance(head, nn.Concatenate) and head.get_config() == {"axis": 1} and len(head) == 2


# -- summary ---------------------------------------------------------------------------------------
GLUON_SUMMARY = """\
--------------------------------------------------------------------------------
        Layer (type)                                Output Shape         Param #
================================================================================
               Input                                      (2, 3)               0
             Dense-1                                      (2, 4)              16
         BatchNorm-2                                      (2, 4)              16
             Dense-3                                      (2, 2)               8
================================================================================
Parameters in forward computation graph, duplicate included
   Total params: 40
   Trainable params: 20
   Non-trainable params: 20
Shared params in forward computation graph: 0
Unique parameters in model: 40
--------------------------------------------------------------------------------
"""


def test_summary_prints_gluons_table(capsys):
    # The expected text is what MXNet 1.9.1 printed for the same network and input.
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3), nn.BatchNorm(in_channels=4), nn.Dense(2, use_bias=False))
    net.initialize()
    net[0].weight.grad_req = "null"
    assert net.summary(np.ones((2, 3), np.float32)) is None
    assert capsys.readouterr().out == GLUON_SUMMARY


def test_summary_of_a_custom_block_counts_shared_parameters(capsys):
    class Twice(nn.Block):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential()
            shared = nn.Dense(3, in_units=3)
            self.body.add(shared, shared)

        def forward(self, x):
            return self.body(x), x

    net = Twice()
    net.initialize()
    net.summary(np.ones((1, 3), np.float32))
    out = capsys.readouterr().out
    assert re.search(r"Dense-1 +\(1, 3\) +12\n +Dense-2 +\(1, 3\) +12\n +Twice-3 +\[\(1, 3\), \(1, 3\)\] +0", out)
    assert "Shared params in forward computation graph: 12\nUnique parameters in model: 12" in out


# -- parameter sharing (params=) -------------------------------------------------------------------
def test_d2l_tied_parameters_share_one_array():
    """d2l 6.2's tied layers, verbatim apart from the imports."""
    net = nn.Sequential()
    # We need to give the shared layer a name so that we can refer to its
    # parameters
    shared = nn.Dense(8, activation="relu")
    net.add(nn.Dense(8, activation="relu"),
            shared,
            nn.Dense(8, activation="relu", params=shared.params),
            nn.Dense(10))
    net.initialize()

    X = np.random.uniform(size=(2, 20))
    net(X)

    # Check whether the parameters are the same
    assert (net[1].weight.data()[0] == net[2].weight.data()[0]).all()
    net[1].weight.data()[0, 0] = 100
    # Make sure that they are actually the same object rather than just having the
    # same value
    assert net[2].weight.data()[0, 0] == 100 and net[1].weight is net[2].weight
    assert list(net.collect_params()) == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]


def test_shared_parameters_must_fit():
    conv = nn.Conv2D(4, 3, in_channels=2)
    with pytest.raises(modelpack.ShapeMismatchError, match=r"shared parameter 'weight' has shape \(4, 2, 3, 3\), this Conv2D needs \(4, 0, 1, 1\) \(0 = not known yet\)"):
        nn.Conv2D(4, 1, params=conv.params)
    with pytest.raises(modelpack.DtypeMismatchError, match="shared parameter 'weight' has dtype float32, this Dense needs float64"):
        nn.Dense(4, dtype="float64", params=nn.Dense(4).params)
    block = nn.Block(params=conv.params)
    assert block.params.get("bias") is conv.bias  # get finds the shared parameter first


class MyInit(init.Initializer):
    """d2l 6.3's custom initializer, verbatim apart from the imports."""

    def _init_weight(self, name, data):
        print('Init', name, data.shape)
        data[:] = np.random.uniform(-10, 10, data.shape)
        data *= np.abs(data) >= 5


def test_d2l_custom_initializer_fills_weights_in_place(capsys):
    net = nn.Sequential()
    net.add(nn.Dense(8, activation="relu"), nn.Dense(1))
    net.initialize(MyInit(), force_reinit=True)
    net(np.random.uniform(size=(2, 4)))
    assert capsys.readouterr().out == "Init 0.weight (8, 4)\nInit 1.weight (1, 8)\n"
    weight = net[0].weight.data()
    assert weight.dtype == np.float32 and ((np.abs(weight) >= 5) | (weight == 0)).all() and weight.any()
    np.testing.assert_array_equal(net[0].bias.data(), np.zeros(8, np.float32))  # biases keep zeros
