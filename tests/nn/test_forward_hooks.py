"""Gluon's forward hooks: run around eager and autograd calls, detachable, never archived."""

from __future__ import annotations

import io

import numpy as np
import pytest

import modelpack
from modelpack import autograd, nn, npx
from modelpack.errors import UsageError
from tests.models import export_bytes


class Scaled(nn.Block):
    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(3, in_units=4)

    def forward(self, x):
        return npx.relu(self.dense(x)) * 2


def _net() -> Scaled:
    net = Scaled()
    net.initialize(seed=0)
    return net


def test_pre_and_post_hooks_see_inputs_and_output_in_order():
    net, seen = _net(), []
    net.register_forward_pre_hook(lambda block, inputs: seen.append(("pre", block, inputs[0].shape)))
    net.dense.register_forward_hook(lambda block, inputs, out: seen.append(("dense", block, out.shape)))
    net.register_forward_hook(lambda block, inputs, out: seen.append(("post", block, out.shape)))
    out = net(np.ones((2, 4), dtype=np.float32))
    assert seen == [("pre", net, (2, 4)), ("dense", net.dense, (2, 3)), ("post", net, (2, 3))]
    assert out.shape == (2, 3)


def test_a_hooks_return_value_is_ignored_and_detach_removes_it():
    net, calls = _net(), []
    handle = net.register_forward_hook(lambda block, inputs, out: calls.append(1) or np.zeros(1))
    x = np.ones((1, 4), dtype=np.float32)
    assert net(x).shape == (1, 3)
    handle.detach()
    net(x)
    assert calls == [1]
    with net.register_forward_pre_hook(lambda block, inputs: calls.append(2)):
        net(x)
    net(x)
    assert calls == [1, 2]


def test_hooks_run_while_autograd_records():
    net, seen = _net(), []
    net.dense.register_forward_hook(lambda block, inputs, out: seen.append(type(out).__name__))
    with autograd.record():
        loss = net(np.ones((2, 4), dtype=np.float32)).sum()
    loss.backward()
    assert seen == ["Variable"] and net.dense.weight.grad() is not None


def test_export_runs_no_hook_and_archives_none():
    net, calls = _net(), []
    net.register_forward_hook(lambda block, inputs, out: calls.append(1))
    x = np.ones((2, 4), dtype=np.float32)
    loaded = modelpack.load(io.BytesIO(export_bytes(net, example=x)))
    assert calls == []
    np.testing.assert_array_equal(loaded(x), net(x))
    assert calls == [1]


def test_a_hook_that_is_not_callable_is_refused():
    with pytest.raises(UsageError, match="a forward hook must be callable, got int"):
        _net().register_forward_hook(3)
