"""Archives at URLs (``modelpack.io.remote``): memory://, an HTTP server honouring ranges, and
moto's S3 server, each on loopback, with the requests and bytes they serve counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from models import sequential_mlp
from remote_servers import RangeServer, S3Proxy

import modelpack
from modelpack import nn
from modelpack.errors import FormatError, IntegrityError, MissingFileError, PathError, UsageError
from modelpack.format import writer
from modelpack.io import remote

fsspec = pytest.importorskip("fsspec", reason="remote archives need fsspec (pip install 'modelpack[remote]')")

MB = 1 << 20


def _wide_model(layers: int = 6, width: int = 512) -> nn.Sequential:
    """About ``layers`` MiB of float32 weights in 2 × ``layers`` tensors."""
    net = nn.Sequential()
    for _ in range(layers):
        net.add(nn.Dense(width, in_units=width))
    net.initialize()
    return net


@pytest.fixture
def memory_url(request):
    url = f"memory://modelpack-tests/{request.node.name}/net.mpk"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/modelpack-tests/{request.node.name}"):
        fs.rm(f"/modelpack-tests/{request.node.name}", recursive=True)


@pytest.fixture(scope="module")
def http_server():
    pytest.importorskip("aiohttp", reason="http(s):// needs aiohttp (pip install 'modelpack[remote]')")
    server = RangeServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs", reason="s3:// needs s3fs (pip install 'modelpack[remote]')")
    pytest.importorskip("moto.server", reason="the S3 tests run moto's server (pip install 'moto[server]')")
    proxy = S3Proxy()
    import s3fs

    s3fs.S3FileSystem(**proxy.options()).mkdir("models")
    yield proxy
    proxy.stop()


# -- every verb over memory:// ----------------------------------------------------------------
def test_every_verb_round_trips_through_a_url(memory_url):
    net = sequential_mlp(16, 4, inputs=8)
    modelpack.export(net, memory_url, metadata={"author": "me"})
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    np.testing.assert_array_equal(modelpack.load(memory_url)(x), net(x))
    assert modelpack.inspect(memory_url).metadata == {"author": "me"}
    assert modelpack.verify(memory_url).ok
    with modelpack.open(memory_url) as archive:
        assert archive.name == memory_url
        np.testing.assert_array_equal(archive.get_tensor("0.weight"), net[0].weight.data())
    tensors_url = memory_url.replace("net.mpk", "t.mpk")
    modelpack.save(tensors_url, {"a": np.arange(5), "b": np.eye(2)})
    loaded = modelpack.load(tensors_url)
    np.testing.assert_array_equal(loaded["a"], np.arange(5))


def test_the_cli_reads_urls(memory_url, capsys):
    from modelpack.cli import main

    modelpack.export(sequential_mlp(16, 4, inputs=8), memory_url)
    assert main(["verify", memory_url]) == 0
    assert capsys.readouterr().out.startswith(f"{memory_url}: OK")
    assert main(["inspect", memory_url]) == 0


def test_file_urls_are_local_paths(tmp_path):
    path = tmp_path / "net.mpk"
    modelpack.export(sequential_mlp(16, 4, inputs=8), f"file://{path}")
    assert modelpack.verify(path).ok
    assert modelpack.load(f"file://{path}", mmap=True) is not None  # a real file: mappable


def test_mmap_of_a_url_is_refused_naming_it(memory_url):
    modelpack.save(memory_url, np.arange(4.0))
    with pytest.raises(UsageError, match=r"cannot be memory-mapped"):
        modelpack.load(memory_url, mmap=True)


# -- bad URLs and missing objects -------------------------------------------------------------
def test_a_missing_object_is_a_missing_file_error_naming_the_url():
    url = "memory://modelpack-tests/nowhere/missing.mpk"
    for verb in (modelpack.load, modelpack.inspect, modelpack.open, modelpack.verify):
        with pytest.raises(MissingFileError, match=rf"^{url}: no such object$"):
            verb(url)


def test_an_unknown_protocol_is_a_path_error_naming_the_url():
    with pytest.raises(PathError, match=r"^nosuchstore://b/m\.mpk: fsspec knows no protocol 'nosuchstore'"):
        modelpack.load("nosuchstore://b/m.mpk")


def test_without_fsspec_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)  # import fsspec now raises ImportError
    with pytest.raises(PathError, match=r"s3://b/m\.mpk: reading and writing URLs needs fsspec and s3fs; "
                                        r"pip install 'modelpack\[remote\]'"):
        modelpack.load("s3://b/m.mpk")


def test_storage_options_for_a_local_path_are_refused(tmp_path):
    with pytest.raises(UsageError, match=r"storage_options apply to URLs"):
        modelpack.load(tmp_path / "net.mpk", storage_options={"anon": True})


def test_messages_never_show_credentials_or_signatures():
    url = "https://user:secret@example.com/models/m.mpk?X-Amz-Signature=abc123"
    assert remote.describe(url) == "https://example.com/models/m.mpk"


# -- an HTTP server honouring ranges: requests and bytes counted ------------------------------
def _publish(server: RangeServer, name: str, tmp_path, net=None) -> str:
    path = tmp_path / name
    modelpack.export(net if net is not None else _wide_model(), path)
    server.files[f"/{name}"] = path.read_bytes()
    return f"{server.url}/{name}"


def test_open_and_one_tensor_over_http_read_little(http_server, tmp_path):
    url = _publish(http_server, "wide.mpk", tmp_path)
    size = len(http_server.files["/wide.mpk"])
    assert size > 6 * MB
    http_server.log.clear()
    with modelpack.open(url) as archive:
        opened = len(http_server.log.requests)
        weight = archive.get_tensor("3.weight")
        reader = archive._handle
    np.testing.assert_array_equal(weight, modelpack.load(tmp_path / "wide.mpk")[3].weight.data())
    log = http_server.log
    # HEAD; the tail (directories); the head (manifest); then the tensor, found by its
    # recorded offset (format 1.5): the block holding its local header, and the rest.
    assert log.requests[0].method == "HEAD"
    assert opened == 3, [r.range for r in log.requests]
    assert reader.round_trips == 2 + 2
    assert len(log.requests) == opened + 2
    needed = weight.nbytes
    assert needed <= log.sent <= needed + 3 * remote.BLOCK, log.sent


@pytest.mark.parametrize("width", [256, 500])  # a 256 KiB weight, and one just under 1 MiB
def test_a_tensor_up_to_a_mebibyte_is_one_request(http_server, tmp_path, width):
    """Its member's bytes (headers and data, as the writer lays them out) are announced
    before its local header is read: one request, not its header block and then the rest."""
    url = _publish(http_server, f"mid{width}.mpk", tmp_path, _wide_model(layers=4, width=width))
    with modelpack.open(url) as archive:
        opened = len(http_server.log.requests)
        weights = [archive.get_tensor(f"{layer}.weight") for layer in (2, 0)]
        assert len(http_server.log.requests) == opened + 2, [r.range for r in http_server.log.requests]
    local = modelpack.load(tmp_path / f"mid{width}.mpk")
    for layer, weight in zip((2, 0), weights, strict=True):
        np.testing.assert_array_equal(weight, local[layer].weight.data())


def test_a_larger_tensor_is_not_kept_in_the_cache(http_server, tmp_path):
    """Announced or not, a tensor over a mebibyte goes to its array: its header block, then
    the rest, which the reader does not keep."""
    url = _publish(http_server, "big.mpk", tmp_path, _wide_model(layers=2, width=600))
    with modelpack.open(url) as archive:
        opened = len(http_server.log.requests)
        archive.get_tensor("1.weight")
        reader = archive._handle
        assert len(http_server.log.requests) == opened + 2
        assert reader._cached < 600 * 600 * 4


def test_a_server_ignoring_ranges_is_refused(tmp_path):
    pytest.importorskip("aiohttp", reason="http(s):// needs aiohttp (pip install 'modelpack[remote]')")
    server = RangeServer(honour_ranges=False)
    try:
        url = _publish(server, "m.mpk", tmp_path, _wide_model(layers=1))  # larger than one read
        with pytest.raises(FormatError, match=rf"^{url}: asked for bytes .* the object changed while it "
                                              r"was read, or the server ignores range requests"):
            modelpack.inspect(url)
    finally:
        server.stop()


def test_a_missing_http_object_names_the_url(http_server):
    with pytest.raises(MissingFileError, match=rf"{http_server.url}/absent\.mpk: no such object"):
        modelpack.load(f"{http_server.url}/absent.mpk")


def test_verify_streams_a_remote_archive_in_large_blocks(http_server, tmp_path):
    url = _publish(http_server, "verified.mpk", tmp_path)
    http_server.log.clear()
    assert modelpack.verify(url).ok
    # It reads the bundle twice (its CRC-32, then each tensor's SHA-256): growing blocks, not
    # one request per 1 MiB chunk.
    assert len(http_server.log.requests) < 40, len(http_server.log.requests)


# -- S3 (moto on loopback) --------------------------------------------------------------------
def test_s3_round_trip_with_storage_options(s3, tmp_path):
    net = _wide_model(layers=4)
    url = "s3://models/wide.mpk"
    modelpack.export(net, url, storage_options=s3.options())
    s3.log.clear()
    with modelpack.open(url, storage_options=s3.options()) as archive:
        weight = archive.get_tensor("2.weight")
    np.testing.assert_array_equal(weight, net[2].weight.data())
    gets = s3.log.gets()
    assert len(s3.log.requests) <= 4 + 8 + 2, [(r.method, r.range) for r in s3.log.requests]
    assert all(r.range is not None for r in gets)  # never a whole-object GET
    assert weight.nbytes <= s3.log.sent <= weight.nbytes + 4 * remote.BLOCK + 8 * 512


def test_s3_credentials_and_endpoint_from_the_environment(s3, monkeypatch):
    modelpack.save("s3://models/env.mpk", np.arange(10.0), storage_options=s3.options())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    np.testing.assert_array_equal(modelpack.load("s3://models/env.mpk"), np.arange(10.0))


def test_an_upload_that_fails_mid_write_leaves_the_old_object(s3, monkeypatch, tmp_path):
    url, options = "s3://models/atomic.mpk", s3.options()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the upload is spooled
    modelpack.save(url, np.zeros(1000), storage_options=options)

    def write_half_then_fail(handle, pieces, **options):  # pieces, or (offset, piece) pairs
        pieces = list(pieces)
        for piece in pieces[: len(pieces) // 2]:
            handle.write(piece[1].data if isinstance(piece, tuple) else piece.data)
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(writer, "_write_pieces", write_half_then_fail)  # the writers' two loops
    monkeypatch.setattr(writer, "_write_placed", write_half_then_fail)
    s3.log.clear()
    with pytest.raises(RuntimeError, match="killed mid-write"):
        modelpack.save(url, np.ones(1000), storage_options=options)
    assert not [r for r in s3.log.requests if r.method in ("PUT", "POST")]  # nothing was sent
    monkeypatch.undo()
    np.testing.assert_array_equal(modelpack.load(url, storage_options=options), np.zeros(1000))
    assert os.listdir(tmp_path) == []  # the spooled upload was removed


def test_an_upload_the_store_refuses_leaves_the_old_object(s3):
    url, options = "s3://models/refused.mpk", s3.options()
    modelpack.save(url, np.zeros(1000), storage_options=options)
    s3.refuse = lambda method, path: method == "PUT" and "refused.mpk" in path
    try:
        with pytest.raises(PathError, match=r"^s3://models/refused\.mpk: access denied"):
            modelpack.save(url, np.ones(1000), storage_options=options)
    finally:
        s3.refuse = lambda method, path: False
    np.testing.assert_array_equal(modelpack.load(url, storage_options=options), np.zeros(1000))


def test_a_writer_killed_mid_upload_leaves_the_old_object(s3):
    url, options = "s3://models/killed.mpk", s3.options()
    modelpack.save(url, np.zeros(1000), storage_options=options)
    child_code = (
        "import numpy as np, modelpack\n"
        f"modelpack.save({url!r}, np.ones(1000), storage_options={options!r})\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    s3.held.clear()
    s3.release.clear()
    s3.hold = lambda method, path: method in ("PUT", "POST") and "killed.mpk" in path
    child = subprocess.Popen([sys.executable, "-c", child_code], env={**os.environ, "PYTHONPATH": root},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert s3.held.wait(60), child.stderr.read().decode() if child.poll() is not None else "no upload"
        os.kill(child.pid, signal.SIGKILL)  # the whole archive is on the wire; the request unanswered
        child.wait()
    finally:
        s3.hold = lambda method, path: False
        s3.release.set()
        child.stderr.close()
    np.testing.assert_array_equal(modelpack.load(url, storage_options=options), np.zeros(1000))


def test_s3_missing_key_and_bucket_name_the_url(s3):
    options = s3.options()
    with pytest.raises(MissingFileError, match=r"^s3://models/absent\.mpk: no such object$"):
        modelpack.open("s3://models/absent.mpk", storage_options=options)
    with pytest.raises(MissingFileError, match=r"^s3://no-such-bucket/m\.mpk: no such object$"):
        modelpack.inspect("s3://no-such-bucket/m.mpk", storage_options=options)
    with pytest.raises(PathError, match=r"^s3://no-such-bucket/m\.mpk: cannot be written"):
        modelpack.save("s3://no-such-bucket/m.mpk", np.zeros(3), storage_options=options)


def test_a_damaged_remote_archive_is_refused_naming_the_url(http_server, tmp_path):
    url = _publish(http_server, "damaged.mpk", tmp_path, sequential_mlp(16, 4, inputs=8))
    data = bytearray(http_server.files["/damaged.mpk"])
    with modelpack.open(tmp_path / "damaged.mpk") as archive:
        location = archive._vetted().locate("0.weight", archive.tensors["0.weight"])
    data[location.offset] ^= 0xFF
    http_server.files["/damaged.mpk"] = bytes(data)
    with pytest.raises(IntegrityError, match=rf"^{url}: member 'weights.npz': member '0.weight.npy' is damaged"):
        modelpack.load(url)


def test_a_sharded_archive_on_s3_is_read_lazily_per_shard(s3):
    net, options = _wide_model(layers=3, width=256), s3.options()
    url = "s3://models/sharded/big.mpk"
    modelpack.export(net, url, max_shard_size="300kB", storage_options=options)
    s3.log.clear()
    with modelpack.open(url, storage_options=options) as archive:
        assert len(archive.shards) == 3
        weight = archive.get_tensor("1.weight")
    np.testing.assert_array_equal(weight, net[1].weight.data())
    touched = {r.path.split("?")[0] for r in s3.log.requests}
    assert touched == {"/models/sharded/big.mpk", "/models/sharded/big-00002-of-00003.mpk"}
    assert modelpack.verify(url, storage_options=options).ok
    loaded = modelpack.load(url, storage_options=options)
    x = np.random.default_rng(0).standard_normal((2, 256)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), net(x))


def test_the_benchmark_runs_quick(s3, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "remote.py"
    spec = importlib.util.spec_from_file_location("bench_remote", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "open + get_tensor('layer004.weight'): " in out and "objects read: " in out
