"""Compression ratios must not multiply: deflate nested in deflate, and many small members
that each stay under the per-member grace. Every deflated byte of a load, at any depth,
counts against one allowance: the file's size times ``max_compression_ratio``."""

from __future__ import annotations

import io
import zlib

import numpy as np
from craft import RawEntry, deflate, manifest_comment, npy_with_header, raw_zip
from harness import refused, tensors_manifest

import modelpack
from modelpack import Limits
from modelpack.errors import LimitError

COUNT = 16 * 2**20  # float32 zeros: 64 MiB


def _deflate_at_ratio(data: bytes, chunk: int) -> bytes:
    """Deflate ``data`` with a full flush every ``chunk`` bytes: a ratio well under 100 for
    zeros, and a stream so regular that deflating it again shrinks it ~500 times."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    view = memoryview(data)
    parts = [packer.compress(view[i : i + chunk]) + packer.flush(zlib.Z_FULL_FLUSH) for i in range(0, len(data), chunk)]
    return b"".join(parts) + packer.flush()


def _zeros_npy(count: int) -> bytes:
    return npy_with_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({count},), }}", bytes(4 * count))


def test_deflate_nested_in_deflate(tmp_path):
    plain = _zeros_npy(COUNT)
    inner = RawEntry(b"w.npy", _deflate_at_ratio(plain, 1024), method=8, plain=plain)
    bundle = raw_zip([inner])  # ~1 MiB: under the grace, so its own ratio is not checked
    manifest = tensors_manifest({"w": ("float32", [COUNT])})
    data = raw_zip([RawEntry(b"manifest.yaml", manifest),
                    RawEntry(b"weights.npz", deflate(bundle), method=8, plain=bundle)],
                   comment=manifest_comment(manifest))
    assert len(data) < 8 * 1024 and len(plain) / len(inner.data) < 100  # each level passes alone
    refused(tmp_path, data, LimitError,
            r"hostile\.mpk: member 'weights\.npz': the declared size of its deflated members together \(67\d{6}\) is "
            r"over the limit of \d+ \(the file's size times the ratio, plus 1 MiB; deflate nested in deflate, or many "
            r"small bombs\?\); pass limits=modelpack\.Limits\(max_compression_ratio=\.\.\.\) to allow more$", inspect=False)


def test_many_members_each_under_the_grace(tmp_path):
    count = 2**18 - 64  # just under 1 MiB of zeros each: the grace lets any one of them through
    members = {f"w{i}": ("float32", [count]) for i in range(40)}
    plain = _zeros_npy(count)
    packed = deflate(plain)
    bundle = raw_zip([RawEntry(f"w{i}.npy".encode(), packed, method=8, plain=plain) for i in range(40)])
    data = raw_zip([RawEntry(b"manifest.yaml", tensors_manifest(members)), RawEntry(b"weights.npz", bundle)],
                   comment=manifest_comment(tensors_manifest(members)))
    refused(tmp_path, data, LimitError,
            r"hostile\.mpk: member 'weights\.npz': the declared size of its deflated members together \(41\d{6}\)",
            inspect=False)


def test_allowance_is_the_files_size_times_the_ratio(tmp_path):
    """The same nested file loads once the user raises the ratio limit: the check is the limit."""
    count = 2**20
    plain = _zeros_npy(count)
    bundle = raw_zip([RawEntry(b"w.npy", _deflate_at_ratio(plain, 1024), method=8, plain=plain)])
    manifest = tensors_manifest({"w": ("float32", [count])})
    data = raw_zip([RawEntry(b"manifest.yaml", manifest),
                    RawEntry(b"weights.npz", deflate(bundle), method=8, plain=bundle)],
                   comment=manifest_comment(manifest))
    path = tmp_path / "nested.mpk"
    path.write_bytes(data)
    limits = Limits(max_compression_ratio=(len(plain) + len(bundle) - 2**20) / len(data) + 1)
    with modelpack.open(path, limits=limits) as archive:
        assert not archive.get_tensor("w").any()
    tighter = Limits(max_compression_ratio=limits.max_compression_ratio - 2)
    refused(tmp_path, data, LimitError, r"the declared size of its deflated members together", inspect=False,
            limits=tighter)


def test_compressed_exports_still_load():
    net_weights = {"w": np.random.default_rng(0).normal(size=(300, 300)).astype(np.float32), "b": np.zeros(300)}
    buffer = io.BytesIO()
    modelpack.save(buffer, net_weights, compress=True)
    back = modelpack.load(io.BytesIO(buffer.getvalue()))
    assert all(back[name].tobytes() == array.tobytes() for name, array in net_weights.items())
