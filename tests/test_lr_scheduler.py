"""``modelpack.lr_scheduler`` and ``gluon.Trainer``'s ``lr_scheduler``: MXNet 1.9.1's values bit for
bit (tests/reference/mxnet_lr_schedulers.json, written with MXNet by
scripts/make_mxnet_lr_refs.py), values that depend on ``num_update`` alone, the refusals, and a
checkpointed run that resumes exactly."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelpack
from modelpack import autograd, gluon, lr_scheduler
from modelpack.errors import UsageError
from modelpack.gluon import nn

REFERENCE = json.loads((Path(__file__).with_name("reference") / "mxnet_lr_schedulers.json").read_text())


def build(spec: dict[str, Any]) -> Any:
    return getattr(lr_scheduler, spec["class"])(**spec["kwargs"])


class Recording:
    """A user-written scheduler (d2l's SquareRootScheduler) that notes what it is asked."""

    def __init__(self, lr: float = 0.1) -> None:
        self.lr, self.calls = lr, []

    def __call__(self, num_update: int) -> float:
        self.calls.append(num_update)
        return self.lr * pow(num_update + 1.0, -0.5)


@pytest.mark.parametrize("case", sorted(REFERENCE["schedulers"]))
def test_values_are_mxnets_bit_for_bit(case):
    spec = REFERENCE["schedulers"][case]
    scheduler = build(spec)
    assert [scheduler(n) for n in range(REFERENCE["last_update"] + 1)] == spec["values"]


@pytest.mark.parametrize("case", ["factor_d2l", "factor_step3_warmup", "factor_stop_zero", "multifactor_warmup",
                                  "poly_warmup", "cosine_d2l_warmup"])
def test_each_value_depends_on_num_update_alone(case):
    """Backwards, shuffled, repeated, or a fresh instance per call: the same values (MXNet's
    FactorScheduler would give its decayed rate to every call after a later one)."""
    spec = REFERENCE["schedulers"][case]
    values, last = spec["values"], REFERENCE["last_update"]
    scheduler = build(spec)
    assert [scheduler(n) for n in reversed(range(last + 1))] == values[::-1]
    order = np.random.default_rng(0).permutation(last + 1).tolist() * 2
    assert [scheduler(n) for n in order] == [values[n] for n in order]
    assert [build(spec)(n) for n in range(last + 1)] == values
    assert scheduler(np.int64(7)) == scheduler(7.0) == values[7]


def test_factor_decays_one_multiplication_at_a_time():
    """``base_lr·factor**k`` is not MXNet's value: it multiplies ``k`` times."""
    scheduler = lr_scheduler.FactorScheduler(step=1, factor=0.9, stop_factor_lr=1e-2, base_lr=2)
    powers = [2 * 0.9 ** max(0, n - 1) for n in range(30)]
    assert [scheduler(n) for n in range(30)] != powers
    assert scheduler(10**9) == 0.01  # quickly: it stops changing at stop_factor_lr
    scheduler = lr_scheduler.FactorScheduler(step=1, factor=0.9, base_lr=2)
    scheduler(5)
    scheduler.base_lr = 1.0  # as an optimiser's learning_rate does: the values follow
    assert scheduler(9) == lr_scheduler.FactorScheduler(step=1, factor=0.9, base_lr=1)(9)


def test_the_classes_live_in_the_module_d2l_compares_with():
    assert lr_scheduler.CosineScheduler.__module__ == lr_scheduler.__name__ == "modelpack.lr_scheduler"
    assert modelpack.lr_scheduler is lr_scheduler


@pytest.mark.parametrize("make, message", [
    (lambda: lr_scheduler.FactorScheduler(step=0), r"step must be an int >= 1, got 0"),
    (lambda: lr_scheduler.FactorScheduler(step=2.5), r"step must be an int >= 1, got 2\.5"),
    (lambda: lr_scheduler.FactorScheduler(step=1, factor=1.5),
     r"factor must be <= 1 so that the learning rate decreases, got 1\.5"),
    (lambda: lr_scheduler.FactorScheduler(step=1, base_lr="0.1"), r"base_lr must be a finite number, got '0\.1'"),
    (lambda: lr_scheduler.FactorScheduler(step=1, stop_factor_lr=float("nan")),
     r"stop_factor_lr must be a finite number, got nan"),
    (lambda: lr_scheduler.FactorScheduler(step=1, warmup_steps=-1), r"warmup_steps must be an int >= 0, got -1"),
    (lambda: lr_scheduler.FactorScheduler(step=1, warmup_steps=True), r"warmup_steps must be an int >= 0, got True"),
    (lambda: lr_scheduler.FactorScheduler(step=1, base_lr=0.1, warmup_begin_lr=0.2),
     r"warmup_begin_lr \(0\.2\) must not exceed base_lr \(0\.1\): the warm-up rises from warmup_begin_lr to "
     r"base_lr"),
    (lambda: lr_scheduler.FactorScheduler(step=1, warmup_mode="cosine"),
     r"warmup_mode must be one of 'linear', 'constant', got 'cosine'"),
    (lambda: lr_scheduler.MultiFactorScheduler(step=[]), r"step must be a non-empty list of update counts, got \[\]"),
    (lambda: lr_scheduler.MultiFactorScheduler(step=5), r"step must be a non-empty list of update counts, got 5"),
    (lambda: lr_scheduler.MultiFactorScheduler(step=[5, 5]), r"step must increase: step\[1\] = 5 follows 5"),
    (lambda: lr_scheduler.MultiFactorScheduler(step=[0, 5]), r"step\[0\] must be an int >= 1, got 0"),
    (lambda: lr_scheduler.MultiFactorScheduler(step=[5], factor=2), r"factor must be <= 1"),
    (lambda: lr_scheduler.PolyScheduler(max_update=0), r"max_update must be an int >= 1, got 0"),
    (lambda: lr_scheduler.PolyScheduler(max_update=10, pwr=-1),
     r"pwr must be >= 0 \(a decay, not a growth\), got -1"),
    (lambda: lr_scheduler.CosineScheduler(max_update=20.0), r"max_update must be an int >= 1, got 20\.0"),
    (lambda: lr_scheduler.CosineScheduler(max_update=5, warmup_steps=5),
     r"max_update \(5\) must be greater than warmup_steps \(5\): the decay runs from the end of the warm-up to "
     r"max_update"),
    (lambda: lr_scheduler.CosineScheduler(max_update=5)(-1), r"num_update must be an int >= 0, got -1"),
    (lambda: lr_scheduler.CosineScheduler(max_update=5)(1.5), r"num_update must be an int >= 0, got 1\.5"),
    (lambda: lr_scheduler.CosineScheduler(max_update=9, warmup_steps=3).get_warmup_lr(3),
     r"num_update 3 is past the warm-up \(3 steps\)"),
])
def test_bad_arguments_say_what_is_allowed(make, message):
    with pytest.raises(UsageError, match=message):
        make()


# -- the Trainer ---------------------------------------------------------------------------------
def dense() -> nn.Dense:
    net = nn.Dense(3, in_units=4, use_bias=False)
    net.initialize()
    net.weight.set_data(np.array(REFERENCE["weight"], np.float32))
    return net


def step(net: nn.Block, trainer: gluon.Trainer, x: np.ndarray, **kwargs: Any) -> None:
    with autograd.record():
        loss = (net(x) * net(x)).sum()
    loss.backward()
    trainer.step(x.shape[0], **kwargs)


@pytest.mark.parametrize("case", sorted(REFERENCE["trainers"]))
def test_trainer_rates_are_mxnets(case):
    """Per step the rate MXNet's Trainer reports (and used: the weights agree to float32 roundoff),
    ``learning_rate`` replacing base_lr as MXNet does, Adam's default included."""
    spec = REFERENCE["trainers"][case]
    net, scheduler = dense(), build(spec["scheduler"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = gluon.Trainer(net.collect_params(), spec["optimizer"], {**spec["options"], "lr_scheduler": scheduler})
    replaced = spec["optimizer"] == "adam" or "learning_rate" in spec["options"]
    assert [str(w.message).split(" replaces")[0] for w in caught] == (
        [f"learning_rate={0.001 if spec['optimizer'] == 'adam' else 0.3} of optimizer {spec['optimizer']!r}"]
        if replaced else [])
    x = np.array(REFERENCE["x"], np.float32)
    rates = []
    for _ in range(spec["steps"]):
        step(net, trainer, x)
        rates.append(trainer.learning_rate)
    assert rates == spec["learning_rates"]
    np.testing.assert_allclose(net.weight.data(), np.array(spec["weight"], np.float32), rtol=0, atol=1e-6)


def test_a_user_scheduler_drives_each_update_in_place():
    """Any callable: called once per update count (MXNet's: the largest count of any parameter
    once this one's is counted), times lr_mult; SGD still updates its own arrays in place."""
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4))
    net.initialize(seed=0)
    net[1].bias.lr_mult = 0.5
    scheduler = Recording(lr=0.1)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"lr_scheduler": scheduler})
    x = np.ones((5, 3), np.float32)

    def grads_then_step(layers: nn.Block, inputs: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        with autograd.record():
            loss = layers(inputs).sum()
        loss.backward()
        before = {name: (p.data().copy(), p.grad().copy()) for name, p in net.collect_params().items()
                  if p.grad_fresh}
        trainer.step(5, ignore_stale_grad=True)
        return before

    for expected_count in (1, 2):  # the second layer alone: its counts reach 2
        made = net[1].weight.array()
        seen = grads_then_step(net[1], np.ones((5, 4), np.float32))
        lr = 0.1 * pow(expected_count + 1.0, -0.5)
        for name, (weight, grad) in seen.items():
            mult = 0.5 if name == "1.bias" else 1.0
            np.testing.assert_array_equal(net.collect_params()[name].data(), weight - np.float32(lr * mult) * (grad / 5))
        if expected_count == 2:
            assert net[1].weight.array() is made  # updated in place
    # Both layers: the first one's first update comes first, at num_update 2 (the largest count
    # so far, the second layer's), then the second layer's third, at 3: MXNet's rule per update
    # call (its Adam's; its SGD updates 4 parameters per call, so asks once for all 4)
    seen = grads_then_step(net, x)
    for name, count in [("0.weight", 2), ("1.weight", 3)]:
        lr = 0.1 * pow(count + 1.0, -0.5)
        weight, grad = seen[name]
        np.testing.assert_array_equal(net.collect_params()[name].data(), weight - np.float32(lr) * (grad / 5))
    assert scheduler.calls == [1, 2, 2, 3]
    assert trainer.learning_rate == 0.1 * pow(4.0, -0.5) and scheduler.calls[-1] == 3
    with pytest.raises(UsageError, match=r"this trainer's learning rate comes from its lr_scheduler .*; "
                                         r"set_learning_rate works only for a trainer built without one"):
        trainer.set_learning_rate(0.1)


def test_trainer_refuses_what_mxnet_cannot_use():
    net = dense()
    with pytest.raises(UsageError, match=r"lr_scheduler must be callable \(num_update -> learning rate\), got 0\.1"):
        gluon.Trainer(net.collect_params(), "sgd", {"lr_scheduler": 0.1})
    with pytest.raises(UsageError, match=r"learning_rate=0\.5 cannot be given to lr_scheduler .*, which has no "
                                         r"base_lr; leave learning_rate out: the scheduler gives the rate"):
        gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "lr_scheduler": Recording()})
    gluon.Trainer(net.collect_params(), "adam", {"lr_scheduler": Recording()})  # nothing to replace: fine
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"lr_scheduler": lambda n: "fast"})
    with pytest.raises(UsageError, match=r"lr_scheduler\(1\) returned 'fast'; a scheduler returns the learning "
                                         r"rate, a number"):
        step(net, trainer, np.array(REFERENCE["x"], np.float32))


# -- checkpoints --------------------------------------------------------------------------------
def mlp() -> nn.Sequential:
    net = nn.Sequential()
    net.add(nn.Dense(8, in_units=5, activation="relu"), nn.Dense(3))
    net.initialize()
    return net


def scheduled_trainer(net: nn.Block) -> gluon.Trainer:
    # a new rate every update, and a stop reached mid-run
    scheduler = lr_scheduler.FactorScheduler(step=1, factor=0.7, stop_factor_lr=0.02, base_lr=0.2)
    return gluon.Trainer(net.collect_params(), "sgd", {"momentum": 0.9, "wd": 1e-3, "lr_scheduler": scheduler})


BATCHES = np.random.default_rng(1).normal(size=(10, 6, 5)).astype(np.float32)


def train(net: nn.Block, trainer: gluon.Trainer, steps: range, ckpt: modelpack.Checkpointer | None = None,
          stop: int | None = None) -> None:
    for i in steps:
        with autograd.record():
            loss = (net(BATCHES[i]) ** 2).sum()
        loss.backward()
        trainer.step(len(BATCHES[i]))
        if ckpt is not None and i + 1 == stop:
            ckpt.save(i + 1, net, trainer=trainer)
            return


def test_a_checkpointed_run_resumes_bit_for_bit(tmp_path):
    """A scheduler is never saved: a fresh one, with the restored update counts, continues."""
    modelpack.random.seed(0)
    whole = mlp()
    train(whole, scheduled_trainer(whole), range(len(BATCHES)))

    modelpack.random.seed(0)
    first = mlp()
    ckpt = modelpack.Checkpointer(tmp_path / "run")
    train(first, scheduled_trainer(first), range(len(BATCHES)), ckpt, stop=4)

    modelpack.random.seed(7)  # another process: other initial weights, overwritten by the restore
    resumed = mlp()
    trainer = scheduled_trainer(resumed)
    start = ckpt.restore(resumed, trainer=trainer)
    assert start == 4 and trainer.learning_rate == trainer.optimizer.lr_scheduler(4)
    train(resumed, trainer, range(start, len(BATCHES)))
    for name, param in whole.collect_params().items():
        assert np.array_equal(resumed.collect_params()[name].data(), param.data()), name
