"""``gluon.utils.split_and_load`` on the one device, and the Gluon names left out on purpose."""

from __future__ import annotations

import numpy
import pytest

from modelpack import gluon, npx
from modelpack.errors import UnsupportedFeatureError, UsageError


def test_split_and_load_slices_the_batch_per_device():
    X = numpy.arange(12).reshape(6, 2)
    (whole,) = gluon.utils.split_and_load(X, [npx.cpu()])  # d2l's try_all_gpus() here: [cpu(0)]
    assert whole.ctx == npx.cpu() and whole.tolist() == X.tolist()
    parts = gluon.utils.split_and_load(X, [npx.cpu(), npx.cpu()])
    assert [part.tolist() for part in parts] == [X[:3].tolist(), X[3:].tolist()]
    with pytest.raises(UsageError, match=r"6 examples do not split evenly into 4 slices"):
        gluon.utils.split_and_load(X, [npx.cpu()] * 4)
    assert [len(part) for part in gluon.utils.split_and_load(X, [npx.cpu()] * 4, even_split=False)] == [2, 2, 1, 1]
    with pytest.raises(UsageError, match=r"numpy on the CPU"):
        gluon.utils.split_and_load(X, ["gpu(0)"])


def test_left_out_names_say_what_to_do_instead():
    with pytest.raises(UnsupportedFeatureError, match=r"^gluon.model_zoo is not supported by modelpack: "
                                                      r"pretrained models are neither bundled nor downloaded.*load_parameters"):
        gluon.model_zoo.vision.resnet18_v2(pretrained=True)
    with pytest.raises(UnsupportedFeatureError, match=r"^gluon.data.vision.ImageRecordDataset is not supported by "
                                                      r"modelpack: read the images with modelpack.image.imread.*ArrayDataset"):
        gluon.data.vision.ImageRecordDataset("train.rec")
    with pytest.raises(UnsupportedFeatureError, match=r"^gluon.data.RecordFileDataset is not supported by modelpack: "
                                                      r"gluon.data has Dataset, SimpleDataset, ArrayDataset"):
        gluon.data.RecordFileDataset("x.rec")
    with pytest.raises(UnsupportedFeatureError, match=r"^gluon.nothing is not supported by modelpack: gluon has nn"):
        gluon.nothing  # noqa: B018
    assert not hasattr(gluon, "contrib") and hasattr(gluon, "utils")
    # a dunder name, which Python's machinery probes, is an ordinary missing attribute
    for module in (gluon, gluon.data, npx):
        with pytest.raises(AttributeError) as caught:
            module.__wrapped__  # noqa: B018
        assert type(caught.value) is AttributeError
        assert str(caught.value) == f"module {module.__name__!r} has no attribute '__wrapped__'"
