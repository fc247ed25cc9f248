"""Tiny files never run huge: archives of a few KB whose forward would ask numpy for
gigabytes (padding, a graph that doubles a tensor, a broadcast, many held values)
end in a LimitError naming the file, the block or graph node and the op, before numpy
allocates, with memory bounded by the activation budget. Degenerate layers (zero channels or
units, spatial sizes beyond any network) are refused at load."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from craft import archive, edit, stored_zip
from harness import bounded, refused

import modelpack
from modelpack import Limits, nn
from modelpack.errors import FormatError, InputError, LimitError, SchemaError
from modelpack.format.schema import LayerNode, Manifest, manifest_to_yaml
from modelpack.io.limits import ACTIVATION_FLOOR
from modelpack.nn.budget import ActivationBudget, limit_activations

OVER = r": the activations this forward call would hold after allocating \d+ bytes \(\d+\) is over the limit of "
# The default budget's floor, plus what the layers hold below it and the test's own arrays.
PEAK = ACTIVATION_FLOOR + 16 * 2**20


def _export(net: nn.Block, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    modelpack.export(net, buffer, **kwargs)
    return buffer.getvalue()


def runs_out(tmp_path, data: bytes, x: np.ndarray, fragment: str, *, limits: Limits | None = None) -> LimitError:
    """The archive loads and verifies; its forward on ``x`` raises LimitError naming the file
    and ``fragment``, within the time and memory bounds."""
    path = tmp_path / "hostile.mpk"
    path.write_bytes(data)
    kwargs = {} if limits is None else {"limits": limits}
    net, error = bounded(lambda: modelpack.load(path, **kwargs))
    assert error is None, error
    assert modelpack.verify(path).ok
    _, error = bounded(lambda: net(x), max_peak=PEAK)
    assert type(error) is LimitError, f"{type(error).__name__}: {error}"
    assert str(error).startswith(f"{path}: "), str(error)
    assert __import__("re").search(fragment, str(error)), str(error)
    return error


def _graph(nodes: list[dict[str, Any]], outputs: list[str], width: int = 4) -> bytes:
    """A Graph model of ``nodes`` over one input ``x`` of shape (batch, width); no weights."""
    graph = {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", width]}],
        "nodes": nodes,
        "outputs": {"kind": "single" if len(outputs) == 1 else "tuple", "values": outputs},
    }
    manifest = Manifest(format="modelpack", format_version="1.1", producer="hostile", kind="model",
                        architecture=LayerNode(type="Graph", config={"graph": graph}), weights={})
    return archive(manifest_to_yaml(manifest).encode(), stored_zip({}))


# -- at run time ------------------------------------------------------------------------------

def _set_config(data: bytes, **config: Any) -> bytes:
    def change(manifest):
        node = manifest["architecture"]["children"]["0"]
        node["config"].update(config)

    return edit(data, manifest=change)


def test_conv_padding(tmp_path):
    net = nn.Sequential()
    net.add(nn.Conv2D(1, kernel_size=1, in_channels=1))
    net.initialize(seed=0)
    data = _set_config(_export(net), padding=[4096, 4096])
    runs_out(tmp_path, data, np.ones((1, 1, 1, 1), np.float32),
             r"hostile\.mpk: block '0' \(Conv2D\): padding the input by \(4096, 4096\)" + OVER + "33554432")


def test_conv_padding_in_a_fused_chain(tmp_path):
    """Conv → BatchNorm → ReLU runs as one folded convolution at inference (``nn.fusion``):
    its allocations are charged to the convolution's block as before."""
    net = nn.Sequential()
    net.add(nn.Conv2D(1, kernel_size=1, in_channels=1), nn.BatchNorm(in_channels=1), nn.Activation("relu"))
    net.initialize(seed=0)
    data = _set_config(_export(net), padding=[4096, 4096])
    runs_out(tmp_path, data, np.ones((1, 1, 1, 1), np.float32),
             r"hostile\.mpk: block '0' \(Conv2D\): padding the input by \(4096, 4096\)" + OVER + "33554432")


@pytest.mark.parametrize("layer", ["MaxPool2D", "AvgPool2D"])
def test_pooling_needs_no_weights(tmp_path, layer):
    """A 4096-wide pool padded by 2048 on each side of a 1×4×1×1 input once asked for a 268 MB
    padded copy (refused by the budget); pooling reads the input only where the windows
    overlap it, so the same file now runs in its output's memory and time."""
    net = nn.Sequential()
    net.add(nn.MaxPool2D() if layer == "MaxPool2D" else nn.AvgPool2D())
    data = _set_config(_export(net), pool_size=[4096, 4096], padding=[2048, 2048])
    assert len(data) < 2048
    path = tmp_path / "hostile.mpk"
    path.write_bytes(data)
    net, error = bounded(lambda: modelpack.load(path))
    assert error is None, error
    out, error = bounded(lambda: net(np.ones((1, 4, 1, 1), np.float32)), max_peak=PEAK)
    assert error is None, error
    expected = 1.0 if layer == "MaxPool2D" else 1 / 4096**2  # the padding counts by default
    np.testing.assert_allclose(out, np.full((1, 4, 1, 1), expected, np.float32), rtol=1e-6)


def test_graph_doubling_by_concatenation(tmp_path):
    nodes = [{"op": "concatenate", "inputs": [f"v{i}", f"v{i}"] if i else ["x", "x"], "outputs": [f"v{i + 1}"]}
             for i in range(30)]
    runs_out(tmp_path, _graph(nodes, ["v30"]), np.ones((1, 4), np.float32),
             r"hostile\.mpk: the top-level block \(GraphBlock\): graph node 2[0-9] \(concatenate\)" + OVER)


def test_graph_broadcast_to_16_gib(tmp_path):
    nodes = [
        {"op": "reshape", "inputs": ["x"], "outputs": ["col"], "attrs": {"shape": [256, 1]}},
        {"op": "reshape", "inputs": ["x"], "outputs": ["row"], "attrs": {"shape": [1, 256]}},
        {"op": "add", "inputs": ["col", "row"], "outputs": ["square"]},
        {"op": "reshape", "inputs": ["square"], "outputs": ["col2"], "attrs": {"shape": [-1, 1]}},
        {"op": "reshape", "inputs": ["square"], "outputs": ["row2"], "attrs": {"shape": [1, -1]}},
        {"op": "add", "inputs": ["col2", "row2"], "outputs": ["huge"]},
    ]
    runs_out(tmp_path, _graph(nodes, ["huge"]), np.ones((64, 4), np.float32),
             r"graph node 5 \(add\): the activations this forward call would hold after allocating 17179869184 bytes")


def test_graph_holding_many_values(tmp_path):
    """Each op alone fits; together they would not: what a graph holds counts until it returns."""
    nodes = [{"op": "reshape", "inputs": ["x"], "outputs": ["col"], "attrs": {"shape": [1024, 1]}},
             {"op": "reshape", "inputs": ["x"], "outputs": ["row"], "attrs": {"shape": [1, 1024]}}]
    nodes += [{"op": "multiply", "inputs": ["col", "row"], "outputs": [f"m{i}"]} for i in range(40)]
    runs_out(tmp_path, _graph(nodes, [f"m{i}" for i in range(40)]), np.ones((256, 4), np.float32),
             r"graph node 10 \(multiply\): the activations this forward call would hold after allocating 4194304 bytes "
             r"\(37748736\) is over the limit of 33554432")


def test_graph_calling_a_layer_counts_what_it_returns(tmp_path):
    """A Graph holding outputs of its child layers: the layer's results count as held values
    (the three are all held when the first sum is made; a value is let go after its last use)."""
    class Widen(nn.Block):
        def __init__(self) -> None:
            super().__init__()
            self.up = nn.Dense(4096, in_units=4)

        def forward(self, x):
            return self.up(x) + (self.up(x) + self.up(x))

    net = Widen()
    net.initialize(seed=0)
    example = np.ones((2, 4), np.float32)
    net(example)
    data = _export(net, example=example)
    runs_out(tmp_path, data, np.ones((512, 4), np.float32),
             r"hostile\.mpk: (block 'up' \(Dense\): its output|the top-level block \(GraphBlock\): graph node \d "
             r"\((layer|add)\))" + OVER, limits=Limits(max_activation_bytes=24 * 2**20))


# -- the budget's rules --------------------------------------------------------------------

def _mlp() -> nn.Sequential:
    net = nn.Sequential()
    net.add(nn.Dense(256, in_units=64, activation="relu"), nn.Dense(8, in_units=256))
    net.initialize(seed=0)
    return net


def test_models_built_in_code_are_not_limited():
    net = _mlp()
    x = np.ones((70_000, 64), np.float32)  # 70 000 x 256 float32 = 72 MB: over the floor, under the input term
    assert net(x).shape == (70_000, 8)
    limit_activations(net, ActivationBudget("my net", Limits(max_activation_bytes=2**20)))
    with pytest.raises(LimitError, match=r"^my net: block '0' \(Dense\): its output: the activations this forward call "
                       r"would hold after allocating 2097152 bytes"):
        net(np.ones((1024, 64), np.float32))
    limit_activations(net, None)
    assert net(np.ones((512, 64), np.float32)).shape == (512, 8)


def test_loaded_models_scale_the_limit_and_can_raise_it(tmp_path):
    path = tmp_path / "mlp.mpk"
    modelpack.export(_mlp(), path)
    loaded = modelpack.load(path)
    assert loaded(np.ones((70_000, 64), np.float32)).shape == (70_000, 8)  # scaled to the input
    strict = modelpack.load(path, limits=Limits(max_activation_bytes=2**20))
    with pytest.raises(LimitError, match=rf"^{path}: block '0' \(Dense\): its output" + OVER + r"1048576; pass "
                       r"limits=modelpack\.Limits\(max_activation_bytes=\.\.\.\) to allow more$"):
        strict(np.ones((1024, 64), np.float32))
    assert strict(np.ones((8, 64), np.float32)).shape == (8, 8)
    assert strict[1](np.ones((8, 256), np.float32)).shape == (8, 8)  # a child called alone is limited too


def test_a_cnn_on_a_large_batch_runs_under_the_default(tmp_path):
    net = nn.Sequential()
    net.add(nn.Conv2D(16, 3, padding=1, activation="relu"), nn.BatchNorm(), nn.MaxPool2D(),
            nn.Conv2D(32, 3, padding=1, activation="relu"), nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(10))
    net.initialize(seed=0)
    x = np.random.default_rng(0).normal(size=(16, 3, 64, 64)).astype(np.float32)
    expected = net(x)
    modelpack.export(net, tmp_path / "cnn.mpk")
    np.testing.assert_array_equal(modelpack.load(tmp_path / "cnn.mpk")(x), expected)


def test_errors_inside_a_loaded_forward_name_the_file(tmp_path):
    path = tmp_path / "mlp.mpk"
    modelpack.export(_mlp(), path)
    loaded = modelpack.load(path)
    with pytest.raises(modelpack.ShapeMismatchError, match=rf"^{path}: block '0' \(Dense\): parameter '0\.weight'"):
        loaded(np.ones((2, 63), np.float32))
    with pytest.raises(InputError, match=rf"^{path}: block '0' \(Dense\): Dense expects a batch"):
        loaded(np.float32(1.0))


# -- at load ----------------------------------------------------------------------------------

def _conv_net() -> bytes:
    net = nn.Sequential()
    net.add(nn.Conv2D(2, kernel_size=3, in_channels=1))
    net.initialize(seed=0)
    return _export(net)


@pytest.mark.parametrize("field, value, message", [
    ("padding", [30_000, 0], r"config\.padding\.0: Input should be less than or equal to 4096"),
    ("strides", [1, 5000], r"config\.strides\.1: Input should be less than or equal to 4096"),
    ("dilation", [4097, 1], r"config\.dilation\.0: Input should be less than or equal to 4096"),
])
def test_spatial_sizes_beyond_any_network(tmp_path, field, value, message):
    refused(tmp_path, _set_config(_conv_net(), **{field: value}), SchemaError,
            r"hostile\.mpk: manifest\.yaml: invalid manifest: architecture\.children\.0: invalid config for layer "
            r"type 'Conv2D': " + message)


def test_pool_size_beyond_any_network(tmp_path):
    net = nn.Sequential()
    net.add(nn.MaxPool2D())
    refused(tmp_path, _set_config(_export(net), pool_size=[60_000, 60_000], padding=[30_000, 30_000]), SchemaError,
            r"config\.pool_size\.0: Input should be less than or equal to 4096")


def _zero_sized(data: bytes, field: str, weights: dict[str, list[int]], **config: Any) -> bytes:
    def change(manifest):
        manifest["architecture"]["children"]["0"]["config"].update({field: 0, **config})
        for name, shape in weights.items():
            manifest["weights"][name]["shape"] = shape

    def empty(members):
        for name, shape in weights.items():
            from craft import npy
            members[name + ".npy"] = npy(np.zeros(shape, np.float32))

    return edit(data, manifest=change, bundle=empty)


ZERO_SIZE = r"with a zero-size dimension: a layer with no weights to back its sizes cannot run"


def test_conv_with_zero_input_channels(tmp_path):
    data = _zero_sized(_conv_net(), "in_channels", {"0.weight": [2, 0, 3, 3]})
    refused(tmp_path, data, FormatError, r"hostile\.mpk: parameter '0\.weight' has shape \(2, 0, 3, 3\), " + ZERO_SIZE,
            inspect=False)


def test_dense_of_a_billion_units_from_a_zero_byte_weight(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(2, in_units=3))
    net.initialize(seed=0)

    def drop_bias(manifest):
        manifest["architecture"]["children"]["0"]["config"]["use_bias"] = False
        del manifest["weights"]["0.bias"]

    without_bias = edit(_export(net), manifest=drop_bias, bundle=lambda members: members.pop("0.bias.npy"))
    data = _zero_sized(without_bias, "in_units", {"0.weight": [2**30, 0]}, units=2**30)
    refused(tmp_path, data, FormatError, r"parameter '0\.weight' has shape \(1073741824, 0\), " + ZERO_SIZE,
            inspect=False)


@pytest.mark.parametrize("layer", ["BatchNorm", "LayerNorm"])
def test_norm_without_channels(tmp_path, layer):
    net = nn.Sequential()
    net.add(nn.BatchNorm(in_channels=2) if layer == "BatchNorm" else nn.LayerNorm(in_channels=2))
    net.initialize(seed=0)
    names = ["gamma", "beta", "running_mean", "running_var"] if layer == "BatchNorm" else ["gamma", "beta"]
    data = _zero_sized(_export(net), "in_channels", {f"0.{name}": [0] for name in names})
    refused(tmp_path, data, FormatError, r"parameter '0\.gamma' has shape \(0,\), " + ZERO_SIZE, inspect=False)


def test_concatenate_of_many_children(tmp_path):
    """A Concatenate joining many copies of its input: its children's outputs are held, and
    the join is sized before numpy allocates it."""
    net = nn.Concatenate(axis=1)
    net.add(*(nn.Activation("relu") for _ in range(200)))  # 200 copies: past the input term's 256
    data = _export(net)
    runs_out(tmp_path, data, np.ones((256, 128), np.float32),
             r"hostile\.mpk: the top-level block \(Concatenate\): (the output of child '\d+'|joining its children's "
             r"outputs)" + OVER + "33554432")


def test_lambda_broadcasting_in_a_graph(tmp_path):
    """A Lambda layer called by a graph with two inputs runs a broadcasting op: sized first."""
    class Outer(nn.Block):
        def __init__(self) -> None:
            super().__init__()
            self.join = nn.Lambda("add")

        def forward(self, x):
            return self.join(x.reshape(-1, 1), x.reshape(1, -1))

    net = Outer()
    example = np.ones((2, 4), np.float32)
    data = _export(net, example=example)
    runs_out(tmp_path, data, np.ones((1024, 4), np.float32),
             r"block 'join' \(Lambda\): its op 'add'" + OVER + "33554432")


@pytest.mark.parametrize("node", [
    {"op": "full", "inputs": [], "outputs": ["big"], "attrs": {"shape": [20_000, 20_000], "value": 1.0,
                                                                 "dtype": "float64"}},
    {"op": "tile", "inputs": ["x"], "outputs": ["big"], "attrs": {"reps": [4096, 4096]}},
    {"op": "broadcast_to", "inputs": ["x"], "outputs": ["big"], "attrs": {"shape": [1_000_000, 8, 4]}},
    {"op": "one_hot", "inputs": ["x"], "outputs": ["big"], "attrs": {"depth": 10_000_000}},
])
def test_graph_ops_sized_by_their_attributes(tmp_path, node):
    """Under the op table's own 2**31-element cap, yet gigabytes from a few bytes of manifest."""
    runs_out(tmp_path, _graph([node], ["big"]), np.ones((8, 4), np.float32),
             rf"graph node 0 \({node['op']}\)" + OVER + "33554432")
