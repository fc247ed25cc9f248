"""The layer registry: every built-in type round-trips its config, unknown names are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelpack import nn
from modelpack.errors import UnknownLayerError
from modelpack.nn import registry
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
    with pytest.raises(UnknownLayerError, match=r"unknown layer type 'os.system'; known types: Activation, AvgPool2D, .*Sequential$"):
        registry.layer_type("os.system")


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
])
def test_configs_refuse_what_the_layer_would_refuse(name, config, message):
    """A config that validates must build: the schema, not the constructor, says no."""
    with pytest.raises(ValidationError, match=message):
        registry.layer_type(name).config.model_validate(config)
