"""The container (format.container): the zip layout and its determinism, the manifest hash,
what a reader accepts from other zip writers, and what it refuses about members and tensors."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml
from craft import edit_file, manifest_comment, members_of, npy_header_end, stored_zip, streamed_zip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import save_bytes, sequential_mlp
from strategies import containers

import modelpack
from modelpack import Limits, nn
from modelpack.errors import DtypeMismatchError, FormatError, LimitError, ShapeMismatchError, UsageError
from modelpack.format.versions import FORMAT_VERSION


def test_layout_is_a_plain_zip_with_an_npz(tmp_path):
    net = sequential_mlp(16, 4, inputs=8)
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
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["weights"]["0.weight"] == {
        "dtype": "float32", "shape": [16, 8], "sha256": hashlib.sha256(net[0].weight.data().tobytes()).hexdigest(),
        "offset": 0,
    }
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as bundle:
        assert list(bundle.keys()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
        np.testing.assert_array_equal(bundle["1.weight"], net[1].weight.data())
    with zipfile.ZipFile(tmp_path / "weights.npz") as zf:  # each offset: where its member starts
        starts = {info.filename: info.header_offset for info in zf.infolist()}
    assert {name + ".npy": entry["offset"] for name, entry in manifest["weights"].items()} == starts


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
    modelpack.export(sequential_mlp(16, 4, inputs=8, seed=3), tmp_path / "a.mpk", compress=compress)
    modelpack.export(sequential_mlp(16, 4, inputs=8, seed=3), tmp_path / "b.mpk", compress=compress)
    assert (tmp_path / "a.mpk").read_bytes() == (tmp_path / "b.mpk").read_bytes()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(containers, st.booleans())
def test_same_tensors_same_bytes(data, compress):
    assert save_bytes(data, compress=compress) == save_bytes(data, compress=compress)


def test_same_bytes_in_another_process(tmp_path):
    """No clock, hash seed, pid or path in the bytes: a fresh interpreter writes the same file."""
    here = tmp_path / "here.mpk"
    modelpack.export(sequential_mlp(16, 4, inputs=8, seed=5), here, metadata={"k": "v"})
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


# -- refusals -------------------------------------------------------------------------------


def test_missing_member_refused(exported):
    manifest = members_of(exported.read_bytes())["manifest.yaml"]
    exported.write_bytes(stored_zip({"manifest.yaml": manifest}, comment=manifest_comment(manifest)))
    with pytest.raises(FormatError, match=r"net\.mpk: member 'weights\.npz' is missing"):
        modelpack.load(exported)


def test_weight_shape_disagreeing_with_manifest_refused(exported):
    edit_file(exported, manifest=lambda d: d["weights"]["1.bias"].update(shape=[5]))
    with pytest.raises(ShapeMismatchError, match=r"'1\.bias\.npy'.*manifest says shape \(5,\).*header says \(4,\)"):
        modelpack.load(exported)


def test_weight_dtype_disagreeing_with_manifest_refused(exported):
    edit_file(exported, manifest=lambda d: d["weights"]["1.bias"].update(dtype="float64"))
    with pytest.raises(DtypeMismatchError, match=r"'1\.bias\.npy'.*manifest says dtype float64"):
        modelpack.load(exported)


def test_tensor_missing_from_bundle_refused(exported):
    edit_file(exported, manifest=lambda d: d["weights"].update({"2.bias": {"dtype": "float32", "shape": [1], "sha256": "0" * 64, "offset": 0}}))
    with pytest.raises(FormatError, match=r"tensor '2\.bias' listed in the manifest is missing"):
        modelpack.load(exported)


def test_oversized_manifest_refused(exported):
    with pytest.raises(LimitError, match=r"net\.mpk: member 'manifest\.yaml': its size in bytes \(\d+\) is over the limit of 100; pass limits=modelpack\.Limits\(max_manifest_bytes=\.\.\.\)"):
        modelpack.load(exported, limits=Limits(max_manifest_bytes=100))
    with pytest.raises(LimitError, match=r"over the limit of 100"):
        modelpack.inspect(exported, limits=Limits(max_manifest_bytes=100))


# -- hashes ---------------------------------------------------------------------------------


def test_recorded_hashes_are_of_the_stored_bytes(exported):
    manifest = modelpack.inspect(exported)
    with zipfile.ZipFile(exported) as outer, zipfile.ZipFile(io.BytesIO(outer.read("weights.npz"))) as bundle:
        assert outer.comment == b"modelpack-manifest-sha256:" + hashlib.sha256(outer.read("manifest.yaml")).hexdigest().encode()
        for name, info in manifest.weights.items():
            raw = bundle.read(name + ".npy")
            assert info.sha256 == hashlib.sha256(raw[npy_header_end(raw):]).hexdigest()


def test_big_endian_and_fortran_input_hash_as_stored(tmp_path):
    value = np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3))
    modelpack.save(tmp_path / "t", {"v": value})
    manifest = modelpack.inspect(tmp_path / "t")
    assert manifest.weights["v"].sha256 == hashlib.sha256(np.arange(6, dtype="<i4").tobytes()).hexdigest()
    assert (modelpack.load(tmp_path / "t", integrity="sha256")["v"] == value).all()


def test_integrity_modes(exported):
    net = modelpack.load(exported, integrity="sha256")
    assert list(net.collect_params()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    with pytest.raises(UsageError, match="integrity must be 'crc32' or 'sha256', not 'md5'"):
        modelpack.load(exported, integrity="md5")


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
    members = members_of(exported.read_bytes())
    data = streamed_zip(members, comment=manifest_comment(members["manifest.yaml"]))
    with zipfile.ZipFile(io.BytesIO(data)) as check:
        assert all(info.flag_bits & 0x08 and info.compress_type == 8 for info in check.infolist())
    exported.write_bytes(data)
    assert modelpack.verify(exported).ok
    np.testing.assert_array_equal(modelpack.load(exported)[0].weight.data(), sequential_mlp(16, 4, inputs=8)[0].weight.data())


@pytest.mark.parametrize(("count", "large"), [(1, 0), (40, 0), (3000, 0), (5, 3)])
def test_a_path_and_a_file_object_get_the_same_bytes(tmp_path, count, large):
    """To a path the tensors' data is written before the checksums are known (then the zip
    headers, the manifest and the directory; data over 8 MiB in slices, each flushed on its
    way); to a caller's file everything is written in order: the bytes are the same."""
    rng = np.random.default_rng(count)
    arrays = {f"t{i}": rng.random(rng.integers(1, 300), dtype=np.float32) for i in range(count)}
    for i, size in enumerate([20_000, 70_000, 2_300_000][:large]):  # 80 KB, 280 KB, 9.2 MB
        arrays[f"large{i}"] = rng.random(size, dtype=np.float32)
        arrays[f"after{i}"] = np.arange(i + 1, dtype=np.int8)
    modelpack.save(tmp_path / "a.mpk", arrays)
    buffer = io.BytesIO()
    modelpack.save(buffer, arrays)
    assert (tmp_path / "a.mpk").read_bytes() == buffer.getvalue()
    assert modelpack.verify(tmp_path / "a.mpk").ok


@pytest.mark.parametrize("metadata", [{"sha256": "0" * 64}, {"note": "beyond the BMP: \U0001F600"}])
def test_a_manifest_without_findable_placeholders_is_written_in_order(tmp_path, metadata):
    """The writer fills the hashes into a manifest laid out with placeholders; where one
    cannot be told from the metadata (or the block form may change length), it writes the
    manifest whole instead: the same bytes either way, and everything checks."""
    arrays = {"a": np.arange(5, dtype=np.float32), "b": np.ones((2, 2), np.int16)}
    modelpack.save(tmp_path / "a.mpk", arrays, metadata=metadata)
    buffer = io.BytesIO()
    modelpack.save(buffer, arrays, metadata=metadata)
    assert (tmp_path / "a.mpk").read_bytes() == buffer.getvalue()
    assert modelpack.verify(tmp_path / "a.mpk").ok
    assert modelpack.inspect(tmp_path / "a.mpk").metadata == metadata
    np.testing.assert_array_equal(modelpack.load(tmp_path / "a.mpk", integrity="sha256")["a"], arrays["a"])


def test_a_failure_after_the_bundle_is_written_leaves_the_old_file(tmp_path, monkeypatch):
    from modelpack.format import writer

    target = tmp_path / "a.mpk"
    modelpack.save(target, {"w": np.zeros(3, np.float32)})
    before = target.read_bytes()

    def refuse(raw: bytes, name: str) -> None:
        raise modelpack.errors.SchemaError("refused for the test")

    monkeypatch.setattr(writer, "check_reads_back", refuse)
    with pytest.raises(modelpack.errors.SchemaError, match="refused for the test"):
        modelpack.save(target, {"w": np.ones(1000, np.float32)})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mpk"]  # no temporary file left


def test_writeback_is_started_after_each_8_mib_and_for_the_rest_once(tmp_path, monkeypatch):
    """Writing to a path starts the disk's writing of the tensors' data after every 8 MiB
    written (io.writeback), and of the rest once the data is written, in ranges that follow
    each other and end where the last large tensor does (each hint is a system call)."""
    from modelpack.format import writer
    from modelpack.io.writeback import WRITEBACK_CHUNK

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(writer, "start_writeback", lambda fd, offset, length: calls.append((offset, length)))
    rng = np.random.default_rng(0)
    arrays = {f"w{i}": rng.random(size, dtype=np.float32) for i, size in enumerate([3_000_000, 50, 2_500_000])}
    modelpack.save(tmp_path / "a.mpk", arrays)  # 22 MB: after 8 MiB, after 16 MiB, the rest
    assert len(calls) == 3 and all(length >= WRITEBACK_CHUNK for _, length in calls[:2])
    assert all(calls[i][0] + calls[i][1] == calls[i + 1][0] for i in range(2))  # one after the other
    last = arrays["w2"].tobytes()
    assert calls[-1][0] + calls[-1][1] == (tmp_path / "a.mpk").read_bytes().find(last) + len(last)
    calls.clear()
    modelpack.save(tmp_path / "b.mpk", {"w": rng.random(1_000_000, dtype=np.float32)})  # 4 MB: once
    assert len(calls) == 1 and 0 < calls[0][0] < 1024 and calls[0][1] == 4_000_000


def test_a_write_that_fails_returns_once_no_worker_reads_its_arrays(tmp_path, monkeypatch):
    """The checksums run on the shared worker threads: a write failing half-way cancels those
    not started and waits for the rest, so the caller may change its arrays at once."""
    from modelpack.format import writer
    from modelpack.io import npz_write

    running: list[int] = []
    task = npz_write.Tensors._checksum_task

    def tracked(self, indices):
        running.append(1)
        try:
            return task(self, indices)
        finally:
            running.pop()

    def fail(handle, placed, *, hint=False):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(npz_write.Tensors, "_checksum_task", tracked)
    monkeypatch.setattr(writer, "_write_placed", fail)
    arrays = {f"w{i}": np.ones(2_000_000, np.float32) for i in range(6)}  # 6 tasks of 8 MB
    with pytest.raises(modelpack.errors.PathError, match="No space left"):
        modelpack.save(tmp_path / "a.mpk", arrays)
    assert running == []
    assert list(tmp_path.iterdir()) == []
