"""index_decode: a manifest decoded by msgspec with its tensor index checked as it is parsed
reads exactly as the usual parse reads it — the same manifest, or the same refusal in the same
words — and anything it does not vouch for is declined to the usual parse."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from models import dense_norm_dense, export_bytes, save_bytes

from modelpack.errors import ModelpackError
from modelpack.format import index_decode, schema, tensor_index
from modelpack.io.npy import SUPPORTED_DTYPES

pytest.importorskip("msgspec")

SHA = "ab" * 32
_ENTRY = {"dtype": "float32", "shape": [2, 3], "sha256": SHA, "offset": 64}


def _text(weights: dict, *, indent: int | None = 2, ascii: bool = True, **extra) -> str:
    document = {"format": "modelpack", "format_version": "1.5", "producer": "t", "kind": "tensors",
                "layout": "dict", "weights": weights, "metadata": {}, **extra}
    return json.dumps(document, indent=indent, ensure_ascii=ascii)


def _entries(count: int) -> dict[str, dict]:
    return {f"t{i}": {"dtype": "float32", "shape": [i % 7, 3], "sha256": SHA, "offset": 128 * i}
            for i in range(count)}


def _manifest_of(archive: bytes) -> str:
    return zipfile.ZipFile(io.BytesIO(archive)).read("manifest.yaml").decode()


def _outcome(text: str, max_nodes: int = 100_000) -> tuple:
    try:
        manifest = schema.manifest_from_yaml(text, source="m", max_nodes=max_nodes)
    except ModelpackError as exc:
        return ("refused", type(exc).__name__, str(exc))
    return ("read", manifest.model_dump(mode="json"))


def _both(text: str, monkeypatch: pytest.MonkeyPatch, max_nodes: int = 100_000) -> tuple:
    """The outcome with msgspec's decoder, checked equal to the usual parse's."""
    typed = _outcome(text, max_nodes)
    with monkeypatch.context() as patched:
        patched.setattr(index_decode, "_decoder", lambda: None)
        usual = _outcome(text, max_nodes)
    assert typed == usual
    return typed


# -- taken ------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 6, 300])
def test_a_writers_manifest_is_decoded_with_its_index_checked(count, monkeypatch):
    arrays = {f"layer{i}.weight": np.full((i % 5, 2), i, np.float32) for i in range(count)}
    text = _manifest_of(save_bytes(arrays))
    document, proof = index_decode.decode(text)
    index = document["weights"]
    assert isinstance(index, tensor_index.TensorIndex) and proof.checked is index
    assert dict(index.entries) == json.loads(text)["weights"]
    parsed = schema.parse_yaml(text, source="m")["weights"]
    # A small text is parsed with json's hooks, which cost less there than the decoder's checks.
    assert isinstance(parsed, tensor_index.TensorIndex) if count > 100 else type(parsed) is dict
    assert _both(text, monkeypatch)[0] == "read"


def test_a_model_manifest_with_floats_keeps_its_decoded_index(monkeypatch):
    """Floats elsewhere (a LayerNorm's epsilon) have their written form checked by json's
    hook, which parses the rest; the index stays the decoded one."""
    text = _manifest_of(export_bytes(dense_norm_dense(4, 8, 2)))
    text = text.replace('"weights": {', '"weights": {' + json.dumps(_entries(200))[1:-1] + ",", 1)
    assert "e-" in text or "." in text
    document = schema.parse_yaml(text, source="m")
    assert isinstance(document["weights"], tensor_index.TensorIndex)
    assert _both(text, monkeypatch)[0] == "read"
    bad_float = text.replace('"epsilon": 1e-05', '"epsilon": 1e-5').replace("1.0e-05", "1e-5")
    assert bad_float != text
    assert _both(bad_float, monkeypatch)[0] == "refused"


def test_every_dtype_an_archive_may_hold_is_decoded(monkeypatch):
    weights = {f"t{i}": {**_ENTRY, "dtype": dtype} for i, dtype in enumerate(SUPPORTED_DTYPES * 20)}
    document, _ = index_decode.decode(_text(weights))
    assert [entry["dtype"] for entry in document["weights"].entries.values()] == list(SUPPORTED_DTYPES * 20)
    assert _both(_text(weights), monkeypatch)[0] == "read"


def test_compact_json_is_decoded_too(monkeypatch):
    text = _text(_entries(200), indent=None)
    assert index_decode.decode(text) is not None
    assert _both(text, monkeypatch)[0] == "read"


# -- declined, or caught after: the usual parse words it --------------------------------------


@pytest.mark.parametrize("entry", [
    {"dtype": "float32", "shape": [2, 3], "sha256": SHA},  # 1.1–1.4: no offset
    {"dtype": "float32", "shape": [2, 3], "offset": 0},  # 1.0: no hash
    {**_ENTRY, "offset": None},
    {**_ENTRY, "sha256": None},
    {**_ENTRY, "sha256": SHA.upper()},
    {**_ENTRY, "sha256": SHA[:-1] + "g"},
    {**_ENTRY, "sha256": SHA[:-1]},
    {**_ENTRY, "sha256": 5},
    {**_ENTRY, "dtype": "object"},
    {**_ENTRY, "dtype": 3},
    {**_ENTRY, "shape": [2**63]},
    {**_ENTRY, "shape": [2**63 - 1]},
    {**_ENTRY, "shape": [-1]},
    {**_ENTRY, "shape": [1.5]},
    {**_ENTRY, "shape": [True]},
    {**_ENTRY, "shape": ["3"]},
    {**_ENTRY, "shape": [[1]]},
    {**_ENTRY, "shape": 3},
    {**_ENTRY, "offset": -1},
    {**_ENTRY, "offset": 2**63},
    {**_ENTRY, "future_field": 1},
    [1, 2],
], ids=lambda entry: json.dumps(entry)[:40])
@pytest.mark.parametrize("count", [3, 300])
def test_an_entry_it_does_not_vouch_for_reads_as_the_usual_parse_reads_it(entry, count, monkeypatch):
    _both(_text({**_entries(count), "x": entry}), monkeypatch)


@pytest.mark.parametrize("name", ["", "a/b", "a\\b", "x\x7f", "x" * 1025, "é" * 1024, "é" * 1025, "line\u2028"])
@pytest.mark.parametrize("ascii", [True, False], ids=["escaped", "raw"])
def test_names_are_checked_as_the_schema_checks_them(name, ascii, monkeypatch):
    text = _text({**_entries(300), name: _ENTRY}, ascii=ascii)
    outcome = _both(text, monkeypatch)
    readable = name == "é" * 1024 or (name == "line\u2028" and ascii)  # raw U+2028: YAML reads it otherwise
    assert outcome[0] == ("read" if readable else "refused")


@pytest.mark.parametrize("edit", [
    lambda t: t.replace('"t1": {', '"t0": {'),  # a duplicated name
    lambda t: t.replace('"dtype": "float32",', '"dtype": "float32", "dtype": "float64",', 1),
    lambda t: t.replace('"metadata": {}', '"metadata": {}, "weights": {}'),
    lambda t: t.replace('"metadata": {}', '"metadata": {"a": "1", "a": "2"}'),
    lambda t: t.replace('"metadata": {}', '"metadata": {}, "unknown": 1'),
    lambda t: t.replace('"metadata": {}', '"metadata": {"k": "v:w"}'),  # a colon inside a string
    lambda t: t.replace('"metadata": {}', '"metadata": {"k": "\\u0076"}'),  # an escape
    lambda t: t.replace('"metadata": {}', '"metadata": {"k": 1.5}'),
    lambda t: t.replace('"metadata": {}', '"metadata": {"k": 1e5}'),
    lambda t: t.replace('"metadata": {}', '"metadata": {"k": 123456789012345678901234567890}'),
    lambda t: t.replace('"metadata": {}', '"metadata": {"k": NaN}'),
    lambda t: t.replace('"metadata": {}', '"metadata": ' + "[" * 200 + "]" * 200),
    lambda t: t.replace('"layout": "dict"', '"layout": "dict", "architecture": ' + "[" * 170 + "]" * 170),
    lambda t: "\ufeff" + t,
    lambda t: t + "x",
    lambda t: t[:-3],
    lambda t: t.replace('"offset": 128\n', '"offset": 0128\n', 1),
    lambda t: t.replace('"offset": 0\n', '"offset": -0\n', 1),
], ids=range(18))
@pytest.mark.parametrize("count", [3, 300])
def test_the_whole_texts_checks_are_the_usual_ones(edit, count, monkeypatch):
    text = _text(_entries(count))
    edited = edit(text)
    assert edited != text
    _both(edited, monkeypatch)


def test_the_node_limit_counts_the_same_either_way(monkeypatch):
    text = _text(_entries(300))
    nodes = 1
    while _both(text, monkeypatch, max_nodes=nodes)[0] == "refused":
        nodes = nodes * 2
    low, high = nodes // 2, nodes
    while high - low > 1:  # the least limit that admits the text, the same either way
        middle = (low + high) // 2
        low, high = (low, middle) if _both(text, monkeypatch, max_nodes=middle)[0] == "read" else (middle, high)
    assert _both(text, monkeypatch, max_nodes=high)[0] == "read"
    assert _both(text, monkeypatch, max_nodes=high - 1)[2].count("node count") == 1


@given(position=st.integers(0, 10**6), replacement=st.sampled_from(list('0123456789-.e",:{}[] afn') + ["", "null", "1.0e+1"]),
       count=st.sampled_from([3, 200]))
def test_a_text_edited_anywhere_reads_the_same_either_way(position, replacement, count):
    text = _text(_entries(count))
    at = position % len(text)
    edited = text[:at] + replacement + text[at + 1:]
    with pytest.MonkeyPatch.context() as monkeypatch:
        _both(edited, monkeypatch)


def test_without_msgspec_nothing_is_decoded(monkeypatch):
    text = _text(_entries(300))
    monkeypatch.setattr(index_decode, "msgspec", None)
    index_decode._decoder.cache_clear()
    try:
        assert index_decode.decode(text) is None
        assert _outcome(text)[0] == "read"
    finally:
        monkeypatch.undo()
        index_decode._decoder.cache_clear()
    assert index_decode.decode(text) is not None
