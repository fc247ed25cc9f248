"""The aligned zip writer: plain zips for every reader, data on 64-byte boundaries."""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib

import numpy as np

import modelpack
from modelpack import nn
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


def _local_data_offsets(data: bytes, base: int = 0) -> dict[str, int]:
    """Data offset of each member, read from the local headers via the directory."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        offsets = {}
        for info in zf.infolist():
            name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
            offsets[info.filename] = base + info.header_offset + 30 + name_length + extra_length
    return offsets


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
    assert all(offset % ALIGN == 0 for offset in _local_data_offsets(data).values())


def test_archive_tensors_are_aligned_in_the_file_and_numpy_reads_the_bundle(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(33, in_units=7), nn.LayerNorm(in_channels=33), nn.Dense(5, in_units=33))
    net.initialize(seed=0)
    path = tmp_path / "net.mpk"
    modelpack.export(net, path)
    data = path.read_bytes()
    outer = _local_data_offsets(data)
    assert outer["weights.npz"] % ALIGN == 0
    bundle = data[outer["weights.npz"]:]
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        bundle = zf.read("weights.npz")
    inner = _local_data_offsets(bundle, base=outer["weights.npz"])
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
    for offset in _local_data_offsets(data).values():
        header_length = struct.unpack_from("<H", data, offset + 8)[0]
        assert (offset + 10 + header_length) % ALIGN == 0
