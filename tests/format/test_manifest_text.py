"""format.manifest_text: a document is written as JSON where it can be, block YAML otherwise,
and read back as the same plain data."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import documents, tensor_names

from modelpack.errors import LimitError, SchemaError
from modelpack.format.manifest_text import _json_text, document_to_text, parse_yaml
from modelpack.format.schema import Manifest, TensorInfo, manifest_from_yaml, manifest_to_yaml
from modelpack.format.tensor_index import TensorIndex
from modelpack.io import safeyaml


def test_json_where_the_content_allows_and_it_reads_back():
    document = {"format": "modelpack", "shape": [2, 3], "eps": 1e-05, "big": 1e300, "nested": {"a": [{"b": None}]}}
    text = document_to_text(document)
    assert json.loads(text) == document
    assert parse_yaml(text, source="m") == document
    assert '"shape": [2, 3]' in text and '"eps": 1.0e-05' in text  # YAML 1.1 needs the point and sign


def test_block_yaml_for_what_json_cannot_say():
    document = {"value": math.inf, "name": "\U0001f600", "shape": [1, 2]}
    text = document_to_text(document)
    assert not text.startswith("{") and "shape: [1, 2]" in text and text.isascii()
    assert parse_yaml(text, source="m") == document


def test_parse_refuses_what_is_not_a_mapping_or_too_large():
    with pytest.raises(SchemaError, match="m: manifest must be a mapping, found list"):
        parse_yaml("[1, 2]", source="m")
    with pytest.raises(LimitError, match=r"m: manifest: its YAML node count \(11\) is over the limit of 10; .*max_manifest_nodes"):
        parse_yaml(json.dumps({"a": list(range(100))}), source="m", max_nodes=10)


# -- the JSON subset: what modelpack writes must mean the same to a YAML and a JSON reader --

# Text within the Basic Multilingual Plane: what the JSON form can say (astral characters
# are tested separately below), so every example exercises the fast path.
bmp_text = st.text(st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(documents(bmp_text, allow_infinity=False))
def test_json_subset_reads_the_same_as_yaml(document):

    text = _json_text(document, "")
    assert text is not None
    assert yaml.safe_load(text) == document
    assert safeyaml.load(text, max_nodes=10**6) == document


def test_what_json_cannot_say_as_yaml_would_is_written_as_block_yaml():

    assert _json_text({"a": "\U0001F600"}, "") is None  # beyond the BMP: surrogate escapes
    assert _json_text({"a": float("nan")}, "") is None
    manifest = Manifest(format="modelpack", format_version="1.1", producer="p", kind="tensors", layout="single",
                        weights={"0": TensorInfo(dtype="int8", shape=[])}, metadata={"e": "\U0001F600"})
    text = manifest_to_yaml(manifest)
    assert not text.startswith("{") and manifest_from_yaml(text, source="t") == manifest


_digests = st.one_of(st.none(), st.text("0123456789abcdef", min_size=64, max_size=64))
_entries = st.fixed_dictionaries(
    {"dtype": st.sampled_from(["float32", "int64", "bool", "float16"]),
     "shape": st.lists(st.integers(0, 2**40), max_size=4)},
    optional={"sha256": _digests, "offset": st.one_of(st.none(), st.integers(0, 2**62))},
)


@given(st.dictionaries(tensor_names, _entries, max_size=6), st.booleans())
def test_a_tensor_index_is_written_as_its_dump_would_be(entries, non_finite):
    """The index's own text (checked entries written as they are) is the dump's, character for
    character, in the JSON form and (with a value only block YAML can say) in the block form."""
    index = TensorIndex(entries, dict, None)
    document = {"format": "modelpack", "weights": index, "after": math.inf if non_finite else 1.5}
    dumped = {**document, "weights": index.json_entries()}
    assert document_to_text(document) == document_to_text(dumped)


def test_a_manifest_with_an_index_is_written_as_one_with_entries(tmp_path):
    import numpy as np

    import modelpack

    modelpack.save(tmp_path / "t.mpk", {"a.w": np.ones((2, 3), np.float32), "b": np.arange(3)})
    with modelpack.open(tmp_path / "t.mpk") as archive:
        manifest = archive.manifest
    assert isinstance(manifest.weights, TensorIndex)
    plain = manifest.model_copy(update={"weights": dict(manifest.weights.items())})
    assert manifest_to_yaml(manifest) == manifest_to_yaml(plain)
