"""``modelpack.npx``: MXNet's operators give NDArrays with MXNet's values; other names are refused
with advice."""

from __future__ import annotations

import numpy
import pytest

from modelpack import autograd, np, npx
from modelpack.errors import UnsupportedFeatureError
from modelpack.nn.devices import NDArray


def test_operators_give_ndarrays_with_mxnets_values():
    """d2l's attention heatmaps call ``.asnumpy()`` on ``npx.softmax``/``sequence_mask`` results."""
    X = numpy.random.default_rng(0).normal(size=(2, 3, 4)).astype(numpy.float32)
    p = npx.softmax(X)
    assert type(p) is NDArray and type(p.asnumpy()) is numpy.ndarray
    expected = numpy.exp(X) / numpy.exp(X).sum(-1, keepdims=True)
    numpy.testing.assert_allclose(p, expected, rtol=1e-6)
    masked = npx.sequence_mask(X, numpy.array([1, 2]), True, value=-1.0, axis=1)
    assert masked.ctx == npx.cpu()
    numpy.testing.assert_array_equal(masked[0, 1:], -numpy.ones((2, 4)))
    numpy.testing.assert_array_equal(masked[1, :2], X[1, :2])
    assert npx.relu(X).asnumpy().tolist() == numpy.maximum(X, 0).tolist()
    assert type(npx.activation(X, act_type="tanh")) is NDArray
    assert type(npx.batch_flatten(X)) is NDArray and npx.batch_flatten(X).shape == (2, 12)


def test_operators_on_the_tape_stay_variables():
    x = np.array([-1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = npx.relu(x)
    assert isinstance(y, autograd.Variable)
    y.backward()
    assert x.grad.tolist() == [0.0, 1.0]


def test_other_names_are_refused_with_advice():
    with pytest.raises(UnsupportedFeatureError, match=r"^npx.deconvolution is not supported by modelpack: npx has "
                                                      r"activation, batch_dot.*write it with numpy.*"
                                                      r"nn.Conv2DTranspose for deconvolution") as caught:
        npx.deconvolution  # noqa: B018  (the attribute access is the test)
    assert caught.value.feature == "npx.deconvolution" and isinstance(caught.value, AttributeError)
    assert not hasattr(npx, "box_nms") and getattr(npx, "batch_norm", None) is None


def test_every_public_name_is_there_and_the_refusal_lists_them():
    """``__all__`` is what npx has: every name resolves, and the refusal's list is ``__all__``."""
    for name in npx.__all__:
        assert callable(getattr(npx, name)), name
    assert {"convolution", "pooling", "multibox_prior", "multibox_target", "multibox_detection",
            "roi_pooling"} <= set(npx.__all__)
    with pytest.raises(UnsupportedFeatureError) as caught:
        npx.box_iou  # noqa: B018
    assert f"npx has {', '.join(sorted(npx.__all__))};" in str(caught.value)
