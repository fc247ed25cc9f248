"""The tensor index checked as columns (format.tensor_index) vouches only for what the schema
accepts, and gives the same entries: on every entry the schema refuses it steps aside, so the
schema words the refusal."""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter, ValidationError

from modelpack.errors import LimitError, SchemaError
from modelpack.format import schema, tensor_index
from modelpack.format.schema import TensorInfo

SHA = "0123456789abcdef" * 4
_SCHEMA = TypeAdapter(dict[str, TensorInfo])


def _schema_accepts(value) -> bool:
    try:
        checked = _SCHEMA.validate_python(value)
        for name in checked:
            schema.check_tensor_name(name)
    except (ValidationError, ValueError):
        return False
    return True


GOOD = {f"layer{i}.weight": {"dtype": "float32", "shape": [i, 3], "sha256": SHA} for i in range(50)}


def _with(name: str, entry) -> dict:
    return {**GOOD, name: entry}


CASES = {
    "good": GOOD,
    "empty": {},
    "no-hashes": {name: {"dtype": "int8", "shape": []} for name in GOOD},
    "some-hashes": _with("x", {"dtype": "bool", "shape": [0]}),
    "null-hash": _with("x", {"dtype": "bool", "shape": [1], "sha256": None}),
    "bad-dtype": _with("x", {"dtype": "object", "shape": [1]}),
    "dtype-not-a-string": _with("x", {"dtype": 5, "shape": [1]}),
    "dtype-a-list": _with("x", {"dtype": ["float32"], "shape": [1]}),  # unhashable (found by the fuzzer)
    "dtype-a-mapping": _with("x", {"dtype": {"name": "float32"}, "shape": [1]}),
    "hash-a-list": _with("x", {"dtype": "float32", "shape": [1], "sha256": [SHA]}),
    "dim-a-list": _with("x", {"dtype": "float32", "shape": [[1]]}),
    "negative-dim": _with("x", {"dtype": "float32", "shape": [-1]}),
    "huge-dim": _with("x", {"dtype": "float32", "shape": [2**63]}),
    "bool-dim": _with("x", {"dtype": "float32", "shape": [True]}),
    "float-dim": _with("x", {"dtype": "float32", "shape": [1.0]}),
    "shape-tuple": _with("x", {"dtype": "float32", "shape": (1,)}),
    "shape-string": _with("x", {"dtype": "float32", "shape": "12"}),
    "upper-hash": _with("x", {"dtype": "float32", "shape": [1], "sha256": SHA.upper()}),
    "short-hash": _with("x", {"dtype": "float32", "shape": [1], "sha256": SHA[:-1]}),
    "long-hash": _with("x", {"dtype": "float32", "shape": [1], "sha256": SHA + "0"}),
    "hash-not-a-string": _with("x", {"dtype": "float32", "shape": [1], "sha256": 12}),
    "hashes-that-join-to-hex": {**GOOD, "x": {"dtype": "float32", "shape": [1], "sha256": SHA[:32]},
                                "y": {"dtype": "float32", "shape": [1], "sha256": SHA + SHA[:32]}},
    "extra-field": _with("x", {"dtype": "float32", "shape": [1], "note": "hi"}),
    "missing-shape": _with("x", {"dtype": "float32"}),
    "entry-not-a-dict": _with("x", ["float32", [1]]),
    "empty-name": _with("", {"dtype": "float32", "shape": [1]}),
    "slash-name": _with("a/b", {"dtype": "float32", "shape": [1]}),
    "control-name": _with("a\x01b", {"dtype": "float32", "shape": [1]}),
    "backslash-name": _with("a\\b", {"dtype": "float32", "shape": [1]}),
    "delete-name": _with("a\x7fb", {"dtype": "float32", "shape": [1]}),
    "unit-separator-name": _with("a\x1fb", {"dtype": "float32", "shape": [1]}),
    "newline-name": _with("a\nb", {"dtype": "float32", "shape": [1]}),
    "surrogate-name": _with("a\ud800b", {"dtype": "float32", "shape": [1]}),
    "wide-name": _with("层.权重\U0001f600", {"dtype": "float32", "shape": [1]}),
    "next-line-name": _with("a\x85b", {"dtype": "float32", "shape": [1]}),
    "long-name": _with("n" * 1025, {"dtype": "float32", "shape": [1]}),
    "longest-name": _with("n" * 1024, {"dtype": "float32", "shape": [1]}),
    "unicode-name": _with("été", {"dtype": "float32", "shape": [1]}),
    "not-a-dict": [GOOD],
    # format 1.5's offset: a non-negative 64-bit integer, or absent
    "offsets": {name: {**entry, "offset": 64 * i} for i, (name, entry) in enumerate(GOOD.items())},
    "some-offsets": _with("x", {"dtype": "float32", "shape": [1], "sha256": SHA, "offset": 0}),
    "null-offset": _with("x", {"dtype": "float32", "shape": [1], "offset": None}),
    "largest-offset": _with("x", {"dtype": "float32", "shape": [1], "offset": 2**63 - 1}),
    "offset-too-large": _with("x", {"dtype": "float32", "shape": [1], "offset": 2**63}),
    "negative-offset": _with("x", {"dtype": "float32", "shape": [1], "offset": -1}),
    "float-offset": _with("x", {"dtype": "float32", "shape": [1], "offset": 64.0}),
    "bool-offset": _with("x", {"dtype": "float32", "shape": [1], "offset": True}),
    "string-offset": _with("x", {"dtype": "float32", "shape": [1], "offset": "64"}),
}


@pytest.mark.parametrize("case", CASES)
def test_vouches_only_for_what_the_schema_accepts(case):
    value = CASES[case]
    index = tensor_index.vouch(value, tensor_index._checked_info)
    if not _schema_accepts(value):
        assert index is None
        return
    if index is not None:
        assert dict(index.items()) == _SCHEMA.validate_python(value)
        assert list(index) == list(value)


def test_the_common_cases_are_vouched_for():
    for case in ("good", "empty", "no-hashes", "some-hashes", "longest-name", "unicode-name", "wide-name",
                 "next-line-name", "surrogate-name", "offsets", "some-offsets", "largest-offset"):
        assert tensor_index.vouch(CASES[case], tensor_index._checked_info) is not None, case


def test_the_first_unhashed_tensor_is_named():
    index = tensor_index.vouch(CASES["some-hashes"], tensor_index._checked_info)
    assert index is not None and index.first_unhashed == "x"
    assert tensor_index.vouch(GOOD, tensor_index._checked_info).first_unhashed is None


def test_the_first_tensor_without_an_offset_is_named():
    index = tensor_index.vouch(CASES["some-offsets"], tensor_index._checked_info)
    assert index is not None and index.first_unplaced == "layer0.weight" and index["x"].offset == 0
    assert tensor_index.vouch(CASES["offsets"], tensor_index._checked_info).first_unplaced is None
    assert tensor_index.offsets(tensor_index.vouch(CASES["some-offsets"], tensor_index._checked_info)) == {
        **dict.fromkeys(GOOD), "x": 0}


def test_entries_are_built_once_when_read():
    index = tensor_index.vouch(GOOD, tensor_index._checked_info)
    assert index["layer3.weight"] is index["layer3.weight"]
    assert index["layer3.weight"].shape == [3, 3]


def test_json_entries_are_what_the_models_dump():
    """The writer's shortcut gives exactly pydantic's JSON dump of the entries it stands for."""
    from modelpack.format.schema import Manifest

    weights = {"a": {"dtype": "float32", "shape": [2, 3], "sha256": "ab" * 32},
               "b": {"shape": [], "dtype": "int8", "offset": 128}, "c": {"dtype": "bool", "shape": [0]},
               "d": {"offset": 0, "sha256": "cd" * 32, "shape": [1], "dtype": "int8"}}
    manifest = Manifest(format="modelpack", format_version="1.4", producer="t", kind="tensors",
                        layout="dict", weights=weights)
    assert isinstance(manifest.weights, tensor_index.TensorIndex)
    dumped = manifest.model_dump(mode="json", exclude_none=True)["weights"]
    assert dumped == {name: info.model_dump(mode="json", exclude_none=True) for name, info in manifest.weights.items()}
    assert [list(entry) for entry in dumped.values()] == [["dtype", "shape", "sha256"], ["dtype", "shape", "offset"],
                                                          ["dtype", "shape"], ["dtype", "shape", "sha256", "offset"]]
    assert manifest.model_dump(mode="json")["weights"]["c"] == {
        "dtype": "bool", "shape": [0], "sha256": None, "offset": None
    }


# -- the index checked while the manifest is parsed (prove_index) -----------------------------
def _manifest_text(weights: dict, **extra) -> str:
    """A large manifest in the JSON form (the writers' form), as parse_yaml reads it."""
    document = {"format": "modelpack", "format_version": "1.4", "producer": "t", "kind": "tensors",
                "layout": "dict", "weights": weights, "metadata": {}, **extra}
    return json.dumps(document, indent=2)


BIG = {f"t{i}": {"dtype": "float32", "shape": [i % 7, 3], "sha256": SHA} for i in range(1500)}


def test_a_large_index_is_checked_once_while_parsing(monkeypatch):
    """Taken: the parsed document holds the checked index, which validation keeps as it is;
    the parse's own walk never enters it."""
    from modelpack.io import jsonform

    walked = []
    original = jsonform._walk
    monkeypatch.setattr(jsonform, "_walk", lambda document, *a, **k: walked.append(document) or original(document, *a, **k))
    document = schema.parse_yaml(_manifest_text(BIG), source="m")
    assert walked == [document] and isinstance(walked[0]["weights"], tensor_index.TensorIndex)
    assert isinstance(document["weights"], tensor_index.TensorIndex)
    manifest = schema.manifest_from_dict(document, source="m")
    assert manifest.weights is document["weights"]
    assert dict(manifest.weights.items()) == _SCHEMA.validate_python(BIG)


@pytest.mark.parametrize("entry", [
    {"dtype": "object", "shape": [1]},
    {"dtype": "float32", "shape": [2**63]},
    {"dtype": "float32", "shape": [1], "extra": 1},
    {"dtype": "float32", "shape": [[1]]},
], ids=["bad-dtype", "huge-dim", "extra-field", "nested-dim"])
def test_a_large_index_the_columns_do_not_vouch_for_is_left_to_the_schema(entry):
    """Not taken: the index stays plain data, and the schema (or the parser, for an integer
    beyond int64) refuses with its own words; the extra field of a newer minor version is
    accepted by the schema alone."""
    text = _manifest_text({**BIG, "x": entry})
    if entry["shape"] == [2**63]:
        with pytest.raises(SchemaError, match="is outside"):
            schema.parse_yaml(text, source="m")
        return
    document = schema.parse_yaml(text, source="m")
    assert type(document["weights"]) is dict
    if "extra" in entry:
        newer = json.loads(text)
        newer["format_version"] = "1.99"
        assert "x" in schema.manifest_from_dict(schema.parse_yaml(json.dumps(newer), source="m"), source="m").weights
        return
    with pytest.raises(SchemaError, match="weights.x"):
        schema.manifest_from_dict(document, source="m")


def test_a_large_index_with_a_duplicated_name_is_refused():
    """The index's keys are counted with the document's: a tensor named twice (the parsed
    mapping keeps one) leaves the text with more keys than the document, and is named."""
    entries = ",\n".join(f'"t{i}": {{"dtype": "float32", "shape": [1], "sha256": "{SHA}"}}' for i in range(1500))
    text = _manifest_text({}).replace('"weights": {}', '"weights": {' + entries + ',\n"t7": {"dtype": "int8", "shape": []}}')
    with pytest.raises(SchemaError, match="duplicate key 't7'"):
        schema.parse_yaml(text, source="m")


def test_a_large_index_counts_toward_the_node_limit():
    """The nodes the checked index holds count toward ``max_manifest_nodes`` as if walked."""
    text = _manifest_text(BIG)
    nodes = 1 + 2 * 7 + 2 * (1500 + 1500 * 3) + 1500 * 2  # root, its keys, the index
    assert schema.parse_yaml(text, source="m", max_nodes=nodes)
    with pytest.raises(LimitError, match="max_manifest_nodes"):
        schema.parse_yaml(text, source="m", max_nodes=nodes - 1)


def test_a_large_index_in_a_manifest_with_floats_is_parsed_again_and_still_checked():
    """A float elsewhere sends the text through json again (its form is checked there): the
    index is then plain data, and validation checks it as before."""
    text = _manifest_text(BIG, extra_note=[0.5])
    document = schema.parse_yaml(text, source="m")
    assert type(document["weights"]) is dict and document["extra_note"] == [0.5]
