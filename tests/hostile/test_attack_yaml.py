"""Manifest attacks: code-running tags, alias bombs, deep nesting, size and node bombs,
duplicate keys, unknown layers and fields. All refused while parsing, within bounds."""

from __future__ import annotations

import pytest
from craft import archive, edit, stored_zip
from harness import graph_bytes, model_bytes, refused

import modelpack
from modelpack import Limits
from modelpack.errors import LimitError, SchemaError, UnknownLayerError, UnknownOpError
from modelpack.io.limits import DEFAULT_LIMITS

EMPTY_BUNDLE = stored_zip({})
HEAD = "format: modelpack\nformat_version: '1.1'\nproducer: x\nkind: tensors\nlayout: dict\n"


def _manifest(text: str) -> bytes:
    return archive(text.encode(), EMPTY_BUNDLE)


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/name:os.system",
        "!!binary aGVsbG8=",
        "!custom x",
        "!!str x",
    ],
)
def test_tags_refused(tmp_path, tag):
    refused(tmp_path, _manifest(HEAD + f"weights: {{}}\nmetadata:\n  a: {tag}\n"), SchemaError,
            r"manifest\.yaml: manifest is not valid safe YAML: YAML tag '.*' is not allowed")


def test_billion_laughs_refused(tmp_path):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    refused(tmp_path, _manifest(HEAD + "\n".join(lines) + "\n"), SchemaError,
            "anchors and aliases are not allowed")


def test_alias_without_anchor_in_view_refused(tmp_path):
    refused(tmp_path, _manifest(HEAD + "weights: *nothing\n"), SchemaError, "not valid safe YAML")


def test_deep_nesting_refused_without_recursion(tmp_path):
    # PyYAML's own composer recurses per level; 100 000 levels would overflow the stack.
    # Newer PyYAML scanners refuse such depth themselves, in their own words: the test asks
    # only for modelpack's class and prefix, never for another library's wording.
    depth = 100_000
    refused(tmp_path, _manifest(HEAD + "metadata: " + "[" * depth + "]" * depth + "\n"), SchemaError,
            r"manifest\.yaml: (manifest is not valid safe YAML|.*nests deeper than 160 levels)")


@pytest.mark.parametrize("depth", [161, 200], ids=["block_limit_plus_one", "200"])
def test_nesting_past_modelpacks_own_limit_refused(tmp_path, depth):
    # Shallow enough for any PyYAML: modelpack's own depth limit (spec §8) is what refuses.
    refused(tmp_path, _manifest(HEAD + "metadata: " + "[" * depth + "]" * depth + "\n"), SchemaError,
            "nests deeper than 160 levels")


def test_deep_architecture_refused(tmp_path):
    node = "{type: Flatten}"
    for _ in range(65):
        node = "{type: Sequential, children: {'0': " + node + "}}"
    text = "format: modelpack\nformat_version: '1.1'\nproducer: x\nkind: model\narchitecture: " + node + "\n"
    refused(tmp_path, _manifest(text + "weights: {}\n"), SchemaError, "architecture nests deeper than 64 levels")


def test_oversized_manifest_refused_before_reading(tmp_path):
    allowed = DEFAULT_LIMITS.max_manifest_bytes
    text = HEAD + "weights: {}\nmetadata: {a: '" + "x" * (allowed + 2**20) + "'}\n"
    refused(tmp_path, _manifest(text), LimitError,
            rf"member 'manifest\.yaml': its size in bytes \(\d+\) is over the limit of {allowed}")


def test_node_bomb_refused(tmp_path):
    # 2 bytes a node: far more nodes than bytes would suggest. Default limit: 1 000 000 (a
    # quarter of that outside the JSON subset, whose nodes cost the YAML parser more).
    text = HEAD + "weights: {}\nmetadata: {a: [" + "1," * 5000 + "]}\n"
    refused(tmp_path, _manifest(text), LimitError, r"manifest: its YAML node count \(1001\) is over the limit of 1000 "
            r"\(in the block form, each node counts 4 times\); pass "
            r"limits=modelpack\.Limits\(max_manifest_nodes",
            limits=Limits(max_manifest_nodes=1000))


def test_node_bomb_in_json_refused(tmp_path):
    """The JSON path counts what the YAML path counts (keys too), at full weight."""
    pairs = ", ".join(f'"k{i}": "v"' for i in range(600))
    text = '{"format": "modelpack", "format_version": "1.1", "producer": "x", "kind": "tensors", ' \
           '"layout": "dict", "weights": {}, "metadata": {' + pairs + "}}"
    refused(tmp_path, _manifest(text), LimitError, r"manifest: its YAML node count \(1001\) is over the limit of 1000; pass "
            r"limits=modelpack\.Limits\(max_manifest_nodes", limits=Limits(max_manifest_nodes=1000))
    path = tmp_path / "fits.mpk"
    path.write_bytes(_manifest(text))
    assert len(modelpack.load(path, limits=Limits(max_manifest_nodes=1300))) == 0


def test_duplicate_keys_refused(tmp_path):
    # PyYAML keeps the last one silently: a reviewer would read the first.
    text = HEAD + "weights: {}\nmetadata: {license: MIT}\nmetadata: {license: proprietary}\n"
    refused(tmp_path, _manifest(text), SchemaError, r"duplicate key 'metadata' \(at line 8")


def test_second_document_refused(tmp_path):
    refused(tmp_path, _manifest(HEAD + "weights: {}\n---\nkind: model\n"), SchemaError, "a second YAML document")


def test_non_utf8_manifest_refused(tmp_path):
    data = archive(HEAD.encode() + b"weights: {}\nmetadata: {a: '\xff'}\n", EMPTY_BUNDLE)
    refused(tmp_path, data, SchemaError, r"member 'manifest\.yaml' is not UTF-8")


def test_manifest_not_a_mapping(tmp_path):
    refused(tmp_path, _manifest("- 1\n- 2\n"), SchemaError, "manifest must be a mapping, found list")


def test_unknown_layer_refused(tmp_path):
    data = edit(model_bytes(), manifest=lambda d: d["architecture"].update(type="os.system"))
    refused(tmp_path, data, UnknownLayerError, r"manifest\.yaml: unknown layer type 'os\.system'; known types:")


def test_unknown_op_refused(tmp_path):
    def evil(document):
        document["architecture"]["config"]["graph"]["nodes"][1]["op"] = "os.system"

    refused(tmp_path, edit(graph_bytes(), manifest=evil), UnknownOpError,
            r"hostile\.mpk: manifest\.yaml: unknown op 'os\.system'; known ops: abs, add,")


def test_unknown_config_field_refused_even_in_newer_minor(tmp_path):
    def change(document):
        document["format_version"] = "1.9"
        document["architecture"]["children"]["0"]["config"]["exec"] = "import os"

    data = edit(model_bytes(), manifest=change)
    refused(tmp_path, data, SchemaError, r"invalid config for layer type 'Dense'.*exec")


def test_unknown_layer_node_field_refused_even_in_newer_minor(tmp_path):
    def change(document):
        document["format_version"] = "1.9"
        document["architecture"]["hook"] = "os.system"

    data = edit(model_bytes(), manifest=change)
    refused(tmp_path, data, SchemaError, r"architecture\.hook: Extra inputs are not permitted")


def test_unknown_manifest_field_refused_in_same_version(tmp_path):
    data = edit(model_bytes(), manifest=lambda d: d.update(loader="pickle"))
    refused(tmp_path, data, SchemaError, r"manifest\.yaml: invalid manifest: loader: Extra inputs are not permitted")


def test_huge_integer_refused(tmp_path):
    text = HEAD + "weights: {w: {dtype: float32, shape: [" + "9" * 5000 + "]}}\n"
    refused(tmp_path, _manifest(text), SchemaError, r"the integer 9999.* is outside \[-2\*\*63, 2\*\*63\)")



def test_layer_arguments_a_layer_would_refuse_are_refused_by_the_schema(tmp_path):
    def pool(document):
        document["architecture"]["children"]["1"] = {"type": "MaxPool2D", "config": {"padding": [5, 0]}}

    data = edit(model_bytes(), manifest=pool)
    refused(tmp_path, data, SchemaError, r"manifest\.yaml: invalid manifest: architecture\.children\.1: invalid "
            r"config for layer type 'MaxPool2D': config: padding \[5, 0\] must be at most half of pool_size")


@pytest.mark.parametrize("number", ["0x" + "f" * 20000, "1:59:59", "0b" + "1" * 500])
def test_base60_and_overlong_numbers_refused_quickly(tmp_path, number):
    """PyYAML converts these in quadratic time into ints Python cannot print: refused unread
    (they are YAML 1.1 forms outside FORMAT.md §2.1's table)."""
    text = HEAD + f"metadata: {{n: {number}}}\n"
    refused(tmp_path, _manifest(text), SchemaError, "is a YAML 1.1 form a manifest may not hold")


def test_unbounded_graph_constants_refused(tmp_path):
    def many(document):
        document["architecture"] = {"type": "Graph", "config": {"constants": 2**40}}

    refused(tmp_path, edit(model_bytes(), manifest=many), SchemaError,
            r"config\.constants: Input should be less than or equal to 100000")


def test_shape_beyond_int64_refused(tmp_path):
    text = HEAD + "weights: {w: {dtype: float32, shape: [" + "9" * 40 + "]}}\n"
    refused(tmp_path, _manifest(text), SchemaError, r"the integer 9{40} is outside \[-2\*\*63, 2\*\*63\)")
