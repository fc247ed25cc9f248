"""The .mpk archive end to end: round-trip properties, layout, and every refusal."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml
from craft import edit, manifest_comment, members_of, stored_zip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import Drawn, containers, fill_weights, networks

import modelpack
from modelpack import Limits, nn
from modelpack.errors import (
    DeferredInitializationError,
    DtypeMismatchError,
    FormatError,
    IntegrityError,
    LimitError,
    SchemaError,
    ShapeMismatchError,
    UninitializedParameterError,
    UnknownLayerError,
    UnsupportedBlockError,
    UnsupportedDtypeError,
    UsageError,
    VersionError,
)

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


def _mlp(seed: int = 0) -> nn.Sequential:
    net = nn.Sequential()
    net.add(nn.Dense(16, activation="relu"), nn.Dense(4))
    net.initialize(seed=seed)
    net(np.zeros((1, 8)))
    return net


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
    net = _mlp()
    modelpack.export(net, tmp_path / "net")
    with open(tmp_path / "net", "rb") as handle:
        loaded = modelpack.load(handle)
    np.testing.assert_array_equal(loaded[0].weight.data(), net[0].weight.data())


def test_layout_is_a_plain_zip_with_an_npz(tmp_path):
    net = _mlp()
    path = tmp_path / "mlp.mpk"
    modelpack.export(net, path, metadata={"author": "D2L", "license": "MIT"})
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == ["manifest.yaml", "weights.npz"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        manifest = yaml.safe_load(zf.read("manifest.yaml"))
        (tmp_path / "weights.npz").write_bytes(zf.read("weights.npz"))
    assert manifest["format"] == "modelpack" and manifest["kind"] == "model"
    assert manifest["metadata"] == {"author": "D2L", "license": "MIT"}
    assert manifest["format_version"] == "1.1"
    assert manifest["weights"]["0.weight"] == {
        "dtype": "float32", "shape": [16, 8], "sha256": hashlib.sha256(net[0].weight.data().tobytes()).hexdigest()
    }
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as bundle:
        assert list(bundle.keys()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
        np.testing.assert_array_equal(bundle["1.weight"], net[1].weight.data())


def test_compression_is_an_option(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(64, in_units=64))
    net.initialize(nn.init.Zero())
    modelpack.export(net, tmp_path / "plain.mpk")
    modelpack.export(net, tmp_path / "small.mpk", compress=True)
    assert (tmp_path / "small.mpk").stat().st_size < (tmp_path / "plain.mpk").stat().st_size / 4
    loaded = modelpack.load(tmp_path / "small.mpk")
    np.testing.assert_array_equal(loaded[0].weight.data(), net[0].weight.data())


@pytest.mark.parametrize("compress", [False, True])
def test_same_model_same_bytes(tmp_path, compress):
    modelpack.export(_mlp(3), tmp_path / "a.mpk", compress=compress)
    modelpack.export(_mlp(3), tmp_path / "b.mpk", compress=compress)
    assert (tmp_path / "a.mpk").read_bytes() == (tmp_path / "b.mpk").read_bytes()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(containers, st.booleans())
def test_same_tensors_same_bytes(data, compress):
    first, second = io.BytesIO(), io.BytesIO()
    modelpack.save(first, data, compress=compress)
    modelpack.save(second, data, compress=compress)
    assert first.getvalue() == second.getvalue()


def test_same_bytes_in_another_process(tmp_path):
    """No clock, hash seed, pid or path in the bytes: a fresh interpreter writes the same file."""
    here = tmp_path / "here.mpk"
    modelpack.export(_mlp(5), here, metadata={"k": "v"})
    script = (
        "import sys, numpy as np, modelpack; from modelpack import nn\n"
        "net = nn.Sequential(); net.add(nn.Dense(16, activation='relu'), nn.Dense(4))\n"
        "net.initialize(seed=5); net(np.zeros((1, 8)))\n"
        "modelpack.export(net, sys.argv[1], metadata={'k': 'v'})\n"
    )
    there = tmp_path / "sub" / "there.mpk"
    there.parent.mkdir()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(there)], check=True, env=env)
    assert there.read_bytes() == here.read_bytes()


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


# -- refusals -------------------------------------------------------------------------------


class MLP(nn.Block):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Dense(8, activation="relu")
        self.output = nn.Dense(2)

    def forward(self, x):
        return self.output(self.hidden(x))


def test_custom_block_refused_with_reason(tmp_path):
    net = MLP()
    net.initialize()
    net(np.zeros((1, 3)))
    with pytest.raises(UnsupportedBlockError, match=r"top-level block is a MLP, a Block subclass with a hand-written forward.*Pass example="):
        modelpack.export(net, tmp_path / "mlp.mpk")
    assert list(tmp_path.iterdir()) == []


def test_custom_block_nested_in_sequential_is_named(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(3), MLP())
    net.initialize()
    net(np.zeros((1, 3)))
    with pytest.raises(UnsupportedBlockError, match=r"block '1' is a MLP"):
        modelpack.export(net, tmp_path / "x.mpk")


def test_subclass_of_registered_layer_refused(tmp_path):
    class Doubled(nn.Dense):
        def forward(self, x):
            return 2 * super().forward(x)

    net = nn.Sequential()
    net.add(Doubled(2, in_units=2))
    net.initialize()
    with pytest.raises(UnsupportedBlockError, match="block '0' is a Doubled"):
        modelpack.export(net, tmp_path / "x.mpk")


def test_shared_block_refused(tmp_path):
    shared = nn.Dense(3, in_units=3)
    net = nn.Sequential()
    net.add(shared, shared)
    net.initialize()
    with pytest.raises(UnsupportedBlockError, match=r"'1\.weight'"):
        modelpack.export(net, tmp_path / "x.mpk")


def test_uninitialised_export_names_parameters(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(4), nn.Dense(2, in_units=4))
    with pytest.raises(UninitializedParameterError, match=r"\['0\.weight', '0\.bias', '1\.weight', '1\.bias'\]"):
        modelpack.export(net, tmp_path / "x.mpk")
    net.initialize()
    with pytest.raises(DeferredInitializationError, match=r"\['0\.weight'\]"):
        modelpack.export(net, tmp_path / "x.mpk")
    assert list(tmp_path.iterdir()) == []


def test_object_array_refused_at_save(tmp_path):
    with pytest.raises(UnsupportedDtypeError, match=r"item \[1\] has dtype object"):
        modelpack.save(tmp_path / "t", [np.zeros(2), np.array([{}], dtype=object)])
    with pytest.raises(UnsupportedDtypeError, match="tensor 's' has dtype <U"):
        modelpack.save(tmp_path / "t", {"s": np.array(["text"])})
    assert list(tmp_path.iterdir()) == []


def _rewrite(path, *, manifest=None, members=None, drop=()):
    """Rewrite an archive with an edited manifest dict and/or replaced member bytes."""
    with zipfile.ZipFile(path) as zf:
        contents = {i.filename: zf.read(i.filename) for i in zf.infolist()}
    if manifest is not None:
        doc = yaml.safe_load(contents["manifest.yaml"])
        manifest(doc)
        contents["manifest.yaml"] = yaml.safe_dump(doc, sort_keys=False).encode()
    contents.update(members or {})
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in contents.items():
            if name not in drop:
                zf.writestr(name, data)
        zf.comment = manifest_comment(contents["manifest.yaml"])  # so the edit reaches its check


@pytest.fixture
def exported(tmp_path):
    path = tmp_path / "net.mpk"
    modelpack.export(_mlp(), path)
    return path


def test_unknown_layer_type_lists_known_types(exported):
    _rewrite(exported, manifest=lambda d: d["architecture"]["children"]["1"].update(type="PythonLambda"))
    with pytest.raises(UnknownLayerError, match=r"net\.mpk.*unknown layer type 'PythonLambda'; known types: Activation, .*Dense.*Sequential"):
        modelpack.load(exported)


def test_extra_config_field_refused(exported):
    _rewrite(exported, manifest=lambda d: d["architecture"]["children"]["0"]["config"].update(code="import os"))
    with pytest.raises(SchemaError, match=r"net\.mpk.*invalid config for layer type 'Dense'.*code"):
        modelpack.load(exported)


def test_extra_manifest_field_refused(exported):
    _rewrite(exported, manifest=lambda d: d.update(loader="pickle"))
    with pytest.raises(SchemaError, match=r"net\.mpk.*loader.*Extra inputs are not permitted"):
        modelpack.load(exported)


def test_missing_member_refused(exported):
    _rewrite(exported, drop=("weights.npz",))
    with pytest.raises(FormatError, match=r"net\.mpk: member 'weights\.npz' is missing"):
        modelpack.load(exported)


def test_unexpected_member_refused(exported):
    _rewrite(exported, members={"payload.py": b"print('hi')"})
    with pytest.raises(FormatError, match=r"unexpected member 'payload\.py'"):
        modelpack.load(exported)


def test_weight_shape_disagreeing_with_manifest_refused(exported):
    _rewrite(exported, manifest=lambda d: d["weights"]["1.bias"].update(shape=[5]))
    with pytest.raises(ShapeMismatchError, match=r"'1\.bias\.npy'.*manifest says shape \(5,\).*header says \(4,\)"):
        modelpack.load(exported)


def test_weight_dtype_disagreeing_with_manifest_refused(exported):
    _rewrite(exported, manifest=lambda d: d["weights"]["1.bias"].update(dtype="float64"))
    with pytest.raises(DtypeMismatchError, match=r"'1\.bias\.npy'.*manifest says dtype float64"):
        modelpack.load(exported)


def test_weights_not_fitting_architecture_refused(exported):
    def grow(d):
        d["architecture"]["children"]["1"]["config"]["units"] = 5
    _rewrite(exported, manifest=grow)
    with pytest.raises(FormatError, match=r"weights do not fit the architecture.*'1\.weight' expected shape \(5, 16\)"):
        modelpack.load(exported)


def test_tensor_missing_from_bundle_refused(exported):
    _rewrite(exported, manifest=lambda d: d["weights"].update({"2.bias": {"dtype": "float32", "shape": [1], "sha256": "0" * 64}}))
    with pytest.raises(FormatError, match=r"tensor '2\.bias' listed in the manifest is missing"):
        modelpack.load(exported)


def test_not_a_zip(tmp_path):
    path = tmp_path / "junk.mpk"
    path.write_bytes(b"GIF89a" + b"\x00" * 100)
    with pytest.raises(FormatError, match=r"junk\.mpk: not a modelpack archive"):
        modelpack.load(path)


def test_oversized_manifest_refused(exported):
    with pytest.raises(LimitError, match=r"net\.mpk: member 'manifest\.yaml': its size in bytes \(\d+\) is over the limit of 100; pass limits=modelpack\.Limits\(max_manifest_bytes=\.\.\.\)"):
        modelpack.load(exported, limits=Limits(max_manifest_bytes=100))
    with pytest.raises(LimitError, match=r"over the limit of 100"):
        modelpack.inspect(exported, limits=Limits(max_manifest_bytes=100))


def test_manifest_reader_is_the_only_manifest_reader():
    """Guard against a second, unchecked YAML path creeping in: only safeyaml parses YAML."""
    package = Path(modelpack.__file__).parent
    loaders = re.compile(r"(?<![\w.])yaml\.(safe_load|load|full_load|unsafe_load|compose|parse)\b|CSafeLoader\(")
    offenders = [
        f"{path.name}:{number}"
        for path in package.rglob("*.py") if path.name != "safeyaml.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if loaders.search(line)
    ]
    assert offenders == []


# -- integrity and limits -------------------------------------------------------------------


def test_integrity_modes(exported):
    net = modelpack.load(exported, integrity="sha256")
    assert list(net.collect_params()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    with pytest.raises(UsageError, match="integrity must be 'crc32' or 'sha256', not 'md5'"):
        modelpack.load(exported, integrity="md5")


def test_recorded_hashes_are_of_the_stored_bytes(exported):
    manifest = modelpack.inspect(exported)
    with zipfile.ZipFile(exported) as outer, zipfile.ZipFile(io.BytesIO(outer.read("weights.npz"))) as bundle:
        assert outer.comment == b"modelpack-manifest-sha256:" + hashlib.sha256(outer.read("manifest.yaml")).hexdigest().encode()
        for name, info in manifest.weights.items():
            raw = bundle.read(name + ".npy")
            header_end = 10 + int.from_bytes(raw[8:10], "little")
            assert info.sha256 == hashlib.sha256(raw[header_end:]).hexdigest()


def test_big_endian_and_fortran_input_hash_as_stored(tmp_path):
    value = np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3))
    modelpack.save(tmp_path / "t", {"v": value})
    manifest = modelpack.inspect(tmp_path / "t")
    assert manifest.weights["v"].sha256 == hashlib.sha256(np.arange(6, dtype="<i4").tobytes()).hexdigest()
    assert (modelpack.load(tmp_path / "t", integrity="sha256")["v"] == value).all()


@pytest.mark.parametrize("field", ["max_manifest_bytes", "max_manifest_nodes", "max_tensors", "max_total_bytes",
                                   "max_compression_ratio"])
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError, match=f"Limits.{field} must be a positive number, found 0"):
        Limits(**{field: 0})


def test_limits_can_be_raised_for_a_trusted_file(tmp_path):
    modelpack.save(tmp_path / "z", {"zeros": np.zeros(2**21, np.float32)}, compress=True)  # 8 MiB of zeros
    with pytest.raises(LimitError, match=r"member 'zeros\.npy': its compression ratio \(\d+\) is over the limit of 100 \(8388736 bytes from \d+"):
        modelpack.load(tmp_path / "z")
    loaded = modelpack.load(tmp_path / "z", limits=Limits(max_compression_ratio=10_000))
    assert loaded["zeros"].shape == (2**21,)


# -- versions ---------------------------------------------------------------------------------


def _edited(path, change, *, rehash=True):
    path.write_bytes(edit(path.read_bytes(), manifest=change, rehash=rehash))
    return path


def test_newer_minor_ignores_unknown_manifest_and_tensor_fields(exported):
    def newer(document):
        document["format_version"] = "1.7"
        document["signature"] = {"alg": "ed25519", "value": "..."}
        document["weights"]["0.weight"]["quantization"] = "none"

    net = modelpack.load(_edited(exported, newer), integrity="sha256")
    assert isinstance(net, nn.Sequential)
    manifest = modelpack.inspect(exported)
    assert manifest.format_version == "1.7" and "quantization" not in manifest.weights["0.weight"].model_dump()
    assert modelpack.verify(exported).ok


def test_same_minor_refuses_unknown_tensor_fields(exported):
    _edited(exported, lambda d: d["weights"]["0.weight"].update(quantization="none"))
    with pytest.raises(SchemaError, match=r"weights\.0\.weight\.quantization: Extra inputs are not permitted"):
        modelpack.load(exported)


def test_newer_minor_still_refuses_unknown_layer_types(exported):
    def newer(document):
        document["format_version"] = "1.7"
        document["architecture"]["children"]["1"]["type"] = "FlashAttention"

    with pytest.raises(UnknownLayerError, match="unknown layer type 'FlashAttention'"):
        modelpack.load(_edited(exported, newer))


def test_unreleased_older_major_refused(exported):
    _edited(exported, lambda d: d.update(format_version="0.9"))
    with pytest.raises(VersionError, match=r"format version 0\.9, but this reader understands major version 1 "
                       r"\(up to 1\.1\); no released format has that major version"):
        modelpack.load(exported)


def test_hand_made_1_0_archive_loads(exported):
    """Format 1.0: no tensor hashes, no manifest hash; any zip comment is not ours to judge."""
    def as_1_0(document):
        document["format_version"] = "1.0"
        for info in document["weights"].values():
            del info["sha256"]

    data = edit(exported.read_bytes(), manifest=as_1_0)
    members = members_of(data)
    exported.write_bytes(stored_zip([("manifest.yaml", members["manifest.yaml"]), ("weights.npz", members["weights.npz"])],
                                    comment=b"zipped by a backup tool"))
    assert isinstance(modelpack.load(exported, integrity="sha256"), nn.Sequential)
    report = modelpack.verify(exported)
    assert report.ok and report.format_version == "1.0" and report.notes


def test_1_0_archive_with_a_wrong_hash_comment_refused(exported):
    _edited(exported, lambda d: d.update(format_version="1.0"), rehash=False)
    with pytest.raises(IntegrityError, match=r"net\.mpk: member 'manifest\.yaml' is damaged: its SHA-256"):
        modelpack.load(exported)


def test_1_1_comment_must_be_the_hash(exported):
    members = members_of(exported.read_bytes())
    exported.write_bytes(stored_zip(members, comment=b"hello"))
    with pytest.raises(IntegrityError, match=r"format 1\.1 archives record the manifest's SHA-256 in the zip "
                       r"comment, found comment b'hello'"):
        modelpack.load(exported)


# -- other writers ----------------------------------------------------------------------------


def test_reads_what_zipfile_writes_with_zip64_records(exported, monkeypatch):
    """Another writer may add zip64 end records to a small file; they must be understood."""
    members = members_of(exported.read_bytes())
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    data = stored_zip(members, comment=manifest_comment(members["manifest.yaml"]))
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    exported.write_bytes(data)
    assert modelpack.verify(exported).ok
    assert isinstance(modelpack.load(exported), nn.Sequential)


def test_reads_deflated_members_and_data_descriptors(exported):
    """zipfile streaming to a pipe deflates and writes data descriptors: still a valid archive."""

    class Pipe(io.RawIOBase):
        def __init__(self):
            self.chunks = []

        def writable(self):
            return True

        def write(self, data):
            self.chunks.append(bytes(data))
            return len(data)

    members = members_of(exported.read_bytes())
    pipe = Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            with zf.open(name, "w") as member:
                member.write(content)
        zf.comment = manifest_comment(members["manifest.yaml"])
    data = b"".join(pipe.chunks)
    with zipfile.ZipFile(io.BytesIO(data)) as check:
        assert all(info.flag_bits & 0x08 and info.compress_type == 8 for info in check.infolist())
    exported.write_bytes(data)
    assert modelpack.verify(exported).ok
    np.testing.assert_array_equal(modelpack.load(exported)[0].weight.data(), _mlp()[0].weight.data())


def test_a_layer_refusing_its_config_is_a_schema_error_naming_the_source():
    """The net under 'configs refuse what layers refuse': build never lets a ValueError out."""
    from modelpack.format import architecture
    from modelpack.format.schema import LayerNode

    node = LayerNode.model_construct(type="MaxPool2D", config={"padding": [5, 0]}, children={})
    with pytest.raises(SchemaError, match=r"^x\.mpk: manifest\.yaml: the architecture cannot be built: the top-level block \(MaxPool2D\): padding"):
        architecture.build(node, source="x.mpk: manifest.yaml")
