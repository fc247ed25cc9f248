"""``nn.batch_split``: a large batch's inference on one slice per thread, the whole model on each
slice: which models qualify (each example computed alone), when a call is split, and that the
results, errors and limits are the whole batch's."""

from __future__ import annotations

import io

import numpy as np
import pytest
from craft import edit
from models import Residual, export_bytes, residual_net

import modelpack
from modelpack import autograd, nn
from modelpack.errors import LimitError, ModelpackError
from modelpack.nn import batch_split
from modelpack.nn.kernels import backend, blas, parallel

X = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)  # over MIN_ELEMENTS
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}  # float32: a GEMM over fewer rows may add in another order


@pytest.fixture
def two_threads():
    """Two threads, on numpy's kernels (the compiled ones are never split)."""
    if not blas.usable():
        pytest.skip("numpy's BLAS here is not an OpenBLAS whose threads can be switched")
    before, kernels = parallel.threads(), backend.name()
    parallel.set_threads(2)
    backend.use("numpy")
    yield
    parallel.set_threads(before)
    backend.use(kernels)


@pytest.fixture
def splits(monkeypatch):
    """The calls that were split, by batch size (cleared by ``_loaded``: export runs the traced
    graph on a second batch size, split too)."""
    calls: list[int] = []
    original = batch_split._split
    monkeypatch.setattr(batch_split, "_split", lambda x, call: calls.append(len(x)) or original(x, call))
    return calls


def _loaded(net: nn.Block, x: np.ndarray = X, splits: list[int] | None = None, dynamic_batch: bool = True,
            **load) -> nn.Block:
    net.initialize(init="xavier", seed=0)
    net(x)
    loaded = modelpack.load(io.BytesIO(export_bytes(net, example=x, dynamic_batch=dynamic_batch)), **load)
    if splits is not None:
        splits.clear()
    return loaded


def _whole(net: nn.Block, x: np.ndarray) -> np.ndarray:
    before = parallel.threads()
    parallel.set_threads(1)
    try:
        return net(x)
    finally:
        parallel.set_threads(before)


def test_a_loaded_residual_net_runs_on_slices_with_the_whole_batchs_results(two_threads, splits):
    net = _loaded(residual_net(), splits=splits)
    assert batch_split.rows_rank(net, 4) == 2  # its residual blocks are graphs of layers and adds
    first = net(X)  # the first call runs whole
    assert splits == []
    again = net(X)
    assert splits == [8]
    assert again.shape == (8, 10) and again.dtype == np.float32
    np.testing.assert_allclose(again, first, **TOLERANCE)
    np.testing.assert_allclose(again, _whole(net, X), **TOLERANCE)


def test_a_sequential_of_layers_is_split_too(two_threads, splits):
    net = nn.Sequential()
    net.add(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.LeakyReLU(0.1), nn.MaxPool2D(2), nn.Dropout(0.5),
            nn.Flatten(), nn.Dense(6))
    net.initialize(seed=1)
    first = net(X)
    np.testing.assert_allclose(net(X), first, **TOLERANCE)
    assert splits == [8]


class _BatchMean(nn.Block):
    """Each output row depends on every example: the batch's mean is taken."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y - y.mean(axis=0)


class _OwnConv(nn.Conv2D):
    """A user's subclass of a layer that computes by rows, computing otherwise."""

    def forward(self, x):
        y = super().forward(x)
        return y - y.mean(axis=0)


class _Product(nn.Block):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y @ y  # (a matmul over the planes: not element-wise)


def _sequential(*blocks: nn.Block) -> nn.Sequential:
    net = nn.Sequential()
    net.add(*blocks)
    return net


@pytest.mark.parametrize("build", [
    pytest.param(lambda: _sequential(nn.Conv2D(4, 3), Residual(4)), id="a user's block"),
    pytest.param(lambda: _sequential(nn.Conv2D(4, 3), nn.BatchNorm(axis=0)), id="BatchNorm over the batch"),
    pytest.param(lambda: _sequential(nn.Conv2D(4, 3), nn.LayerNorm(axis=0)), id="LayerNorm over the batch"),
    pytest.param(lambda: _loaded(_BatchMean()), id="a graph taking the batch's mean"),
    pytest.param(lambda: _loaded(_Product()), id="a graph with a matmul"),
    pytest.param(lambda: _sequential(_OwnConv(4, 3)), id="a user's subclass of a layer"),
    pytest.param(lambda: _loaded(Residual(3), dynamic_batch=False), id="a graph of a fixed batch"),
])
def test_a_model_that_may_mix_examples_runs_whole(build, two_threads, splits):
    net = build()
    net.initialize(seed=0)
    assert batch_split.rows_rank(net, 4) is None
    first = net(X)
    assert np.array_equal(net(X), first) and splits == []


class _TwoRanks(nn.Block):
    def __init__(self):
        super().__init__()
        self.conv, self.pool, self.flat = nn.Conv2D(4, 3, padding=1), nn.GlobalAvgPool2D(), nn.Flatten()

    def forward(self, x):
        y = self.conv(x)
        return self.flat(self.pool(y)) + self.flat(self.pool(y * 2.0))


def test_a_graph_adding_values_of_two_ranks_runs_whole():
    """Broadcasting a rank-2 value of the batch against a rank-4 one lines its batch axis up with
    another axis: an edited graph doing so is not split."""
    net = _TwoRanks()
    net.initialize(seed=0)
    x = X[:2]
    net(x)
    data = export_bytes(net, example=x)
    assert batch_split.rows_rank(modelpack.load(io.BytesIO(data)), 4) == 2

    def rank_four_first(document):
        add = next(n for n in document["architecture"]["config"]["graph"]["nodes"] if n["op"] == "add")
        add["inputs"][0] = "x0"

    assert batch_split.rows_rank(modelpack.load(io.BytesIO(edit(data, manifest=rank_four_first))), 4) is None


def test_hooks_and_uninitialised_parameters_keep_a_model_whole(two_threads):
    net = residual_net()
    assert batch_split.rows_rank(net, 4) is None  # user blocks (Residual)
    plain = _sequential(nn.Conv2D(4, 3), nn.Dense(3))
    assert batch_split.rows_rank(plain, 4) is None  # its shapes are not known yet
    plain.initialize(seed=0)
    plain(X[:1])
    assert batch_split.rows_rank(plain, 4) == 2
    handle = plain[1].register_forward_hook(lambda block, inputs, output: None)
    assert batch_split.rows_rank(plain, 4) is None
    handle.detach()
    assert batch_split.rows_rank(plain, 4) == 2


@pytest.mark.parametrize("how", ["training", "recording", "small batch", "few values", "one thread", "dense only",
                                 "compiled kernels"])
def test_when_a_call_is_not_split(how, two_threads, splits, monkeypatch):
    net = _loaded(residual_net(), splits=splits)
    net(X)  # warm
    x = X
    if how == "small batch":
        monkeypatch.setattr(batch_split, "MIN_ELEMENTS", 1)
        x = X[:3]  # under MIN_ROWS a thread
    elif how == "few values":
        monkeypatch.setattr(batch_split, "MIN_ELEMENTS", X.size + 1)
    elif how == "dense only":
        net = _sequential(nn.Flatten(), nn.Dense(8))
        net.initialize(seed=0)
        net(X)
    if how == "training":
        with nn.training():
            net(x)
    elif how == "recording":
        with autograd.record(train_mode=False):  # (recording at inference: the gradients need the whole)
            net(x)
    elif how == "one thread":
        parallel.set_threads(1)
        net(x)
    elif how == "compiled kernels":
        if not backend.available():
            pytest.skip("the compiled kernels need numba (the accel extra)")
        backend.use("numba")
        net(x)
    else:
        net(x)
    assert splits == []


def _unsplit(net: nn.Block, x: np.ndarray, monkeypatch) -> object:
    """``net(x)`` at this thread count, not split."""
    with monkeypatch.context() as patch:
        patch.setattr(batch_split, "MIN_ELEMENTS", x.size + 1)
        return net(x)


def test_an_error_on_a_slice_is_the_whole_batchs_error(two_threads, splits, monkeypatch):
    net = _loaded(residual_net(), splits=splits)
    net(X)
    wrong = np.zeros((8, 5, 64, 64), np.float32)  # 5 channels where the stem takes 3
    with pytest.raises(ModelpackError) as whole:
        _unsplit(net, wrong, monkeypatch)
    with pytest.raises(ModelpackError) as split:
        net(wrong)
    assert splits == [8] and str(split.value) == str(whole.value)


def test_the_activation_budget_holds_on_the_slices_and_words_the_whole_batch(two_threads, splits,
                                                                              monkeypatch):
    """A slice over the budget makes the whole batch run again: its refusal counts the whole
    batch's bytes, as an unsplit call's does."""
    net = _loaded(residual_net(), splits=splits, limits=modelpack.Limits(max_activation_bytes=4 << 20))
    net(X[:2])  # warm, within the limit
    with pytest.raises(LimitError, match="max_activation_bytes") as whole:
        _unsplit(net, X, monkeypatch)
    with pytest.raises(LimitError) as split:
        net(X)
    assert splits == [8] and str(split.value) == str(whole.value)


def test_a_hybridized_model_keeps_the_whole_batch_as_its_last_inputs(two_threads, splits):
    net = _loaded(residual_net(), splits=splits)
    net.hybridize()
    net(X)
    net(X)
    assert splits == [8] and net._last_inputs[0] is X


def test_a_runtime_keeps_a_model_whole(two_threads):
    """A block hybridized onto a runtime (onnxruntime) runs there, not on the slices."""
    net = _sequential(nn.Conv2D(4, 3))
    net.initialize(seed=0)
    net(X[:1])
    assert batch_split.rows_rank(net, 4) == 4
    object.__setattr__(net[0], "_runtime", object())  # (what hybridize(backend=...) sets)
    assert batch_split.rows_rank(net, 4) is None


class _Pooled(nn.Block):
    """Returns values without the batch axis: what no model ``rows_rank`` passes returns."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(5, 3, padding=1)

    def forward(self, x):
        return self.conv(x).sum(axis=0)


def test_slices_whose_results_are_not_rows_of_the_batch_make_the_whole_batch_run(two_threads, splits,
                                                                                 monkeypatch):
    net = _loaded(_Pooled(), splits=splits)
    net(X)
    want = _unsplit(net, X, monkeypatch)
    monkeypatch.setattr(batch_split, "rows_rank", lambda block, rank: 3)  # (as if it qualified)
    got = net(X)
    assert splits == [8] and got.shape == want.shape == (5, 64, 64)
    np.testing.assert_allclose(got, want, **TOLERANCE)
