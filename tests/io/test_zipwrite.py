"""The one zip writer: plain zips for every reader, stored data on 64-byte boundaries, deflate."""

from __future__ import annotations

import hashlib
import io
import random
import stat
import struct
import zipfile
import zlib

import numpy as np
import pytest
from craft import member_data_offsets
from models import dense_norm_dense

import modelpack
from modelpack import api, nn
from modelpack.errors import FormatError
from modelpack.format import writer
from modelpack.io import zipwrite
from modelpack.io.npz import read_npz
from modelpack.io.npz_write import write_npz
from modelpack.io.zipio import MemberReader, Source
from modelpack.io.zipread import read_directory
from modelpack.io.zipwrite import ALIGN, Piece, PlannedMember, ZipPlan, crc32_combine, padding_for


def test_crc32_combine_matches_zlib():
    rng = random.Random(0)
    for _ in range(300):
        a, b = rng.randbytes(rng.randint(0, 5000)), rng.randbytes(rng.randint(0, 5000))
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_padding_is_empty_or_a_whole_extra_block():
    for position in range(0, 3 * ALIGN):
        pad = padding_for(position)
        assert (position + pad) % ALIGN == 0 and (pad == 0 or pad >= 6), position


def test_plan_is_a_valid_zip_with_aligned_data():
    rng = random.Random(1)
    members = [PlannedMember(f"m{i}", [Piece(rng.randbytes(i * 37 % 200))]) for i in range(20)]
    members.append(PlannedMember("ünïcode", [Piece(b"x" * 10)]))
    plan = ZipPlan(members, comment=b"hello")
    buffer = io.BytesIO()
    plan.write(buffer)
    data = buffer.getvalue()
    assert len(data) == plan.size and zlib.crc32(data) == plan.crc()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None and zf.comment == b"hello"
        assert [i.filename for i in zf.infolist()] == [m.name for m in members]
    assert all(offset % ALIGN == 0 for offset in member_data_offsets(data).values())


def test_archive_tensors_are_aligned_in_the_file_and_numpy_reads_the_bundle(tmp_path):
    net = dense_norm_dense(7, 33, 5)
    path = tmp_path / "net.mpk"
    modelpack.export(net, path)
    data = path.read_bytes()
    outer = member_data_offsets(data)
    assert outer["weights.npz"] % ALIGN == 0
    bundle = data[outer["weights.npz"]:]
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        bundle = zf.read("weights.npz")
    inner = member_data_offsets(bundle, base=outer["weights.npz"])
    params = net.collect_params()
    for member, offset in inner.items():
        header_length = struct.unpack_from("<H", data, offset + 8)[0]
        tensor_at = offset + 10 + header_length
        assert tensor_at % ALIGN == 0, member
        name = member[:-4]
        expected = params[name].data()
        assert data[tensor_at:tensor_at + expected.nbytes] == expected.tobytes()
    with np.load(io.BytesIO(bundle), allow_pickle=False) as npz:
        assert sorted(npz.keys()) == sorted(params)
        for name, param in params.items():
            assert npz[name].tobytes() == param.data().tobytes()


def test_parameter_files_are_aligned_too(tmp_path):
    net = nn.Dense(3, in_units=5)
    net.initialize()
    net.save_parameters(tmp_path / "p.params")
    data = (tmp_path / "p.params").read_bytes()
    for offset in member_data_offsets(data).values():
        header_length = struct.unpack_from("<H", data, offset + 8)[0]
        assert (offset + 10 + header_length) % ALIGN == 0


# -- what the stored writer produces, pinned -----------------------------------------------------
#
# sha256 of archives written by main before the writer learnt to deflate (commit 2da538e): the
# stored (default) output must not change by a byte. The producer string is pinned too, so a
# version bump does not move these.

# Re-pinned once when every member's external attributes gained the regular-file type bits
# (spec/FORMAT.md §1): the only bytes that changed are those attributes (0x80 in each entry's
# top byte) and, in save/export, the CRC-32 of weights.npz that covers the bundle's entries.
# Re-pinned for format 1.2, which changed the manifest's format_version only: written as 1.1,
# the archives still hash to the previous pins (90b1ceaa... save, afb364d0... export).
PINNED = {
    "save": "79a3e785def064145de064244d855b8ecea7e17508e5c8bacf1b94d3a0e8cac4",
    "export": "52ddce42e3cd0450399af8ef1c53b82bfd875668d25dc886e50ed21bb531868d",
    "npz": "11943cb7db8f9cc450a7b1e6cfe22d47e16847efb3b9d5f6fe8d5af157a1fcb6",
}


def _pinned_arrays() -> dict[str, np.ndarray]:
    return {
        "ids": np.arange(6, dtype=np.int64).reshape(2, 3),
        "mask": np.array([True, False, True]),
        "scale": np.float16(0.5),
        "empty": np.zeros((0, 4), np.float32),
        "big_endian": np.arange(5, dtype=">f8"),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
    }


def _pinned_model() -> nn.Block:
    net = nn.Sequential()
    net.add(nn.Dense(4, activation="relu", in_units=5), nn.Dense(3, in_units=4))
    net.initialize(seed=0)
    for index, param in enumerate(net.collect_params().values()):
        shape = param.data().shape
        param.set_data(np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) / (index + 1))
    return net


def _written(kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    if kind == "save":
        modelpack.save(buffer, _pinned_arrays(), **options)
    elif kind == "export":
        modelpack.export(_pinned_model(), buffer, **options)
    else:
        write_npz(buffer, _pinned_arrays(), **options)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", sorted(PINNED))
def test_stored_output_is_byte_identical_to_before(kind, monkeypatch):
    """The writer's bytes, pinned when format 1.5 was current (it added each tensor's offset to
    the manifest; the bundle's bytes, pinned under "npz", were unchanged since 1.2). A version
    bump that changes only the version text keeps them: the pinned files are written with the
    version they were pinned at."""
    monkeypatch.setattr(api, "PRODUCER", "modelpack 0.1.0")
    monkeypatch.setattr(api, "FORMAT_VERSION", "1.5")
    monkeypatch.setattr(writer, "FORMAT_VERSION", "1.5")
    assert hashlib.sha256(_written(kind)).hexdigest() == PINNED[kind]


# -- deflated members --------------------------------------------------------------------------


def _strict_members(data: bytes) -> dict[str, tuple[int, bytes]]:
    """Each member's method and bytes, as modelpack's strict reader reads them."""
    source = Source.whole(io.BytesIO(data), where="test.zip")
    directory = read_directory(
        source, kind="a zip", max_members=1 << 20, too_many=lambda count: FormatError(str(count)),
        max_ratio=1e9, grace_bytes=0, max_inflated=float("inf"),
    )
    out = {}
    for member in directory.members:
        reader = MemberReader(source, member)
        out[member.name] = (member.method, reader.read(member.size))
        reader.finish()
    return out


def _zipfile_members(data: bytes) -> dict[str, tuple[int, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {info.filename: (info.compress_type, zf.read(info)) for info in zf.infolist()}


def _mixed_plan(comment: bytes = b"") -> tuple[ZipPlan, dict[str, bytes]]:
    rng = random.Random(2)
    contents = {
        "text.txt": b"hello " * 300,
        "random.bin": rng.randbytes(777),
        "empty": b"",
        "ünïcode": b"\0" * 5000,
        "pieces.bin": b"abc" * 50 + rng.randbytes(90),
    }
    members = []
    for index, (name, data) in enumerate(contents.items()):
        pieces = [Piece(data[:150]), Piece(memoryview(data[150:]))] if name == "pieces.bin" else [Piece(data)]
        members.append(PlannedMember(name, pieces, deflate=index % 2 == 0))
    return ZipPlan(members, comment=comment), contents


def test_deflated_and_stored_members_read_back_by_both_readers():
    plan, contents = _mixed_plan(comment=b"note")
    buffer = io.BytesIO()
    plan.write(buffer)
    data = buffer.getvalue()
    assert len(data) == plan.size and zlib.crc32(data) == plan.crc()
    methods = {member.name: member.method for member in plan.members}
    assert set(methods.values()) == {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
    expected = {name: (methods[name], content) for name, content in contents.items()}
    assert _strict_members(data) == expected
    assert _zipfile_members(data) == expected
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.comment == b"note"
        info = zf.getinfo("text.txt")
        assert info.compress_size < info.file_size / 10  # really compressed
        assert info.date_time == (1980, 1, 1, 0, 0, 0) and info.create_system == 3
        assert info.external_attr == (stat.S_IFREG | 0o644) << 16  # a regular file, rw-r--r--
    offsets = member_data_offsets(data)
    assert all(offsets[name] % ALIGN == 0 for name, method in methods.items() if method == zipfile.ZIP_STORED)
    # Compressed data cannot be mapped in place, so deflated members carry no padding.
    assert all(len(m.local_header) == 30 + len(m.name.encode()) for m in plan.members if m.deflate)


def test_deflated_output_is_deterministic():
    first, second = io.BytesIO(), io.BytesIO()
    _mixed_plan()[0].write(first)
    _mixed_plan()[0].write(second)
    assert first.getvalue() == second.getvalue()
    assert _written("save", compress=True) == _written("save", compress=True)
    assert _written("npz", compress=True) == _written("npz", compress=True)


def test_deflated_bundle_reads_back_with_modelpack_zipfile_and_numpy():
    data = _written("npz", compress=True)
    arrays = {name: np.asarray(array) for name, array in _pinned_arrays().items()}
    assert {name: method for name, (method, _) in _zipfile_members(data).items()} == {
        name + ".npy": zipfile.ZIP_DEFLATED for name in arrays
    }
    assert _strict_members(data) == _zipfile_members(data)
    back = read_npz(io.BytesIO(data), source="bundle.npz")
    with np.load(io.BytesIO(data), allow_pickle=False) as numpy_back:
        for name, array in arrays.items():
            for got in (back[name], numpy_back[name]):
                little = array.astype(array.dtype.newbyteorder("<"))  # what the bundle stores
                assert got.shape == array.shape and got.tobytes() == little.tobytes()


def test_deflated_archive_keeps_the_outer_zip_stored_and_loads_bitwise():
    data = _written("export", compress=True)
    outer = _zipfile_members(data)
    assert {name: method for name, (method, _) in outer.items()} == {
        "manifest.yaml": zipfile.ZIP_STORED, "weights.npz": zipfile.ZIP_STORED,
    }
    inner = _zipfile_members(outer["weights.npz"][1])
    assert {method for method, _ in inner.values()} == {zipfile.ZIP_DEFLATED}
    assert _strict_members(outer["weights.npz"][1]) == inner
    net = _pinned_model()
    loaded = modelpack.load(io.BytesIO(data), integrity="sha256")
    for name, param in net.collect_params().items():
        assert loaded.collect_params()[name].data().tobytes() == param.data().tobytes()


# -- zip64: the thresholds lowered so that small files need zip64 records ------------------------


@pytest.fixture
def zip64_everywhere(monkeypatch):
    monkeypatch.setattr(zipwrite, "ZIP64_SIZE", 1)
    monkeypatch.setattr(zipwrite, "ZIP64_COUNT", 1)


def test_zip64_records_read_back_by_both_readers(zip64_everywhere):
    plan, contents = _mixed_plan(comment=b"wide")
    buffer = io.BytesIO()
    plan.write(buffer)
    data = buffer.getvalue()
    end = data[-len(b"wide") - 22 :]
    assert struct.unpack_from("<4s4H2I", end) == (b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    assert struct.unpack_from("<4s", data, len(data) - len(end) - 20) == (b"PK\x06\x07",)  # the locator
    first = struct.unpack_from("<4s5H3I2H", data, plan.members[1].header_offset)
    assert first[7:9] == (0xFFFFFFFF, 0xFFFFFFFF)  # both local sizes deferred to the zip64 extra
    methods = {member.name: member.method for member in plan.members}
    expected = {name: (methods[name], content) for name, content in contents.items()}
    assert _strict_members(data) == expected
    assert _zipfile_members(data) == expected


@pytest.mark.parametrize("compress", [False, True])
def test_archives_with_zip64_records_load(zip64_everywhere, tmp_path, compress):
    path = tmp_path / "wide.mpk"
    modelpack.save(path, _pinned_arrays(), compress=compress)
    assert b"PK\x06\x06" in path.read_bytes()
    for mmap in (False, True) if not compress else (False,):
        back = modelpack.load(path, integrity="sha256", mmap=mmap)
        for name, array in _pinned_arrays().items():
            assert np.array_equal(back[name], array) and back[name].dtype == array.dtype.newbyteorder("=")


def test_more_members_than_a_16_bit_count_holds():
    """No thresholds lowered: 65,536 members need the zip64 end record."""
    members = [PlannedMember(f"{i}", [Piece(b"x" * (i % 3))], deflate=i % 4096 == 0) for i in range(0x10000)]
    buffer = io.BytesIO()
    ZipPlan(members).write(buffer)
    data = buffer.getvalue()
    assert struct.unpack_from("<H", data, len(data) - 22 + 10) == (0xFFFF,)
    back = _strict_members(data)
    assert len(back) == 0x10000 and back["65534"] == (zipfile.ZIP_STORED, b"xx") and back["0"][0] == zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len(zf.infolist()) == 0x10000 and zf.read("4097") == b"xx"

def test_every_member_is_marked_a_regular_file(tmp_path):
    """spec/FORMAT.md §1: the Unix file type in the external attributes says regular file, for
    the archive's and the bundle's members, stored and compressed alike."""

    net = nn.Sequential()
    net.add(nn.Dense(2, in_units=3))
    net.initialize(seed=0)
    for compress in (False, True):
        path = tmp_path / f"m{compress}.mpk"
        modelpack.export(net, path, compress=compress)
        with zipfile.ZipFile(path) as archive:
            bundle = zipfile.ZipFile(io.BytesIO(archive.read("weights.npz")))
            for info in archive.infolist() + bundle.infolist():
                mode = info.external_attr >> 16
                assert info.create_system == 3 and stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o644, info


def test_data_written_before_its_crcs_gives_the_same_zip():
    """A writer may lay a zip out with unknown CRC-32s, write the large data (``bulk``), then
    put the CRCs in (``set_crcs``) and write the rest (``placed_but_bulk``): the same bytes."""
    rng = random.Random(3)
    datas = [rng.randbytes(size) for size in (10, 70_000, 0, 200_000, 300, 65_536, 5)]
    crcs = [zlib.crc32(data) for data in datas]

    def plan(known: list[int]) -> ZipPlan:
        return ZipPlan([PlannedMember(f"m{i}", [Piece(memoryview(d))], deflate=i == 4, known_crc=c)
                        for i, (d, c) in enumerate(zip(datas, known, strict=True))], comment=b"c")

    expected = io.BytesIO()
    plan(crcs).write(expected)
    late = plan([0] * len(datas))
    out = io.BytesIO()
    bulk = late.bulk()
    assert [piece.size for _, piece in bulk] == [70_000, 200_000, 65_536]
    for offset, piece in bulk:
        out.seek(offset)
        out.write(piece.data)
    late.set_crcs(crcs)
    for offset, piece in late.placed_but_bulk():
        out.seek(offset)
        out.write(piece.data)
    assert out.getvalue() == expected.getvalue()
    assert late.crc() == zlib.crc32(expected.getvalue())
    assert len(list(late.placed_but_bulk())) < len(datas), "small pieces between large ones are joined"


@pytest.mark.parametrize("join_up_to", [1 << 20, 500])
def test_the_rest_is_written_in_joined_runs_of_bounded_size(monkeypatch, join_up_to):
    """``placed_but_bulk`` covers every byte ``bulk`` leaves out (large bytes this module made
    among them, written alone), in runs of small pieces of at most ``_JOIN_UP_TO`` bytes."""
    monkeypatch.setattr(zipwrite, "_JOIN_UP_TO", join_up_to)
    rng = random.Random(5)
    sizes = [rng.choice([0, 3, 90, 400, 70_000]) for _ in range(60)]
    members = [PlannedMember(f"m{i}", [Piece(b"h" * (i % 7)), Piece(memoryview(rng.randbytes(size)))])
               for i, size in enumerate(sizes)]
    members.append(PlannedMember("made", [Piece(rng.randbytes(100_000))]))  # bytes: not a caller's
    plan = ZipPlan(members, comment=b"end")
    expected = b"".join(bytes(piece.data) for piece in plan.pieces())
    out = bytearray(len(expected))
    written = [False] * len(expected)
    for offset, piece in [*plan.bulk(), *plan.placed_but_bulk()]:
        assert not any(written[offset : offset + piece.size]), "each byte written once"
        out[offset : offset + piece.size] = piece.data
        written[offset : offset + piece.size] = [True] * piece.size
    assert bytes(out) == expected and all(written)
    rest = list(plan.placed_but_bulk())
    small = max(len(plan.directory), join_up_to)  # a single piece is never split
    assert all(piece.size <= small or piece.size >= 65_536 for _, piece in rest)
    assert len(rest) < 2 * len(members) + 1 - len(plan.bulk()), "small pieces are joined"
    assert [piece.size for _, piece in rest].count(100_000) == 1
