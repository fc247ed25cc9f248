"""Reusing saved layers: ``load_parameters(select=, rename=)`` and its report, slicing a loaded
``Sequential``, and frozen layers that training leaves alone."""

from __future__ import annotations

import numpy as np
import pytest

import modelpack
from modelpack import autograd, gluon, nn
from modelpack.errors import ExtraParameterError, ShapeMismatchError, UsageError


def trained_mlp() -> nn.Sequential:
    net = nn.Sequential()
    net.add(nn.Dense(8, activation="relu", in_units=4), nn.Dense(8, activation="relu", in_units=8),
            nn.Dense(3, in_units=8))
    net.initialize(seed=0)
    return net


class Transfer(nn.Block):
    """A new network whose body should start as the first two layers of a trained MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential()
        self.body.add(nn.Dense(8, activation="relu", in_units=4), nn.Dense(8, activation="relu", in_units=8))
        self.head = nn.Dense(5, in_units=8)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.parametrize("write", ["save_parameters", "export"])
def test_select_and_rename_load_the_first_layers_and_report(tmp_path, write):
    """From a parameter file, or from the weights of an exported archive (architecture and
    parameters: d2l's exercise of reusing a saved network's first layers)."""
    source = trained_mlp()
    if write == "export":
        modelpack.export(source, tmp_path / "mlp.params")
    else:
        source.save_parameters(tmp_path / "mlp.params")
    new = Transfer()
    new.initialize(seed=1)
    head = new.head.weight.data().copy()
    report = new.load_parameters(tmp_path / "mlp.params", rename={"": "body."}, select=r"body\.",
                                 ignore_extra=True)
    assert report.loaded == ["body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias"]
    assert report.unexpected == ["body.2.weight", "body.2.bias"]  # selected by the regex, allowed
    assert report.missing == [] and report.mismatched == {}
    assert new.body[0].weight.data().tobytes() == source[0].weight.data().tobytes()
    assert new.body[1].bias.data().tobytes() == source[1].bias.data().tobytes()
    assert new.head.weight.data().tobytes() == head.tobytes()  # not selected: untouched

    everything = Transfer()
    everything.initialize(seed=2)
    report = everything.load_parameters(tmp_path / "mlp.params", rename={"0.": "body.0.", "1.": "body.1.",
                                                                        "2.": "head."}, ignore_mismatch=True)
    assert report.mismatched == {"head.weight": ((5, 8), (3, 8)), "head.bias": ((5,), (3,))}
    assert str(report) == "loaded 4; shape-mismatched 2 (head.weight, head.bias)"
    with pytest.raises(ShapeMismatchError, match=r"'head\.weight' expected shape \(5, 8\).*found \(3, 8\)"):
        Transfer().load_parameters(tmp_path / "mlp.params", rename={"0.": "body.0.", "1.": "body.1.", "2.": "head."})
    with pytest.raises(ExtraParameterError, match=r"parameter '2\.weight' is in the file but not in the model"):
        Transfer().load_parameters(tmp_path / "mlp.params", rename={"0.": "body.0.", "1.": "body.1."})
    report = Transfer().load_parameters(tmp_path / "mlp.params", rename={"0.": "body.0.", "1.": "body.1."},
                                        ignore_extra=True, allow_missing=True)
    assert report.unexpected == ["2.weight", "2.bias"] and report.missing == ["head.weight", "head.bias"]
    with pytest.raises(UsageError, match=r"rename maps both '0\.weight' and '1\.weight' to 'y\.weight'"):
        Transfer().load_parameters(tmp_path / "mlp.params", rename={"0.": "y.", "1.": "y."})


def test_a_loaded_sequential_slices_into_a_new_network_with_frozen_layers(tmp_path):
    modelpack.export(trained_mlp(), tmp_path / "mlp.mpk")
    loaded = modelpack.load(tmp_path / "mlp.mpk")
    net = loaded[:2]
    net.add(nn.Dense(5))
    net.initialize(seed=3)  # only the new layer: the loaded ones keep their weights
    assert net[0].weight.data().tobytes() == loaded[0].weight.data().tobytes()
    for param in net[:2].collect_params().values():
        param.grad_req = "null"
    frozen = {name: p.data().copy() for name, p in net.collect_params().items() if name.startswith(("0.", "1."))}
    head = net[2].weight  # deferred until the first forward
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.1})
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    y = np.arange(6) % 5
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for step in range(5):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(len(x))
        if step == 0:
            first = head.data().copy()
    for name, value in frozen.items():
        assert net.collect_params()[name].data().tobytes() == value.tobytes(), name
    assert not np.array_equal(head.data(), first)
