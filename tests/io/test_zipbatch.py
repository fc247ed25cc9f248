"""The column checks of large zip directories (io.zipbatch) vouch only for what the exact,
entry-by-entry checks (io.zipentries) accept: on valid zips of every writer they find the same
members, and on damaged ones they step aside, so the exact path refuses with its own words."""

from __future__ import annotations

import io
import random
import struct
import zipfile
from pathlib import Path
from typing import IO

import numpy as np
import pytest
from craft import RawEntry, deflate, raw_zip, stored_zip

from modelpack.errors import ModelpackError
from modelpack.io import npz_write, zipbatch, zipread
from modelpack.io.zipentries import central_entries, locate_data
from modelpack.io.zipio import MemberTable, Source
from modelpack.io.zipread import _end_record  # noqa: PLC2701  (the directory's position)


def _both(data: bytes, folder: Path | None = None) -> tuple[MemberTable | None, MemberTable | ModelpackError]:
    """(what the column checks vouch for, what the exact checks find or raise), reading from
    memory, or with ``folder`` from a file there (whose local headers are mapped, not read)."""
    if folder is None:
        return _both_from(io.BytesIO(data))
    path = folder / "t.zip"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        return _both_from(handle)


def _both_from(handle: IO[bytes]) -> tuple[MemberTable | None, MemberTable | ModelpackError]:
    source = Source.whole(handle, where="t.zip")
    count, offset, size, _, _ = _end_record(source, "a zip")
    raw = source.read_at(offset, size)
    batch = zipbatch.check_directory(source, raw, count, offset, 100.0, 1 << 20)
    try:
        exact: MemberTable | ModelpackError = MemberTable.of(
            locate_data(source, central_entries(raw, count, "t.zip"), offset)
        )
    except ModelpackError as exc:
        exact = exc
    return batch, exact


MEMBERS = {f"layer{i}.weight.npy": bytes(range(i % 7, 40 + i)) for i in range(40)}


def _deflated() -> bytes:
    return raw_zip([RawEntry(name.encode(), deflate(data), method=8, plain=data) for name, data in MEMBERS.items()])


def _utf8_names() -> bytes:
    return raw_zip([RawEntry(f"é{i}.npy".encode(), bytes(i), flags=0x800) for i in range(40)])


def _modelpack_bundle() -> bytes:
    handle = io.BytesIO()
    npz_write.write_npz(handle, {f"t{i}": np.full(i % 5 + 1, i, np.float32) for i in range(300)})
    return handle.getvalue()


@pytest.mark.parametrize("make", [lambda: stored_zip(MEMBERS), _deflated, _utf8_names, _modelpack_bundle],
                         ids=["zipfile-stored", "deflated", "utf8-names", "modelpack-bundle"])
@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "mapped-file"])
def test_valid_zips_give_the_exact_paths_members(make, on_disk, tmp_path):
    batch, exact = _both(make(), tmp_path if on_disk else None)
    assert batch is not None and batch == exact


@pytest.mark.parametrize("entries", [
    [RawEntry(f"m{i}".encode(), b"x", local_name=b"other" if i == 20 else None) for i in range(40)],
    [RawEntry(f"m{i}".encode(), b"x", flags=0x8 if i == 3 else 0, descriptor=b"\0" * 12 if i == 3 else b"")
     for i in range(40)],
    [RawEntry(b"../up" if i == 7 else f"m{i}".encode(), b"x") for i in range(40)],
    [RawEntry(b"m1" if i == 9 else f"m{i}".encode(), b"x") for i in range(40)],
    [RawEntry(f"m{i}".encode(), b"x", external_attr=0o120777 << 16 if i == 5 else 0o644 << 16)
     for i in range(40)],
    [RawEntry(f"m{i}".encode(), b"x", crc=1 if i == 30 else None) for i in range(40)],
], ids=["local-name", "descriptor", "dot-dot", "duplicate", "symlink", "crc-only"])
@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "mapped-file"])
def test_unusual_entries_are_left_to_the_exact_path(entries, on_disk, tmp_path):
    batch, exact = _both(raw_zip(entries), tmp_path if on_disk else None)
    if isinstance(exact, ModelpackError):
        assert batch is None
    else:
        assert batch is None or batch == exact


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "mapped-file"])
def test_random_damage_is_never_vouched_for_when_the_exact_path_refuses(on_disk, tmp_path):
    """Bytes of the directory and the local headers flipped at random: the column checks
    either step aside (None) or agree with the exact checks exactly."""
    data = stored_zip(MEMBERS)
    rng = random.Random(15)
    stepped_aside = 0
    for _ in range(400):
        damaged = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            # mostly inside the directory and the headers, where the checks look
            at = rng.randrange(len(data) - 22) if rng.random() < 0.3 else rng.randrange(
                data.rindex(b"PK\x05\x06") - 46 * 40 - 800, data.rindex(b"PK\x05\x06"))
            damaged[at] = rng.randrange(256)
        try:
            batch, exact = _both(bytes(damaged), tmp_path if on_disk else None)
        except ModelpackError:
            continue  # the end record itself is damaged: neither path runs
        if batch is None:
            stepped_aside += 1
        else:
            assert not isinstance(exact, ModelpackError), exact
            assert batch == exact
    assert stepped_aside > 100  # most damage is seen


def test_read_directory_uses_the_columns_from_its_threshold(monkeypatch):
    calls = []
    original = zipbatch.check_directory
    monkeypatch.setattr(zipbatch, "check_directory", lambda *a: calls.append(1) or original(*a))
    members = {f"m{i}.npy": bytes(i % 7) for i in range(zipread.BATCH_MIN)}
    small = {name: members[name] for name in list(members)[: zipread.BATCH_MIN - 1]}
    options = {"kind": "a zip", "max_members": 1000, "too_many": ModelpackError, "max_ratio": 100.0,
               "grace_bytes": 1 << 20, "max_inflated": float("inf")}
    zipread.read_directory(Source.whole(io.BytesIO(stored_zip(small)), where="s"), **options)
    assert not calls
    zipread.read_directory(Source.whole(io.BytesIO(stored_zip(members)), where="m"), **options)
    assert calls == [1]
    assert zipfile.ZipFile(io.BytesIO(stored_zip(members))).namelist() == list(members)


@pytest.mark.parametrize("name", [
    b"", b"..", b"a\\b", b"a\x01b", b"a\x7fb", b"a\x1fb", b"/abs", b"a/", b"a//b", b"a/../b", b"../a",
    b"a/..", b"C:/x", b"a/b.npy", b"a:/b", b"..a", b"a..b", b"a/..b/c", "é/ü.npy".encode(),
], ids=lambda name: repr(name))
@pytest.mark.parametrize("at", [0, 17, 39])
def test_names_with_and_without_slashes_are_vouched_only_when_exact_accepts(name, at):
    """Names are checked as one text: without a "/" by two searches, with one by the full
    patterns; either way the columns vouch exactly for the names the exact path accepts."""
    flags = 0x800 if not name.isascii() else 0
    entries = [RawEntry(name if i == at else f"m{i}".encode(), b"x", flags=flags) for i in range(40)]
    batch, exact = _both(raw_zip(entries))
    if isinstance(exact, ModelpackError):
        assert batch is None
    else:
        assert batch is not None and batch == exact


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "mapped-file"])
@pytest.mark.parametrize("at", [0, 20, 39])
def test_local_names_of_the_same_length_are_compared(on_disk, at, tmp_path):
    """A local header's name that differs from its entry's in one byte (same length, so no
    length check sees it) is found, the first, a middle and the last member alike."""
    entries = [RawEntry(f"m{i:02d}.npy".encode(), b"x" * (i % 3), local_name=b"mXX.npy" if i == at else None)
               for i in range(40)]
    batch, exact = _both(raw_zip(entries), tmp_path if on_disk else None)
    assert batch is None and isinstance(exact, ModelpackError)


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "mapped-file"])
@pytest.mark.parametrize("differ", [False, True])
def test_local_names_near_the_end_of_the_member_area(on_disk, differ, tmp_path):
    """The last member has a short name and no data, so a record of the longest name's width
    would run past the member area: its names are compared byte by byte instead."""
    entries = [RawEntry(f"member{i}.npy".encode(), b"x") for i in range(40)]
    entries.append(RawEntry(b"z", b"", local_name=b"y" if differ else None))
    batch, exact = _both(raw_zip(entries), tmp_path if on_disk else None)
    if differ:
        assert batch is None and isinstance(exact, ModelpackError)
    else:
        assert batch is not None and batch == exact


def _directory_shuffled(data: bytes, seed: int) -> bytes:
    """The same zip with its directory's entries listed in another order than the file's."""
    end = data.rindex(b"PK\x05\x06")
    count, size, offset = struct.unpack("<H2L", data[end + 10: end + 20])
    records, at = [], offset
    for _ in range(count):
        name_length, extra_length, comment_length = struct.unpack("<3H", data[at + 28: at + 34])
        width = 46 + name_length + extra_length + comment_length
        records.append(data[at: at + width])
        at += width
    random.Random(seed).shuffle(records)
    return data[:offset] + b"".join(records) + data[offset + size:]


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "mapped-file"])
@pytest.mark.parametrize("local_name", [None, b"layer3.weight.npX"])
def test_a_directory_listed_out_of_file_order(on_disk, local_name, tmp_path):
    """Members listed in another order than the file's are located in file order and given
    back in the directory's; a local name that differs is still found."""
    entries = [RawEntry(name.encode(), data, local_name=local_name if i == 3 else None)
               for i, (name, data) in enumerate(MEMBERS.items())]
    batch, exact = _both(_directory_shuffled(raw_zip(entries), seed=15), tmp_path if on_disk else None)
    if local_name is None:
        assert batch is not None and batch == exact
        assert batch.names != list(MEMBERS)
    else:
        assert batch is None and isinstance(exact, ModelpackError)


def _modelpack_bundle_areas() -> tuple[bytes, list[int]]:
    """A bundle as modelpack writes it, and the offsets where the checks look: its directory
    and every local header (fixed part and name)."""
    data = _modelpack_bundle()
    source = Source.whole(io.BytesIO(data), where="t.zip")
    count, offset, size, _, _ = _end_record(source, "a zip")
    members = central_entries(source.read_at(offset, size), count, "t.zip")
    looked_at = list(range(offset, offset + size))
    for member in members:
        looked_at += range(member.header_offset, member.header_offset + 30 + len(member.name))
    return data, looked_at


def test_the_writers_bundle_takes_the_one_comparison_checks(monkeypatch):
    """A bundle as modelpack writes it is vouched for by comparing each entry with what the
    writer puts there, and each local header with its entry, byte for byte (not field by
    field), and gives the exact path's members."""
    taken = []
    for name in ("_as_written", "_same_entries"):
        original = getattr(zipbatch, name)
        monkeypatch.setattr(zipbatch, name, lambda *a, _f=original, _n=name: taken.append((_n, _f(*a))) or _f(*a))
    batch, exact = _both(_modelpack_bundle())
    assert batch is not None and batch == exact
    assert taken == [("_as_written", True), ("_same_entries", True)]


@pytest.mark.parametrize("field,value", [
    ("signature", 0x02014B51), ("made_by", 0x0014), ("flags", 0x0001), ("flags", 0x0008), ("method", 8),
    ("disk", 1), ("external_attr", 0o120777 << 16), ("external_attr", 0x10 | 0o100644 << 16),
    ("size", 0xFFFFFFFF), ("header_offset", 0xFFFFFFFF),
])
def test_an_entry_unlike_the_writers_is_not_vouched_for_by_the_comparison(field, value):
    """Changing any field the general checks read makes the one comparison step aside (then
    those checks decide)."""
    data, _ = _modelpack_bundle_areas()
    source = Source.whole(io.BytesIO(data), where="t.zip")
    count, offset, size, _, _ = _end_record(source, "a zip")
    found = zipbatch._entries(np.frombuffer(source.read_at(offset, size), np.uint8), count)
    assert found is not None
    entries = found[1].copy()
    columns = lambda e: (e["size"].astype(np.int64), e["compressed_size"].astype(np.int64),  # noqa: E731
                         e["header_offset"].astype(np.int64))
    assert zipbatch._as_written(entries, count, *columns(entries))
    entries[field][count // 2] = value
    assert not zipbatch._as_written(entries, count, *columns(entries))


def test_random_damage_to_the_writers_bundle_is_never_vouched_for_when_the_exact_path_refuses():
    """As above, on the bundle modelpack writes, where the one-comparison checks run: damage
    they let through would show as a vouched bundle the exact path refuses, or reads otherwise."""
    data, looked_at = _modelpack_bundle_areas()
    rng = random.Random(16)
    stepped_aside = 0
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.choice((1, 1, 2))):
            damaged[rng.choice(looked_at)] = rng.randrange(256)
        try:
            batch, exact = _both(bytes(damaged))
        except ModelpackError:
            continue
        if batch is None:
            stepped_aside += 1
        else:
            assert not isinstance(exact, ModelpackError), exact
            assert batch == exact
    assert stepped_aside > 100
