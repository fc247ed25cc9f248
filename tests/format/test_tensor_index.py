"""The tensor index checked as columns (format.tensor_index) vouches only for what the schema
accepts, and gives the same entries: on every entry the schema refuses it steps aside, so the
schema words the refusal."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

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
    "long-name": _with("n" * 1025, {"dtype": "float32", "shape": [1]}),
    "longest-name": _with("n" * 1024, {"dtype": "float32", "shape": [1]}),
    "unicode-name": _with("été", {"dtype": "float32", "shape": [1]}),
    "not-a-dict": [GOOD],
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
    for case in ("good", "empty", "no-hashes", "some-hashes", "longest-name", "unicode-name"):
        assert tensor_index.vouch(CASES[case], tensor_index._checked_info) is not None, case


def test_the_first_unhashed_tensor_is_named():
    index = tensor_index.vouch(CASES["some-hashes"], tensor_index._checked_info)
    assert index is not None and index.first_unhashed == "x"
    assert tensor_index.vouch(GOOD, tensor_index._checked_info).first_unhashed is None


def test_entries_are_built_once_when_read():
    index = tensor_index.vouch(GOOD, tensor_index._checked_info)
    assert index["layer3.weight"] is index["layer3.weight"]
    assert index["layer3.weight"].shape == [3, 3]


def test_json_entries_are_what_the_models_dump():
    """The writer's shortcut gives exactly pydantic's JSON dump of the entries it stands for."""
    from modelpack.format.schema import Manifest

    weights = {"a": {"dtype": "float32", "shape": [2, 3], "sha256": "ab" * 32},
               "b": {"shape": [], "dtype": "int8"}, "c": {"dtype": "bool", "shape": [0]}}
    manifest = Manifest(format="modelpack", format_version="1.4", producer="t", kind="tensors",
                        layout="dict", weights=weights)
    assert isinstance(manifest.weights, tensor_index.TensorIndex)
    dumped = manifest.model_dump(mode="json", exclude_none=True)["weights"]
    assert dumped == {name: info.model_dump(mode="json", exclude_none=True) for name, info in manifest.weights.items()}
    assert [list(entry) for entry in dumped.values()] == [["dtype", "shape", "sha256"], ["dtype", "shape"],
                                                          ["dtype", "shape"]]
    assert manifest.model_dump(mode="json")["weights"]["c"] == {"dtype": "bool", "shape": [0], "sha256": None}
