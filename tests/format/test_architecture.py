"""Block tree <-> manifest tree (format.architecture): which blocks export as layers, and what
is refused with the reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from craft import edit_file
from models import MLP, ready

import modelpack
from modelpack import nn
from modelpack.errors import (
    DeferredInitializationError,
    FormatError,
    SchemaError,
    UninitializedParameterError,
    UnsupportedBlockError,
)


def test_custom_block_without_example_says_how():
    net = ready(MLP(), np.ones((1, 20)))
    with pytest.raises(UnsupportedBlockError, match="Pass example=<input array> to export"):
        modelpack.export(net, io.BytesIO())


def test_custom_block_refused_with_reason(tmp_path):
    net = MLP(8, 2)
    net.initialize()
    net(np.zeros((1, 3)))
    with pytest.raises(UnsupportedBlockError, match=r"top-level block is a MLP, a Block subclass with a hand-written forward.*Pass example="):
        modelpack.export(net, tmp_path / "mlp.mpk")
    assert list(tmp_path.iterdir()) == []


def test_custom_block_nested_in_sequential_is_named(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(3), MLP(8, 2))
    net.initialize()
    net(np.zeros((1, 3)))
    with pytest.raises(UnsupportedBlockError, match=r"block '1' is a MLP"):
        modelpack.export(net, tmp_path / "x.mpk")


def test_subclass_of_registered_layer_refused(tmp_path):
    class Doubled(nn.Dense):
        def forward(self, x):
            return 2 * super().forward(x)

    net = nn.Sequential()
    net.add(Doubled(2, in_units=2))
    net.initialize()
    with pytest.raises(UnsupportedBlockError, match="block '0' is a Doubled"):
        modelpack.export(net, tmp_path / "x.mpk")


def test_a_block_used_twice_exports_as_two_layers_tied_together(tmp_path):
    shared = nn.Dense(3, in_units=3)
    net = nn.Sequential()
    net.add(shared, shared)
    net.initialize()
    modelpack.export(net, tmp_path / "x.mpk")
    assert modelpack.inspect(tmp_path / "x.mpk").ties == {"1.weight": "0.weight", "1.bias": "0.bias"}
    loaded = modelpack.load(tmp_path / "x.mpk")
    x = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded(x), net(x))
    assert loaded[0].weight is loaded[1].weight


def test_uninitialised_export_names_parameters(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(4), nn.Dense(2, in_units=4))
    with pytest.raises(UninitializedParameterError, match=r"\['0\.weight', '0\.bias', '1\.weight', '1\.bias'\]"):
        modelpack.export(net, tmp_path / "x.mpk")
    net.initialize()
    with pytest.raises(DeferredInitializationError, match=r"\['0\.weight'\]"):
        modelpack.export(net, tmp_path / "x.mpk")
    assert list(tmp_path.iterdir()) == []


def test_weights_not_fitting_architecture_refused(exported):
    def grow(d):
        d["architecture"]["children"]["1"]["config"]["units"] = 5
    edit_file(exported, manifest=grow)
    with pytest.raises(FormatError, match=r"weights do not fit the architecture.*'1\.weight' expected shape \(5, 16\)"):
        modelpack.load(exported)


def test_a_layer_refusing_its_config_is_a_schema_error_naming_the_source():
    """The net under 'configs refuse what layers refuse': build never lets a ValueError out."""
    from modelpack.format import architecture
    from modelpack.format.schema import LayerNode

    node = LayerNode.model_construct(type="MaxPool2D", config={"padding": [5, 0]}, children={})
    with pytest.raises(SchemaError, match=r"^x\.mpk: manifest\.yaml: the architecture cannot be built: the top-level block \(MaxPool2D\): padding"):
        architecture.build(node, source="x.mpk: manifest.yaml")
