"""Sharded archives (``modelpack.format.shards``, spec §12): an index plus shard archives."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from craft import edit_file
from fuzzing import time_bound

import modelpack
from modelpack import nn
from modelpack.errors import (
    IntegrityError,
    MissingFileError,
    PathError,
    SchemaError,
    UsageError,
)
from modelpack.format import container
from modelpack.format.schema import manifest_from_dict
from modelpack.format.shards import ShardedArchive, parse_size, shard_names
from modelpack.format.versions import FORMAT_VERSION

SHARD = 80_000  # bytes: three shards of the model below


def _model(seed: int = 0) -> nn.Sequential:
    """Three Dense(100, 100) layers: 40 KB of weights each, so 80 kB shards hold one layer."""
    net = nn.Sequential()
    for _ in range(3):
        net.add(nn.Dense(100, in_units=100))
    net.initialize()
    for param in net.collect_params().values():  # every tensor different, so a swap shows
        param.set_data(np.random.default_rng([seed, len(param.name)]).standard_normal(param.shape).astype(np.float32))
    return net


@pytest.fixture
def sharded(tmp_path):
    net = _model()
    path = tmp_path / "big.mpk"
    modelpack.export(net, path, max_shard_size=SHARD)
    return net, path


def _shard(path, i: int, count: int = 3):
    return path.parent / shard_names(path.name, count)[i - 1]


def test_three_shards_round_trip_bit_exactly(sharded):
    net, path = sharded
    assert sorted(os.listdir(path.parent)) == [
        "big-00001-of-00003.mpk", "big-00002-of-00003.mpk", "big-00003-of-00003.mpk", "big.mpk"]
    loaded = modelpack.load(path)
    ours, theirs = net.collect_params(), loaded.collect_params()
    assert list(ours) == list(theirs)
    for name, param in ours.items():
        assert param.data().tobytes() == theirs[name].data().tobytes(), name
    x = np.random.default_rng(1).standard_normal((2, 100)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), net(x))
    assert modelpack.load(path, mmap=True)(x).tobytes() == net(x).tobytes()


def test_the_index_is_format_1_5_and_lists_each_shard(sharded):
    _, path = sharded
    manifest = modelpack.inspect(path)
    assert (manifest.kind, manifest.format_version, manifest.weights) == ("sharded", "1.5", {})
    assert [shard.file for shard in manifest.shards] == shard_names("big.mpk", 3)
    assert [list(shard.tensors) for shard in manifest.shards] == [
        ["0.weight", "0.bias"], ["1.weight", "1.bias"], ["2.weight", "2.bias"]]
    for i, shard in enumerate(manifest.shards, 1):
        assert shard.size == os.path.getsize(_shard(path, i))
        assert modelpack.inspect(_shard(path, i)).format_version == FORMAT_VERSION  # old readers read shards


def test_open_reads_only_the_shard_asked_for(sharded):
    net, path = sharded
    with modelpack.open(path) as archive:
        assert isinstance(archive, ShardedArchive)
        assert (archive.kind, len(archive), len(archive.shards)) == ("model", 6, 3)
        np.testing.assert_array_equal(archive.get_tensor("1.weight"), net[1].weight.data())
        assert list(archive._opened) == [1]


def test_verify_checks_the_set(sharded):
    _, path = sharded
    report = modelpack.verify(path)
    assert report.ok, report.problems
    assert str(report) == f"{path}: OK (format 1.5), 6 tensors verified"


def test_tensors_save_sharded(tmp_path):
    data = {f"t{i}": np.full((100, 100), i, dtype=np.float32) for i in range(5)}
    modelpack.save(tmp_path / "t.mpk", data, max_shard_size="50kB")
    assert len(modelpack.inspect(tmp_path / "t.mpk").shards) == 5
    loaded = modelpack.load(tmp_path / "t.mpk")
    assert list(loaded) == list(data)
    for key in data:
        assert loaded[key].tobytes() == data[key].tobytes()


# -- damaged sets -----------------------------------------------------------------------------
def test_a_missing_shard_is_named_by_load_and_verify(sharded):
    _, path = sharded
    os.remove(_shard(path, 2))
    missing = _shard(path, 2)
    with pytest.raises(MissingFileError, match=rf"^shard 2 of 3 of {path}: {missing}: no such file$"):
        modelpack.load(path)
    with modelpack.open(path) as archive:  # the other shards still read
        archive.get_tensor("0.weight")
        with pytest.raises(MissingFileError, match="shard 2 of 3"):
            archive.get_tensor("1.bias")
    report = modelpack.verify(path)
    assert not report.ok
    assert report.problems[0] == f"shard 2 of 3 of {path}: {missing}: no such file"
    assert report.tensors["1.weight"] == "missing" and report.tensors["0.weight"] == "ok"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_pipe_in_place_of_a_shard_is_refused_without_waiting(sharded):
    """A set unpacked from an archive may hold a FIFO under a shard's name: reading it would
    wait for a writer forever."""
    _, path = sharded
    shard = _shard(path, 2)
    os.remove(shard)
    os.mkfifo(shard)
    with time_bound(20.0):
        with pytest.raises(PathError, match=rf"^shard 2 of 3 of {path}: {shard}: is not a regular file"):
            modelpack.load(path)
        report = modelpack.verify(path)
    assert not report.ok and report.tensors["1.weight"] == "missing" and report.tensors["0.weight"] == "ok"


def test_a_truncated_shard_is_named_by_load_and_verify(sharded):
    _, path = sharded
    shard = _shard(path, 3)
    size = os.path.getsize(shard)
    with open(shard, "r+b") as handle:
        handle.truncate(size - 100)
    with pytest.raises(IntegrityError, match=rf"^shard 3 of 3 of {path}: {shard} is {size - 100} bytes, "
                                             rf"the index records {size} \(truncated"):
        modelpack.load(path)
    report = modelpack.verify(path)
    assert f"shard 3 of 3 of {path}: {shard} is {size - 100} bytes, the index records {size}" in report.problems


def test_swapped_shards_are_named(sharded):
    _, path = sharded
    first, second = _shard(path, 1), _shard(path, 2)
    assert os.path.getsize(first) == os.path.getsize(second)  # only the contents tell them apart
    shutil.move(first, path.parent / "tmp")
    shutil.move(second, first)
    shutil.move(path.parent / "tmp", second)
    with pytest.raises(IntegrityError, match=rf"^shard 1 of 3 of {path}: {first}: its manifest's SHA-256 is "
                                             r"[0-9a-f]{64}, the index records [0-9a-f]{64} \(a shard of "
                                             r"another export, or shards swapped\)$"):
        modelpack.load(path)
    problems = modelpack.verify(path).problems
    assert [p.split(":")[0] for p in problems] == ["shard 1 of 3 of " + str(path).split(":")[0],
                                                   "shard 2 of 3 of " + str(path).split(":")[0]]


def test_a_shard_of_another_export_is_refused(sharded, tmp_path):
    _, path = sharded
    other = tmp_path / "other"
    other.mkdir()
    modelpack.export(_model(seed=1), other / "big.mpk", max_shard_size=SHARD)  # other weights, same sizes
    shutil.copy(_shard(other / "big.mpk", 2), _shard(path, 2))
    with pytest.raises(IntegrityError, match=r"^shard 2 of 3 .*\(a shard of another export"):
        modelpack.load(path)


def test_a_damaged_tensor_in_a_shard_is_caught(sharded):
    _, path = sharded
    shard = _shard(path, 2)
    with modelpack.open(shard) as archive:
        location = archive._vetted().locate("1.weight", archive.tensors["1.weight"])
    with open(shard, "r+b") as handle:
        handle.seek(location.offset + 10)
        byte = handle.read(1)
        handle.seek(location.offset + 10)
        handle.write(bytes([byte[0] ^ 1]))
    with pytest.raises(IntegrityError, match=rf"^{shard}: member 'weights.npz': member '1.weight.npy' is damaged"):
        modelpack.load(path)
    report = modelpack.verify(path)
    assert report.tensors["1.weight"] == "damaged"
    assert any(p.startswith(f"shard 2 of 3 of {path}: ") and "1.weight" in p for p in report.problems)


def test_an_index_whose_tensor_list_disagrees_with_the_shard_is_refused(sharded):
    _, path = sharded
    edit_file(path, manifest=lambda d: d["shards"][1]["tensors"]["1.bias"].update(shape=[99]))
    with pytest.raises(IntegrityError, match=rf"^shard 2 of 3 of {path}: {_shard(path, 2)}: holds other "
                                             r"tensors than the index lists for it$"):
        modelpack.open(path).get_tensor("1.bias")
    assert any("holds other tensors" in problem for problem in modelpack.verify(path).problems)


def test_an_index_naming_itself_as_a_shard_is_refused_not_followed(sharded):
    # verify followed the index into itself until Python's recursion limit
    _, path = sharded
    edit_file(path, manifest=lambda d: d["shards"][1].update(file=path.name))
    shard = f"shard 2 of 3 of {path}: {path}"
    problems = [problem for problem in modelpack.verify(path).problems if problem.startswith(shard)]
    assert len(problems) == 2 and problems[0].startswith(f"{shard} is ") and problems[0].endswith(
        "bytes, the index records 41788") and "its manifest's SHA-256 is" in problems[1]
    with pytest.raises(IntegrityError, match=rf"^shard 2 of 3 of {path}: {path} is \d+ bytes, the index records"):
        modelpack.load(path)


def test_the_cli_shows_and_verifies_the_set(sharded, capsys):
    from modelpack.cli import main

    _, path = sharded
    assert main(["inspect", str(path)]) == 0
    assert "30,300 parameters" in capsys.readouterr().out  # the shards' tensors, not the index's none
    assert main(["verify", str(path)]) == 0
    os.remove(_shard(path, 3))
    assert main(["verify", str(path)]) == 1
    assert "shard 3 of 3" in capsys.readouterr().out


# -- the index's rules ------------------------------------------------------------------------
def _index_document(path) -> dict:
    with open(path, "rb") as handle:
        opened = container.Container.open(handle, str(path), modelpack.Limits())
        return json.loads(opened.manifest_bytes(modelpack.Limits()))


@pytest.mark.parametrize("file", ["../big-00001-of-00003.mpk", "/etc/passwd", "a\\b.mpk", "..", "x\x00"])
def test_an_index_may_only_name_files_beside_it(sharded, file):
    _, path = sharded
    document = _index_document(path)
    document["shards"][0]["file"] = file
    with pytest.raises(SchemaError, match=r"shard"):
        manifest_from_dict(document, source="index")


def test_a_tensor_in_two_shards_is_refused(sharded):
    _, path = sharded
    document = _index_document(path)
    document["shards"][1]["tensors"]["0.weight"] = document["shards"][0]["tensors"]["0.weight"]
    with pytest.raises(SchemaError, match=r"tensor '0.weight' is listed in two shards"):
        manifest_from_dict(document, source="index")


def test_an_index_holds_no_tensors_of_its_own(sharded):
    _, path = sharded
    document = _index_document(path)
    document["weights"] = document["shards"][0]["tensors"]
    with pytest.raises(SchemaError, match=r"no 'checkpoint' and no 'weights' of its own"):
        manifest_from_dict(document, source="index")


def test_a_sharded_archive_needs_a_path(tmp_path):
    with open(tmp_path / "x.mpk", "wb") as handle, pytest.raises(UsageError, match="several files"):
        modelpack.export(_model(), handle, max_shard_size=SHARD)


@pytest.mark.parametrize(("given", "expected"), [
    (1000, 1000), ("2GB", 2 * 10**9), ("2 GiB", 2 * 2**30), ("1.5MB", 1_500_000), ("10kb", 10_000)])
def test_sizes(given, expected):
    assert parse_size(given) == expected


@pytest.mark.parametrize("given", [0, -1, "2 parsecs", "GB", True, 1.5])
def test_bad_sizes_are_refused(given):
    with pytest.raises(UsageError, match="max_shard_size"):
        parse_size(given)
