"""The layer registry: every built-in type round-trips its config, unknown names are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelpack import nn
from modelpack.errors import UnknownLayerError, UnsupportedBlockError
from modelpack.nn import registry, rnn
from modelpack.nn.registry import LayerConfig, register_layer

# One non-default instance per registered type, so config round trips cover real values.
EXAMPLES: dict[str, nn.Block] = {
    "Sequential": nn.Sequential(),
    "Dense": nn.Dense(7, activation="gelu", use_bias=False, flatten=False, dtype="float64", in_units=3),
    "Activation": nn.Activation("softsign"),
    "LeakyReLU": nn.LeakyReLU(0.3),
    "ELU": nn.ELU(0.5),
    "Dropout": nn.Dropout(0.25, axes=(1,)),
    "Flatten": nn.Flatten(),
    "Embedding": nn.Embedding(11, 4, dtype="float16"),
    "Conv2D": nn.Conv2D(8, (3, 1), strides=2, padding=(1, 0), dilation=(2, 1), groups=2,
                        activation="relu", use_bias=False, in_channels=4),
    "MaxPool2D": nn.MaxPool2D(3, strides=2, padding=1, ceil_mode=True),
    "AvgPool2D": nn.AvgPool2D((2, 3), padding=(1, 1), count_include_pad=False),
    "GlobalAvgPool2D": nn.GlobalAvgPool2D(),
    "GlobalMaxPool2D": nn.GlobalMaxPool2D(),
    "BatchNorm": nn.BatchNorm(axis=-1, momentum=0.8, epsilon=1e-3, center=False, scale=False,
                              use_global_stats=True, in_channels=5),
    "LayerNorm": nn.LayerNorm(axis=1, epsilon=1e-6, center=False, in_channels=6),
    "Identity": nn.Identity(),
    "Lambda": nn.Lambda("softsign"),
    "HybridLambda": nn.HybridLambda("log_softmax"),
    "Concatenate": nn.Concatenate(axis=1),
    "Conv1D": nn.Conv1D(4, 3, strides=2, padding=1, dilation=2, groups=2, in_channels=6, activation="tanh"),
    "Conv3D": nn.Conv3D(2, (1, 2, 3), padding=(0, 1, 1), use_bias=False, in_channels=3, dtype="float64"),
    "Conv1DTranspose": nn.Conv1DTranspose(6, 3, strides=3, padding=1, output_padding=2, in_channels=4, groups=2),
    "Conv2DTranspose": nn.Conv2DTranspose(3, (2, 3), strides=(2, 1), dilation=(1, 2), in_channels=5,
                                          activation="relu"),
    "Conv3DTranspose": nn.Conv3DTranspose(2, 2, strides=2, output_padding=(1, 0, 1), in_channels=1, use_bias=False),
    "MaxPool1D": nn.MaxPool1D(3, strides=1, padding=1, ceil_mode=True),
    "MaxPool3D": nn.MaxPool3D((1, 2, 3), padding=(0, 1, 1)),
    "AvgPool1D": nn.AvgPool1D(4, strides=2, count_include_pad=False),
    "AvgPool3D": nn.AvgPool3D(2, strides=(1, 2, 1), padding=1, ceil_mode=True),
    "GlobalMaxPool1D": nn.GlobalMaxPool1D(),
    "GlobalMaxPool3D": nn.GlobalMaxPool3D(),
    "GlobalAvgPool1D": nn.GlobalAvgPool1D(),
    "GlobalAvgPool3D": nn.GlobalAvgPool3D(),
    "ReflectionPad2D": nn.ReflectionPad2D((0, 0, 0, 0, 1, 2, 3, 4)),
    "InstanceNorm": nn.InstanceNorm(axis=2, epsilon=1e-3, center=False, scale=True, in_channels=7),
    "GroupNorm": nn.GroupNorm(num_groups=4, epsilon=1e-4, scale=False, dtype="float16"),
    "PReLU": nn.PReLU(in_channels=3, dtype="float64"),
    "SELU": nn.SELU(),
    "Swish": nn.Swish(beta=0.5),
    "GELU": nn.GELU(approximation="tanh"),
    "Graph": nn.GraphBlock(
        source_class="Scaled",
        parameters={"scale": {"shape": [3], "dtype": "float32", "trainable": False}},
        constants=1,
        graph={
            "inputs": [{"name": "x0", "dtype": "float32", "shape": ["batch", 3]}],
            "nodes": [
                {"op": "parameter", "outputs": ["v0"], "attrs": {"name": "scale"}},
                {"op": "constant", "outputs": ["v1"], "attrs": {"name": "#const0"}},
                {"op": "multiply", "inputs": ["x0", "v0"], "outputs": ["v2"]},
                {"op": "add", "inputs": ["v2", "v1"], "outputs": ["v3"]},
            ],
            "outputs": {"kind": "single", "values": ["v3"]},
        },
    ),
    "RNN": rnn.RNN(5, num_layers=2, activation="tanh", layout="NTC", dropout=0.2, bidirectional=True,
                   input_size=3, dtype="float64"),
    "LSTM": rnn.LSTM(6, projection_size=4, state_clip_min=-1.5, state_clip_max=1.5, state_clip_nan=True,
                     input_size=2, use_sequence_length=True),
    "GRU": rnn.GRU(4, num_layers=3, input_size=7),
    "RNNCell": rnn.RNNCell(3, activation="relu", input_size=2),
    "LSTMCell": rnn.LSTMCell(3, input_size=2, activation="softsign", recurrent_activation="tanh"),
    "GRUCell": rnn.GRUCell(5, input_size=4, dtype="float64"),
    "SequentialRNNCell": rnn.SequentialRNNCell(),
    "BidirectionalCell": rnn.BidirectionalCell(),
    "DropoutCell": rnn.DropoutCell(0.3, axes=(0,)),
    "ResidualCell": rnn.ResidualCell(),
    "ZoneoutCell": rnn.ZoneoutCell(zoneout_outputs=0.25, zoneout_states=0.5),
}


def test_every_registered_type_has_an_example():
    assert sorted(EXAMPLES) == registry.known_layers()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_config_round_trip(name):
    block = EXAMPLES[name]
    assert registry.type_name_of(block) == name
    entry = registry.layer_type(name)
    config = entry.config.model_validate(block.get_config()).model_dump(mode="json")
    rebuilt = entry.build(config)
    assert type(rebuilt) is type(block)
    assert rebuilt.get_config() == block.get_config()
    assert repr(rebuilt) == repr(block)
    assert {n: p.shape for n, p in rebuilt.collect_params().items()} == {
        n: p.shape for n, p in block.collect_params().items()
    }


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownLayerError) as caught:
        registry.layer_type("os.system")
    assert str(caught.value) == f"unknown layer type 'os.system'; known types: {', '.join(registry.known_layers())}"
    assert str(caught.value).startswith("unknown layer type 'os.system'; known types: Activation, AvgPool1D, ")


def test_subclass_is_not_its_parent():
    class MyDense(nn.Dense):
        pass

    assert registry.type_name_of(MyDense(3)) is None


def test_config_models_are_strict_and_closed():
    config = registry.layer_type("Dense").config
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        config.model_validate({"units": 3, "module": "os"})
    with pytest.raises(ValidationError, match="valid integer"):
        config.model_validate({"units": "3"})
    with pytest.raises(ValidationError, match="activation"):
        config.model_validate({"units": 3, "activation": "exec"})


def test_name_cannot_be_taken_twice():
    class OtherConfig(LayerConfig):
        pass

    with pytest.raises(ValueError, match="'Dense' is already registered"):
        register_layer("Dense", config=OtherConfig)(type("Other", (nn.Block,), {}))


@pytest.mark.parametrize("name, config, message", [
    ("MaxPool2D", {"pool_size": [2, 2], "padding": [2, 0]}, "padding .* must be at most half of pool_size"),
    ("AvgPool2D", {"pool_size": [3, 3], "padding": [1, 2]}, "padding .* must be at most half of pool_size"),
    ("Conv2D", {"channels": 3, "kernel_size": [1, 1], "groups": 2}, "divisible by groups"),
    ("Lambda", {"function": "reshape"}, "'reshape' is not an op a Lambda can name"),
    ("Lambda", {"function": "__import__"}, "'__import__' is not an op a Lambda can name"),
    ("Concatenate", {"axis": 64}, "less than or equal to 63"),
    ("Conv1DTranspose", {"channels": 2, "kernel_size": [3], "strides": [2], "output_padding": [2]},
     r"output_padding \[2\] must be smaller than strides \[2\]"),
    ("Conv3D", {"channels": 2, "kernel_size": [3, 3]}, "at least 3 items"),
    ("Conv1D", {"channels": 2, "kernel_size": [4097]}, "less than or equal to 4096"),
    ("Conv2DTranspose", {"channels": 2, "kernel_size": [1, 1], "strides": [1, 100000]}, "less than or equal to 4096"),
    ("MaxPool1D", {"pool_size": [2], "padding": [2]}, "padding .* must be at most half of pool_size"),
    ("AvgPool3D", {"pool_size": [3, 3, 3], "padding": [1, 2, 1]}, "padding .* must be at most half of pool_size"),
    ("ReflectionPad2D", {"padding": [1, 1, 0, 0, 1, 1, 1, 1]}, "may only pad the last two axes"),
    ("ReflectionPad2D", {"padding": [0, 0, 0, 0, 5000, 1, 1, 1]}, "less than or equal to 4096"),
    ("GroupNorm", {"num_groups": 0}, "greater than 0"),
    ("PReLU", {"in_channels": 0}, "greater than 0"),
    ("Swish", {"beta": float("nan")}, "finite number"),
    ("GELU", {"approximation": "sigmoid"}, "'erf' or 'tanh'"),
])
def test_configs_refuse_what_the_layer_would_refuse(name, config, message):
    """A config that validates must build: the schema, not the constructor, says no."""
    with pytest.raises(ValidationError, match=message):
        registry.layer_type(name).config.model_validate(config)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_get_config_lists_the_config_models_fields_in_order(name):
    # Block.get_config derives the dict from the registered config model's fields.
    assert list(EXAMPLES[name].get_config()) == list(registry.layer_type(name).config.model_fields)


def test_a_subclass_has_its_registered_bases_config():
    class MyDense(nn.Dense):
        pass

    assert registry.config_model_of(MyDense) is registry.layer_type("Dense").config
    assert MyDense(3, in_units=2).get_config() == nn.Dense(3, in_units=2).get_config()


def test_an_unregistered_block_has_no_config():
    class Custom(nn.Block):
        def forward(self, x):
            return x

    assert registry.config_model_of(Custom) is None
    with pytest.raises(UnsupportedBlockError, match="Custom is not a registered layer type, so it has no config"):
        Custom().get_config()
    with pytest.raises(TypeError, match=r"\['unit'\] are not fields of DenseConfig"):
        nn.Dense(3).config_from_attributes(unit=3)
