"""Lazy and zero-copy reading: ``modelpack.open``, ``load(mmap=True)`` and the full load."""

from __future__ import annotations

import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from craft import (
    RawEntry,
    deflate,
    edit,
    manifest_comment,
    members_of,
    npy,
    raw_archive,
    raw_zip,
    tensor_data_offsets,
    with_offsets,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memory import advised, needs_huge_pages
from models import dense_norm_dense, export_bytes, save_bytes, sequential_mlp
from strategies import arrays, tensor_names

import modelpack
from modelpack.errors import FormatError, IntegrityError, LimitError, ModelpackError, SchemaError
from modelpack.io import zipwrite
from modelpack.io.limits import Limits


@pytest.fixture
def net_and_path(tmp_path):
    """Dense(50 -> 300), LayerNorm, Dense(300 -> 7), exported with metadata."""
    net = dense_norm_dense(50, 300, 7, activation="relu", seed=3)
    path = tmp_path / "net.mpk"
    modelpack.export(net, path, metadata={"author": "me"})
    return net, path


def test_open_exposes_the_manifest_and_reads_one_tensor(net_and_path):
    net, path = net_and_path
    with modelpack.open(path) as archive:
        assert archive.kind == "model" and archive.metadata == {"author": "me"}
        assert archive.architecture.type == "Sequential"
        assert list(archive.tensors) == list(net.collect_params()) == list(archive)
        assert archive.tensors["2.bias"].shape == [7] and "0.weight" in archive and len(archive) == 6
        bias = archive.get_tensor("2.bias")
        assert bias.tobytes() == net[2].bias.data().tobytes() and bias.flags.writeable
        mapped = archive.get_tensor("0.weight", mmap=True)
        assert mapped.tobytes() == net[0].weight.data().tobytes() and not mapped.flags.writeable
        with pytest.raises(modelpack.TensorNotFoundError, match=r"net\.mpk has no tensor 'nope'; it has 6 tensors$"):
            archive.get_tensor("nope")
    assert mapped.sum() == net[0].weight.data().sum()  # the map outlives the closed file


def test_mmap_and_full_load_are_bitwise_the_same(net_and_path):
    net, path = net_and_path
    full = modelpack.load(path)
    mapped = modelpack.load(path, mmap=True)
    x = np.random.default_rng(0).normal(size=(4, 50))
    for name, param in full.collect_params().items():
        other = mapped.collect_params()[name].data()
        assert other.tobytes() == param.data().tobytes() and other.dtype == param.dtype
        assert param.data().flags.writeable and not other.flags.writeable
    assert mapped(x).tobytes() == full(x).tobytes() == net(x).tobytes()


def test_mapped_parameters_are_read_only_and_say_so(net_and_path):
    _, path = net_and_path
    mapped = modelpack.load(path, mmap=True)
    with pytest.raises(ValueError, match="read-only"):
        mapped[0].weight.data()[0, 0] = 1.0
    mapped[0].weight.set_data(mapped[0].weight.data().copy())  # replacing is fine
    mapped[0].weight.data()[0, 0] = 1.0


def test_tensor_archives_map_too(tmp_path):
    arrays = {"a": np.arange(1000, dtype=np.int32), "b": np.ones((3, 3), np.float16), "empty": np.zeros(0)}
    modelpack.save(tmp_path / "t", arrays)
    mapped = modelpack.load(tmp_path / "t", mmap=True)
    for name, array in arrays.items():
        assert mapped[name].tobytes() == array.tobytes() and mapped[name].dtype == array.dtype


def _damage(path, tensor):
    data = bytearray(path.read_bytes())
    data[tensor_data_offsets(bytes(data))[tensor] + 5] ^= 0x40
    path.write_bytes(bytes(data))


def test_damaged_tensor_detected_when_read_lazily(net_and_path):
    _, path = net_and_path
    _damage(path, "0.weight")
    with modelpack.open(path) as archive:
        archive.get_tensor("2.weight")  # an intact tensor reads fine
        with pytest.raises(IntegrityError, match=r"net\.mpk: member 'weights\.npz': member '0\.weight\.npy' is damaged: CRC-32"):
            archive.get_tensor("0.weight")
    with pytest.raises(IntegrityError, match=r"'0\.weight\.npy' is damaged"):
        modelpack.load(path)


def test_damaged_tensor_detected_on_first_use_of_a_mapped_model(net_and_path):
    _, path = net_and_path
    _damage(path, "0.weight")
    mapped = modelpack.load(path, mmap=True)  # nothing read yet: loads
    mapped[2].weight.data()  # an intact parameter
    with pytest.raises(IntegrityError, match=r"'0\.weight\.npy' is damaged: CRC-32"):
        mapped(np.zeros((1, 50)))


def _swap(members):
    """Swap two same-shaped tensors' members (their CRCs move with them; only SHA-256 sees it)."""
    first, second = sorted(name for name in members if name.endswith("weight.npy"))[:2]
    members[first], members[second] = members[second], members[first]


def test_sha256_on_the_fast_paths(tmp_path):
    path = tmp_path / "swapped.mpk"
    path.write_bytes(edit(export_bytes(sequential_mlp(4, 4, inputs=4, activation=None)), bundle=_swap, rehash=False))
    modelpack.load(path)  # CRC-32, the default, cannot see a swap
    damaged = r"swapped\.mpk: member 'weights\.npz': member '0\.weight\.npy': tensor '0\.weight' is damaged: its SHA-256"
    with pytest.raises(IntegrityError, match=damaged):
        modelpack.load(path, integrity="sha256")
    with modelpack.open(path, integrity="sha256") as archive:
        with pytest.raises(IntegrityError, match=damaged):
            archive.get_tensor("0.weight")
    mapped = modelpack.load(path, mmap=True, integrity="sha256")  # nothing read yet
    with pytest.raises(IntegrityError, match=damaged):
        mapped(np.zeros((1, 4)))


def test_mmap_needs_a_file_with_stored_weights(tmp_path):
    buffer = io.BytesIO()
    modelpack.save(buffer, {"a": np.ones(3)})
    buffer.seek(0)
    with pytest.raises(ModelpackError, match="cannot be memory-mapped: mapping needs an archive file on disk"):
        modelpack.load(buffer, mmap=True)
    modelpack.save(tmp_path / "z", {"a": np.ones(3)}, compress=True)
    with pytest.raises(ModelpackError, match="cannot be memory-mapped"):
        modelpack.load(tmp_path / "z", mmap=True)
    assert modelpack.load(tmp_path / "z")["a"].tolist() == [1, 1, 1]


def test_large_model_reads_in_parallel_bitwise(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"t{i}": rng.normal(size=(512, 512 + i)).astype(np.float32) for i in range(12)}  # ~12 MB
    modelpack.save(tmp_path / "big", arrays)
    back = modelpack.load(tmp_path / "big")
    assert all(back[k].tobytes() == v.tobytes() for k, v in arrays.items())


def test_many_small_tensors_are_read_on_this_thread_in_runs(tmp_path, monkeypatch):
    """300 tensors of 8 KB (2.5 MB with their headers): read on the calling thread (handing
    them to threads costs more than it saves), those that follow one another in one
    positioned read of at most a MiB (``npz.read_written_runs``), and without building a
    TensorInfo for each."""
    import os

    from modelpack.format import archive as archive_module

    arrays = {f"t{i}": np.full(2048, i, np.float32) for i in range(300)}
    path = tmp_path / "small.mpk"
    modelpack.save(path, arrays)
    monkeypatch.setattr(archive_module, "shared_pool", lambda: pytest.fail("small tensors went to the pool"))
    reads: list[int] = []
    preadv = os.preadv
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, at: reads.append(at) or preadv(fd, bufs, at))
    with modelpack.open(path) as opened:
        back = opened.read_all()
        assert opened.manifest.weights._built == {}
    assert all(back[name].tobytes() == array.tobytes() for name, array in arrays.items())
    assert len(reads) == 3


def test_open_reads_the_tail_and_head_once_then_one_tensor_by_its_offset(net_and_path, monkeypatch):
    """Opening reads one page of the tail (the archive's directory) and one of the head (the
    manifest), nothing of the bundle; one tensor then costs one read: its local header, at
    the offset the manifest records, its .npy header and its data together. A mapped
    load reads the bundle's directory and each local header once. No range is read twice."""
    import os

    net, path = net_and_path
    reads: list[tuple[int, int]] = []
    pread, preadv = os.pread, os.preadv
    monkeypatch.setattr(os, "pread", lambda fd, n, at: reads.append((at, n)) or pread(fd, n, at))
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, at: reads.append((at, -1)) or preadv(fd, bufs, at))
    size = path.stat().st_size
    with modelpack.open(path) as archive:
        assert reads == [(size - 4096, 4096), (0, 4096)]
        reads.clear()
        archive.get_tensor("1.gamma")
        assert archive._bundle is None  # the bundle's directory was not needed
    assert len(reads) == 1 and reads[0] == (archive._source.start + archive.manifest.weights["1.gamma"].offset, -1), reads
    reads.clear()
    mapped = modelpack.load(path, mmap=True)
    # load's sniff for an MXNet file (its 8 bytes at 0), then 6 tensors: the first one's
    # header lies in the head, the last one's in the tail
    assert reads[0] == (0, 8)
    assert len(reads) == 1 + 2 + 4 and len(set(reads)) == len(reads)
    assert all(n <= 4096 for _, n in reads)
    assert mapped[0].weight.data().tobytes() == net[0].weight.data().tobytes()


def test_a_header_longer_than_one_read_is_read_whole(tmp_path):
    """A stored tensor's .npy header usually comes in one read with its member's first
    bytes; a longer one (64 dimensions: 320 bytes) is read on, and checked the same."""
    from modelpack.io import npz

    deep = np.arange(2, dtype=np.float32).reshape((1,) * 63 + (2,))
    assert len(modelpack.io.npy.npy_header(deep)) > npz._HEADER_AHEAD
    modelpack.save(tmp_path / "deep.mpk", {"deep": deep, "flat": np.ones(3, np.float32)})
    with modelpack.open(tmp_path / "deep.mpk") as archive:
        assert archive.get_tensor("deep").tobytes() == deep.tobytes()
        assert archive.get_tensor("flat", mmap=True).tolist() == [1, 1, 1]
    assert modelpack.load(tmp_path / "deep.mpk")["deep"].shape == deep.shape


def _tensors_file(tmp_path, members=None, name="t.mpk"):
    """A saved tensor archive on disk, its bundle members edited by ``members`` (the manifest
    unchanged, so that only the members' bytes differ from what modelpack writes)."""
    arrays = {"a": np.arange(3, dtype=np.float32), "b": np.arange(12, dtype=np.int64).reshape(3, 4)}
    buffer = io.BytesIO()
    modelpack.save(buffer, arrays)
    path = tmp_path / name
    path.write_bytes(edit(buffer.getvalue(), bundle=members) if members else buffer.getvalue())
    return arrays, path


def test_small_files_are_read_one_read_per_tensor_without_the_exact_path(tmp_path, monkeypatch):
    """A small file as modelpack writes it: ``load`` and ``get_tensor`` read each tensor with
    one positioned read and never parse a header (the exact path is not taken)."""
    from modelpack.format import archive as archive_module
    from modelpack.io import npy

    arrays, path = _tensors_file(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("the exact path was taken")

    monkeypatch.setattr(archive_module.Archive, "_locate", refuse)
    monkeypatch.setattr(npy, "header_in", refuse)
    back = modelpack.load(path)
    assert all(back[k].tobytes() == v.tobytes() and back[k].dtype == v.dtype for k, v in arrays.items())
    assert all(array.flags.writeable for array in back.values())
    with modelpack.open(path, integrity="sha256") as opened:
        assert opened.get_tensor("b").tobytes() == arrays["b"].tobytes()



# -- a small file's full load: read whole, its tensors views of that buffer (``Archive.for_load``)
def _root(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _check_views(tmp_path: Path, arrays: dict[str, np.ndarray], path: Path) -> None:
    """Tensors and a model: every array a writable, aligned view of one buffer holding the file."""
    back = modelpack.load(path)
    assert all(back[k].tobytes() == v.tobytes() and back[k].dtype == v.dtype for k, v in arrays.items())
    owner = _root(back["a"])
    assert owner.size == path.stat().st_size and owner.tobytes() == path.read_bytes()
    assert all(_root(array) is owner for array in back.values())
    assert all(array.flags.writeable and array.flags.aligned for array in back.values())
    net = modelpack.load(_exported_small(tmp_path))
    assert len({id(_root(param.data())) for param in net.collect_params().values()}) == 1


def test_a_small_files_load_hands_out_views_of_the_file_read_whole_on_this_thread(tmp_path, monkeypatch):
    """Below ``OVERLAP_BYTES``: each view checked (no tensor read on its own), no thread
    handed any of the work."""
    from modelpack.format import archive as archive_module

    arrays, path = _tensors_file(tmp_path)
    assert path.stat().st_size < archive_module.OVERLAP_BYTES
    monkeypatch.setattr(archive_module.Archive, "_read_one", lambda *a: pytest.fail("a tensor was read on its own"))
    monkeypatch.setattr(archive_module, "shared_pool", lambda: pytest.fail("a thread was handed part of it"))
    _check_views(tmp_path, arrays, path)


def test_a_larger_files_load_is_opened_on_a_worker_while_it_is_read(tmp_path, monkeypatch):
    """From ``OVERLAP_BYTES`` on: the same views, the archive opened on an I/O thread."""
    import threading

    from modelpack.format import archive as archive_module

    arrays, path = _tensors_file(tmp_path)
    monkeypatch.setattr(archive_module, "OVERLAP_BYTES", 0)
    threads: list[str] = []
    opened_vetted = archive_module.Archive._opened_vetted.__func__

    def spy(cls, *args):
        threads.append(threading.current_thread().name)
        return opened_vetted(cls, *args)

    monkeypatch.setattr(archive_module.Archive, "_opened_vetted", classmethod(spy))
    monkeypatch.setattr(archive_module.Archive, "_read_one", lambda *a: pytest.fail("a tensor was read on its own"))
    _check_views(tmp_path, arrays, path)
    assert len(threads) == 2 and all(name.startswith("modelpack-io") for name in threads)
    assert threading.current_thread().name not in threads


def _exported_small(tmp_path: Path) -> Path:
    path = tmp_path / "net.mpk"
    modelpack.export(sequential_mlp(16, 4, inputs=8), path)
    return path


def test_a_file_over_the_read_ahead_size_is_read_tensor_by_tensor(tmp_path, monkeypatch):
    from modelpack.format import archive as archive_module

    arrays, path = _tensors_file(tmp_path)
    monkeypatch.setattr(archive_module, "READ_AHEAD_BYTES", path.stat().st_size - 1)
    monkeypatch.setattr(archive_module, "_read_whole", lambda *a: pytest.fail("read ahead"))
    back = modelpack.load(path)
    assert all(back[k].tobytes() == v.tobytes() and back[k].base is None for k, v in arrays.items())


@pytest.mark.parametrize("read", ["load", "load mmap", "open"])
def test_what_a_read_leaves_is_freed_without_the_cycle_collector(net_and_path, read):
    """An archive holds its file, its read-ahead buffer and its map: none may wait in a
    reference cycle for the collector once the caller drops what it read (a server loading
    model after model would hold each file's memory until a collection)."""
    import gc

    _, path = net_and_path
    def one_tensor() -> np.ndarray:
        with modelpack.open(path) as archive:
            return archive.get_tensor("2.bias")

    reads = {"load": lambda: modelpack.load(path), "load mmap": lambda: modelpack.load(path, mmap=True),
             "open": one_tensor}
    reads[read]()  # (imports and first-call caches out of the way)
    gc.collect()
    gc.disable()
    try:
        reads[read]()
        assert gc.collect() == 0
    finally:
        gc.enable()


@needs_huge_pages
def test_loads_read_into_huge_pages(tmp_path):
    """What a load reads lands on huge pages (``io.pages``): a large tensor's whole ones, read
    tensor by tensor or alone; a small file's whole buffer, its last page over half used."""
    from modelpack.io.pages import HUGE_PAGE

    huge = HUGE_PAGE
    big = np.arange(5 * huge // 8 + 17, dtype=np.float32)  # 2.5 huge pages, in a file read tensor by tensor
    modelpack.save(tmp_path / "big.mpk", {"big": big, "b": np.ones(3)})
    with modelpack.open(tmp_path / "big.mpk") as archive:
        alone = archive.get_tensor("big")
    for array in (modelpack.load(tmp_path / "big.mpk")["big"], alone):
        assert array.tobytes() == big.tobytes() and array.ctypes.data % huge == 0
        assert advised(array.ctypes.data)[1] == array.ctypes.data + 2 * huge
    small = np.arange(3 * huge // 32, dtype=np.float64)  # 0.75 of one, in a file read whole
    modelpack.save(tmp_path / "small.mpk", {"small": small})
    array = modelpack.load(tmp_path / "small.mpk")["small"]
    assert array.tobytes() == small.tobytes()
    start, end, marked = advised(array.ctypes.data)
    assert marked and start <= array.ctypes.data and end - array.ctypes.data >= array.nbytes


def test_data_a_view_would_misalign_is_read_into_an_array_of_its_own(tmp_path):
    """Another writer's bundle (no padding): data at an address its dtype does not divide is
    read the usual way, into an aligned array."""
    arrays, path = _tensors_file(tmp_path, lambda members: None)  # re-zipped without alignment
    offsets = tensor_data_offsets(path.read_bytes())
    misaligned = [name for name, at in offsets.items() if at % arrays[name].dtype.itemsize]
    assert misaligned, offsets  # (else this file tests nothing)
    back = modelpack.load(path)
    for name, array in arrays.items():
        assert back[name].tobytes() == array.tobytes() and back[name].flags.aligned
    assert all(back[name].base is None for name in misaligned)


@pytest.mark.parametrize("how", ["short read", "I/O error", "buffer cut short"])
def test_a_read_ahead_that_falls_short_leaves_each_tensor_to_its_own_read(tmp_path, monkeypatch, how):
    """A file read ahead only in part (shrunk meanwhile, say) or not at all: what is not all
    there is read tensor by tensor, and nothing is taken from past the buffer's end."""
    from modelpack.format import archive as archive_module

    arrays, path = _tensors_file(tmp_path)

    def failing(*args):
        raise OSError(5, "Input/output error")

    if how != "buffer cut short":
        monkeypatch.setattr(archive_module, "read_fully", (lambda *a: False) if how == "short read" else failing)
    else:
        read_whole, cut = archive_module._read_whole, tensor_data_offsets(path.read_bytes())["b"] + 8
        monkeypatch.setattr(archive_module, "_read_whole", lambda fd, size: read_whole(fd, size)[:cut])
    back = modelpack.load(path)
    assert all(back[k].tobytes() == v.tobytes() for k, v in arrays.items())
    assert back["b"].base is None  # (the last tensor's data lies in the cut)



def test_a_view_is_never_cut_short_even_when_the_checksum_agrees(tmp_path, monkeypatch):
    """The buffer ends 4 bytes into a tensor whose last 4 bytes are made so that its member's
    CRC-32 is that of the member without them: the length, not only the checksum, keeps a
    short view from being handed out (or failing to reshape)."""
    from craft import crc32_suffix

    from modelpack.format import archive as archive_module
    from modelpack.io.npy import header_for

    head = np.arange(11, dtype=np.int64).tobytes() + b"\x00" * 4
    header = header_for("int64", (3, 4))[0]
    tail = crc32_suffix(header + head, zlib.crc32(header + head))
    arrays = {"a": np.arange(3, dtype=np.float32), "b": np.frombuffer(head + tail, np.int64).reshape(3, 4)}
    path = tmp_path / "t.mpk"
    modelpack.save(path, arrays)
    read_whole, cut = archive_module._read_whole, tensor_data_offsets(path.read_bytes())["b"] + len(head)
    monkeypatch.setattr(archive_module, "_read_whole", lambda fd, size: read_whole(fd, size)[:cut])
    back = modelpack.load(path)
    assert back["b"].tobytes() == arrays["b"].tobytes() and back["b"].base is None

@pytest.mark.parametrize("overlapped", [False, True])
def test_an_interrupt_while_reading_ahead_closes_the_opened_archive(tmp_path, monkeypatch, overlapped):
    from modelpack.format import archive as archive_module

    _, path = _tensors_file(tmp_path)
    if overlapped:
        monkeypatch.setattr(archive_module, "OVERLAP_BYTES", 0)
    closed: list[bool] = []
    close = archive_module.Archive.close
    monkeypatch.setattr(archive_module.Archive, "close", lambda self: closed.append(True) or close(self))

    def interrupted(fd, size):
        raise KeyboardInterrupt

    monkeypatch.setattr(archive_module, "_read_whole", interrupted)
    with pytest.raises(KeyboardInterrupt):
        modelpack.load(path)
    assert closed == [True]


def _header(name: str, header: str):
    """A bundle edit: tensor ``name``'s member with this header and its own data bytes."""
    from craft import npy_header_end, npy_with_header

    def change(members):
        member = members[name + ".npy"]
        members[name + ".npy"] = npy_with_header(header, member[npy_header_end(member):])

    return change


@pytest.mark.parametrize("load", [True, False], ids=["load", "get_tensor"])
def test_another_writers_header_takes_the_exact_path(tmp_path, load):
    """A valid header modelpack would not write (keys in another order, other spacing) is not
    vouched for; the exact path parses it and reads the same tensor."""
    arrays, path = _tensors_file(tmp_path, _header("b", "{'shape': (3, 4), 'fortran_order': False, 'descr': '<i8'}"))
    if load:
        got = modelpack.load(path)["b"]
    else:
        with modelpack.open(path) as opened:
            got = opened.get_tensor("b")
    assert got.tobytes() == arrays["b"].tobytes() and got.dtype == arrays["b"].dtype


@pytest.mark.parametrize(
    ("header", "error", "message"),
    [
        ("{'descr': '<i8', 'fortran_order': False, 'shape': (4, 3), }", "ShapeMismatchError",
         r"t\.mpk: member 'weights\.npz': member 'b\.npy': the manifest says shape \(3, 4\), the array header says \(4, 3\)"),
        ("{'descr': '>i8', 'fortran_order': False, 'shape': (3, 4), }", "DtypeMismatchError",
         r"member 'b\.npy': the array header says byte order '>i8'"),
        ("{'descr': '<i8', 'fortran_order': True, 'shape': (3, 4), }", "FormatError",
         r"member 'b\.npy': the array header says Fortran order"),
        ("{'descr': '<i8', 'fortran_order': False, 'shape': (3, 3), }", "ShapeMismatchError",
         r"the manifest says shape \(3, 4\), the array header says \(3, 3\)"),
    ],
    ids=["transposed", "big-endian", "fortran", "short"],
)
@pytest.mark.parametrize("how", ["load", "get_tensor", "mmap", "get_tensor mmap"])
def test_a_header_that_disagrees_is_refused_by_the_exact_path(tmp_path, header, error, message, how):
    """Same member size as modelpack's, other header: refused with the exact path's error,
    whether read (one read vouches) or mapped (the header compared, ``Bundle.locate``)."""
    from modelpack import errors

    _, path = _tensors_file(tmp_path, _header("b", header))
    with pytest.raises(getattr(errors, error), match=message) as caught:
        if how in ("load", "mmap"):
            modelpack.load(path, mmap=how == "mmap")
        else:
            with modelpack.open(path) as opened:
                opened.get_tensor("b", mmap=how.endswith("mmap"))
    assert type(caught.value).__name__ == error


def test_a_damaged_small_file_is_refused_on_every_path(tmp_path):
    """Damaged data in a small file: the one-read path does not vouch, the exact one refuses."""
    _, path = _tensors_file(tmp_path)
    _damage(path, "b")
    with pytest.raises(IntegrityError, match=r"t\.mpk: member 'weights\.npz': member 'b\.npy' is damaged: CRC-32"):
        modelpack.load(path)
    with modelpack.open(path) as opened:
        assert opened.get_tensor("a").tolist() == [0, 1, 2]
        with pytest.raises(IntegrityError, match=r"member 'b\.npy' is damaged: CRC-32"):
            opened.get_tensor("b")


def test_nothing_is_allocated_from_a_manifest_shape_the_member_cannot_back(tmp_path, monkeypatch):
    """The one-read path allocates from the manifest's shape only when the member's size
    (checked against the limits at open) is exactly what that shape takes."""
    def grow(document):
        document["weights"]["a"]["shape"] = [1 << 36]

    buffer = io.BytesIO()
    modelpack.save(buffer, {"a": np.arange(3, dtype=np.float32)})
    path = tmp_path / "t.mpk"
    path.write_bytes(edit(buffer.getvalue(), manifest=grow))
    sizes: list[int] = []
    empty = np.empty

    def spy(shape, *args, **kwargs):
        dims = shape if isinstance(shape, tuple) else (shape,)
        sizes.append(math.prod(dims) * np.dtype(kwargs.get("dtype", args[0] if args else None)).itemsize)
        return empty(shape, *args, **kwargs)

    monkeypatch.setattr(np, "empty", spy)
    with pytest.raises(ModelpackError, match=r"member 'a\.npy': the manifest says shape \(68719476736,\)"):
        modelpack.load(path)
    assert max(sizes, default=0) < 1 << 20


def test_the_one_read_path_reads_on_after_a_short_read(tmp_path, monkeypatch):
    """A positioned read may return less than asked (Linux: 2 GiB at most): the rest is read
    on, still without the exact path."""
    import os

    from modelpack.format import archive as archive_module

    arrays, path = _tensors_file(tmp_path)
    preadv, calls = os.preadv, []

    def short(fd, buffers, at):
        calls.append(at)
        first = next(b for b in buffers if len(b))
        return preadv(fd, [memoryview(first)[:40]], at)  # at most 40 bytes, of the first buffer

    monkeypatch.setattr(os, "preadv", short)
    monkeypatch.setattr(archive_module.Archive, "_locate", lambda *a: pytest.fail("the exact path was taken"))
    with modelpack.open(path) as opened:
        assert opened.get_tensor("b").tobytes() == arrays["b"].tobytes()
    assert len(calls) > 3
    back = modelpack.load(path)  # each tensor read on after its short reads
    assert all(back[k].tobytes() == v.tobytes() for k, v in arrays.items())


def test_every_dtype_and_odd_shape_is_read_bitwise_in_one_read(tmp_path, monkeypatch):
    """The one-read path reads into the array itself: every storable dtype, 0-d and empty
    arrays come back bitwise, writable and C-ordered, without the exact path."""
    from modelpack.format import archive as archive_module
    from modelpack.io.npy import SUPPORTED_DTYPES

    rng = np.random.default_rng(1)
    arrays = {}
    for dtype in SUPPORTED_DTYPES:
        for shape in [(), (0,), (3, 0), (2, 3, 5)]:
            raw = rng.integers(0, 256, size=math.prod(shape) * np.dtype(dtype).itemsize, dtype=np.uint8)
            arrays[f"{dtype}{shape}"] = raw.view(dtype).reshape(shape) if dtype != "bool" else (raw % 2).astype(bool).reshape(shape)
    modelpack.save(tmp_path / "all.mpk", arrays)
    monkeypatch.setattr(archive_module.Archive, "_locate", lambda *a: pytest.fail("the exact path was taken"))
    back = modelpack.load(tmp_path / "all.mpk", integrity="sha256")
    for name, array in arrays.items():
        got = back[name]
        assert got.dtype == array.dtype and got.shape == array.shape and got.tobytes() == array.tobytes(), name
        assert got.flags.writeable and got.flags.c_contiguous


# -- one tensor by the offset the manifest records (format 1.5) ---------------------------------
_PAIR = {"a": np.arange(6, dtype=np.float32), "b": np.full((2, 3), 7, np.int16)}


def _placed_at(offset: object, tensor: str = "b") -> bytes:
    """The pair saved, with ``tensor``'s recorded offset replaced by ``offset``."""
    return edit(save_bytes(_PAIR), manifest=lambda d: d["weights"][tensor].update(offset=offset))


def test_a_tensor_is_read_by_its_offset_without_the_bundle_directory(tmp_path):
    path = tmp_path / "pair.mpk"
    path.write_bytes(save_bytes(_PAIR))
    with modelpack.open(path) as archive:
        assert archive.tensors["b"].offset > archive.tensors["a"].offset == 0
        assert archive.get_tensor("b").tobytes() == _PAIR["b"].tobytes()
        assert archive.get_tensor("a", mmap=True).tobytes() == _PAIR["a"].tobytes()
        assert archive._bundle is None
        assert archive.read_all()["b"].tobytes() == _PAIR["b"].tobytes()  # reads the directory
        assert archive._bundle is not None


def test_an_offset_at_another_tensors_member_is_refused_by_every_reader(tmp_path):
    path = tmp_path / "moved.mpk"
    path.write_bytes(_placed_at(0))
    with modelpack.open(path) as archive, pytest.raises(
        FormatError, match=r"moved\.mpk: member 'weights\.npz': the offset the manifest records for tensor 'b' "
        r"is offset 0, where member 'a\.npy' starts, not 'b\.npy'"):
        archive.get_tensor("b")
    with modelpack.open(path) as archive:
        assert archive.get_tensor("a").tobytes() == _PAIR["a"].tobytes()  # its own offset is right
    whose = r"moved\.mpk: member 'weights\.npz': the manifest records offset 0 for tensor 'b', whose member starts"
    with pytest.raises(FormatError, match=whose):
        modelpack.load(path)
    with pytest.raises(FormatError, match=whose):
        modelpack.load(path, mmap=True)
    report = modelpack.verify(path)
    assert report.tensors == {"a": "ok", "b": "invalid"} and len(report.problems) == 1
    assert "records offset 0 for tensor 'b', whose member starts at offset" in report.problems[0]


@pytest.mark.parametrize(("offset", "problem"), [
    (10**9, r"is offset 1000000000, where no local header fits \(\d+ bytes\)"),
    (1, "is offset 1, where no zip local header starts"),
])
def test_an_offset_where_no_member_starts_is_refused(tmp_path, offset, problem):
    path = tmp_path / "lost.mpk"
    path.write_bytes(_placed_at(offset))
    with modelpack.open(path) as archive, pytest.raises(
            FormatError, match=r"lost\.mpk: member 'weights\.npz': the offset the manifest records for tensor 'b' "
            + problem):
        archive.get_tensor("b")


@pytest.mark.parametrize("offset", [-1, 1.5, "64", [0]])
def test_an_offset_that_is_no_offset_is_refused_at_open(tmp_path, offset):
    path = tmp_path / "bad.mpk"
    path.write_bytes(_placed_at(offset))
    with pytest.raises(SchemaError, match=r"bad\.mpk: manifest\.yaml: invalid manifest: weights\.b\.offset: "):
        modelpack.open(path)


def test_tensors_without_offsets_are_found_through_the_directory(tmp_path):
    """A 1.4 archive (no offsets), and a deflated bundle (its members cannot be read in place):
    the directory is read, at open or at the first read that needs it."""
    older = tmp_path / "older.mpk"
    older.write_bytes(edit(save_bytes(_PAIR), manifest=lambda d: [
        d.update(format_version="1.4"), *[entry.pop("offset") for entry in d["weights"].values()]]))
    with modelpack.open(older) as archive:
        assert archive._bundle is not None
        assert archive.get_tensor("b").tobytes() == _PAIR["b"].tobytes()
    deflated = tmp_path / "deflated.mpk"
    modelpack.save(deflated, _PAIR, compress=True)
    with modelpack.open(deflated) as archive:
        assert archive._bundle is None and archive.tensors["b"].offset is not None
        assert archive.get_tensor("b").tobytes() == _PAIR["b"].tobytes()
        assert archive._bundle is not None


def test_an_encrypted_member_found_by_its_offset_is_refused(tmp_path):
    data = save_bytes(_PAIR)
    inner = members_of(members_of(data)["weights.npz"])
    bundle = raw_zip([RawEntry(name.encode(), body, flags=1 if name == "b.npy" else 0) for name, body in inner.items()])
    path = tmp_path / "locked.mpk"
    path.write_bytes(raw_archive(with_offsets(members_of(data)["manifest.yaml"], bundle), bundle))
    with modelpack.open(path) as archive, pytest.raises(
            FormatError, match=r"locked\.mpk: member 'weights\.npz': member 'b\.npy' is encrypted"):
        archive.get_tensor("b")


def _crafted_pair(tmp_path, name: str, **changes) -> Path:
    """The pair's archive with member ``b.npy`` rebuilt with ``changes`` (RawEntry fields)."""
    data = save_bytes(_PAIR)
    inner = members_of(members_of(data)["weights.npz"])
    bundle = raw_zip([RawEntry(n.encode(), body, **(changes if n == "b.npy" else {})) for n, body in inner.items()])
    path = tmp_path / name
    path.write_bytes(raw_archive(with_offsets(members_of(data)["manifest.yaml"], bundle), bundle))
    return path


def test_a_stored_member_whose_sizes_disagree_is_refused_by_its_offset(tmp_path):
    path = _crafted_pair(tmp_path, "sizes.mpk", size=len(npy(_PAIR["b"])) + 1)
    with modelpack.open(path) as archive, pytest.raises(
            FormatError, match=r"sizes\.mpk: member 'weights\.npz': member 'b\.npy' is stored but declares "
            r"\d+ bytes in \d+"):
        archive.get_tensor("b")


def test_a_member_with_a_data_descriptor_is_read_through_the_directory(tmp_path):
    body = npy(_PAIR["b"])
    descriptor = struct.pack("<4s3L", b"PK\x07\x08", zlib.crc32(body), len(body), len(body))
    path = _crafted_pair(tmp_path, "streamed.mpk", flags=8, local_zeroed=True, descriptor=descriptor)
    with modelpack.open(path) as archive:
        assert archive.get_tensor("b").tobytes() == _PAIR["b"].tobytes()
        assert archive._bundle is not None  # its sizes follow its data: the directory says them


def test_a_member_running_past_the_bundle_is_refused_by_its_offset(tmp_path):
    data = save_bytes(_PAIR)
    inner = members_of(members_of(data)["weights.npz"])
    bundle = bytearray(raw_zip([RawEntry(n.encode(), body) for n, body in inner.items()]))
    at = bundle.index(b"PK\x03\x04b.npy"[:4], bundle.index(b"b.npy") - 30)
    struct.pack_into("<2L", bundle, at + 18, 10**6, 10**6)  # its local header's sizes only
    path = tmp_path / "long.mpk"
    path.write_bytes(raw_archive(with_offsets(members_of(data)["manifest.yaml"], bytes(bundle)), bytes(bundle)))
    with modelpack.open(path) as archive, pytest.raises(
            FormatError, match=r"long\.mpk: member 'weights\.npz': member 'b\.npy' runs past the end: 1000000 "
            r"bytes at offset \d+"):
        archive.get_tensor("b")


def test_a_member_the_directory_does_not_list_is_never_read_by_its_offset(tmp_path):
    """Zip's two views of a member must agree: a local header named b.npy that the directory
    lists as another member (so tools reading the directory see other bytes for 'b') is
    refused, though the manifest's offset points at it and its own CRC-32 holds."""
    data = save_bytes(_PAIR)
    inner = members_of(members_of(data)["weights.npz"])
    decoy = npy(np.zeros((2, 3), np.int16))
    bundle = raw_zip([RawEntry(b"a.npy", inner["a.npy"]), RawEntry(b"c.npy", decoy, local_name=b"b.npy"),
                      RawEntry(b"b.npy", inner["b.npy"])])
    document = yaml.safe_load(members_of(data)["manifest.yaml"])
    document["weights"]["b"]["offset"] = bundle.index(b"PK\x03\x04", bundle.index(decoy) - 64)
    manifest = yaml.safe_dump(document, sort_keys=False).encode()
    path = tmp_path / "decoy.mpk"
    path.write_bytes(raw_archive(manifest, bundle))
    with modelpack.open(path) as archive, pytest.raises(
            FormatError, match=r"decoy\.mpk: member 'weights\.npz': member 'c\.npy' is called b'b\.npy' in its "
            "local header"):
        archive.get_tensor("b")


def test_many_tensors_are_each_read_by_offset_with_their_directory_entry_alone(tmp_path):
    arrays = {f"layer{i}.{kind}": np.full(i % 7 + 1, i, np.float32) for i in range(150) for kind in ("w", "b")}
    arrays["é.unicode"] = np.arange(3, dtype=np.int8)  # a name of more bytes than characters
    path = tmp_path / "many.mpk"
    modelpack.save(path, arrays)
    with modelpack.open(path) as archive:
        for name in ("layer0.w", "layer77.b", "é.unicode", "layer149.b"):
            assert archive.get_tensor(name).tobytes() == arrays[name].tobytes()
        assert archive._bundle is None


@pytest.mark.parametrize("threshold", [1, 3000, 5000])
def test_tensors_past_the_zip64_threshold_are_read_by_offset_with_their_entry_alone(tmp_path, monkeypatch, threshold):
    """A bundle over 4 GiB has zip64 fields in the entries of the members past 4 GiB (offset)
    or over it (sizes): each entry's width follows from the recorded offsets, so a tensor is
    still read without the directory. The writer's threshold is lowered to write them small:
    1 puts every size and offset but the first in zip64 fields, the others some offsets, and
    at 5000 only the sizes of the two large tensors."""
    monkeypatch.setattr(zipwrite, "ZIP64_SIZE", threshold)
    arrays = {f"t{i}": np.full(i % 5 + 1, i, np.float32) for i in range(40)}
    arrays.update({"large.a": np.arange(1500, dtype=np.float32), "large.b": np.ones(1300, np.float64)})
    path = tmp_path / "wide.mpk"
    modelpack.save(path, arrays)
    with modelpack.open(path) as archive:
        assert archive._source.size >= threshold
        for name in ("t0", "t17", "large.a", "t39", "large.b"):
            assert archive.get_tensor(name).tobytes() == arrays[name].tobytes(), name
        assert archive._bundle is None
    assert modelpack.load(path)["large.b"].tobytes() == arrays["large.b"].tobytes()


def test_members_just_under_and_at_the_zip64_threshold_are_told_apart(tmp_path, monkeypatch):
    """A member's size is told from the distance to the next member's header, which holds
    the member's local header too: with zip64 sizes in it from the threshold on, and none
    one byte under it."""
    monkeypatch.setattr(zipwrite, "ZIP64_SIZE", 5000)
    npy_header = len(npy(np.zeros(4000, np.uint8))) - 4000
    arrays = {"under": np.zeros(5000 - npy_header - 1, np.uint8), "at": np.zeros(5000 - npy_header, np.uint8),
              "after": np.ones(3, np.float32)}
    path = tmp_path / "edge.mpk"
    modelpack.save(path, arrays)
    assert {name: len(data) for name, data in members_of(members_of(path.read_bytes())["weights.npz"]).items()
            if name != "after.npy"} == {"under.npy": 4999, "at.npy": 5000}
    with modelpack.open(path) as archive:
        assert [archive.get_tensor(name).tobytes() for name in arrays] == [a.tobytes() for a in arrays.values()]
        assert archive._bundle is None


def test_a_lazy_open_holds_to_the_tensor_limits(tmp_path):
    """Without the bundle's directory, the manifest's tensor count meets ``max_tensors`` at
    open, and the member a tensor's offset finds meets ``max_total_bytes`` before it is read."""
    path = tmp_path / "pair.mpk"
    path.write_bytes(save_bytes(_PAIR))
    with pytest.raises(LimitError, match=r"pair\.mpk: member 'weights\.npz': its number of tensors \(2\) is over "
                       r"the limit of 1; pass limits=modelpack\.Limits\(max_tensors=\.\.\.\)"):
        modelpack.open(path, limits=Limits(max_tensors=1))
    with modelpack.open(path, limits=Limits(max_total_bytes=150)) as archive:
        assert archive.get_tensor("b").tobytes() == _PAIR["b"].tobytes()  # 140 bytes in its member
        with pytest.raises(LimitError, match=r"pair\.mpk: member 'weights\.npz': member 'a\.npy': its size in "
                           r"bytes \(152\) is over the limit of 150; pass limits=modelpack\.Limits\(max_total_bytes"):
            archive.get_tensor("a")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.dictionaries(tensor_names, arrays(), min_size=1, max_size=6), st.booleans())
def test_what_the_writer_writes_is_read_tensor_by_tensor_by_offset(tmp_path, arrays_by_name, compress):
    """Every archive the writer makes (any name, dtype, shape) is read one tensor at a time
    without its bundle's directory, bit for bit; deflated members go through the directory."""
    path = tmp_path / "any.mpk"
    modelpack.save(path, arrays_by_name, compress=compress)
    with modelpack.open(path) as archive:
        for name, array in arrays_by_name.items():
            got = archive.get_tensor(name)
            assert (got.dtype, got.shape, got.tobytes()) == (array.dtype, array.shape, array.tobytes()), name
        assert (archive._bundle is None) != compress


# -- closing: the file, and a deflated bundle's temporary file --------------------------------
def _open_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")


def test_close_releases_the_file_of_a_stored_bundle(tmp_path):
    path = tmp_path / "s.mpk"
    modelpack.save(path, {"a": np.arange(5, dtype=np.float32)})
    archive = modelpack.open(path)
    assert archive._spool is None  # a stored bundle is read in place: nothing to spool
    np.testing.assert_array_equal(archive.get_tensor("a"), np.arange(5, dtype=np.float32))
    archive.close()
    assert archive._handle.closed


def test_close_releases_a_deflated_bundles_temporary_file(tmp_path):
    """Another writer may deflate the bundle itself: it is inflated to a temporary file, which
    closing the archive closes along with the archive's own file."""
    data = save_bytes({"a": np.arange(5, dtype=np.float32)})
    parts = members_of(data)
    manifest, bundle = parts["manifest.yaml"], parts["weights.npz"]
    crafted = raw_zip([RawEntry(b"manifest.yaml", manifest),
                       RawEntry(b"weights.npz", deflate(bundle), method=8, plain=bundle)],
                      comment=manifest_comment(manifest))
    path = tmp_path / "d.mpk"
    path.write_bytes(crafted)
    archive = modelpack.open(path)
    spool = archive._source.handle
    assert archive._spool is not None and spool is not archive._handle
    np.testing.assert_array_equal(archive.get_tensor("a"), np.arange(5, dtype=np.float32))
    archive.close()
    assert archive._handle.closed and spool.closed


@needs_proc
def test_a_refused_open_leaves_no_file_open(tmp_path):
    path = tmp_path / "m.mpk"
    data = bytearray(save_bytes({"a": np.arange(5, dtype=np.float32)}))
    data[data.index(b'"producer"') + 1] ^= 0x20  # the manifest's CRC-32 and SHA-256 fail
    path.write_bytes(bytes(data))
    before = _open_descriptors()
    with pytest.raises(IntegrityError, match=r"m\.mpk: member 'manifest\.yaml' is damaged: CRC-32") as refusal:
        modelpack.open(path)
    # (counted while the traceback, which holds the half-made archive, is alive: closed by the
    # refusal itself, not by the garbage collector)
    assert _open_descriptors() == before
    del refusal


@pytest.mark.parametrize("through_file", [True, False])
def test_a_tensor_without_memory_is_refused_naming_the_file(tmp_path, monkeypatch, through_file):
    """Every way a tensor is read (in place by its offset, or through the bundle's member,
    as from a file object) refuses by name when its buffer cannot be allocated: never a bare
    MemoryError."""
    from modelpack.io import npz, pages

    def starved(shape, dtype):
        raise MemoryError

    path = tmp_path / "t.mpk"
    modelpack.save(path, {"a": np.arange(300, dtype=np.float32)})
    monkeypatch.setattr(pages, "fresh_array", starved)
    monkeypatch.setattr(npz, "fresh_array", starved)  # (the run reader's, which leaves it to these)
    source = path if through_file else io.BytesIO(path.read_bytes())
    with modelpack.open(source) as archive, pytest.raises(ModelpackError, match=r"out of memory for its 1200 bytes") as caught:
        archive.get_tensor("a")
    assert type(caught.value) is ModelpackError and ("t.mpk" in str(caught.value)) == through_file
