"""Resource bombs: compression ratios, declared sizes that lie, member counts, overlapping
members, shape bombs. Each is refused before the declared amount is allocated (the harness
holds tracemalloc's peak under 8 MiB while the bomb declares gigabytes)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from craft import RawEntry, deflate, npy, npy_with_header, raw_archive, raw_zip
from harness import model_bytes, raw_with_bundle, refused, tensors_bytes, tensors_manifest

from modelpack import Limits
from modelpack.errors import FormatError, LimitError


def _zeros_npy_deflated(count: int) -> RawEntry:
    plain = npy_with_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({count},), }}", bytes(4 * count))
    return RawEntry(b"w.npy", deflate(plain), method=8, plain=plain)


def test_deflate_bomb_refused_by_ratio(tmp_path):
    count = 16 * 2**20  # 64 MiB of zeros deflate to ~64 KiB: ratio ~1000
    data = raw_with_bundle({"w": ("float32", [count])}, raw_zip([_zeros_npy_deflated(count)]))
    refused(tmp_path, data, LimitError,
            r"member 'w\.npy': its compression ratio \(\d+\) is over the limit of 100 \(67108992 bytes from \d+; a zip bomb\?\); "
            r"pass limits=modelpack\.Limits\(max_compression_ratio=", inspect=False)


def test_outer_deflate_bomb_refused_by_ratio(tmp_path):
    manifest = tensors_manifest({})
    padding = bytes(64 * 2**20)
    data = raw_archive(manifest, RawEntry(b"weights.npz", deflate(padding), method=8, plain=padding))
    refused(tmp_path, data, LimitError, r"hostile\.mpk: member 'weights\.npz': its compression ratio \(\d+\) is over the limit of 100 \(67108864 bytes")


def test_declared_size_beyond_total_limit(tmp_path):
    entry = _zeros_npy_deflated(1000)
    entry.size = 0xFFFFFFF0  # a lie that the ratio check (lifted here) would otherwise catch
    data = raw_with_bundle({"w": ("float32", [1000])}, raw_zip([entry]))
    refused(tmp_path, data, LimitError, r"its declared tensor bytes \(4294967280\) is over the limit of 1073741824; "
            r"pass limits=modelpack\.Limits\(max_total_bytes=\.\.\.\) to allow more",
            inspect=False, limits=Limits(max_compression_ratio=1e12, max_total_bytes=2**30))


def test_deflated_member_longer_than_declared(tmp_path):
    entry = _zeros_npy_deflated(1000)
    entry.size = len(entry.plain or b"") - 10
    data = raw_with_bundle({"w": ("float32", [1000])}, raw_zip([entry]))
    refused(tmp_path, data, FormatError, r"member 'w\.npy' is truncated: header says shape \(1000,\)", inspect=False)


def test_stored_member_declaring_more_than_it_holds(tmp_path):
    member = npy(np.zeros(4, np.float32))
    data = raw_with_bundle({"w": ("float32", [4])}, raw_zip([RawEntry(b"w.npy", member, size=0xFFFFFFF0)]))
    refused(tmp_path, data, FormatError, r"member 'w\.npy' is stored but declares 4294967280 bytes in 144",
            inspect=False)


def test_member_count_refused_before_the_directory_is_read(tmp_path):
    bundle = bytearray(raw_zip([RawEntry(b"w.npy", npy(np.zeros(1, np.float32)))]))
    struct.pack_into("<HH", bundle, len(bundle) - 22 + 8, 0xFFFF, 0xFFFF)  # "65535 entries"
    refused(tmp_path, raw_with_bundle({"w": ("float32", [1])}, bytes(bundle)), LimitError,
            r"member 'weights\.npz': its number of tensors \(65535\) is over the limit of 1000; "
            r"pass limits=modelpack\.Limits\(max_tensors=", inspect=False, limits=Limits(max_tensors=1000))


def test_directory_hiding_more_entries_than_declared(tmp_path):
    entries = [RawEntry(f"t{i}.npy".encode(), npy(np.zeros(1, np.float32))) for i in range(50)]
    bundle = raw_zip(entries, declared_count=1)
    index = {f"t{i}": ("float32", [1]) for i in range(50)}
    refused(tmp_path, raw_with_bundle(index, bundle), FormatError,
            r"the zip directory holds \d+ bytes beyond its 1 entries", inspect=False)


def test_too_many_tensors_for_the_limit(tmp_path):
    data = tensors_bytes({str(i): np.zeros(1) for i in range(5)})
    refused(tmp_path, data, LimitError, r"its number of tensors \(5\) is over the limit of 4", inspect=False,
            limits=Limits(max_tensors=4))


def test_total_bytes_limit(tmp_path):
    refused(tmp_path, model_bytes(), LimitError, r"its declared tensor bytes \(\d+\) is over the limit of 10; "
            r"pass limits=modelpack\.Limits\(max_total_bytes=\.\.\.\)", inspect=False, limits=Limits(max_total_bytes=10))


def test_overlapping_members_refused(tmp_path):
    """Fifield's non-recursive zip bomb: many directory entries share one compressed kernel."""
    kernel = deflate(bytes(2**20))
    inner = RawEntry(b"b.npy", kernel, method=8, plain=bytes(2**20))
    first = raw_zip([inner])
    # An outer entry whose data starts at b.npy's local header, covering it (quoted overlap).
    body = first[: first.index(b"PK\x01\x02")]
    header = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 33, zlib.crc32(body), len(body), len(body),
                         5, 0) + b"a.npy"
    bundle = bytearray(header + body)
    directory_offset = len(bundle)
    central = []
    for name, offset, size, crc in ((b"a.npy", 0, len(body), zlib.crc32(body)), (b"b.npy", len(header), len(kernel), zlib.crc32(bytes(2**20)))):
        method, plain = (0, size) if name == b"a.npy" else (8, 2**20)
        central.append(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, method, 0, 33, crc,
                                   size, plain, 5, 0, 0, 0, 0, 0o644 << 16, offset) + name)
    bundle += b"".join(central)
    bundle += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, len(bundle) - directory_offset, directory_offset, 0)
    data = raw_with_bundle({"a": ("float32", [1]), "b": ("float32", [1])}, bytes(bundle))
    refused(tmp_path, data, FormatError, r"member 'a\.npy' overlaps the next member by \d+ bytes", inspect=False)


def test_shape_bomb_refused_before_allocation(tmp_path):
    # 2^20 x 2^20 float64 = 8 TiB declared, 16 bytes of data.
    member = npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1048576, 1048576), }", bytes(16))
    data = raw_with_bundle({"w": ("float64", [2**20, 2**20])}, raw_zip([RawEntry(b"w.npy", member)]))
    refused(tmp_path, data, FormatError,
            r"member 'w\.npy' is truncated: header says shape \(1048576, 1048576\) of float64 \(8796093022208 bytes\), "
            r"the member holds 16 bytes of data", inspect=False)


def test_shape_whose_product_overflows(tmp_path):
    shape = (2**40, 2**40, 2**40)
    member = npy_with_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}", b"")
    data = raw_with_bundle({"w": ("float32", list(shape))}, raw_zip([RawEntry(b"w.npy", member)]))
    refused(tmp_path, data, FormatError, r"member 'w\.npy': shape \(1099511627776, .*\) overflows any array size",
            inspect=False)


def test_zero_sized_shape_with_huge_dimensions(tmp_path):
    shape = (0, 2**62)
    member = npy_with_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}", b"")
    data = raw_with_bundle({"w": ("float32", list(shape))}, raw_zip([RawEntry(b"w.npy", member)]))
    refused(tmp_path, data, FormatError, r"member 'w\.npy': shape \(0, 4611686018427387904\) overflows", inspect=False)
