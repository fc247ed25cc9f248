"""A writer never writes what its reader refuses: non-finite numbers in configs and graphs
are written losslessly, configs and names a reader would refuse are refused before the
destination is touched (a good file is never replaced by a bad one), and names that would
make two parameters collide are refused on both sides."""

from __future__ import annotations

import math

import numpy as np
import pytest
from craft import edit
from harness import graph_bytes, refused

import modelpack
from modelpack import nn
from modelpack.errors import SchemaError, UnsupportedBlockError
from modelpack.nn import functional as F


@pytest.fixture
def good_file(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(2, in_units=3))
    net.initialize(seed=0)
    path = tmp_path / "good.mpk"
    modelpack.export(net, path)
    return path


def _negative_input() -> np.ndarray:
    return np.array([[-2.0, -0.5, 0.0, 1.5]], np.float32)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("layer", [nn.LeakyReLU, nn.ELU])
def test_non_finite_config_values_round_trip(good_file, layer, value):
    net = nn.Sequential()
    net.add(layer(value))
    modelpack.export(net, good_file)  # replaces the good file with one that loads
    loaded = modelpack.load(good_file)
    alpha = loaded[0].get_config()["alpha"]
    assert (math.isnan(alpha) and math.isnan(value)) or alpha == value
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(loaded(_negative_input()), net(_negative_input()))
    assert modelpack.verify(good_file).ok


class _Scaled(nn.Block):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor
        self.inner = nn.Dense(2, in_units=4)

    def forward(self, x):
        return F.leaky_relu(self.inner(x), alpha=self.factor) * self.factor


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_graph_values_round_trip(tmp_path, value):
    net = _Scaled(value)
    net.initialize(seed=0)
    x = _negative_input()
    with np.errstate(all="ignore"):
        net(x)
        modelpack.export(net, tmp_path / "graph.mpk", example=x)
        loaded = modelpack.load(tmp_path / "graph.mpk")
        np.testing.assert_array_equal(loaded(x), net(x))


@pytest.mark.parametrize("layer", [lambda: nn.BatchNorm(epsilon=math.nan, in_channels=2),
                                   lambda: nn.Conv2D(2, 3, padding=-1, in_channels=1)])
def test_config_the_reader_refuses_is_not_written(good_file, layer):
    before = good_file.read_bytes()
    net = nn.Sequential()
    net.add(layer())
    net.initialize(seed=0)
    with pytest.raises(UnsupportedBlockError, match=r"^cannot export block '0' \((BatchNorm|Conv2D)\): a reader would "
                                                    r"refuse it: layer: invalid config for layer type"):
        modelpack.export(net, good_file)
    assert good_file.read_bytes() == before


class _Ambiguous(nn.Block):
    """Children 'a' (holding '0') and 'a.0': both own parameters named 'a.0.weight'."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential()
        self.a.add(nn.Dense(2, in_units=2))
        self.register_child(nn.Dense(2, in_units=2), "a.0")

    def forward(self, x):
        return self.a(x) + self.children["a.0"](x)


def test_ambiguous_names_are_not_written(good_file):
    net = _Ambiguous()
    for _, block in net.named_blocks():
        for param in block.params.values():
            param.initialize()
    before = good_file.read_bytes()
    with pytest.raises(UnsupportedBlockError, match=r"^cannot export the top-level block \(Graph\): a reader would "
                                                    r"refuse it: layer: child name 'a\.0' is empty or holds '\.'"):
        modelpack.export(net, good_file, example=np.ones((1, 2), np.float32))
    assert good_file.read_bytes() == before


def test_names_a_reader_would_refuse_are_not_written(good_file):
    """A child named 'a/b' is a legal child name, but gives parameter names with a '/'."""
    net = nn.Sequential()
    net.register_child(nn.Dense(2, in_units=3), "a/b")
    net.initialize(seed=0)
    before = good_file.read_bytes()
    with pytest.raises(UnsupportedBlockError, match=r"good\.mpk: a reader would refuse its manifest: weights: "
                                                    r"tensor name 'a/b\.weight' is not allowed"):
        modelpack.export(net, good_file)
    assert good_file.read_bytes() == before


def test_reader_refuses_a_dotted_child_name(tmp_path):
    def rename(manifest):
        arch = manifest["architecture"]
        arch["children"] = {"a.0": arch["children"]["a"]}
        manifest["weights"] = {name.replace("a.", "a.0.", 1): info for name, info in manifest["weights"].items()}

    refused(tmp_path, edit(graph_bytes(), manifest=rename), SchemaError,
            r"hostile\.mpk: manifest\.yaml: invalid manifest: architecture: child name 'a\.0' is empty or holds '\.'")


def test_reader_refuses_a_dotted_graph_parameter_name(tmp_path):
    def add_parameter(manifest):
        manifest["architecture"]["config"]["parameters"] = {"a.weight": {"shape": [2, 2], "dtype": "float32"}}

    refused(tmp_path, edit(graph_bytes(), manifest=add_parameter), SchemaError,
            r"hostile\.mpk: manifest\.yaml: invalid manifest: architecture: invalid config for layer type 'Graph': "
            r"config\.parameters: parameter name 'a\.weight' is empty or holds '\.'")


@pytest.mark.parametrize("target", ["a..b", "b", "a.weight"])
def test_graph_reference_errors_name_the_file_and_block(tmp_path, target):
    def retarget(manifest):
        for node in manifest["architecture"]["config"]["graph"]["nodes"]:
            if node["op"] == "layer":
                node["attrs"]["block"] = target

    refused(tmp_path, edit(graph_bytes(), manifest=retarget), SchemaError,
            rf"hostile\.mpk: manifest\.yaml: the top-level block \(Graph\): graph calls block '{target}', which is not "
            r"a child of this block", inspect=False)


def test_export_checks_what_it_reads_back(monkeypatch, good_file):
    """The last net: should the YAML writer ever lose a value, nothing is written."""
    from modelpack.format import writer

    before = good_file.read_bytes()
    real = writer.manifest_to_yaml
    monkeypatch.setattr(writer, "manifest_to_yaml",
                        lambda manifest: real(manifest).replace('"producer": "', '"producer": "x', 1))
    net = nn.Sequential()
    net.add(nn.Dense(2, in_units=3))
    net.initialize(seed=0)
    with pytest.raises(SchemaError, match=r"good\.mpk: manifest\.yaml: not written: the manifest would not read back "
                                          r"as written$"):
        modelpack.export(net, good_file)
    assert good_file.read_bytes() == before
