"""``gluon.Trainer`` and its optimisers: MXNet's update rules, training curves against torch,
stale and frozen parameters, options, and state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelpack import autograd, gluon, nn
from modelpack.errors import AutogradError, CheckpointError, UsageError
from modelpack.gluon.optimizer import create

REFERENCE = Path(__file__).with_name("reference") / "mxnet_optimizers.npz"
# Repeated from scripts/mxnet_optimizer_reference.py, which wrote the reference with MXNet 1.9.1.
MXNET_CASES = {
    "sgd": ("sgd", {"learning_rate": 0.1}),
    "sgd_momentum_wd": ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01}),
    "sgd_clip_rescale": ("sgd", {"learning_rate": 0.1, "momentum": 0.5, "clip_gradient": 0.5, "rescale_grad": 0.5}),
    "nag": ("nag", {"learning_rate": 0.1, "momentum": 0.9}),
    "adam_wd": ("adam", {"learning_rate": 0.01, "wd": 0.01, "epsilon": 1e-12}),
    "adam_clip_rescale": ("adam", {"learning_rate": 0.01, "clip_gradient": 0.5, "rescale_grad": 2.0, "wd": 0.1,
                                   "epsilon": 1e-12}),
    "rmsprop_wd": ("rmsprop", {"learning_rate": 0.01, "gamma1": 0.9, "wd": 0.01}),
}


@pytest.mark.parametrize("case", sorted(MXNET_CASES))
def test_update_rules_match_mxnet(case):
    """Six float32 updates against MXNet 1.9.1's own optimisers, to float32 roundoff of the
    weights (|w| < 3: atol 2e-6 is ~16 ulps; measured at most 4.8e-7). Adam's cases use a
    negligible ε: ours adds ε to √v̂ as PyTorch does, MXNet to √v (see gluon/optimizer.py)."""
    reference = np.load(REFERENCE, allow_pickle=False)
    name, options = MXNET_CASES[case]
    optimizer = create(name, options)
    weight = reference["weight"].copy()
    state = {slot: np.zeros_like(weight) for slot in optimizer.slots_for()}
    for count, grad in enumerate(reference["grads"], start=1):
        weight = optimizer.update(weight, grad, state, count)
    assert weight.dtype == np.float32
    np.testing.assert_allclose(weight, reference[case], rtol=0, atol=2e-6)


def _net_and_grads(grad_req: str = "write") -> tuple[nn.Sequential, np.ndarray]:
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4))
    net.initialize(seed=0)
    for param in net.collect_params().values():
        param.grad_req = grad_req
    return net, np.ones((5, 3), np.float32)


def test_step_divides_by_batch_size_and_frozen_parameters_stay():
    net, x = _net_and_grads()
    for param in net[0].collect_params().values():
        param.grad_req = "null"
    frozen = net[0].weight.data().copy()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    expected = net[1].weight.data() - net[1].weight.grad() / 5
    trainer.step(5)
    np.testing.assert_array_equal(net[1].weight.data(), expected)
    np.testing.assert_array_equal(net[0].weight.data(), frozen)
    with pytest.raises(AutogradError, match=r"parameter '0\.weight' has grad_req='null' \(frozen\)"):
        net[0].weight.grad()


def test_stale_gradients_are_refused_unless_ignored():
    net, x = _net_and_grads()
    trainer = gluon.Trainer(net.collect_params(), "sgd")
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    trainer.step(5)
    with pytest.raises(AutogradError, match=r"gradient of parameter '0\.weight' was not computed by backward since "
                                            r"the last step"):
        trainer.step(5)
    with autograd.record():
        loss = net[1](np.ones((5, 4), np.float32)).sum()  # only the second layer
    loss.backward()
    before = net[0].weight.data().copy()
    trainer.step(5, ignore_stale_grad=True)
    np.testing.assert_array_equal(net[0].weight.data(), before)


def test_grad_req_add_accumulates_until_zero_grad():
    net, x = _net_and_grads("add")
    for _ in range(2):
        with autograd.record():
            loss = net(x).sum()
        loss.backward()
    once, _ = _net_and_grads()
    with autograd.record():
        loss = once(x).sum()
    loss.backward()
    np.testing.assert_allclose(net[0].weight.grad(), 2 * once[0].weight.grad(), rtol=1e-6)
    net[0].weight.zero_grad()
    assert not net[0].weight.grad().any()


def test_learning_rate_and_options():
    net, _ = _net_and_grads()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01, "beta1": 0.8})
    assert trainer.learning_rate == 0.01 and trainer.optimizer.options["beta1"] == 0.8
    trainer.set_learning_rate(0.5)
    assert trainer.learning_rate == 0.5
    with pytest.raises(UsageError, match=r"optimizer 'sgd' has no option 'beta1'; its options are clip_gradient, "
                                             r"learning_rate, momentum, rescale_grad, wd"):
        gluon.Trainer(net.collect_params(), "sgd", {"beta1": 0.9})
    with pytest.raises(UsageError, match=r"unknown optimizer 'lamb'; known optimizers: sgd, nag, adam, adamw, "
                                             r"rmsprop"):
        gluon.Trainer(net.collect_params(), "lamb")


@pytest.mark.parametrize(("optimizer", "options", "message"), [
    ("adam", {"beta2": 1e308}, r"optimizer 'adam': option beta2=1e\+308 is a decay rate, in \[0, 1\)"),
    ("adamw", {"beta1": 1.0}, r"optimizer 'adamw': option beta1=1.0 is a decay rate, in \[0, 1\)"),
    ("adam", {"beta1": -0.5}, r"option beta1=-0.5 is a decay rate, in \[0, 1\)"),
    ("sgd", {"learning_rate": float("nan")}, r"optimizer 'sgd': option learning_rate=nan must be a finite number"),
    ("rmsprop", {"epsilon": float("inf")}, r"option epsilon=inf must be a finite number"),
    ("sgd", {"momentum": "high"}, r"optimizer 'sgd': option momentum='high' is not a number"),
])
def test_options_that_would_break_every_update_are_refused(optimizer, options, message):
    # Adam's bias correction divides by 1 - betaᵗ (beta2=1e308 raised an OverflowError at the
    # first step); an infinite or NaN option would make every weight NaN.
    net, _ = _net_and_grads()
    with pytest.raises(UsageError, match=message):
        gluon.Trainer(net.collect_params(), optimizer, options)


def test_states_refuse_another_trainer(tmp_path):
    net, x = _net_and_grads()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"momentum": 0.9})
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    trainer.step(5)
    trainer.save_states(tmp_path / "sgd.states")
    no_momentum = gluon.Trainer(net.collect_params(), "sgd")
    no_momentum.load_states(tmp_path / "sgd.states")  # takes over the saved options, momentum included
    assert no_momentum.optimizer.options["momentum"] == 0.9
    partial = gluon.Trainer(net[1].collect_params(), "sgd", {"momentum": 0.9})
    with pytest.raises(CheckpointError, match=r"trainer state has parameter '0\.weight', which this trainer does "
                                              r"not update \(it has: \['weight', 'bias'\]\)"):
        partial.load_states(tmp_path / "sgd.states")


def test_states_with_other_slots_are_refused():
    net, x = _net_and_grads()
    adam = gluon.Trainer(net.collect_params(), "adam")
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    adam.step(5)
    state, arrays = adam.export_state()
    arrays["0.weight"] = {"mean": arrays["0.weight"]["mean"]}  # "var" lost
    with pytest.raises(CheckpointError, match=r"parameter '0\.weight' has optimizer state \['mean'\], but adam with "
                                              r"these options keeps \['mean', 'var'\]"):
        gluon.Trainer(net.collect_params(), "adam").import_state(state, arrays)


# -- in-place updates ---------------------------------------------------------------------------


def _sgd_formula(weight, grad, momentum_state, options):
    """``update``'s formula for SGD written out, one new array per operation: the reference."""
    g = grad * grad.dtype.type(options.get("rescale_grad", 1.0))
    if options.get("clip_gradient") is not None:
        g = np.clip(g, -options["clip_gradient"], options["clip_gradient"])
    if options.get("wd"):
        g = g + options["wd"] * weight
    if not options.get("momentum"):
        return weight - options["learning_rate"] * g, momentum_state
    momentum_state = options["momentum"] * momentum_state - options["learning_rate"] * g
    return weight + momentum_state, momentum_state


@pytest.mark.parametrize("options", [
    {"learning_rate": 0.1},
    {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01},
    {"learning_rate": 0.03, "momentum": 0.5, "clip_gradient": 0.5, "rescale_grad": 1 / 7},
])
@pytest.mark.parametrize("shape", [(3,), (0, 4), (300, 700)])  # 210,000 values: four blocks, the last partial
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_sgd_in_place_is_the_formula_bit_for_bit(options, shape, dtype):
    rng = np.random.default_rng(7)
    weight = rng.standard_normal(shape).astype(dtype)
    optimizer = create("sgd", options)
    state = {slot: np.zeros(shape, dtype) for slot in optimizer.slots_for()}
    expected, expected_momentum = weight, np.zeros(shape, dtype)
    for count in range(1, 4):
        grad = rng.standard_normal(shape).astype(dtype)
        expected, expected_momentum = _sgd_formula(expected, grad, expected_momentum, options)
        optimizer.update_into(weight, grad, state, count)
        np.testing.assert_array_equal(weight, expected, strict=True)
        if "momentum" in state:
            np.testing.assert_array_equal(state["momentum"], expected_momentum, strict=True)


def test_sgd_out_of_place_takes_any_layout_and_in_place_refuses_a_copying_one():
    optimizer = create("sgd", {"learning_rate": 0.1, "momentum": 0.9})
    weight = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    state = {"momentum": np.asfortranarray(np.ones((3, 4), np.float32))}
    new = optimizer.update(weight, np.ones((3, 4), np.float32), state, 1)
    expected, momentum = _sgd_formula(weight, np.ones((3, 4), np.float32), np.ones((3, 4), np.float32),
                                      {"learning_rate": 0.1, "momentum": 0.9})
    np.testing.assert_array_equal(new, expected)
    np.testing.assert_array_equal(state["momentum"], momentum)
    assert weight[0, 1] == 1  # the input untouched
    with pytest.raises(UsageError, match="an in-place update needs a C-contiguous, writable weight array"):
        optimizer.update_into(weight, np.ones((3, 4), np.float32), state, 2)
    frozen = np.zeros(4, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(UsageError, match="an in-place update needs a C-contiguous, writable momentum array"):
        optimizer.update_into(np.zeros(4, np.float32), np.ones(4, np.float32), {"momentum": frozen}, 1)


def _one_step(net, trainer, x):
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    trainer.step(5)


def test_trainer_updates_in_place_only_the_arrays_it_made():
    """MXNet's parameters change in place; here only from the trainer's second update of an
    array it made, never an array the user set (or a read-only one read from a file)."""
    net, x = _net_and_grads()
    weight = net[0].weight
    users = weight.array().copy()
    users.flags.writeable = False  # as a memory-mapped archive's array
    weight.set_data(users)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    _one_step(net, trainer, x)
    made = weight.array()
    assert made is not users and not np.shares_memory(made, users)
    before = made.copy()
    _one_step(net, trainer, x)
    assert weight.array() is made and not np.array_equal(made, before)  # updated in place
    mine = made.copy()
    weight.set_data(mine)
    _one_step(net, trainer, x)
    assert weight.array() is not mine  # the user's array stays theirs
    np.testing.assert_array_equal(mine, made)


def test_a_state_saved_in_fortran_order_resumes_in_place():
    """Another writer's checkpoint may hold a state array in Fortran order: taken in C order,
    so the updates in place after it land (and give what a fresh trainer's give)."""
    net, x = _net_and_grads()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    _one_step(net, trainer, x)
    state, arrays = trainer.export_state()
    fortran = {name: {slot: np.asfortranarray(a) for slot, a in slots.items()} for name, slots in arrays.items()}
    trainer.import_state(state, fortran)  # its own arrays: updated in place from the next step on
    reference = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    reference.import_state(state, arrays)
    weights = {name: p.data().copy() for name, p in net.collect_params().items()}
    for _ in range(2):
        _one_step(net, trainer, x)
    ours = {name: p.data().copy() for name, p in net.collect_params().items()}
    for name, p in net.collect_params().items():
        p.set_data(weights[name].copy())
    for _ in range(2):
        _one_step(net, reference, x)
    for name, p in net.collect_params().items():
        np.testing.assert_array_equal(ours[name], p.data())


def test_in_place_training_gives_the_same_weights_as_out_of_place():
    """Steps in place against the same steps each on a fresh copy (so never in place)."""
    nets = [_net_and_grads()[0] for _ in range(2)]
    x = np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32)
    trainers = [gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01})
                for net in nets]
    for _ in range(4):
        for param in nets[1].collect_params().values():
            param.set_data(param.data().copy())  # not the trainer's: updated out of place
        for net, trainer in zip(nets, trainers, strict=True):
            _one_step(net, trainer, x)
    for a, b in zip(nets[0].collect_params().values(), nets[1].collect_params().values(), strict=True):
        np.testing.assert_array_equal(a.data(), b.data(), strict=True)


torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One thread for the oracle: interleaved with numpy's BLAS threads, torch's spinning
    worker threads oversubscribe a 2-core machine (a 300-step curve took 30 s, not 1 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _curves(optimizer: str, options: dict, torch_optimizer, steps: int = 300):
    """The same MLP, data, batches and initial weights, trained by both; final weights and losses."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 16)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 0.5)
    net = nn.Sequential()
    net.add(nn.Dense(32, activation="relu", in_units=16), nn.Dense(32, activation="tanh", in_units=32),
            nn.Dense(3, in_units=32))
    net.initialize(init="xavier", seed=1)
    reference = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                                    torch.nn.Tanh(), torch.nn.Linear(32, 3))
    pairs = [(reference[0], net[0]), (reference[2], net[1]), (reference[4], net[2])]
    with torch.no_grad():
        for linear, dense in pairs:
            linear.weight.copy_(torch.tensor(dense.weight.data()))
            linear.bias.copy_(torch.tensor(dense.bias.data()))
    trainer = gluon.Trainer(net.collect_params(), optimizer, options)
    torch_trainer = torch_optimizer(reference.parameters())
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    ours, theirs = [], []
    for step in range(steps):
        batch = np.arange(step * 32, (step + 1) * 32) % len(x)
        with autograd.record():
            loss = loss_fn(net(x[batch]), y[batch])
        loss.backward()
        trainer.step(len(batch))
        ours.append(float(loss.value.mean()))
        torch_trainer.zero_grad()
        torch_loss = torch.nn.functional.cross_entropy(reference(torch.tensor(x[batch])), torch.tensor(y[batch]))
        torch_loss.backward()
        torch_trainer.step()
        theirs.append(torch_loss.item())
    for linear, dense in pairs:
        yield dense.weight.data(), linear.weight.detach().numpy()
        yield dense.bias.data(), linear.bias.detach().numpy()
    yield np.array(ours), np.array(theirs)


CURVES = {
    "sgd": ({"learning_rate": 0.1}, lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd+momentum": ({"learning_rate": 0.05, "momentum": 0.9}, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "nag": ({"learning_rate": 0.05, "momentum": 0.9},
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    "adam": ({"learning_rate": 0.003}, lambda p: torch.optim.Adam(p, lr=0.003)),
    "adamw": ({"learning_rate": 0.003, "wd": 0.01}, lambda p: torch.optim.AdamW(p, lr=0.003, weight_decay=0.01)),
    # d2l 12.7 and 12.9 (train_concise_ch11). MXNet puts AdaGrad's ε under the root, torch after
    # it: a negligible ε on both sides makes them one rule (a zero history gives 0/ε either way).
    "adagrad": ({"learning_rate": 0.1, "eps": 1e-20}, lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-10)),
    # MXNet 1.9's AdaDelta has no learning rate: torch's with lr=1 is the same rule.
    "adadelta": ({"rho": 0.9, "epsilon": 1e-5}, lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-5)),
}


@pytest.mark.parametrize("name", sorted(CURVES))
def test_training_curves_match_torch(name):
    """300 steps on the same MLP end within float32 tolerance of torch: atol=rtol=2e-5 on the
    weights (|w| < 1) and losses. Both sides round differently (summation order in BLAS and in
    the update), and 300 steps accumulate it: measured at most 3.8e-6 (AdamW), 3.7e-7 (Adam),
    2.4e-7 (SGD) in weights, 7.9e-7 in losses."""
    options, torch_optimizer = CURVES[name]
    optimizer = name.split("+")[0]
    for ours, theirs in _curves(optimizer, options, torch_optimizer):
        np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-5)


def test_adagrad_and_adadelta_decay_outside_the_adaptive_step():
    """MXNet 1.9 adds AdaGrad's ``wd·w`` after the division (``w += (g/√(h+eps) + wd·w)·-lr``)
    and subtracts AdaDelta's with no learning rate: two steps by hand (float64, rtol 1e-12)."""
    w0, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    adagrad = create("adagrad", {"learning_rate": 0.1, "wd": 0.01})
    state = {"history": np.zeros(2)}
    w1 = adagrad.update(w0, g, state, 1)
    np.testing.assert_allclose(w1, w0 - 0.1 * (g / np.sqrt(g**2 + 1e-7) + 0.01 * w0), rtol=1e-12)
    w2 = adagrad.update(w1, g, state, 2)
    np.testing.assert_allclose(w2, w1 - 0.1 * (g / np.sqrt(2 * g**2 + 1e-7) + 0.01 * w1), rtol=1e-12)
    adadelta = create("adadelta", {"wd": 0.01})
    state = {"acc_g": np.zeros(2), "acc_delta": np.zeros(2)}
    delta = np.sqrt(1e-5) / np.sqrt(0.1 * g**2 + 1e-5) * g
    np.testing.assert_allclose(adadelta.update(w0, g, state, 1), w0 - delta - 0.01 * w0, rtol=1e-12)
    np.testing.assert_allclose(state["acc_delta"], 0.1 * delta**2, rtol=1e-12)


def test_lr_mult_and_wd_mult_scale_one_parameters_update():
    """d2l 3.7 turns off the bias's decay (``setattr('wd_mult', 0)``) and 14.2 trains a new
    output layer faster (``setattr('lr_mult', 10)``): SGD's step by hand (float32, rtol 1e-6)."""
    net, x = _net_and_grads()
    net.collect_params(".*bias").setattr("wd_mult", 0)
    net[1].collect_params().setattr("lr_mult", 10)
    before = {name: p.data().copy() for name, p in net.collect_params().items()}
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "wd": 0.5})
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    grads = {name: p.grad().copy() for name, p in net.collect_params().items()}
    trainer.step(1)
    for name, param in net.collect_params().items():
        lr = 0.1 * (10 if name.startswith("1.") else 1)
        wd = 0.0 if name.endswith("bias") else 0.5
        expected = before[name] - lr * (grads[name] + wd * before[name])
        np.testing.assert_allclose(param.data(), expected, rtol=1e-6, err_msg=name)
    assert trainer.learning_rate == 0.1 and trainer.optimizer.options["wd"] == 0.5  # the trainer's own
