"""``modelpack.context``: MXNet's ``mxnet.context`` on modelpack's one notion of a device
(``nn.devices.Device``): names, equality with ``npx``'s devices, ``with ctx:``, refusals."""

from __future__ import annotations

import pickle
import threading

import pytest

import modelpack.context as context
from modelpack import np, npx
from modelpack.errors import UnsupportedFeatureError, UsageError
from modelpack.nn.devices import Device


def test_names_print_as_mxnet():
    assert repr(context.cpu()) == "cpu(0)" and str(context.gpu(1)) == "gpu(1)"
    assert repr(context.cpu_pinned(2)) == "cpu_pinned(2)"
    assert repr((context.cpu(), context.gpu(), context.gpu(1))) == "(cpu(0), gpu(0), gpu(1))"
    ctx = context.Context("gpu", 3)
    assert (ctx.device_type, ctx.device_id, ctx.device_typeid) == ("gpu", 3, 2)
    assert context.Context(ctx) == ctx and context.Context(npx.cpu()).device_type == "cpu"


def test_one_kind_of_device():
    """A Context is a Device and every Device is a Context: npx.cpu(), x.ctx and
    context.cpu() are the same device, equal and hashing alike."""
    assert isinstance(context.cpu(), Device)
    assert isinstance(npx.cpu(), context.Context) and isinstance(np.ones(2).ctx, context.Context)
    assert not isinstance("cpu(0)", context.Context)
    assert context.cpu() == npx.cpu() == np.ones(2).ctx and context.gpu(1) == npx.gpu(1)
    assert {context.cpu(): "x"}[npx.cpu()] == "x"
    assert np.zeros(2, ctx=context.cpu()).ctx == context.cpu()
    assert pickle.loads(pickle.dumps(context.gpu(2))) == context.gpu(2)


def test_no_gpu_here():
    assert context.num_gpus() == npx.num_gpus() == 0
    with pytest.raises(UsageError, match="CPU"):
        np.zeros(2, ctx=context.gpu())
    with pytest.raises(UsageError, match="CPU"):
        with context.gpu(0):
            pass
    with pytest.raises(UsageError, match="no GPU"):
        context.gpu_memory_info(0)


def test_current_context_follows_with_blocks_per_thread():
    assert context.current_context() == context.cpu(0)
    with context.cpu(1) as outer:
        assert outer == context.cpu(1) and context.current_context() == context.cpu(1)
        with context.Context("cpu", 2):
            assert context.current_context() == context.cpu(2)
            seen = []
            thread = threading.Thread(target=lambda: seen.append(context.current_context()))
            thread.start()
            thread.join()
            assert seen == [context.cpu(0)]
        assert context.current_context() == context.cpu(1)
    assert context.current_context() == context.cpu(0)


def test_bad_arguments_and_left_out_names():
    with pytest.raises(UsageError, match="unknown device type"):
        context.Context("tpu", 0)
    with pytest.raises(UsageError, match="device_id"):
        context.Context("cpu", -1)
    with pytest.raises(UnsupportedFeatureError, match="context has"):
        context.nosuch  # noqa: B018
    context.cpu().empty_cache()
