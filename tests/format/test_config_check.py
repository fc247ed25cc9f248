"""The layer configs' fast checks (``config_check``) and the model manifest's fast path
(``schema._quick_manifest`` / ``_quick_node``) against Pydantic, the reference: on every
config drawn (valid, near a bound, of another type, hostile), the fast check gives exactly
Pydantic's result where Pydantic accepts and declines where it refuses; a declined manifest
is validated by Pydantic, which raises the usual error."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from strategies import networks

from modelpack.errors import SchemaError, UnknownLayerError
from modelpack.format import architecture, config_check, schema
from modelpack.format.schema import FORMAT_VERSION, LayerNode, Manifest
from modelpack.nn import registry

CHECKED = [name for name in registry.known_layers() if config_check.checker(registry.layer_type(name).config)]


def test_the_common_layers_have_a_fast_check():
    """The check covers the plain configs (a change in how Pydantic writes them, or a new
    validator, would silently send them back to the slow path: this notices)."""
    for name in ("Sequential", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "BatchNorm", "LayerNorm",
                 "Activation", "Dropout", "Flatten", "Embedding", "LeakyReLU", "GlobalAvgPool2D"):
        assert name in CHECKED, name
    # a union, a nested model or a field validator: left to Pydantic
    assert config_check.checker(registry.layer_type("Graph").config) is None


# Values of every JSON kind, and the edges of the kinds the checks take.
_EDGE_NUMBERS = [0, 1, -1, 2, 63, 64, -64, 4096, 4097, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 2**1100,
                 0.0, -0.0, 0.5, 1.0, 1e-300, 1e308, math.inf, -math.inf, math.nan, True, False]
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(_EDGE_NUMBERS) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def _near(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values around what ``schema`` accepts (its bounds, lengths and members ± one)."""
    kind = schema["type"]
    if kind in ("default", "nullable"):
        return st.none() | _near(schema["schema"])
    if kind in ("int", "float"):
        edges = [schema[b] + d for b in ("ge", "gt", "le", "lt") if b in schema for d in (-1, 0, 1)]
        values = st.sampled_from(edges) if edges else st.integers(-3, 3)
        if kind == "float":  # (integers too: a float field takes them, rounded, up to float's range)
            values |= st.floats(allow_nan=True) | st.sampled_from([2**53 + 1, 2**63 - 1, 2**1100])
        return values | st.integers(-10, 10)
    if kind == "bool":
        return st.booleans()
    if kind == "str":
        return st.text(min_size=max(0, schema.get("min_length", 0) - 1), max_size=schema.get("max_length", 8) + 1)
    if kind == "literal":
        return st.sampled_from(schema["expected"]) | st.text(max_size=4)
    if kind == "list":
        longest = schema.get("max_length", 3) + 1
        return st.lists(_near(schema["items_schema"]), min_size=max(0, schema.get("min_length", 0) - 1),
                        max_size=longest)
    return _json


def _valid(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values ``schema`` accepts."""
    kind = schema["type"]
    if kind == "default":
        return _valid(schema["schema"])
    if kind == "nullable":
        return st.none() | _valid(schema["schema"])
    if kind in ("int", "float"):
        low = schema.get("ge", schema["gt"] + (1 if kind == "int" else 0) if "gt" in schema else None)
        high = schema.get("le", schema["lt"] - (1 if kind == "int" else 0) if "lt" in schema else None)
        if kind == "int":
            return st.integers(low, high)
        floats = st.floats(low, high, exclude_min="gt" in schema, exclude_max="lt" in schema,
                           allow_nan=low is None and high is None and schema.get("allow_inf_nan") is not False)
        return floats | st.integers(-2 if low is None else math.ceil(low), 2 if high is None else math.floor(high))
    if kind == "bool":
        return st.booleans()
    if kind == "str":
        return st.text(min_size=schema.get("min_length", 0), max_size=schema.get("max_length", 8))
    if kind == "literal":
        return st.sampled_from(schema["expected"])
    if kind == "list":
        return st.lists(_valid(schema["items_schema"]), min_size=schema.get("min_length", 0),
                        max_size=schema.get("max_length", 3))
    raise AssertionError(kind)


def _fields(model: Any) -> dict[str, dict[str, Any]]:
    core = model.__pydantic_core_schema__
    core = core["schema"] if core["type"] == "function-after" else core
    return {name: field["schema"] for name, field in core["schema"]["fields"].items()}


@st.composite
def configs(draw: st.DrawFn, model: Any) -> dict[str, Any]:
    """A config for ``model``: each field valid or left out (if it may be), then maybe one
    field changed to a value near valid or of any JSON kind, removed, or added."""
    fields = _fields(model)
    config = {name: draw(_valid(field)) for name, field in fields.items()
              if field["type"] != "default" or draw(st.booleans())}
    change = draw(st.sampled_from(["none", "none", "near", "json", "remove", "add"]))
    name = draw(st.sampled_from(sorted(fields))) if fields else None
    if change == "near" and name is not None:
        config[name] = draw(_near(fields[name]))
    elif change == "json" and name is not None:
        config[name] = draw(_json)
    elif change == "remove" and name is not None:
        config.pop(name, None)
    elif change == "add":
        config[draw(st.sampled_from(["code", "Units", ""]))] = draw(_json)
    return config


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.mark.parametrize("name", CHECKED)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_fast_check_accepts_exactly_what_pydantic_accepts(name, data):
    model = registry.layer_type(name).config
    config = data.draw(configs(model))
    fast = config_check.checked_config(model, json.loads(json.dumps(config)) if _plain(config) else config)
    try:
        expected = model.model_validate(config).model_dump(mode="json")
    except ValidationError:
        assert fast is None
        return
    assert fast is not None and _same(fast, expected), (fast, expected)


def _plain(config: dict[str, Any]) -> bool:
    """(a round trip through JSON keeps it as it is: no NaN or infinity to lose)"""
    try:
        return _same(json.loads(json.dumps(config, allow_nan=False)), config)
    except (ValueError, OverflowError):
        return False


def test_a_default_is_a_fresh_object_each_time():
    """A list default must not be shared between configs (a layer may keep what it is given)."""
    model = registry.layer_type("Conv2D").config
    first = config_check.checked_config(model, {"channels": 2, "kernel_size": [1, 1]})
    second = config_check.checked_config(model, {"channels": 2, "kernel_size": [1, 1]})
    assert first == second and first["strides"] is not second["strides"]


def _node_document(node: LayerNode) -> dict[str, Any]:
    return json.loads(node.model_dump_json())


def _same_node(fast: LayerNode, slow: LayerNode) -> None:
    assert fast == slow and fast.model_fields_set == slow.model_fields_set
    assert _same(fast.config, slow.config)
    assert list(fast.children) == list(slow.children)
    for child in fast.children:
        _same_node(fast.children[child], slow.children[child])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.booleans())
def test_a_tree_is_built_quickly_as_pydantic_builds_it(drawn, drop_defaults):
    """Exported trees (with or without their default fields and empty children): the same
    LayerNodes, fields set and dumps as ``model_validate``'s."""
    tree = architecture.describe(drawn.net)
    document = _node_document(tree)
    if drop_defaults:
        document = json.loads(tree.model_dump_json(exclude_defaults=True))
    slow = LayerNode.model_validate(document)
    fast = schema._quick_node(document, 1)
    assert fast is not None
    _same_node(fast, slow)
    assert fast.model_dump() == slow.model_dump()


def _model_doc(**changes: Any) -> dict[str, Any]:
    document = {
        "format": "modelpack", "format_version": FORMAT_VERSION, "producer": "t", "kind": "model",
        "architecture": {"type": "Sequential", "config": {}, "children": {
            "0": {"type": "Dense", "config": {"units": 2, "in_units": 3}},
            "1": {"type": "Dense", "config": {"units": 1, "activation": "relu"}},
        }},
        "weights": {name: {"dtype": "float32", "shape": shape, "sha256": "0" * 64} for name, shape in
                    [("0.weight", [2, 3]), ("0.bias", [2]), ("1.weight", [1, 2]), ("1.bias", [1])]},
        "metadata": {"a": "b"},
    }
    document.update(changes)
    return document


def test_a_model_manifest_is_built_quickly_as_the_schema_builds_it():
    for document in (_model_doc(), _model_doc(ties={"2.weight": "0.weight"})):
        if "ties" in document:
            document["architecture"]["children"]["2"] = {"type": "Dense", "config": {"units": 2}}
        quick = schema._quick_manifest(document)
        validated = Manifest.model_validate(document)
        assert quick is not None and quick == validated
        assert quick.model_fields_set == validated.model_fields_set
        assert quick.model_dump() == validated.model_dump()
        assert schema.manifest_to_yaml(quick) == schema.manifest_to_yaml(validated)
        _same_node(quick.architecture, validated.architecture)


def _edit(path: str, value: Any) -> dict[str, Any]:
    """The model manifest with the value at ``path`` (keys joined by '/') set, or removed
    where ``value`` is ``...``."""
    document = _model_doc()
    *parents, last = path.split("/")
    target = document
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return document


_DENSE = "architecture/children/0"


@pytest.mark.parametrize("path,value,error,message", [
    (f"{_DENSE}/config/units", 0, SchemaError, r"architecture\.children\.0: invalid config for layer type 'Dense': config\.units: Input should be greater than 0"),
    (f"{_DENSE}/config/units", True, SchemaError, "units: Input should be a valid integer"),
    (f"{_DENSE}/config/units", 2.0, SchemaError, "units: Input should be a valid integer"),
    (f"{_DENSE}/config/units", ..., SchemaError, "units: Field required"),
    (f"{_DENSE}/config/activation", "swish", SchemaError, "activation: Input should be 'relu'"),
    (f"{_DENSE}/config/use_bias", 1, SchemaError, "use_bias: Input should be a valid boolean"),
    (f"{_DENSE}/config/code", "import os", SchemaError, "code: Extra inputs are not permitted"),
    (f"{_DENSE}/config", [], SchemaError, r"children\.0\.config: Input should be a valid dictionary"),
    (f"{_DENSE}/type", "Transformer", UnknownLayerError, "unknown layer type 'Transformer'"),
    (f"{_DENSE}/type", 3, SchemaError, r"children\.0\.type: Input should be a valid string"),
    (f"{_DENSE}/children", {"x": {"type": "Flatten"}}, SchemaError, "'Dense' cannot have children"),
    (f"{_DENSE}/doc", "x", SchemaError, "doc: Extra inputs are not permitted"),
    ("architecture/children/a.b", {"type": "Flatten"}, SchemaError, r"child name 'a\.b'"),
    ("architecture/children/", {"type": "Flatten"}, SchemaError, "child name '' is empty"),
    ("architecture", None, SchemaError, "needs 'architecture'"),
    ("architecture", ..., SchemaError, "needs 'architecture'"),
    ("layout", "dict", SchemaError, "needs 'architecture' and no 'layout'"),
    ("ties", {"2.weight": 3}, SchemaError, "ties.2.weight: Input should be a valid string"),
    ("ties", {"2.weight": "9.weight"}, SchemaError, "the target must be a tensor in 'weights'"),
    ("ties", {"0.weight": "1.weight"}, SchemaError, "has no tensor of its own"),
    ("ties", ["a"], SchemaError, "ties: Input should be a valid dictionary"),
    ("producer", None, SchemaError, "producer: Input should be a valid string"),
    ("metadata", {"a": 1}, SchemaError, "metadata.a: Input should be a valid string"),
    ("kind", "tensor", SchemaError, "kind: Input should be 'model'"),
    ("signature", "abc", SchemaError, "signature: Extra inputs are not permitted"),
    ("weights/0.bias/shape", [-2], SchemaError, "weights.0.bias.shape.0: Input should be greater than or equal to 0"),
], ids=lambda value: str(value)[:40])
def test_what_the_quick_model_manifest_does_not_take_the_schema_refuses(path, value, error, message):
    """Every unusual field makes ``_quick_manifest`` step aside, and Pydantic words it."""
    document = _edit(path, value)
    assert schema._quick_manifest(document) is None
    with pytest.raises(error, match=r"^f: ") as caught:
        schema.manifest_from_dict(document, source="f")
    assert type(caught.value) is error
    assert caught.match(message)


def test_a_tree_too_deep_for_the_quick_path_is_refused_by_the_schema():
    node: dict[str, Any] = {"type": "Flatten"}
    for _ in range(schema.MAX_NESTING_DEPTH):
        node = {"type": "Sequential", "children": {"0": node}}
    assert schema._quick_node(node, 1) is None
    with pytest.raises(SchemaError, match=f"nests deeper than {schema.MAX_NESTING_DEPTH} levels"):
        schema.manifest_from_dict(_model_doc(architecture=node), source="f")
