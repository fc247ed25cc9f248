"""verify(): every recorded checksum is checked, every problem reported, nothing raised for bytes.

The strongest test flips each byte of an archive in turn: verify must notice every flip
except in the few zip header fields that carry no meaning for a reader (versions, times,
attribute bits), and those are listed exactly.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import threading
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from craft import (
    RawEntry,
    central_offsets,
    deflate,
    edit,
    member_data_offsets,
    members_of,
    npy_header_end,
    npy_with_header,
    raw_archive,
    raw_zip,
    stored_zip,
    tensor_data_offsets,
    with_offsets,
)
from models import export_bytes, save_bytes, sequential_mlp

import modelpack
from modelpack import nn
from modelpack.errors import IntegrityError
from modelpack.format import bundle_scan
from modelpack.format.versions import FORMAT_VERSION
from modelpack.io import workers

EXAMPLES = Path(__file__).resolve().parents[2] / "spec" / "examples"


def _model() -> nn.Sequential:
    return sequential_mlp(8, 3, inputs=5, seed=4)


def test_good_archive_is_ok(tmp_path):
    path = tmp_path / "good.mpk"
    modelpack.export(_model(), path)
    report = modelpack.verify(path)
    assert report.ok and report.problems == [] and report.notes == []
    assert report.format_version == FORMAT_VERSION
    assert report.tensors == dict.fromkeys(["0.weight", "0.bias", "1.weight", "1.bias"], "ok")
    assert str(report) == f"{path}: OK (format {FORMAT_VERSION}), 4 tensors verified"


def test_old_archive_is_ok_with_a_note():
    report = modelpack.verify(EXAMPLES / "mlp.mpk")
    assert report.ok and report.format_version == "1.0"
    assert set(report.tensors.values()) == {"ok (CRC-32; the archive records no SHA-256)"}
    assert report.notes == ["tensors without a recorded SHA-256 (format 1.0) were checked by CRC-32 only"]


def test_a_flipped_byte_in_every_tensor_is_named(tmp_path):
    data = export_bytes(_model())
    for name, offset in tensor_data_offsets(data).items():
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        path = tmp_path / f"{name}.mpk"
        path.write_bytes(bytes(damaged))
        report = modelpack.verify(path)
        assert not report.ok
        assert report.tensors[name] == "damaged"
        assert any(f"member '{name}.npy' is damaged: CRC-32" in problem for problem in report.problems)
        with pytest.raises(IntegrityError, match=rf"{path.name}: member 'weights\.npz': member '{name}\.npy' is damaged"):
            modelpack.load(path)


def test_a_flipped_byte_in_the_manifest(tmp_path):
    data = export_bytes(_model())
    damaged = bytearray(data)
    damaged[data.index(b"\"producer\":") + 1] ^= 0x20  # "p" -> "P": still valid, different bytes
    path = tmp_path / "m.mpk"
    path.write_bytes(bytes(damaged))
    report = modelpack.verify(path)
    assert any("member 'manifest.yaml' is damaged: CRC-32" in p for p in report.problems)
    assert any("member 'manifest.yaml' is damaged: its SHA-256" in p for p in report.problems)
    with pytest.raises(IntegrityError, match=r"m\.mpk: member 'manifest\.yaml' is damaged: CRC-32"):
        modelpack.load(path)


# Header fields no reader acts on: versions, times and dates, internal attributes, the
# permission bits of external attributes (the file-type bits are checked), and the contents
# of local extra fields (the alignment padding; its length is checked through the offsets).
def _meaningless_offsets(data: bytes) -> set[int]:
    ignored: set[int] = set()
    for central in central_offsets(data):
        ignored |= set(range(central + 4, central + 8)) | set(range(central + 12, central + 16))
        ignored |= {central + 36, central + 37, central + 39, central + 40}
        local = struct.unpack_from("<L", data, central + 42)[0]
        ignored |= {local + 4, local + 5} | set(range(local + 10, local + 14))
        name_length, extra_length = struct.unpack_from("<HH", data, local + 26)
        extra_start = local + 30 + name_length
        ignored |= set(range(extra_start, extra_start + extra_length))
    return ignored


def test_every_meaningful_byte_is_covered():
    data = export_bytes(_model())
    missed = []
    for offset in range(len(data)):
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        if modelpack.verify(io.BytesIO(bytes(damaged))).ok:
            missed.append(offset)
    assert missed, "the flips should include harmless ones (e.g. timestamps)"
    assert set(missed) <= _meaningless_offsets(data), sorted(set(missed) - _meaningless_offsets(data))


def test_sha256_catches_what_crc_cannot(tmp_path):
    """Two same-shaped tensors swapped with their CRCs: every zip checksum still matches."""
    arrays = {"a": np.zeros(4, np.float32), "b": np.ones(4, np.float32)}

    def swap(members: dict[str, bytes]) -> None:
        members["a.npy"], members["b.npy"] = members["b.npy"], members["a.npy"]

    path = tmp_path / "swapped.mpk"
    path.write_bytes(edit(save_bytes(arrays), bundle=swap, rehash=False))
    assert modelpack.load(path)["a"][0] == 1.0  # the default check is CRC-32: it passes
    with pytest.raises(IntegrityError, match=r"swapped\.mpk: member 'weights\.npz': member 'a\.npy': tensor 'a' "
                       r"is damaged: its SHA-256 is [0-9a-f]{64}, the manifest records [0-9a-f]{64}"):
        modelpack.load(path, integrity="sha256")
    report = modelpack.verify(path)
    assert report.tensors == {"a": "damaged", "b": "damaged"}
    assert len(report.problems) == 2, "verify goes on after the first problem"


def test_every_problem_is_reported(tmp_path):
    data = export_bytes(_model())
    damaged = bytearray(data)
    offsets = tensor_data_offsets(data)
    for name in ("0.weight", "1.bias"):
        damaged[offsets[name]] ^= 0x80
    path = tmp_path / "two.mpk"
    path.write_bytes(bytes(damaged))
    report = modelpack.verify(path)
    assert report.tensors["0.weight"] == report.tensors["1.bias"] == "damaged"
    assert report.tensors["0.bias"] == report.tensors["1.weight"] == "ok"
    # Each damaged tensor (its CRC-32) and the bundle as a whole (its outer CRC-32).
    assert len(report.problems) == 3, report.problems
    assert str(report).startswith(f"{path}: 3 problems (format {FORMAT_VERSION})\n  - ")


def test_manifest_that_does_not_fit_its_architecture(tmp_path):
    data = edit(export_bytes(_model()), manifest=lambda d: d["architecture"]["children"]["1"]["config"].update(units=4))
    path = tmp_path / "misfit.mpk"
    path.write_bytes(data)
    report = modelpack.verify(path)
    assert report.problems == [
        f"{path}: manifest.yaml: parameter '1.weight' is float32 (4, 8) in the architecture, float32 (3, 8) "
        "in the weights index",
        f"{path}: manifest.yaml: parameter '1.bias' is float32 (4,) in the architecture, float32 (3,) in the "
        "weights index",
    ]


def test_garbage_is_reported_not_raised(tmp_path):
    path = tmp_path / "junk.mpk"
    path.write_bytes(b"\x00" * 1000)
    report = modelpack.verify(path)
    assert report.problems == [f"{path}: not a modelpack archive (not a zip file: no end-of-directory record)"]
    assert report.format_version is None and report.tensors == {}


def test_damaged_manifest_still_lets_tensors_be_checked(tmp_path):
    members = members_of(export_bytes(_model()))
    data = stored_zip([("manifest.yaml", b"{not yaml"), ("weights.npz", members["weights.npz"])])
    path = tmp_path / "half.mpk"
    path.write_bytes(data)
    report = modelpack.verify(path)
    assert len(report.problems) == 1 and "manifest is not valid safe YAML" in report.problems[0]
    assert set(report.tensors) == {"0.weight", "0.bias", "1.weight", "1.bias"}


def test_unopenable_path_raises():
    with pytest.raises(FileNotFoundError):
        modelpack.verify("/nonexistent/model.mpk")


def test_outer_crc_covers_the_bundle_headers(tmp_path):
    """A flipped byte in the bundle's own directory is caught by the outer CRC-32 alone."""
    original = export_bytes(_model())
    bundle = members_of(original)["weights.npz"]
    start = original.index(bundle)
    data = bytearray(original)
    data[original.index(b"PK\x01\x02") + 12] ^= 0xFF  # the bundle's first directory entry's time
    path = tmp_path / "t.mpk"
    path.write_bytes(bytes(data))
    modelpack.load(path)  # load checks what it uses; a timestamp is not used
    report = modelpack.verify(path)
    found, recorded = zlib.crc32(data[start : start + len(bundle)]), zlib.crc32(bundle)
    assert report.problems == [f"{path}: member 'weights.npz' is damaged: CRC-32 is {found:08x}, "
                               f"the zip directory records {recorded:08x}"]


@pytest.mark.parametrize(("damage", "code"), [(False, 0), (True, 1)])
def test_cli_exit_codes(tmp_path, damage, code):
    data = bytearray(export_bytes(_model()))
    if damage:
        data[next(iter(tensor_data_offsets(bytes(data)).values()))] ^= 1
    path = tmp_path / "cli.mpk"
    path.write_bytes(bytes(data))
    run = subprocess.run([sys.executable, "-m", "modelpack", "verify", str(path), "--tensors"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == code, run.stderr
    # A damaged tensor is two problems: its own CRC-32 and the bundle's.
    assert run.stdout.startswith(f"{path}: {'2 problems' if damage else 'OK'}")
    assert "  0.weight: " in run.stdout


@pytest.mark.parametrize("where", ["local-header-time", "npy-header", "data", "directory-time"])
def test_large_tensors_crcs_are_combined_into_the_bundles(tmp_path, where):
    """Large stored tensors are read once: their CRC-32s go into the bundle's by combining, so
    a byte flipped anywhere in the bundle is still found, from a file (positioned reads)."""
    arrays = {"big": np.arange(128 * 130, dtype=np.float32).reshape(128, 130), "small": np.ones(3, np.float32)}
    buffer = io.BytesIO()
    modelpack.save(buffer, arrays)
    original = buffer.getvalue()
    bundle_at = member_data_offsets(original)["weights.npz"]
    inner = member_data_offsets(members_of(original)["weights.npz"], base=bundle_at)
    big = inner["big.npy"]
    header = original.rindex(b"PK\x03\x04", 0, big)
    offset = {"local-header-time": header + 10, "npy-header": big + 20,
              "data": npy_header_end(original, big) + 1000,
              "directory-time": original.index(b"PK\x01\x02", big) + 12}[where]
    data = bytearray(original)
    data[offset] ^= 0x01
    path = tmp_path / "t.mpk"
    path.write_bytes(bytes(data))
    report = modelpack.verify(path)
    assert not report.ok
    assert any("member 'weights.npz' is damaged: CRC-32" in problem for problem in report.problems)
    streamed = modelpack.verify(io.BytesIO(bytes(data)))  # no descriptor: every member streamed
    assert report.problems == [p.replace("<file object>", str(path)) for p in streamed.problems]


@pytest.mark.parametrize(("chunk", "threads"), [(None, False), (200, False), (200, True)])
def test_the_one_pass_over_a_file_finds_what_streaming_finds(tmp_path, monkeypatch, chunk, threads):
    """verify reads a file's stored tensors in runs with positioned reads (``bundle_scan``),
    a file object's member by member: every byte flipped in the bundle gives both the same
    problems. With a small chunk, tensors are split across runs and read chunk by chunk, on
    this thread (small members) or, with ``threads``, on the pool's."""
    from modelpack.format import bundle_scan

    if chunk is not None:
        monkeypatch.setattr(bundle_scan, "CHUNK", chunk)
    if threads:
        monkeypatch.setattr(bundle_scan, "SMALL_MEMBER", 0)
    arrays = {"a": np.arange(60, dtype=np.float32), "b": np.ones((2, 3), np.int16),
              "c": np.zeros(0, np.float64), "d": np.arange(5, dtype=np.uint8)}
    original = save_bytes(arrays)
    bundle_at = member_data_offsets(original)["weights.npz"]
    bundle = members_of(original)["weights.npz"]
    path = tmp_path / "t.mpk"
    for offset in range(bundle_at, bundle_at + len(bundle)):
        damaged = bytearray(original)
        damaged[offset] ^= 0x04
        path.write_bytes(bytes(damaged))
        report = modelpack.verify(path)
        streamed = modelpack.verify(io.BytesIO(bytes(damaged)))
        assert report.problems == [p.replace("<file object>", str(path)) for p in streamed.problems], offset
        assert report.tensors == streamed.tensors, offset


def test_a_damaged_tensor_among_10000_is_named(tmp_path):
    """At 10,000 tensors (the scan's runs of many members, as the benchmark's ``10kt``) one
    flipped byte, in a tensor above hashlib's 2 KiB threshold for releasing the GIL and in one
    below it, is reported by the tensor's name, and every other tensor is ok."""
    arrays = {f"layer{i}.{'weight' if i % 2 else 'bias'}": np.full(600 if i % 2 else 3, i, np.float32)
              for i in range(10_000)}
    data = save_bytes(arrays)
    offsets = tensor_data_offsets(data)
    for name in ("layer7777.weight", "layer5000.bias"):
        damaged = bytearray(data)
        damaged[offsets[name] + 5] ^= 0x10
        path = tmp_path / "many.mpk"
        path.write_bytes(bytes(damaged))
        report = modelpack.verify(path)
        assert [tensor for tensor, state in report.tensors.items() if state != "ok"] == [name]
        assert report.tensors[name] == "damaged" and len(report.tensors) == 10_000
        # (the outer member's CRC-32 covers the bundle's bytes: it is reported first)
        assert len(report.problems) == 2, report.problems
        assert "member 'weights.npz' is damaged: CRC-32" in report.problems[0]
        assert f"member '{name}.npy' is damaged: CRC-32" in report.problems[1]


def test_many_tensors_some_without_a_hash(tmp_path):
    """A format 1.0 manifest may record a SHA-256 for some tensors only: among many members
    (scanned as columns) the unhashed ones are checked by CRC-32 and say so, a hash that does
    not match is still found and named, and the note is given."""
    arrays = {f"t{i}": np.full(i % 5 + 1, i, np.float32) for i in range(120)}

    def partly_hashed(document):
        document["format_version"] = "1.0"
        for i in range(0, 120, 3):
            del document["weights"][f"t{i}"]["sha256"]
        document["weights"]["t7"]["sha256"] = "e" * 64

    path = tmp_path / "partly.mpk"
    path.write_bytes(edit(save_bytes(arrays), manifest=partly_hashed))
    report = modelpack.verify(path)
    assert len(report.problems) == 1 and "tensor 't7' is damaged" in report.problems[0], report.problems
    assert "e" * 64 in report.problems[0]
    assert report.tensors["t7"] == "damaged" and report.tensors["t1"] == "ok"
    assert report.tensors["t3"] == "ok (CRC-32; the archive records no SHA-256)"
    assert report.notes == ["tensors without a recorded SHA-256 (format 1.0) were checked by CRC-32 only"]


def test_many_tensors_a_misplaced_offset_is_named_and_a_missing_one_is_allowed(tmp_path):
    """Among many members (offsets compared as columns) a recorded offset where another
    member starts is reported for that tensor alone; an entry without an offset (allowed)
    is not a problem."""
    arrays = {f"t{i}": np.full(i % 5 + 1, i, np.float32) for i in range(120)}

    def moved(document):
        document["weights"]["t30"]["offset"] = document["weights"]["t31"]["offset"]
        del document["weights"]["t60"]["offset"]

    path = tmp_path / "moved.mpk"
    path.write_bytes(edit(save_bytes(arrays), manifest=moved))
    report = modelpack.verify(path)
    assert len(report.problems) == 1 and "records offset" in report.problems[0], report.problems
    assert "for tensor 't30', whose member starts at offset" in report.problems[0]
    assert [name for name, state in report.tensors.items() if state != "ok"] == ["t30"]
    assert report.tensors["t30"] == "invalid"

    def unplaced(document):
        del document["weights"]["t60"]["offset"]

    path.write_bytes(edit(save_bytes(arrays), manifest=unplaced))
    report = modelpack.verify(path)
    assert report.ok and set(report.tensors.values()) == {"ok"}, report.problems


@pytest.mark.parametrize("count", [3, 120])
def test_a_listed_tensor_missing_from_the_bundle_is_reported(tmp_path, count):
    """Few or many members (the many are vetted and scanned as columns): a tensor the manifest
    lists but the bundle lacks is reported once, and the others still verify."""
    arrays = {f"t{i}": np.full(i % 5 + 1, i, np.float32) for i in range(count)}
    ghost = {"dtype": "float32", "shape": [2], "sha256": "0" * 64, "offset": 0}
    data = edit(save_bytes(arrays), manifest=lambda d: d["weights"].update(ghost=ghost))
    path = tmp_path / "ghost.mpk"
    path.write_bytes(data)
    report = modelpack.verify(path)
    assert report.problems == [
        f"{path}: member 'weights.npz': tensor 'ghost' listed in the manifest is missing from the bundle"
    ]
    assert report.tensors["ghost"] == "missing" and report.tensors["t1"] == "ok"
    assert len(report.tensors) == count + 1


def test_many_tensors_damage_and_other_headers_are_each_named(tmp_path):
    """In a bundle of many members (scanned as columns): a flipped data byte, a recorded
    hash that does not match, and a member in another writer's header are each found, and
    every other tensor is ok."""
    arrays = {f"t{i}": np.arange(i % 7 + 1, dtype=np.float32) for i in range(150)}

    def other_header(members):
        members["t5.npy"] = npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", arrays["t5"].tobytes()
        )
        flipped = bytearray(members["t9.npy"])
        flipped[-1] ^= 1
        members["t9.npy"] = bytes(flipped)

    def wrong_hash(document):
        document["weights"]["t20"]["sha256"] = "f" * 64

    data = edit(save_bytes(arrays), manifest=wrong_hash, bundle=other_header)
    path = tmp_path / "many.mpk"
    path.write_bytes(data)
    report = modelpack.verify(path)
    assert report.tensors["t9"] == "damaged" and report.tensors["t20"] == "damaged"
    assert report.tensors["t5"] == "ok"  # another writer's header, the same data: checked entry by entry
    assert [name for name, state in report.tensors.items() if state != "ok"] == ["t9", "t20"]
    assert len(report.problems) == 2, report.problems
    # (the rebuilt bundle records the flipped byte's CRC-32: only the manifest's SHA-256 knows)
    assert "tensor 't9' is damaged" in report.problems[0] and "SHA-256" in report.problems[0]
    assert "tensor 't20' is damaged" in report.problems[1] and "f" * 64 in report.problems[1]


@pytest.mark.parametrize("count", [3, 120])
def test_a_member_the_manifest_does_not_list_is_reported(tmp_path, count):
    """A bundle member the manifest lacks is named, and the listed ones still verify: its
    entry is missing from the columns, so they are taken entry by entry."""
    arrays = {f"t{i}": np.full(i % 5 + 1, i, np.float32) for i in range(count)}
    data = edit(save_bytes(arrays), manifest=lambda d: d["weights"].pop("t1"))
    path = tmp_path / "extra.mpk"
    path.write_bytes(data)
    report = modelpack.verify(path)
    assert report.problems == [f"{path}: member 'weights.npz': holds tensor 't1', which the manifest does not list"]
    assert report.tensors["t0"] == "ok" and len(report.tensors) == count


def test_many_members_some_deflated(tmp_path):
    """Deflated members are not scanned in place: they are read entry by entry, the stored
    ones around them scanned, and damage in either kind is found."""
    arrays = {f"t{i}": np.zeros(64 if i % 2 else 3, np.float32) for i in range(120)}
    data = save_bytes(arrays)
    inner = members_of(members_of(data)["weights.npz"])
    entries = [RawEntry(name.encode(), deflate(body) if name.endswith("0.npy") else body,
                        method=8 if name.endswith("0.npy") else 0, plain=body)
               for name, body in inner.items()]
    document = with_offsets(members_of(data)["manifest.yaml"], raw_zip(entries))
    good = raw_archive(document, raw_zip(entries))
    path = tmp_path / "mixed.mpk"
    path.write_bytes(good)
    report = modelpack.verify(path)
    assert report.ok, report.problems
    assert set(report.tensors.values()) == {"ok"} and len(report.tensors) == 120
    for damaged_name in ("t20.npy", "t21.npy"):
        body = bytearray(inner[damaged_name])
        body[-1] ^= 1
        changed = [RawEntry(e.name, deflate(bytes(body)) if e.method == 8 else bytes(body), method=e.method,
                            plain=bytes(body), crc=zlib.crc32(inner[damaged_name]))
                   if e.name == damaged_name.encode() else e for e in entries]
        bundle = raw_zip(changed)  # (a deflated member's new size moves the members after it)
        path.write_bytes(raw_archive(with_offsets(document, bundle), bundle))
        report = modelpack.verify(path)
        assert report.tensors[damaged_name[:-4]] == "damaged", report.problems
        assert [name for name, state in report.tensors.items() if state != "ok"] == [damaged_name[:-4]]


def test_small_members_are_scanned_on_this_thread_large_ones_on_the_pool(tmp_path, monkeypatch):
    """Members of a few KiB are hashed faster on one thread than handed between threads;
    larger ones are spread over the pool. Either way every tensor is verified."""
    import threading

    from modelpack.format import bundle_scan

    monkeypatch.setattr(bundle_scan, "CHUNK", 4096)
    threads = []
    original = bundle_scan._scan_run
    monkeypatch.setattr(bundle_scan, "_scan_run",
                        lambda *args: threads.append(threading.current_thread()) or original(*args))
    for arrays, pooled in [({f"t{i}": np.zeros(100, np.float32) for i in range(100)}, False),
                           ({f"t{i}": np.zeros(20_000, np.float32) for i in range(4)}, True)]:
        path = tmp_path / f"{len(arrays)}.mpk"
        path.write_bytes(save_bytes(arrays))
        threads.clear()
        report = modelpack.verify(path)
        assert report.ok and set(report.tensors.values()) == {"ok"} and len(report.tensors) == len(arrays)
        assert len(threads) > 1
        assert (threading.main_thread() not in threads) is pooled, threads


def test_the_scan_reuses_each_threads_chunk(tmp_path):
    """Each thread reads its runs into one chunk of memory kept for the next verify: a fresh
    megabyte per run is fresh pages (glibc maps blocks that large anew), faulted in one by one,
    which cost a fresh process 40% of a 100 MB verify."""
    arrays = {f"t{i}": np.full(300_000 if i % 2 else 1000, i, np.float32) for i in range(8)}
    path = tmp_path / "runs.mpk"
    modelpack.save(path, arrays)
    # Every pool thread makes its chunk once (each task waits for the others, so each runs on
    # a thread of its own), whichever threads the verifies below get and whatever CHUNK was
    # when an earlier test lowered it.
    barrier = threading.Barrier(workers.WORKERS)

    def chunk_of_this_thread() -> bytearray:
        barrier.wait(timeout=10)
        return bundle_scan._chunk_buffer()

    pool = workers.shared_pool()
    for done in [pool.submit(chunk_of_this_thread) for _ in range(workers.WORKERS)]:
        assert len(done.result()) >= bundle_scan.CHUNK
    assert modelpack.verify(path).ok
    tracemalloc.start()
    try:
        assert modelpack.verify(path).ok
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < bundle_scan.CHUNK // 2, peak


def _manifest_shape(document):
    document["weights"]["t1"]["shape"] = [2, 3]


def _manifest_dtype(document):
    document["weights"]["t1"]["dtype"] = "int32"


def _member_longer(members):
    members["t1.npy"] += b"\0" * 4


def _member_shorter(members):
    members["t1.npy"] = members["t1.npy"][:-4]


@pytest.mark.parametrize("count", [3, 120])  # entry by entry; scanned as columns
@pytest.mark.parametrize(("damage", "found"), [
    ({"manifest": _manifest_shape}, "member 't1.npy': the manifest says shape (2, 3), the array header says (6,)"),
    ({"manifest": _manifest_dtype}, "member 't1.npy': the manifest says dtype int32, the array header says float32"),
    ({"bundle": _member_longer}, "member 't1.npy' has bytes after its data: header says shape (6,) of float32 "
                                 "(24 bytes), the member holds 28 bytes of data"),
    ({"bundle": _member_shorter}, "member 't1.npy' is truncated: header says shape (6,) of float32 (24 bytes), "
                                  "the member holds 20 bytes of data"),
], ids=["shape", "dtype", "longer", "shorter"])
def test_a_member_that_does_not_fit_its_entry_is_named(tmp_path, count, damage, found):
    """A header that disagrees with the manifest's dtype or shape, or a member whose size is
    not the header's: the scan cannot vouch for it, and the reader's own check words it,
    whether the bundle is checked entry by entry or as columns; every other tensor is ok."""
    arrays = {f"t{i}": np.arange(6, dtype=np.float32) + i for i in range(count)}
    path = tmp_path / "misfit.mpk"
    path.write_bytes(edit(save_bytes(arrays), **damage))
    report = modelpack.verify(path)
    assert report.problems == [f"{path}: member 'weights.npz': {found}"]
    assert {name: state for name, state in report.tensors.items() if state != "ok"} == {"t1": "invalid"}
    assert len(report.tensors) == count
