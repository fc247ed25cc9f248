"""Symbolic sizes (tracing.symbols): the batch and declared axes stay dynamic after loading,
every other size is fixed, and a graph that is only right for the example's sizes is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from models import MLP, export_bytes, ready, round_trip
from tracing_helpers import X, refused_export

import modelpack
from modelpack import nn
from modelpack.errors import InputError, ModelpackError, TraceError
from modelpack.nn import functional as F


def test_fixed_batch_when_asked():
    x = np.ones((2, 20))
    net = ready(MLP(), x)
    loaded = round_trip(net, x, dynamic_batch=False)
    with pytest.raises(InputError, match=r"input 'x0' expects shape \(2, 20\), got \(3, 20\)"):
        loaded(np.ones((3, 20)))


def test_other_dimensions_are_fixed():
    x = np.ones((2, 20))
    loaded = round_trip(ready(MLP(), x), x)
    with pytest.raises(InputError, match=r"expects shape \(batch, 20\), got \(2, 21\)"):
        loaded(np.ones((2, 21)))


def test_refuses_batch_dependent_constant():
    refused_export(lambda self, x: self.fc(x + np.arange(x.size).reshape(x.shape)), X,
             r"constant in block 'Bad'.*depends on the input size")


def test_refuses_a_size_that_is_no_expression_of_the_inputs():
    # 5 - batch shrinks as the batch grows: no product or ratio of the input sizes
    refused_export(lambda self, x: self.fc(np.concatenate([x, x[:, : 5 - x.shape[0]]], axis=1)[:, :5]), X,
             r"nodes\.\d+\.attrs\.index\.1\.slice\.1 is 3 at the example's sizes but 2 when they grow "
             r"\(batch 2->3\); it is a size that is no product or ratio")


class SequenceModel(nn.Block):
    """Token ids (batch, seq) → per-sequence scores; reshapes through the dynamic sizes."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 4)
        self.proj = nn.Dense(3, flatten=False)

    def forward(self, ids, mask):
        h = self.proj(self.embed(ids))                     # (batch, seq, 3)
        flat = h.reshape(ids.shape[0] * 1, -1)             # (batch, seq*3)
        back = flat.reshape(ids.shape[0], ids.shape[1], 3)  # dynamic sizes as reshape targets
        weights = F.softmax(np.where(mask, 0.0, -1e9), axis=1)[..., None]
        return F.sum(back * weights, axis=1)


def test_declared_dynamic_axes_tie_inputs():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 11, size=(2, 5))
    mask = rng.random((2, 5)) < 0.7
    net = ready(SequenceModel(), ids, mask)
    data = export_bytes(net, example=(ids, mask), dynamic_axes={0: {1: "seq"}, 1: {1: "seq"}})
    loaded = modelpack.load(io.BytesIO(data))
    graph_inputs = modelpack.inspect(io.BytesIO(data)).architecture.config["graph"]["inputs"]
    assert [i["shape"] for i in graph_inputs] == [["batch", "seq"], ["batch", "seq"]]
    for batch, seq in ((1, 1), (3, 9), (2, 5)):
        ids2 = rng.integers(0, 11, size=(batch, seq))
        mask2 = rng.random((batch, seq)) < 0.7
        assert loaded(ids2, mask2).tobytes() == net(ids2, mask2).tobytes()
    with pytest.raises(InputError, match=r"dynamic size 'seq' is 4 here but 5 in an earlier input"):
        loaded(ids, mask[:, :4])


def test_undeclared_axis_stays_fixed():
    ids = np.zeros((2, 5), dtype=np.int64)
    mask = np.ones((2, 5), dtype=bool)
    loaded = round_trip(ready(SequenceModel(), ids, mask), (ids, mask))
    with pytest.raises(InputError, match=r"expects shape \(batch, 5\), got \(2, 6\)"):
        loaded(np.zeros((2, 6), dtype=np.int64), np.ones((2, 6), dtype=bool))


def test_bad_dynamic_axes_declarations():
    x = np.ones((2, 20))
    net = ready(MLP(), x)
    with pytest.raises(ModelpackError, match="names input 3, but forward takes 1"):
        modelpack.export(net, io.BytesIO(), example=x, dynamic_axes={3: {0: "n"}})
    with pytest.raises(ModelpackError, match="input 0 has 2 axes, no axis 2"):
        modelpack.export(net, io.BytesIO(), example=x, dynamic_axes={0: {2: "n"}})
    with pytest.raises(ModelpackError, match="named both 'batch' and 'n'"):
        modelpack.export(net, io.BytesIO(), example=x, dynamic_axes={0: {0: "n"}})


class _TimeMajor(nn.Block):
    """A hand-written recurrence over time-major input (T, N, C): loops over axis 0."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(4, flatten=False)

    def forward(self, X):
        h = np.zeros((X.shape[1], 4), dtype=np.float32)
        outputs = []
        for x in X:
            h = np.tanh(self.fc(x) + h)
            outputs.append(h)
        return np.stack(outputs)


def test_time_major_input_with_the_default_dynamic_batch_names_the_fix():
    net = _TimeMajor()
    net.initialize(seed=0)
    x = np.random.default_rng(0).normal(size=(5, 2, 3)).astype(np.float32)
    net(x)
    with pytest.raises(TraceError) as caught:
        modelpack.export(net, io.BytesIO(), example=x)
    message = str(caught.value)
    assert len(message.splitlines()) <= 10 and len(message) < 1200
    assert "a Python loop runs once per element of a dynamic axis" in message
    assert "test_symbols.py" in message and "for x in X:" in message
    assert "dynamic_batch=False and dynamic_axes" in message
    buffer = io.BytesIO()  # the fix it names works: the batch is axis 1
    modelpack.export(net, buffer, example=x, dynamic_batch=False, dynamic_axes={0: {1: "batch"}})
    loaded = modelpack.load(io.BytesIO(buffer.getvalue()))
    for batch in (1, 7):
        y = np.random.default_rng(batch).normal(size=(5, batch, 3)).astype(np.float32)
        assert np.array_equal(loaded(y), net(y))
