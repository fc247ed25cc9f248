"""The strict zip reader (io.zipread), through its own API: ``read_directory`` locates every
member of the zips other writers make exactly, and each refusal the hostile suite does not reach
(it attacks whole archives) is checked here directly, with its class and its words."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib

import pytest
from craft import RawEntry, central_offsets, deflate, raw_zip, stored_zip, streamed_zip
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack.errors import FormatError, LimitError, ModelpackError
from modelpack.io import zipread
from modelpack.io.limits import GRACE_BYTES
from modelpack.io.zipio import DEFLATED, STORED, Source
from modelpack.io.zipread import Directory, check_name, read_directory


@pytest.fixture(autouse=True, params=["entries", "columns"])
def _checked_both_ways(request, monkeypatch):
    """Every test runs with the entry-by-entry checks, then with the column checks
    (io.zipbatch) tried first on every directory, which must change nothing."""
    if request.param == "columns":
        monkeypatch.setattr(zipread, "BATCH_MIN", 1)


def _too_many(count: int) -> ModelpackError:
    return LimitError("t.zip", "its number of members", count, limit="max_tensors", allowed=10)


def _read(data: bytes, **options) -> Directory:
    """``read_directory`` of ``data`` as the file t.zip, with settings ``options`` may change."""
    settings = {"kind": "a test zip", "max_members": 10, "too_many": _too_many, "max_ratio": 100.0,
                "grace_bytes": GRACE_BYTES, "max_inflated": float("inf")}
    return read_directory(Source.whole(io.BytesIO(data), where="t.zip"), **{**settings, **options})


def _refused(data: bytes, message: str, error: type[ModelpackError] = FormatError, **options) -> None:
    with pytest.raises(error, match=message) as caught:
        _read(data, **options)
    assert type(caught.value) is error


def _insert(data: bytes, at: int, junk: bytes) -> bytes:
    """``junk`` inserted at ``at``, with every offset the directory records past it moved along,
    so that only the gap itself is wrong."""
    out = bytearray(data[:at] + junk + data[at:])
    end = out.rindex(b"PK\x05\x06")
    directory = struct.unpack_from("<L", out, end + 16)[0]
    if directory >= at:
        struct.pack_into("<L", out, end + 16, directory + len(junk))
    for entry in central_offsets(bytes(out)):
        offset = struct.unpack_from("<L", out, entry + 42)[0]
        if offset >= at:
            struct.pack_into("<L", out, entry + 42, offset + len(junk))
    return bytes(out)


def _zip64(members: dict[str, bytes], monkeypatch) -> bytes:
    """A zip that zipfile writes with zip64 end records (it does so past its file-count limit)."""
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    data = stored_zip(members)
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    return data


TWO = {"a.bin": b"abc", "dir/b.bin": bytes(range(256))}


# -- valid zips -------------------------------------------------------------------------------


def test_stored_members_are_located_exactly():
    data = stored_zip(TWO, comment=b"a note")
    directory = _read(data)
    assert directory.comment == b"a note"
    with zipfile.ZipFile(io.BytesIO(data)) as reference:
        infos = reference.infolist()
    assert [m.name for m in directory.members] == [i.filename for i in infos] == list(TWO)
    for member, info in zip(directory.members, infos, strict=True):
        content = TWO[member.name]
        assert (member.method, member.crc, member.size, member.compressed_size) == (
            STORED, zlib.crc32(content), len(content), len(content))
        assert member.header_offset == info.header_offset
        assert data[member.data_offset : member.data_offset + member.size] == content


def test_an_empty_zip_has_no_members():
    directory = _read(stored_zip({}, comment=b"empty"))
    assert (directory.members, directory.comment, directory.inflated) == ([], b"empty", 0)


def test_deflated_members_with_data_descriptors():
    """What zipfile writes when streaming to a pipe: deflate, and sizes after the data."""
    data = streamed_zip(TWO)
    for member in _read(data).members:
        assert member.method == DEFLATED and member.flags & 0x8
        stream = data[member.data_offset : member.data_offset + member.compressed_size]
        assert zlib.decompress(stream, -15) == TWO[member.name]


def test_zip64_end_records_are_understood(monkeypatch):
    plain = _read(stored_zip(TWO)).members
    assert [(m.name, m.size, m.crc) for m in _read(_zip64(TWO, monkeypatch)).members] == [
        (m.name, m.size, m.crc) for m in plain]


def test_zip64_extra_fields_replace_saturated_sizes():
    other = struct.pack("<HH4s", 0xCAFE, 4, b"junk")  # another extra field first: skipped
    zip64 = struct.pack("<HHQ", 1, 8, 5)
    data = raw_zip([RawEntry(b"w", b"hello", size=0xFFFFFFFF, extra=other + zip64)])
    (member,) = _read(data).members
    assert (member.size, member.compressed_size) == (5, 5)
    assert data[member.data_offset : member.data_offset + 5] == b"hello"


def test_names_are_utf8_when_flagged_and_cp437_otherwise():
    data = raw_zip([RawEntry("ünï.bin".encode(), b"1", flags=0x800), RawEntry(b"\x81.bin", b"2")])
    assert [m.name for m in _read(data).members] == ["ünï.bin", "ü.bin"]


def test_an_end_record_signature_inside_the_comment_is_not_mistaken_for_one():
    data = stored_zip(TWO, comment=b"see PK\x05\x06 here")
    directory = _read(data)
    assert directory.comment == b"see PK\x05\x06 here" and len(directory.members) == 2


@pytest.mark.parametrize(
    ("system", "mode"),
    [(3, 0), (3, 0o644), (3, stat.S_IFREG | 0o644), (0, stat.S_IFLNK | 0o777)],
    ids=["no-mode", "permissions-only", "regular", "dos-ignores-unix-bits"],
)
def test_regular_files_and_foreign_attribute_bits_are_accepted(system, mode):
    data = raw_zip([RawEntry(b"w", b"x", create_system=system, external_attr=mode << 16)])
    assert [m.name for m in _read(data).members] == ["w"]


@pytest.mark.parametrize("name", ["w.npy", "a/b/c.npy", "a..b.npy", "..a", "a/..b", "ünï code.npy"])
def test_plain_names_pass(name):
    check_name(name, "t.zip")


def test_small_deflated_members_may_compress_well_beyond_the_ratio():
    plain = bytes(10_000)
    data = raw_zip([RawEntry(b"z", deflate(plain), method=8, plain=plain)])
    ratio = round(len(plain) / len(deflate(plain)))
    assert ratio > 100
    assert _read(data).members[0].size == 10_000  # under the grace of 1 MiB
    _refused(data, rf"^t\.zip: member 'z': its compression ratio \({ratio}\) is over the limit of 100 \(10000 "
             rf"bytes from {len(deflate(plain))}; a zip bomb\?\)", LimitError, grace_bytes=1000)


def test_the_deflated_members_declared_sizes_are_bounded_together():
    plain = bytes(10_000)
    data = raw_zip([RawEntry(name, deflate(plain), method=8, plain=plain) for name in (b"y", b"z")])
    assert _read(data, max_inflated=20_000).inflated == 20_000
    _refused(data, r"^t\.zip: the declared size of its deflated members together \(20000\) is over the limit of "
             r"19999 \(the file's size times the ratio, plus 1 MiB; deflate nested in deflate, or many small "
             r"bombs\?\); pass limits=modelpack\.Limits\(max_compression_ratio=\.\.\.\) to allow more$",
             LimitError, max_inflated=19_999)


# -- refusals of the file as a whole ----------------------------------------------------------


def test_too_many_members_raise_the_callers_error_before_the_directory_is_read():
    data = bytearray(stored_zip({"a": b"", "b": b"", "c": b""}))
    end = data.rindex(b"PK\x05\x06")
    data[end + 12 : end + 20] = bytes(8)  # a directory of 0 bytes at 0: reading it would fail otherwise
    _refused(bytes(data), r"^t\.zip: its number of members \(3\) is over the limit of 10; pass "
             r"limits=modelpack\.Limits\(max_tensors=\.\.\.\)", LimitError, max_members=2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes(21), r"^t\.zip: not a test zip \(not a zip file: only 21 bytes\)$"),
        (b"x" * 100, r"^t\.zip: not a test zip \(not a zip file: no end-of-directory record\)$"),
        (stored_zip(TWO)[:60], r"^t\.zip: truncated zip file: no end-of-directory record$"),
    ],
    ids=["shorter-than-an-end-record", "no-end-record", "local-header-then-nothing"],
)
def test_files_that_are_no_zip_say_what_they_should_be(data, message):
    _refused(data, message)


def _patched(data: bytes, at_end: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, out.rindex(b"PK\x05\x06") + at_end, *values)
    return bytes(out)


def test_entries_on_this_disk_must_be_all_entries():
    _refused(_patched(stored_zip(TWO), 8, "<H", 1), r"^t\.zip: multi-disk \(split\) zip archives are not supported$")


def test_a_directory_too_small_for_its_entries():
    data = stored_zip({"a": b"x"})
    _refused(_patched(data, 8, "<HH", 2, 2), r"^t\.zip: a zip directory of 47 bytes cannot hold exactly 2 entries$")


def test_a_directory_that_ends_before_its_entries_do():
    data = stored_zip({"n" * 50: b"x"})  # one 96-byte entry: room for two by size alone
    _refused(_patched(data, 8, "<HH", 2, 2), r"^t\.zip: the zip directory ends after 1 of its 2 entries$")


@pytest.mark.parametrize(
    ("field", "fmt", "value", "message"),
    [
        (4, "<L", 1, r"multi-disk \(split\) zip archives are not supported"),      # locator: disk
        (16, "<L", 2, r"multi-disk \(split\) zip archives are not supported"),     # locator: disks
        (8, "<Q", +1, r"the zip64 end record is not where its locator says"),      # locator: offset
        (8, "<Q", -1, r"the zip64 end record is damaged or not where its locator says"),
    ],
    ids=["locator-disk", "locator-disks", "record-after-locator", "record-elsewhere"],
)
def test_zip64_locator_refusals(monkeypatch, field, fmt, value, message):
    data = bytearray(_zip64(TWO, monkeypatch))
    locator = data.rindex(b"PK\x06\x07")
    if field == 8:
        value += struct.unpack_from(fmt, data, locator + field)[0]
    struct.pack_into(fmt, data, locator + field, value)
    _refused(bytes(data), rf"^t\.zip: {message}$")


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (16, r"multi-disk \(split\) zip archives are not supported"),  # zip64 record: this disk
        (24, r"multi-disk \(split\) zip archives are not supported"),  # entries on this disk only
        (None, r"the zip end record and zip64 end record disagree"),    # both entry counts: 7
    ],
    ids=["disk", "disk-entries", "count"],
)
def test_zip64_end_record_refusals(monkeypatch, field, message):
    data = bytearray(_zip64(TWO, monkeypatch))
    record = data.rindex(b"PK\x06\x06")
    if field is None:
        struct.pack_into("<QQ", data, record + 24, 7, 7)
    else:
        struct.pack_into("<L" if field == 16 else "<Q", data, record + field, 1)
    _refused(bytes(data), rf"^t\.zip: {message}$")


# -- refusals of one directory entry ----------------------------------------------------------


def _central(data: bytes, field: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, central_offsets(data)[0] + field, value)
    return bytes(out)


W = stored_zip({"w": b"hello"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_central(W, 0, "<L", 0x09014B50), r"zip directory entry 0 is damaged \(bad signature\)"),
        (_central(W, 28, "<H", 500), r"zip directory entry 0 runs past the directory"),
        (_central(W, 34, "<H", 1), r"member 'w' lies on another disk of a split archive"),
        (_central(W, 8, "<H", 0x2000), r"member 'w' is encrypted"),  # central-directory encryption
        (_central(W, 10, "<H", 12), r"member 'w' uses compression method 12; only stored \(0\) and deflate "
                                    r"\(8\) are allowed"),
        (raw_zip([RawEntry(b"w", b"hello", size=0xFFFFFFFF)]),
         r"member 'w' lacks the zip64 sizes its directory entry announces"),
        (raw_zip([RawEntry(b"w", b"hello", size=0xFFFFFFFF, extra=struct.pack("<HHL", 1, 4, 5))]),
         r"member 'w' lacks the zip64 sizes its directory entry announces"),  # 4 bytes, not 8
    ],
    ids=["signature", "name-past-directory", "disk", "central-encryption", "bzip2", "no-zip64-extra",
         "short-zip64-extra"],
)
def test_directory_entry_refusals(data, message):
    _refused(data, rf"^t\.zip: {message}$")


# -- refusals of where members lie --------------------------------------------------------------


def test_a_member_without_its_local_header():
    data = bytearray(stored_zip(TWO))
    data[2:4] = b"\x05\x05"
    _refused(bytes(data), r"^t\.zip: member 'a\.bin' has no local header at offset 0$")


def test_junk_before_the_first_member_with_every_offset_moved_along():
    _refused(_insert(stored_zip(TWO), 0, b"JUNK"),
             r"^t\.zip: 4 bytes of unexpected data before the first member \(junk prepended\?\)$")


def test_junk_before_the_directory_with_every_offset_moved_along():
    data = stored_zip(TWO)
    directory = data.index(b"PK\x01\x02")
    _refused(_insert(data, directory, b"JUNK"),
             r"^t\.zip: 4 unexpected bytes between member 'dir/b\.bin' and the zip directory$")


def test_a_descriptor_sized_gap_after_a_member_without_a_descriptor():
    data = stored_zip(TWO)
    second = data.index(b"PK\x03\x04", 1)
    _refused(_insert(data, second, bytes(16)),
             r"^t\.zip: 16 unexpected bytes between member 'a\.bin' and the next member$")


def test_deflated_members_together_within_the_inflation_allowance_exactly():
    """max_inflated bounds the declared sizes of all deflated members together (the caller
    gives what is left of the file's allowance), whatever each member's own ratio."""
    plain = bytes(1000)
    entries = [RawEntry(f"m{i}".encode(), deflate(plain), method=DEFLATED, plain=plain) for i in range(3)]
    data = raw_zip(entries)
    assert len(_read(data, max_inflated=3000).members) == 3
    _refused(data, r"^t\.zip: the declared size of its deflated members together \(3000\) is over the limit of "
             r"2999 \(the file's size times the ratio, plus 1 MiB; deflate nested in deflate, or many small "
             r"bombs\?\); pass limits=modelpack\.Limits\(max_compression_ratio=\.\.\.\) to allow more$",
             LimitError, max_inflated=2999)


def _refused_by_the_spec(name: str) -> bool:
    """spec/FORMAT.md §1.1's member-name rule, written out independently."""
    return (
        not name
        or name.startswith("/")
        or (len(name) >= 3 and name[0].isascii() and name[0].isalpha() and name[1] == ":" and name[2] in "/\\")
        or ".." in name.split("/")
        or "\\" in name
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)
        or name.endswith("/")
    )


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from("ab./\\:C\x00\n\x7fü"), max_size=8))
def test_check_name_refuses_exactly_what_the_spec_refuses(name):
    """check_name clears most names with one search and words a refusal with the exact
    checks: together they refuse exactly the spec's set."""
    try:
        check_name(name, "t.zip")
    except FormatError:
        assert _refused_by_the_spec(name), name
    else:
        assert not _refused_by_the_spec(name), name
