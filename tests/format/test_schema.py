"""The manifest schema: YAML identity, safe parsing, version rules, committed JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from craft import edit_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import sequential_mlp
from strategies import SUPPORTED, networks, tensor_names

import modelpack
from modelpack.errors import SchemaError, UnknownLayerError, VersionError
from modelpack.format import architecture, schema
from modelpack.format.schema import (
    FORMAT_VERSION,
    Manifest,
    TensorInfo,
    manifest_from_yaml,
    manifest_to_yaml,
)
from modelpack.format.versions import READER_VERSION

ROOT = Path(__file__).resolve().parents[2]

metadata = st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=4)
tensor_infos = st.builds(
    TensorInfo, dtype=st.sampled_from(SUPPORTED), shape=st.lists(st.integers(0, 2**40), max_size=4)
)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    if draw(st.booleans()):
        drawn = draw(networks())
        return Manifest(
            format="modelpack",
            format_version="1.1",
            producer=draw(st.text(max_size=20)),
            kind="model",
            architecture=architecture.describe(drawn.net),
            weights={n: TensorInfo(dtype=p.dtype.name, shape=list(p.shape))
                     for n, p in drawn.net.collect_params().items()},
            metadata=draw(metadata),
        )
    layout = draw(st.sampled_from(["single", "list", "tuple", "dict"]))
    if layout == "dict":
        weights = draw(st.dictionaries(tensor_names, tensor_infos, max_size=4))
    else:
        count = 1 if layout == "single" else draw(st.integers(0, 4))
        weights = {str(i): draw(tensor_infos) for i in range(count)}
    return Manifest(format="modelpack", format_version="1.1", producer="p", kind="tensors", layout=layout, weights=weights, metadata=draw(metadata))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_manifest_yaml_identity(manifest):
    text = manifest_to_yaml(manifest)
    back = manifest_from_yaml(text, source="t")
    assert back == manifest
    assert manifest_to_yaml(back) == text


def _doc(**changes):
    doc = {"format": "modelpack", "format_version": FORMAT_VERSION, "producer": "t",
           "kind": "tensors", "layout": "list", "weights": {}}
    doc.update(changes)
    return doc


def test_newer_major_version_refused_naming_both():
    with pytest.raises(VersionError, match=rf"f\.mpk: written in format version 2\.0.*major version 1 \(up to {re.escape(READER_VERSION)}\)"):
        schema.manifest_from_dict(_doc(format_version="2.0"), source="f.mpk")


def test_newer_minor_version_ignores_unknown_fields():
    manifest = schema.manifest_from_dict(_doc(format_version="1.7", signature="abc"), source="f")
    assert manifest.format_version == "1.7" and manifest.layout == "list"


def test_newer_minor_version_still_refuses_unknown_layers():
    doc = _doc(format_version="1.7", kind="model", layout=None,
               architecture={"type": "Transformer", "config": {}})
    del doc["layout"]
    with pytest.raises(UnknownLayerError, match=r"'Transformer'.*; the archive is format 1\.7, newer than this "
                       r"modelpack reads \(\d+\.\d+\): upgrade modelpack"):
        schema.manifest_from_dict(doc, source="f")


def test_same_version_refuses_unknown_fields():
    with pytest.raises(SchemaError, match="signature: Extra inputs are not permitted"):
        schema.manifest_from_dict(_doc(signature="abc"), source="f")


@pytest.mark.parametrize("version", ["1", "1.0.0", "v1.0", "01.0", "", None, 1.0])
def test_malformed_version_refused(version):
    with pytest.raises(SchemaError, match="format_version must look like 'MAJOR.MINOR'"):
        schema.manifest_from_dict(_doc(format_version=version), source="f")


def test_other_format_refused():
    with pytest.raises(SchemaError, match="expected format 'modelpack', found 'keras'"):
        schema.manifest_from_dict(_doc(format="keras"), source="f")


def test_python_tags_refused():
    text = "format: !!python/object/apply:os.system ['echo hacked']\n"
    with pytest.raises(SchemaError, match="not valid safe YAML"):
        manifest_from_yaml(text, source="f")


def test_aliases_refused():
    text = "a: &x [1, 2]\nb: *x\n"
    with pytest.raises(SchemaError, match="aliases are not allowed"):
        manifest_from_yaml(text, source="f")


def test_non_mapping_refused():
    with pytest.raises(SchemaError, match="must be a mapping, found list"):
        manifest_from_yaml("- 1\n- 2\n", source="f")


def test_layout_names_checked():
    with pytest.raises(SchemaError, match="'list' layout names its tensors '0', '1'"):
        schema.manifest_from_dict(_doc(weights={"a": {"dtype": "int8", "shape": []}}), source="f")


def test_path_like_tensor_names_refused():
    doc = _doc(layout="dict", weights={"../../etc/passwd": {"dtype": "int8", "shape": []}})
    with pytest.raises(SchemaError, match="is not allowed"):
        schema.manifest_from_dict(doc, source="f")


def test_nesting_limit():
    node: dict = {"type": "Flatten", "config": {}}
    for _ in range(schema.MAX_NESTING_DEPTH):
        node = {"type": "Sequential", "config": {}, "children": {"0": node}}
    doc = _doc(kind="model", architecture=node)
    del doc["layout"]
    with pytest.raises(SchemaError, match="nests deeper than 64 levels"):
        schema.manifest_from_dict(doc, source="f")


def test_committed_json_schema_is_current():
    committed = json.loads((ROOT / "schema" / "manifest.schema.json").read_text(encoding="utf-8"))
    assert committed == schema.json_schema(), "run: python -m modelpack schema --write"


def test_written_yaml_is_plain_safe_yaml():
    manifest = Manifest(format="modelpack", format_version="1.1", producer="p", kind="tensors", layout="single",
                        weights={"0": TensorInfo(dtype="float32", shape=[2, 3])})
    text = manifest_to_yaml(manifest)
    assert "!!" not in text and "&" not in text
    assert yaml.safe_load(text)["weights"]["0"] == {"dtype": "float32", "shape": [2, 3]}


def test_non_finite_floats_survive_the_writer(tmp_path):
    """A config float and a traced scalar of ±inf/NaN are written (block form) and read back,
    not turned into null by pydantic's JSON-mode dump (which the reader then refused)."""
    import math

    import numpy as np

    import modelpack
    from modelpack import nn

    class Masked(nn.Block):
        def forward(self, x):
            return np.where(x > 0, x, -np.inf) * float("nan")

    net = nn.Sequential()
    net.add(nn.LeakyReLU(float("inf")))
    modelpack.export(net, tmp_path / "leaky.mpk")
    assert modelpack.inspect(tmp_path / "leaky.mpk").architecture.children["0"].config["alpha"] == math.inf
    modelpack.export(Masked(), tmp_path / "masked.mpk", example=np.ones((2, 3), np.float32))
    nodes = modelpack.inspect(tmp_path / "masked.mpk").architecture.config["graph"]["nodes"]
    values = [n["attrs"]["value"] for n in nodes if n["op"] == "scalar"]
    assert -math.inf in values and any(isinstance(v, float) and math.isnan(v) for v in values)


# -- through load: the manifest's own refusals name the file -------------------------------------


def test_unknown_layer_type_lists_known_types(exported):
    edit_file(exported, manifest=lambda d: d["architecture"]["children"]["1"].update(type="PythonLambda"))
    with pytest.raises(UnknownLayerError, match=r"net\.mpk.*unknown layer type 'PythonLambda'; known types: Activation, .*Dense.*Sequential") as caught:
        modelpack.load(exported)
    assert "upgrade" not in str(caught.value)  # a version this reader knows: no layer is missing from it


def test_extra_config_field_refused(exported):
    edit_file(exported, manifest=lambda d: d["architecture"]["children"]["0"]["config"].update(code="import os"))
    with pytest.raises(SchemaError, match=r"net\.mpk.*invalid config for layer type 'Dense'.*code"):
        modelpack.load(exported)



@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_a_manifest_is_built_quickly_as_the_schema_builds_it(manifest):
    """A tensor or model archive's manifest skips Pydantic's machinery (``_quick_manifest``)
    and gives exactly what ``model_validate`` gives: values, fields set, dump."""
    document = json.loads(manifest.model_dump_json(exclude_none=True))
    quick = schema._quick_manifest(json.loads(manifest.model_dump_json(exclude_none=True)))
    validated = Manifest.model_validate(document)
    assert quick is not None and quick == validated
    assert quick.model_fields_set == validated.model_fields_set
    assert quick.model_dump() == validated.model_dump()
    assert manifest_to_yaml(quick) == manifest_to_yaml(validated)


@pytest.mark.parametrize("changes,message", [
    ({"producer": 1}, "producer"),
    ({"format_version": 1.0}, "format_version"),
    ({"layout": "bag"}, "layout"),
    ({"layout": None}, "needs 'layout'"),
    ({"metadata": {"a": 1}}, "metadata"),
    ({"metadata": {"a": "b", "c": ["d"]}}, "metadata"),
    ({"metadata": ["a"]}, "metadata"),
    ({"signature": "abc"}, "Extra inputs are not permitted"),
    ({"architecture": {"type": "Dense", "config": {"units": 1}}}, "needs 'layout' and no 'architecture'"),
    ({"weights": {"0": {"dtype": "int8", "shape": [-1]}}}, "weights"),
    ({"weights": {"0": {"dtype": "int8", "shape": []}, "2": {"dtype": "int8", "shape": []}}}, "layout names"),
    ({"weights": []}, "weights"),
], ids=lambda value: str(value)[:40])
def test_what_the_quick_tensor_manifest_does_not_take_the_schema_refuses(changes, message):
    """Every unusual field makes ``_quick_manifest`` step aside, and the schema words it."""
    document = _doc(**changes)
    assert schema._quick_manifest(document) is None
    with pytest.raises(SchemaError, match=message):
        schema.manifest_from_dict(document, source="f")


def test_the_first_validations_may_run_on_several_threads_at_once(tmp_path):
    # The manifest's models are built on first use (defer_build): loads on several threads
    # may be the first. Pydantic before 2.11.5 failed this (all but one thread refused with a
    # PydanticUserError), which is why pyproject.toml's floor is 2.11.5.
    import subprocess
    import sys

    net = sequential_mlp(8, 4, inputs=3)
    path = tmp_path / "net.mpk"
    modelpack.export(net, path)
    manifest = modelpack.inspect(path).model_dump(mode="json")
    code = (
        "import json, sys, threading\n"
        "from modelpack.format.schema import Manifest\n"
        "document = json.loads(sys.stdin.read())\n"
        "assert not Manifest.__pydantic_complete__\n"
        "start, failures = threading.Barrier(16), []\n"
        "def validate():\n"
        "    start.wait()\n"
        "    try:\n"
        "        Manifest.model_validate(document)\n"
        "    except Exception as exc:\n"
        "        failures.append(repr(exc))\n"
        "threads = [threading.Thread(target=validate) for _ in range(16)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(failures)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(manifest), capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
