"""``modelpack.random``: one seed decides initialisation, dropout and shuffling, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import modelpack
from modelpack import autograd, gluon, nn
from modelpack.errors import UsageError


def run(seed: int) -> dict[str, bytes]:
    """A short training run drawing from every stream: init, dropout, data order."""
    modelpack.random.seed(seed)
    net = nn.Sequential()
    net.add(nn.Dense(16, activation="relu"), nn.Dropout(0.5), nn.Dense(2))
    net.initialize()
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(x, y), batch_size=8, shuffle=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(2):
        for xb, yb in loader:
            with autograd.record():
                loss = loss_fn(net(xb), yb)
            loss.backward()
            trainer.step(len(xb))
    return {name: p.data().tobytes() for name, p in net.collect_params().items()}


def test_same_seed_same_bits_other_seed_other_bits():
    assert run(0) == run(0)
    assert run(0) != run(1)


def test_streams_are_independent_and_restart_with_the_seed():
    modelpack.random.seed(4)
    dropout = modelpack.random.generator("dropout").random(3)
    modelpack.random.seed(4)
    modelpack.random.generator("data").random(100)  # another stream's use shifts nothing here
    assert np.array_equal(modelpack.random.generator("dropout").random(3), dropout)
    modelpack.random.seed(4)
    net = nn.Dense(3, in_units=2)
    net.initialize()  # without a seed: drawn from the "init" stream
    again = nn.Dense(3, in_units=2)
    modelpack.random.seed(4)
    again.initialize()
    assert net.weight.data().tobytes() == again.weight.data().tobytes()


def test_state_round_trip_and_unused_streams_start_from_the_seed():
    modelpack.random.seed(8)
    modelpack.random.generator("dropout").random(5)
    saved = modelpack.random.get_state()
    expected_dropout = modelpack.random.generator("dropout").random(4)
    expected_data = modelpack.random.generator("data").random(4)  # not used before the save
    modelpack.random.seed(1)
    modelpack.random.generator("data").random(7)
    modelpack.random.set_state(saved)
    assert np.array_equal(modelpack.random.generator("dropout").random(4), expected_dropout)
    assert np.array_equal(modelpack.random.generator("data").random(4), expected_data)


def test_bad_seeds_and_generators_are_refused():
    with pytest.raises(UsageError, match=r"modelpack\.random\.seed expects a non-negative int, got -1"):
        modelpack.random.seed(-1)
    with pytest.raises(UsageError, match=r"expects a non-negative int, got 1\.5"):
        modelpack.random.seed(1.5)  # type: ignore[arg-type]
    mt = np.random.Generator(np.random.MT19937(0))
    with pytest.raises(UsageError, match=r"cannot save the state of 'g': its bit generator is MT19937"):
        modelpack.random.generator_state(mt, "g")
    saved = modelpack.random.generator_state(np.random.default_rng(0), "g")
    with pytest.raises(UsageError, match=r"cannot restore 'g': the saved state is of a PCG64 generator, but the "
                                             r"generator given uses MT19937"):
        modelpack.random.set_generator_state(mt, saved, "g")
