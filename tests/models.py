"""The test suite's shared networks and byte helpers: one definition of each, used everywhere."""

from __future__ import annotations

import io

import numpy as np

import modelpack
from modelpack import nn


class MLP(nn.Block):
    """The file I/O chapter's network, verbatim apart from the import."""

    def __init__(self, hidden: int = 256, outputs: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.hidden = nn.Dense(hidden, activation="relu")
        self.output = nn.Dense(outputs)

    def forward(self, x):
        return self.output(self.hidden(x))


class WithConstant(nn.Block):
    """A custom block with a numpy constant and a parameter of its own, besides a child layer."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(4)
        self.mean = np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32)
        self.scale = nn.Parameter("scale", shape=(4,))

    def forward(self, x):
        centred = (x - self.mean) / 2.0
        return self.fc(centred) * self.scale.data() + np.float32(1.5)


def ready(net: nn.Block, *inputs, seed: int = 0) -> nn.Block:
    """``net`` initialised with ``seed`` and called once on ``inputs`` (deferred shapes known)."""
    net.initialize(seed=seed)
    net(*inputs)
    return net


def mlp_ready(hidden: int = 256, outputs: int = 10, inputs: int = 20, seed: int = 0) -> MLP:
    """The chapter MLP, initialised with ``seed`` and its shapes known (called once)."""
    net = MLP(hidden, outputs)
    ready(net, np.zeros((1, inputs)), seed=seed)
    return net


def sequential_mlp(
    *units: int, inputs: int = 20, seed: int = 0, activation: str | None = "relu"
) -> nn.Sequential:
    """A Sequential of Dense layers (the last without activation), initialised, shapes known."""
    net = nn.Sequential()
    for index, count in enumerate(units):
        net.add(nn.Dense(count, activation=activation if index < len(units) - 1 else None))
    ready(net, np.zeros((1, inputs)), seed=seed)
    return net


def export_bytes(net: nn.Block, **options) -> bytes:
    """``modelpack.export`` into memory."""
    buffer = io.BytesIO()
    modelpack.export(net, buffer, **options)
    return buffer.getvalue()


def save_bytes(data, **options) -> bytes:
    """``modelpack.save`` into memory."""
    buffer = io.BytesIO()
    modelpack.save(buffer, data, **options)
    return buffer.getvalue()


def flat_outputs(result) -> list[np.ndarray]:
    """A forward's result (an array, or lists and tuples of them, nested) as a flat list."""
    if isinstance(result, (list, tuple)):
        return [leaf for item in result for leaf in flat_outputs(item)]
    return [np.asarray(result)]


def assert_outputs_close(got, want, **tol) -> None:
    """As many outputs as expected, each float32 of the expected shape and close within ``tol``."""
    got, want = flat_outputs(got), flat_outputs(want)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, w, **tol)


def assert_outputs_equal(got, want) -> None:
    """The same outputs, bit for bit."""
    got, want = flat_outputs(got), flat_outputs(want)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


def round_trip(net: nn.Block, example=None, **options):
    """``modelpack.export`` (with ``example``, if any) into memory, then ``modelpack.load``."""
    return modelpack.load(io.BytesIO(export_bytes(net, example=example, **options)))


def dense_norm_dense(
    inputs: int, hidden: int, outputs: int, *, activation: str | None = None, seed: int = 0
) -> nn.Sequential:
    """Dense, LayerNorm, Dense with every shape given, initialised (no forward pass needed)."""
    net = nn.Sequential()
    net.add(
        nn.Dense(hidden, activation=activation, in_units=inputs),
        nn.LayerNorm(in_channels=hidden),
        nn.Dense(outputs, in_units=hidden),
    )
    net.initialize(seed=seed)
    return net


def tied_sequential(seed: int = 0) -> nn.Sequential:
    """d2l's "tied parameters" network: the third Dense shares the second's weight and bias."""
    shared = nn.Dense(8, activation="relu")
    net = nn.Sequential()
    net.add(nn.Dense(8, activation="relu"), shared, nn.Dense(8, activation="relu", params=shared.params),
            nn.Dense(10))
    return ready(net, np.zeros((1, 20)), seed=seed)
