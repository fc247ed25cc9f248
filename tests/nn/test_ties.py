"""Parameters shared between layers (``params=``): found on export, tied again on load."""

from __future__ import annotations

import io

import numpy as np
import pytest

import modelpack
from modelpack import autograd, gluon, nn
from modelpack.errors import FormatError, SchemaError
from modelpack.nn.ties import apply_ties, find_ties
from tests import craft
from tests.models import export_bytes, tied_sequential


def test_find_ties_names_each_later_place_of_a_shared_parameter():
    assert find_ties(tied_sequential()) == {"2.weight": "1.weight", "2.bias": "1.bias"}


def test_a_network_without_sharing_has_no_ties_and_its_manifest_no_ties_field():
    net = nn.Sequential()
    net.add(nn.Dense(3, in_units=2))
    net.initialize()
    assert find_ties(net) == {}
    assert b"ties" not in craft.members_of(export_bytes(net))["manifest.yaml"]


@pytest.mark.parametrize("mmap", [False, True])
def test_tied_network_round_trips_with_the_parameter_shared_again(tmp_path, mmap):
    net = tied_sequential()
    x = np.random.default_rng(0).random((5, 20), dtype=np.float32)
    modelpack.export(net, tmp_path / "tied.mpk")
    loaded = modelpack.load(tmp_path / "tied.mpk", mmap=mmap)
    np.testing.assert_array_equal(loaded(x), net(x))
    assert loaded[1].weight is loaded[2].weight and loaded[1].bias is loaded[2].bias
    manifest = modelpack.inspect(tmp_path / "tied.mpk")
    assert manifest.ties == {"2.weight": "1.weight", "2.bias": "1.bias"}
    assert "2.weight" not in manifest.weights  # stored once


def test_training_the_loaded_model_updates_both_places_together(tmp_path):
    loaded = modelpack.load(io.BytesIO(export_bytes(tied_sequential())))
    trainer = gluon.Trainer(loaded.collect_params(), "sgd", {"learning_rate": 0.5})
    x = np.random.default_rng(1).random((4, 20), dtype=np.float32)
    with autograd.record():
        loss = (loaded(x) ** 2).sum()
    loss.backward()
    before = loaded[1].weight.data().copy()
    trainer.step(4)
    assert not np.array_equal(before, loaded[1].weight.data())
    np.testing.assert_array_equal(loaded[1].weight.data(), loaded[2].weight.data())


def test_a_traced_block_with_shared_layers_keeps_its_ties():
    class Twice(nn.Block):
        def __init__(self):
            super().__init__()
            self.a = nn.Dense(4, in_units=4)
            self.b = nn.Dense(4, in_units=4, params=self.a.params)

        def forward(self, x):
            return self.b(np.tanh(self.a(x)))

    net = Twice()
    net.initialize(seed=3)
    x = np.random.default_rng(2).random((3, 4), dtype=np.float32)
    loaded = modelpack.load(io.BytesIO(export_bytes(net, example=x)))
    np.testing.assert_array_equal(loaded(x), net(x))
    assert list(loaded.collect_params()) == ["a.weight", "a.bias"]


def test_a_checkpoint_of_a_tied_network_loads_as_a_model(tmp_path):
    net = tied_sequential()
    path = modelpack.Checkpointer(tmp_path).save(1, net)
    x = np.ones((2, 20), dtype=np.float32)
    loaded = modelpack.load(path)
    np.testing.assert_array_equal(loaded(x), net(x))
    assert loaded[1].weight is loaded[2].weight


# -- what a reader refuses ------------------------------------------------------------------
def _edited(edit) -> bytes:
    return craft.edit(export_bytes(tied_sequential()), manifest=edit)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: m["ties"].update({"1.weight": "2.weight"}), "a tied name has no tensor of its own"),
        (lambda m: m["ties"].update({"2.weight": "9.weight"}), "the target must be a tensor"),
        (lambda m: m["ties"].update({"2.bias": "2.weight"}), "the target must be a tensor"),
        (lambda m: m["ties"].update({"a/b": "1.weight"}), "is not allowed"),
    ],
)
def test_a_manifest_whose_ties_do_not_point_at_stored_tensors_is_refused(edit, fragment):
    with pytest.raises(SchemaError, match=fragment):
        modelpack.load(io.BytesIO(_edited(edit)))


def test_a_tie_that_names_no_parameter_of_the_architecture_is_refused():
    with pytest.raises(FormatError, match="'7.weight' → '1.weight' names no parameter"):
        modelpack.load(io.BytesIO(_edited(lambda m: m["ties"].update({"7.weight": "1.weight"}))))


def test_a_tie_between_parameters_of_different_shapes_is_refused():
    # 3.weight is (10, 8); 1.weight is (8, 8): the layer at 3 cannot use it
    def tie_last(m):
        m["ties"]["3.weight"] = "1.weight"
        del m["weights"]["3.weight"]

    data = craft.edit(export_bytes(tied_sequential()), manifest=tie_last,
                      bundle=lambda inner: inner.pop("3.weight.npy"))
    with pytest.raises(FormatError, match=r"needs \(10, 8\) float32, '1.weight' is \(8, 8\) float32"):
        modelpack.load(io.BytesIO(data))


def test_a_reader_that_drops_ties_refuses_the_missing_tensors_instead_of_misreading():
    """What a 1.2 reader does with a 1.3 archive: it drops the unknown field, and the tied
    names then have no tensor."""
    data = _edited(lambda m: m.pop("ties"))
    with pytest.raises(FormatError, match="2.weight"):
        modelpack.load(io.BytesIO(data))


def test_apply_ties_refuses_a_chain():
    net = tied_sequential()
    with pytest.raises(FormatError, match="names no stored parameter"):
        apply_ties(net, {"2.weight": "1.weight", "1.weight": "0.weight"}, "x")


def test_ties_in_a_tensors_archive_are_refused():
    data = craft.edit(
        modelpack_save_bytes := _save_two(),  # noqa: F841
        manifest=lambda m: m.update({"ties": {"2": "0"}}),
    )
    with pytest.raises(SchemaError, match="'ties' belongs to a manifest with an 'architecture'"):
        modelpack.load(io.BytesIO(data))


def _save_two() -> bytes:
    buffer = io.BytesIO()
    modelpack.save(buffer, {"0": np.zeros(2), "1": np.ones(2)})
    return buffer.getvalue()


def test_verify_reports_a_tie_between_parameters_of_different_shapes(tmp_path):
    def tie_last(m):
        m["ties"]["3.weight"] = "1.weight"
        del m["weights"]["3.weight"]

    path = tmp_path / "bad.mpk"
    path.write_bytes(craft.edit(export_bytes(tied_sequential()), manifest=tie_last,
                                bundle=lambda inner: inner.pop("3.weight.npy")))
    report = modelpack.verify(path)
    assert not report.ok
    assert any("tie '3.weight' → '1.weight'" in problem for problem in report.problems), report.problems
