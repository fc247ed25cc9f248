"""``nn.loading``'s readers of the files a network's parameters come from, as MXNet's pairs
them: ``npx.save`` of named arrays and ``load_parameters``, ``save_parameters`` and
``npx.load``, an exported archive's weights into a network built in code."""

from __future__ import annotations

import numpy as np
import pytest

import modelpack
from modelpack import npx
from modelpack.errors import FileKindError, MissingParameterError, UnsupportedDtypeError
from tests.models import sequential_mlp


def _mlp(seed: int = 0):
    return sequential_mlp(16, 4, seed=seed)


def _named(net) -> dict[str, np.ndarray]:
    return {name: param.data() for name, param in net.collect_params().items()}


def _same_bits(net, arrays) -> bool:
    return _named(net).keys() == arrays.keys() and all(
        _named(net)[name].tobytes() == arrays[name].tobytes() for name in arrays)


def test_named_arrays_saved_by_npx_load_as_parameters(tmp_path):
    source = _mlp(seed=1)
    npx.save(tmp_path / "named", _named(source))
    clone = _mlp(seed=2)
    report = clone.load_parameters(tmp_path / "named")
    assert report.loaded == list(_named(source)) and _same_bits(clone, _named(source))


def test_save_parameters_read_back_by_npx_load_as_a_dict(tmp_path):
    source = _mlp(seed=1)
    source.save_parameters(tmp_path / "mlp.params")
    arrays = npx.load(tmp_path / "mlp.params")
    assert type(arrays) is dict and _same_bits(source, arrays)
    np.savez(tmp_path / "plain.npz", a=np.arange(3, dtype=np.int16))
    assert modelpack.load(tmp_path / "plain.npz")["a"].tolist() == [0, 1, 2]


def test_a_parameter_file_with_pickled_objects_is_refused_by_load(tmp_path):
    np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(UnsupportedDtypeError, match=r"objects\.npz: member 'a\.npy' has dtype '\|O' \(object: "
                                                    r"pickled Python objects\), which modelpack never loads"):
        modelpack.load(tmp_path / "objects.npz")


def test_an_exported_models_weights_load_into_a_network_built_in_code(tmp_path):
    source = _mlp(seed=1)
    modelpack.export(source, tmp_path / "mlp.mpk")
    modelpack.export(source, tmp_path / "sharded.mpk", max_shard_size=256)
    for name in ("mlp.mpk", "sharded.mpk"):
        clone = _mlp(seed=2)
        report = clone.load_parameters(tmp_path / name)
        assert report.missing == [] and _same_bits(clone, _named(source)), name
    with open(tmp_path / "mlp.mpk", "rb") as handle:  # an open file too
        clone = _mlp(seed=3)
        clone.load_parameters(handle)
        assert _same_bits(clone, _named(source))


@pytest.mark.parametrize(("saved", "held"), [([np.ones(2), np.zeros(3)], "a list of 2 arrays"),
                                              ((np.ones(2),), "a tuple of 1 array"),
                                              (np.ones(2), "one array")])
def test_unnamed_arrays_are_refused_as_parameters_saying_how_to_name_them(tmp_path, saved, held):
    npx.save(tmp_path / "unnamed", saved)
    net = _mlp()
    before = {name: array.copy() for name, array in _named(net).items()}
    with pytest.raises(FileKindError, match=rf"/unnamed holds {held}, not named parameters; save a dict of "
                                            r"name → array \(npx\.save\(path, \{name: array, \.\.\.\}\)\)"):
        net.load_parameters(tmp_path / "unnamed")
    assert _same_bits(net, before)


def test_an_archive_whose_names_meet_no_parameter_changes_nothing(tmp_path):
    npx.save(tmp_path / "other", {"w": np.ones(2, np.float32)})
    with pytest.raises(MissingParameterError, match=r"none of the file's 1 names matches a parameter"):
        _mlp().load_parameters(tmp_path / "other")
