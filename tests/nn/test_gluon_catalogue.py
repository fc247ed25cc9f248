"""Every layer of the Gluon 1.9 catalogue added for issue 14: declarative export and load
round trips (bitwise, at several batch sizes), in traced custom blocks too, Lambda's refusal
of Python code, and hand-edited archives whose configs a layer would refuse."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from craft import edit
from models import export_bytes, round_trip

import modelpack
from modelpack import nn
from modelpack.errors import SchemaError, UnsupportedBlockError
from modelpack.nn import functional as F

# type name -> (a network using it, the per-example input shape)
NETWORKS: dict[str, tuple[Callable[[], nn.Block], tuple[int, ...]]] = {
    "Conv1D": (lambda: nn.Conv1D(4, 3, strides=2, padding=1, groups=2, activation="relu"), (2, 9)),
    "Conv3D": (lambda: nn.Conv3D(3, (1, 2, 3), padding=(0, 1, 1), dilation=(1, 2, 1)), (2, 3, 4, 5)),
    "Conv1DTranspose": (lambda: nn.Conv1DTranspose(4, 3, strides=2, output_padding=1, groups=2), (2, 5)),
    "Conv2DTranspose": (lambda: nn.Conv2DTranspose(3, (3, 2), strides=(2, 1), padding=1, activation="tanh"), (2, 4, 5)),
    "Conv3DTranspose": (lambda: nn.Conv3DTranspose(2, 2, strides=2, use_bias=False), (1, 2, 3, 2)),
    "MaxPool1D": (lambda: nn.MaxPool1D(3, 2, 1, ceil_mode=True), (2, 8)),
    "MaxPool3D": (lambda: nn.MaxPool3D((1, 2, 2)), (2, 3, 4, 4)),
    "AvgPool1D": (lambda: nn.AvgPool1D(2, count_include_pad=False, padding=1), (2, 7)),
    "AvgPool3D": (lambda: nn.AvgPool3D(2, strides=1), (1, 3, 3, 3)),
    "GlobalMaxPool1D": (lambda: nn.GlobalMaxPool1D(), (3, 5)),
    "GlobalAvgPool1D": (lambda: nn.GlobalAvgPool1D(), (3, 5)),
    "GlobalMaxPool3D": (lambda: nn.GlobalMaxPool3D(), (2, 2, 3, 4)),
    "GlobalAvgPool3D": (lambda: nn.GlobalAvgPool3D(), (2, 2, 3, 4)),
    "ReflectionPad2D": (lambda: nn.ReflectionPad2D(1), (2, 3, 4)),
    "InstanceNorm": (lambda: nn.InstanceNorm(scale=True), (3, 4, 5)),
    "GroupNorm": (lambda: nn.GroupNorm(num_groups=2), (4, 3)),
    "PReLU": (lambda: nn.PReLU(in_channels=3), (3, 4)),
    "SELU": (lambda: nn.SELU(), (5,)),
    "Swish": (lambda: nn.Swish(beta=2.0), (5,)),
    "GELU": (lambda: nn.GELU("tanh"), (5,)),
    "Identity": (lambda: nn.Identity(), (5,)),
    "Lambda": (lambda: nn.Lambda(np.tanh), (5,)),
    "HybridLambda": (lambda: nn.HybridLambda("softmax"), (5,)),
}


def _batch(shape: tuple[int, ...], batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype(np.float32)


@pytest.mark.parametrize("type_name", sorted(NETWORKS))
def test_layer_exports_declaratively_and_loads_bitwise(type_name: str) -> None:
    make, shape = NETWORKS[type_name]
    net = nn.Sequential()
    net.add(make())
    net.initialize(nn.init.Normal(0.5), seed=1)
    net(_batch(shape, 2))
    params = net.collect_params()
    for param in params.values():  # non-trivial values where initializers give constants
        param.set_data(param.data() + np.linspace(0, 0.5, param.data().size, dtype=param.dtype).reshape(param.shape))
    loaded = round_trip(net)
    assert modelpack.inspect(io.BytesIO(export_bytes(net))).architecture.children["0"].type == type_name
    assert type(loaded[0]) is type(net[0])
    assert list(loaded.collect_params()) == list(params)
    for batch in (1, 2, 7):
        x = _batch(shape, batch, seed=batch)
        assert loaded(x).tobytes() == net(x).tobytes()


def test_concatenate_branches_round_trip_and_hybrid_name_is_the_same_type():
    net = nn.HybridConcatenate(axis=1)
    branch = nn.Sequential()
    branch.add(nn.Dense(3, activation="relu"), nn.Dense(2))
    net.add(nn.Dense(4), branch, nn.Identity())
    net.initialize(seed=0)
    x = _batch((5,), 3)
    assert net(x).shape == (3, 4 + 2 + 5)
    np.testing.assert_array_equal(net(x), np.concatenate([net[0](x), branch(x), x], axis=1))
    loaded = round_trip(net)
    assert type(loaded) is nn.Concatenate and list(loaded.children) == ["0", "1", "2"]
    assert loaded(x).tobytes() == net(x).tobytes()


class ResidualUnit(nn.Block):
    """A custom block built from the new layers, exported by tracing."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.conv = nn.Conv1D(channels, 3, padding=1)
        self.norm = nn.InstanceNorm(in_channels=channels, scale=True)
        self.act = nn.PReLU(in_channels=channels)
        self.up = nn.Conv1DTranspose(channels, 2, strides=2)

    def forward(self, x):
        return self.up(self.act(self.norm(self.conv(x))) + x)


def test_new_layers_inside_a_traced_block_round_trip():
    net = ResidualUnit(4)
    net.initialize(seed=3)
    x = _batch((4, 6), 2)
    net(x)
    loaded = round_trip(net, example=x)
    for batch in (1, 2, 7):
        x = _batch((4, 6), batch, seed=batch)
        assert loaded(x).tobytes() == net(x).tobytes()


def test_lambda_of_an_op_function_is_stored_by_op_name():
    for function, name in ((np.tanh, "tanh"), (F.relu, "relu"), ("log_softmax", "log_softmax")):
        block = nn.Lambda(function)
        assert block.get_config() == {"function": name} and repr(block) == f"Lambda({name})"


def test_lambda_of_python_code_runs_but_is_refused_at_export():
    block = nn.Lambda(lambda x: x * 2 + 1)
    np.testing.assert_array_equal(block(np.ones(3)), np.full(3, 3.0))
    net = nn.Sequential()
    net.add(block)
    with pytest.raises(UnsupportedBlockError, match=r"Lambda wraps the Python function '<lambda>': an archive stores op names, never code.*Lambda\('tanh'\).*example= to trace it"):
        export_bytes(net)
    hybrid = nn.HybridLambda(lambda F, x: F.sigmoid(x) * 2)  # Gluon's convention: F first
    np.testing.assert_allclose(hybrid(np.zeros(2, np.float32)), np.ones(2))
    with pytest.raises(UnsupportedBlockError, match="HybridLambda wraps the Python function '<lambda>'"):
        hybrid.get_config()


def test_lambda_refuses_unknown_or_incomplete_op_names():
    with pytest.raises(modelpack.UnknownOpError, match=r"Lambda\('os.system'\): not an op a Lambda can name; ops: .*tanh"):
        nn.Lambda("os.system")
    with pytest.raises(modelpack.UnknownOpError, match=r"Lambda\('reshape'\)"):  # needs a shape
        nn.Lambda("reshape")


HOSTILE_CONFIGS = {
    "lambda-code": ("Lambda", {"function": "__import__"}, "'__import__' is not an op a Lambda can name"),
    "transpose-stride": ("Conv1DTranspose", {"channels": 2, "kernel_size": [1], "strides": [1000000], "in_channels": 2},
                         "less than or equal to 4096"),
    "pad-batch-axis": ("ReflectionPad2D", {"padding": [9, 9, 0, 0, 1, 1, 1, 1]}, "may only pad the last two axes"),
    "pool-padding": ("MaxPool3D", {"pool_size": [1, 1, 1], "padding": [4096, 0, 0]}, "must be at most half of pool_size"),
    "conv-rank": ("Conv1D", {"channels": 2, "kernel_size": [1, 1], "in_channels": 2}, "at most 1 item"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CONFIGS))
def test_hand_edited_configs_are_refused_at_load(case: str) -> None:
    type_name, config, message = HOSTILE_CONFIGS[case]
    net = nn.Sequential()
    net.add(nn.Identity())
    data = export_bytes(net)

    def replace(document: dict) -> None:
        document["architecture"]["children"]["0"] = {"type": type_name, "config": config}

    with pytest.raises(SchemaError, match=message):
        modelpack.load(io.BytesIO(edit(data, manifest=replace)))


def test_inspect_table_shows_the_output_shape_of_every_convolution_and_global_pool():
    from modelpack.cli.summary import _output
    from modelpack.format.schema import LayerNode

    configs = {
        "Conv1D": {"channels": 3, "kernel_size": [2]},
        "Conv3D": {"channels": 3, "kernel_size": [1, 2, 2]},
        "Conv2DTranspose": {"channels": 3, "kernel_size": [2, 2]},
        "GlobalMaxPool1D": {},
        "GlobalAvgPool3D": {},
    }
    shown = {name: _output(LayerNode(type=name, config=config)) for name, config in configs.items()}
    assert shown == {
        "Conv1D": "(N, 3, …)", "Conv3D": "(N, 3, …)", "Conv2DTranspose": "(N, 3, …)",
        "GlobalMaxPool1D": "(N, C, 1)", "GlobalAvgPool3D": "(N, C, 1, 1, 1)",
    }
