"""Block, Sequential, initialisation and parameter files: the seed chapter's flow and its errors."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from models import MLP, mlp_ready

from modelpack import nn
from modelpack.errors import (
    DeferredInitializationError,
    DtypeMismatchError,
    ExtraParameterError,
    FormatError,
    MissingParameterError,
    ShapeMismatchError,
    UninitializedParameterError,
)


def test_seed_flow_bitwise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = MLP()
    net.initialize()
    X = np.random.uniform(size=(2, 20))
    Y = net(X)
    assert X.dtype == np.float64 and Y.dtype == np.float32 and Y.shape == (2, 10)
    net.save_parameters("mlp.params")
    assert os.path.exists("mlp.params") and not os.path.exists("mlp.params.npz")
    clone = MLP()
    clone.load_parameters("mlp.params")
    assert (clone(X) == Y).all()
    with np.load("mlp.params", allow_pickle=False) as stored:
        assert list(stored.keys()) == ["hidden.weight", "hidden.bias", "output.weight", "output.bias"]
        np.testing.assert_array_equal(stored["hidden.weight"], net.hidden.weight.data())


def test_collect_params_structured_names_in_order():
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3), nn.BatchNorm(in_channels=4), nn.Dense(2, use_bias=False))
    assert list(net.collect_params()) == [
        "0.weight", "0.bias",
        "1.gamma", "1.beta", "1.running_mean", "1.running_var",
        "2.weight",
    ]
    assert list(net.collect_params(".*weight")) == ["0.weight", "2.weight"]


def test_shared_parameter_listed_once():
    net = nn.Sequential()
    shared = nn.Dense(3, in_units=3)
    net.add(shared, shared)
    assert list(net.collect_params()) == ["0.weight", "0.bias"]


def test_repr_like_gluon():
    net = MLP()
    assert repr(net) == (
        "MLP(\n"
        "  (hidden): Dense(None -> 256, Activation(relu))\n"
        "  (output): Dense(None -> 10, linear)\n"
        ")"
    )
    seq = nn.Sequential()
    seq.add(nn.Dense(2, in_units=5))
    assert repr(seq) == "Sequential(\n  (0): Dense(5 -> 2, linear)\n)"


def test_sequential_add_index_len_slice():
    net = nn.Sequential()
    a, b, c = nn.Dense(8), nn.Dense(4), nn.Dense(2)
    net.add(a, b)
    net.add(c)
    assert len(net) == 3 and net[0] is a and net[-1] is c
    head = net[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[1] is b
    with pytest.raises(TypeError, match="expects Blocks"):
        net.add("dense")  # type: ignore[arg-type]


def test_reuse_first_layers_of_saved_network(tmp_path):
    """The chapter's exercise: the first layers of a saved net reused in a new one."""
    old = nn.Sequential()
    old.add(nn.Dense(16, activation="relu"), nn.Dense(8, activation="tanh"), nn.Dense(3))
    old.initialize(seed=1)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    old(x)
    path = tmp_path / "old.params"
    old.save_parameters(path)

    new = nn.Sequential()
    new.add(nn.Dense(16, activation="relu"), nn.Dense(8, activation="tanh"), nn.Dense(7))
    # new[:2] shares its blocks with new, and its names ("0.weight", ...) match the file's.
    new[:2].load_parameters(path, ignore_extra=True)
    new[2].initialize()  # the fresh head
    np.testing.assert_array_equal(new[:2](x), old[:2](x))
    assert new(x).shape == (5, 7)


def test_deferred_parameter_read_names_it():
    net = MLP()
    net.initialize()
    with pytest.raises(DeferredInitializationError, match=r"'hidden\.weight'.*\(256, 0\)"):
        net.hidden.weight.data()
    net(np.zeros((1, 20)))
    assert net.hidden.weight.data().shape == (256, 20)


def test_uninitialized_parameter_read_names_it():
    net = MLP()
    net.collect_params()
    with pytest.raises(UninitializedParameterError, match=r"'output\.bias'"):
        net.output.bias.data()
    with pytest.raises(UninitializedParameterError, match=r"'hidden\.weight'"):
        net(np.zeros((1, 3)))


def test_initialize_defaults_match_gluon():
    net = nn.Sequential()
    net.add(nn.Dense(50, in_units=400), nn.BatchNorm(in_channels=50))
    net.initialize(seed=3)
    weight = net[0].weight.data()
    assert weight.dtype == np.float32
    assert -0.07 <= weight.min() < -0.06 and 0.06 < weight.max() <= 0.07
    np.testing.assert_array_equal(net[0].bias.data(), np.zeros(50, np.float32))
    np.testing.assert_array_equal(net[1].gamma.data(), np.ones(50, np.float32))
    np.testing.assert_array_equal(net[1].beta.data(), np.zeros(50, np.float32))
    np.testing.assert_array_equal(net[1].running_mean.data(), np.zeros(50, np.float32))
    np.testing.assert_array_equal(net[1].running_var.data(), np.ones(50, np.float32))


def test_initialize_seed_is_reproducible_and_force_reinit():
    def build(seed):
        net = MLP()
        net.initialize(seed=seed)
        net(np.zeros((1, 20)))
        return net

    a, b, c = build(7), build(7), build(8)
    np.testing.assert_array_equal(a.hidden.weight.data(), b.hidden.weight.data())
    assert not np.array_equal(a.hidden.weight.data(), c.hidden.weight.data())
    before = a.output.weight.data().copy()
    a.initialize(seed=99)  # no force_reinit: values kept
    np.testing.assert_array_equal(a.output.weight.data(), before)
    a.initialize(nn.init.Constant(0.5), force_reinit=True)
    assert (a.output.weight.data() == 0.5).all()
    assert (a.output.bias.data() == 0).all()  # bias keeps its own 'zeros' initializer


def test_dtype_option_and_input_cast():
    layer = nn.Dense(3, in_units=2, dtype="float64")
    layer.initialize(seed=0)
    out = layer(np.ones((4, 2), dtype=np.float32))
    assert out.dtype == np.float64
    net = nn.Dense(3)
    net.initialize()
    assert net(np.ones((4, 2), dtype=np.int32)).dtype == np.float32


def _saved(tmp_path, net):
    path = tmp_path / "net.params"
    net.save_parameters(str(path))
    return path


def test_load_missing_parameter(tmp_path):
    small = nn.Sequential()
    small.add(nn.Dense(4, in_units=2))
    small.initialize()
    path = _saved(tmp_path, small)
    big = nn.Sequential()
    big.add(nn.Dense(4, in_units=2), nn.Dense(1, in_units=4))
    with pytest.raises(MissingParameterError, match=r"'1\.weight'.*\(1, 4\).*float32"):
        big.load_parameters(path)
    big.load_parameters(path, allow_missing=True)
    np.testing.assert_array_equal(big[0].weight.data(), small[0].weight.data())


def test_load_extra_parameter(tmp_path):
    path = _saved(tmp_path, mlp_ready())
    net = MLP()
    del net.output  # the file's 'output.*' parameters now have no home
    with pytest.raises(ExtraParameterError, match=r"'output\.weight'"):
        net.load_parameters(path)


@pytest.mark.parametrize("flags", [{}, {"ignore_extra": True}, {"allow_missing": True, "ignore_extra": True}])
def test_load_that_would_change_nothing_is_refused(tmp_path, flags):
    path = _saved(tmp_path, mlp_ready())
    net = MLP()
    with pytest.raises(MissingParameterError, match=r"none of the file's 4 names matches a parameter of Dense, "
                       r"so nothing would be loaded .* the prefix 'hidden\.' or 'output\.' is taken off"):
        net.hidden.load_parameters(path, **flags)


def test_load_wrong_shape_names_expected_and_found(tmp_path):
    path = _saved(tmp_path, mlp_ready())
    other = MLP()
    other.hidden = nn.Dense(256, in_units=21, activation="relu")
    with pytest.raises(ShapeMismatchError, match=r"'hidden\.weight'.*\(256, 21\).*\(256, 20\)"):
        other.load_parameters(path)
    assert not other.output.weight.is_initialized  # all or nothing


def test_load_wrong_dtype_and_cast(tmp_path):
    path = _saved(tmp_path, mlp_ready())
    other = MLP()
    other.output = nn.Dense(10, dtype="float64")
    with pytest.raises(DtypeMismatchError, match=r"'output\.weight'.*float64.*float32"):
        other.load_parameters(path)
    other.load_parameters(path, cast_dtype=True)
    assert other.output.weight.data().dtype == np.float64


def test_load_fills_deferred_shapes(tmp_path):
    path = _saved(tmp_path, mlp_ready())
    clone = MLP()
    assert clone.hidden.weight.shape == (256, 0)
    clone.load_parameters(path)
    assert clone.hidden.weight.shape == (256, 20)


def test_load_not_a_parameter_file(tmp_path):
    path = tmp_path / "junk.params"
    path.write_bytes(b"this is not a zip file at all")
    with pytest.raises(FormatError, match="junk.params.*not an npz"):
        MLP().load_parameters(path)


def test_load_refuses_pickled_member(tmp_path):
    path = tmp_path / "evil.params"
    with open(path, "wb") as handle:  # through a handle: numpy would append ".npz" to the name
        np.savez(handle, **{"hidden.weight": np.array([{"a": 1}], dtype=object)})
    from modelpack.errors import UnsupportedDtypeError

    with pytest.raises(UnsupportedDtypeError, match="hidden.weight.npy.*object"):
        MLP().load_parameters(path)


def test_save_and_load_through_file_objects():
    net = mlp_ready()
    buffer = io.BytesIO()
    net.save_parameters(buffer)
    buffer.seek(0)
    clone = MLP()
    clone.load_parameters(buffer)
    np.testing.assert_array_equal(clone.output.bias.data(), net.output.bias.data())


def test_save_uninitialized_names_parameter(tmp_path):
    net = MLP()
    net.initialize()
    with pytest.raises(DeferredInitializationError, match=r"'hidden\.weight'"):
        net.save_parameters(tmp_path / "x.params")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_training_mode_only_inside_context():
    drop = nn.Dropout(0.5)
    x = np.ones((100, 100), np.float32)
    np.testing.assert_array_equal(drop(x), x)
    with nn.training():
        assert nn.is_training()
        dropped = drop(x)
    assert not nn.is_training()
    assert set(np.unique(dropped)) <= {0.0, 2.0}
    assert (dropped == 0).any() and (dropped == 2).any()
