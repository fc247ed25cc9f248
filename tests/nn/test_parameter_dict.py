"""``ParameterDict``: a dict with Gluon's methods (get, initialize, setattr, zero_grad, save/load)."""

from __future__ import annotations

import numpy as np
import pytest

from modelpack import nn, npx
from modelpack.errors import (
    DtypeMismatchError,
    ExtraParameterError,
    MissingParameterError,
    ShapeMismatchError,
    UsageError,
)
from modelpack.nn import ParameterDict, init


def _net() -> nn.Sequential:
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3), nn.BatchNorm(in_channels=4), nn.Dense(2, in_units=4))
    net.initialize(seed=0)
    return net


def test_collect_params_is_a_dict_of_structured_names():
    params = _net().collect_params()
    assert isinstance(params, dict) and isinstance(params, ParameterDict)
    assert list(params)[:3] == ["0.weight", "0.bias", "1.gamma"]
    assert params.get("nothing", None) is None  # dict.get with a default creates nothing
    assert "nothing" not in params


def test_gluon_flat_names_index_and_select():
    net = _net()
    first, norm = net[0].name, net[1].name
    params = net.collect_params()
    assert params[f"{first}_weight"] is net[0].weight
    assert params[f"{norm}_running_var"] is net[1].running_var
    assert net[0].params[f"{first}_bias"] is net[0].bias
    assert list(net.collect_params(".*weight")) == ["0.weight", "2.weight"]
    assert list(net.collect_params(f"{norm}_")) == ["1.gamma", "1.beta", "1.running_mean", "1.running_var"]
    assert list(net.collect_params(r"2\.")) == ["2.weight", "2.bias"]
    with pytest.raises(KeyError, match=r"no parameter 'dense_weight'; parameters: \['0.weight'"):
        params["dense_weight"]


def test_get_creates_registers_and_fills_unknown_sizes():
    block = nn.Block()
    weight = block.params.get("weight", shape=(-1, 3), dtype="float64", init=init.One())
    assert weight.shape == (0, 3) and weight.dtype == np.float64  # -1: Gluon numpy mode's unknown
    assert list(block.collect_params()) == ["weight"]
    assert block.params.get("weight", shape=(5, 3)) is weight and weight.shape == (5, 3)
    block.initialize()
    np.testing.assert_array_equal(weight.data(), np.ones((5, 3)))
    loose = ParameterDict().get("bias", shape=(2,))  # a dict of no block: kept in the dict only
    assert loose.shape == (2,)


def test_get_refuses_disagreeing_options():
    block = nn.Block()
    block.params.get("weight", shape=(2, 3))
    with pytest.raises(ShapeMismatchError, match=r"expected shape \(2, 3\).*found \(2, 4\)"):
        block.params.get("weight", shape=(2, 4))
    with pytest.raises(DtypeMismatchError, match="exists with dtype float32, asked for float16"):
        block.params.get("weight", dtype="float16")
    with pytest.raises(UsageError, match="exists with grad_req 'write', asked for 'null'"):
        block.params.get("weight", grad_req="null")
    with pytest.raises(UsageError, match=r"unknown options \['lr_mult'\]"):
        block.params.get("weight", lr_mult=2.0)
    with pytest.raises(UsageError, match="takes no other arguments"):
        block.params.get("weight", None, shape=(2, 3))


def test_initialize_accepts_ctx_and_force_reinit():
    net = _net()
    before = net[0].weight.data().copy()
    params = net.collect_params()
    params.initialize(init.Constant(0.5), ctx=["gpu(0)"])  # already initialized: kept
    np.testing.assert_array_equal(net[0].weight.data(), before)
    params.initialize(init.Constant(0.5), force_reinit=True)
    np.testing.assert_array_equal(net[0].weight.data(), np.full((4, 3), 0.5, np.float32))
    np.testing.assert_array_equal(net[1].gamma.data(), np.ones(4, np.float32))  # its own init wins


def test_setattr_sets_every_parameter_and_refuses_typos():
    net = _net()
    net.collect_params(".*weight").setattr("grad_req", "null")
    assert [p.grad_req for p in net.collect_params().values()] == [
        "null", "write", "write", "write", "null", "null", "null", "write"
    ]
    with pytest.raises(UsageError, match="no settable attribute 'grad_reqs'"):
        net.collect_params().setattr("grad_reqs", "null")
    with pytest.raises(UsageError, match=r"grad_req must be one of \('write', 'add', 'null'\), got 'none'"):
        net.collect_params().setattr("grad_req", "none")
    net.collect_params().setattr("dtype", "float64")
    assert net[0].weight.data().dtype == np.float64


def test_zero_grad_zeroes_where_a_gradient_exists_and_is_safe_elsewhere():
    net = _net()
    net.collect_params().zero_grad()  # no gradients yet: nothing to do, no error
    calls = []
    net[0].weight.zero_grad = lambda: calls.append("weight")  # as autograd's Parameter has it
    net.collect_params().zero_grad()
    assert calls == ["weight"]


def test_save_and_load_round_trip_bitwise_with_prefixes(tmp_path):
    net = _net()
    net.collect_params().save(tmp_path / "all.params")
    other = _net()
    other.collect_params().initialize(init.Constant(0.0), force_reinit=True)
    other.collect_params().load(tmp_path / "all.params", ctx="cpu(0)")
    for name, param in net.collect_params().items():
        assert other.collect_params()[name].data().tobytes() == param.data().tobytes()

    net.collect_params(r"0\.").save(tmp_path / "first.params", strip_prefix="0.")
    with np.load(tmp_path / "first.params") as stored:
        assert sorted(stored) == ["bias", "weight"]
    fresh = _net()
    fresh.collect_params(r"0\.").load(tmp_path / "first.params", restore_prefix="0.")
    assert fresh[0].weight.data().tobytes() == net[0].weight.data().tobytes()
    with pytest.raises(UsageError, match="cannot strip prefix '1.' from parameter '0.weight'"):
        net.collect_params().save(tmp_path / "bad.params", strip_prefix="1.")


def test_load_refuses_what_does_not_fit(tmp_path):
    net = _net()
    net.collect_params(r"0\.").save(tmp_path / "first.params")
    with pytest.raises(MissingParameterError, match=r"first.params: parameter '1.gamma'.*allow_missing=True"):
        _net().collect_params().load(tmp_path / "first.params")
    _net().collect_params().load(tmp_path / "first.params", allow_missing=True)
    net.collect_params().save(tmp_path / "all.params")
    with pytest.raises(ExtraParameterError, match=r"parameter '1.gamma' is in the file but not in the model"):
        _net().collect_params(r"0\.").load(tmp_path / "all.params")
    with pytest.raises(MissingParameterError, match=r"none of the file's 2 names matches"):
        _net().collect_params(r"0\.").load(tmp_path / "first.params", restore_prefix="x.")
    with pytest.raises(UsageError, match="dtype_source 'saved'"):
        _net().collect_params().load(tmp_path / "all.params", dtype_source="saved")


def test_repr_lists_parameters_under_the_prefix():
    dense = nn.Dense(2, in_units=3)
    assert repr(dense.params) == (
        f"{dense.prefix} (\n"
        "  Parameter weight (shape=(2, 3), dtype=float32)\n"
        "  Parameter bias (shape=(2,), dtype=float32)\n)"
    )


def test_get_constant_holds_its_array_never_trains_and_is_saved(tmp_path):
    """d2l's FixedHiddenMLP: ``self.params.get_constant('rand_weight', array)``."""
    from modelpack import autograd

    value = np.random.default_rng(0).uniform(size=(3, 3)).astype(np.float32)
    block = nn.Block()
    const = block.params.get_constant("rand_weight", value)
    assert const.grad_req == "null" and list(block.collect_params()) == ["rand_weight"]
    block.initialize(init.Normal(1.0))  # the constant's own initializer wins, as in Gluon
    np.testing.assert_array_equal(const.data(), value)
    assert block.params.get_constant("rand_weight") is const
    x = autograd.Variable(np.ones((2, 3), np.float32))
    with autograd.record():
        y = (x @ const.data()).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, np.tile(value.sum(axis=1), (2, 1)), rtol=1e-6)
    block.save_parameters(str(tmp_path / "c.params"))
    assert np.load(tmp_path / "c.params")["rand_weight"].tolist() == value.tolist()
    with pytest.raises(UsageError, match=r"get_constant\('other'\): no such constant yet; pass its value"):
        block.params.get_constant("other")
    with pytest.raises(UsageError, match=r"a parameter 'rand_weight' exists already"):
        block.params.get_constant("rand_weight", value)


def test_constant_initializer_takes_an_array_broadcast_to_the_shape():
    """Gluon's ``init.Constant(array)`` (d2l's bilinear kernel for Conv2DTranspose)."""
    kernel = np.arange(4, dtype=np.float32).reshape(2, 2)
    conv = nn.Conv2DTranspose(1, kernel_size=2, in_channels=1)
    conv.initialize(init.Constant(kernel))
    np.testing.assert_array_equal(conv.weight.data(), kernel.reshape(1, 1, 2, 2))
    assert init.Constant(2)((2,), np.dtype(np.float32), np.random.default_rng()).tolist() == [2.0, 2.0]
    with pytest.raises(UsageError, match=r"Constant: an array of shape \(3,\) cannot fill shape \(2, 2\)"):
        init.Constant(np.zeros(3))((2, 2), np.dtype(np.float32), np.random.default_rng())


def test_devices_of_parameters_are_the_cpu_and_a_gpu_is_refused():
    """Gluon's per-device API on one device: d2l's evaluate_accuracy_gpus splits batches by
    ``list_ctx()`` of a parameter."""
    net = nn.Dense(2, in_units=3)
    net.initialize()
    params = net.collect_params()
    weight = params["weight"]
    assert weight.list_ctx() == params.list_ctx() == ["cpu(0)"]
    np.testing.assert_array_equal(weight.list_data()[0], weight.data())
    assert weight.list_grad()[0].shape == (2, 3)
    weight.reset_ctx(npx.cpu())
    params.reset_ctx([npx.cpu()])
    for reset in (weight.reset_ctx, params.reset_ctx):
        with pytest.raises(UsageError, match=r"^device gpu\(0\): modelpack computes with numpy on the CPU; use npx\.cpu\(\)$"):
            reset(npx.gpu(0))
