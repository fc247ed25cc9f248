"""The public verbs end to end: export/save then load round-trips exactly (property tests),
and paths and file objects are taken as given."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from models import sequential_mlp
from strategies import Drawn, containers, fill_weights, networks

import modelpack
from modelpack import nn

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema" / "manifest.schema.json"
MANIFEST_SCHEMA = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def _check_against_committed_schema(buffer: io.BytesIO) -> None:
    """The committed JSON Schema must accept every manifest the library writes."""
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as zf:
        document = yaml.safe_load(zf.read("manifest.yaml"))
    MANIFEST_SCHEMA.validate(document)
    buffer.seek(0)


ROUND_TRIP = settings(max_examples=200, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _bits(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()


def _forward(net, x):
    with np.errstate(all="ignore"):
        return net(x)


def _output_bits(array: np.ndarray) -> bytes:
    """Bits of a computed output, every NaN made one canonical NaN.

    The sign and payload of a NaN that arithmetic *creates* (inf - inf) are not defined: numpy
    1.x picks them by SIMD path, which depends on the arrays' memory alignment, so the same
    network on the same input can differ run to run. Weights are compared with every bit.
    """
    array = np.array(array, copy=True)
    if array.dtype.kind in "fc":
        array[np.isnan(array)] = np.nan
    return _bits(array)


@ROUND_TRIP
@given(networks())
def test_model_round_trip_is_exact(drawn: Drawn):
    """Configs equal, parameters bitwise equal (NaN payloads, ±inf, -0.0, subnormals), outputs bitwise equal."""
    fill_weights(drawn.net, drawn.weight_seed, drawn.special_fraction)
    buffer = io.BytesIO()
    modelpack.export(drawn.net, buffer)
    _check_against_committed_schema(buffer)
    loaded = modelpack.load(buffer)

    assert type(loaded) is type(drawn.net)
    assert repr(loaded) == repr(drawn.net)
    original, back = drawn.net.collect_params(), loaded.collect_params()
    assert list(back) == list(original)
    for name, param in original.items():
        assert back[name].dtype == param.dtype and back[name].shape == param.shape
        assert _bits(back[name].data()) == _bits(param.data()), name
    buffer.seek(0)
    manifest = modelpack.inspect(buffer)
    assert manifest.architecture == modelpack.format.architecture.describe(loaded)
    assert _output_bits(_forward(loaded, drawn.x)) == _output_bits(_forward(drawn.net, drawn.x))


@ROUND_TRIP
@given(containers)
def test_tensor_round_trip_is_exact(data):
    buffer = io.BytesIO()
    modelpack.save(buffer, data)
    _check_against_committed_schema(buffer)
    back = modelpack.load(buffer)
    assert type(back) is type(data)
    if isinstance(data, np.ndarray):
        pairs = [(back, data)]
    elif isinstance(data, dict):
        assert list(back) == list(data)
        pairs = [(back[k], data[k]) for k in data]
    else:
        assert len(back) == len(data)
        pairs = list(zip(back, data, strict=True))
    for got, want in pairs:
        assert got.dtype == want.dtype and got.shape == want.shape
        assert _bits(got) == _bits(want)


def test_seed_paths_used_exactly_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x = np.arange(4)
    modelpack.save("x-file", x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-file"]
    np.testing.assert_array_equal(modelpack.load("x-file"), x)
    y = np.zeros(4)
    modelpack.save("x-files", [x, y])
    x2, y2 = modelpack.load("x-files")
    assert (x2 == x).all() and (y2 == y).all()
    mydict = {"x": x, "y": y}
    modelpack.save("mydict", mydict)
    assert set(modelpack.load("mydict")) == {"x", "y"}


def test_pathlike_and_file_object(tmp_path):
    net = sequential_mlp(16, 4, inputs=8)
    modelpack.export(net, tmp_path / "net")
    with open(tmp_path / "net", "rb") as handle:
        loaded = modelpack.load(handle)
    np.testing.assert_array_equal(loaded[0].weight.data(), net[0].weight.data())


def test_nested_sequential_names_kept(tmp_path):
    inner = nn.Sequential()
    inner.add(nn.Dense(4, activation="tanh"), nn.LayerNorm())
    net = nn.Sequential()
    net.add(nn.Dense(6), inner, nn.Dense(2))
    net.initialize(seed=1)
    x = np.random.default_rng(0).normal(size=(3, 5))
    y = net(x)
    modelpack.export(net, tmp_path / "n.mpk")
    loaded = modelpack.load(tmp_path / "n.mpk")
    assert list(loaded.collect_params()) == list(net.collect_params())
    assert "1.1.gamma" in loaded.collect_params()
    assert (loaded(x) == y).all()

