"""Members of a bundle found by their recorded offsets (io.npz_offsets): taken only when the
local header and the member's own directory entry agree; anything else is left to the
directory's reader (None)."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
from craft import RawEntry, deflate, npy, raw_zip

from modelpack.errors import LimitError
from modelpack.io import zipwrite
from modelpack.io.limits import DEFAULT_LIMITS, Limits
from modelpack.io.npz_offsets import PlacedMembers
from modelpack.io.npz_write import write_npz
from modelpack.io.zipentries import central_member
from modelpack.io.zipio import Source
from modelpack.io.ziprecords import CENTRAL

ARRAYS = {"a": np.arange(6, dtype=np.float32), "bé": np.ones((2, 2), np.int8)}


def _placed(bundle: bytes, names: list[str]) -> tuple[PlacedMembers, dict[str, int]]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        offsets = {info.filename[:-4]: info.header_offset for info in zf.infolist()}
    source = Source.whole(io.BytesIO(bundle), where="b.npz")
    return PlacedMembers(source, names, lambda: [offsets[name] for name in names], DEFAULT_LIMITS), offsets


def test_a_member_whose_header_and_entry_agree_is_found_once():
    bundle = raw_zip([RawEntry(f"{n}.npy".encode(), npy(a), flags=0x800) for n, a in ARRAYS.items()])
    placed, offsets = _placed(bundle, list(ARRAYS))
    member = placed.member("bé", offsets["bé"])
    assert member is not None and member.header_offset == offsets["bé"]
    assert bundle[member.data_offset : member.data_offset + member.size] == npy(ARRAYS["bé"])
    assert placed.member("bé", offsets["bé"]) is member


def test_a_directory_not_in_the_manifests_order_leaves_the_member_to_the_directory():
    bundle = raw_zip([RawEntry(f"{n}.npy".encode(), npy(a)) for n, a in ARRAYS.items()]
                     + [RawEntry(b"extra.npy", npy(np.zeros(1)))])
    placed, offsets = _placed(bundle, list(ARRAYS))  # the directory holds one entry more
    assert placed.member("a", offsets["a"]) is None


ASCII = {"w": np.arange(3, dtype=np.float32), "layer.10.weight": np.ones((2, 5), np.float16),
         "b": np.zeros(0, np.int64), "layer.2.bias": np.full(4, 7, np.uint8)}


def _written(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    write_npz(buffer, arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("first", list(ASCII))
def test_the_first_tensor_asked_for_is_found_where_the_directory_puts_it(first):
    """The first entry asked for is placed from the names before it alone; every later one
    from the places of all: both where the directory holds them."""
    bundle = _written(ASCII)
    placed, offsets = _placed(bundle, list(ASCII))
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        directory = {info.filename[:-4]: info.header_offset for info in zf.infolist()}
    for name in [first, *(name for name in ASCII if name != first)]:
        member = placed.member(name, offsets[name])
        assert member is not None and member.header_offset == directory[name]
        assert bundle[member.data_offset : member.data_offset + member.size] == npy(ASCII[name])


@pytest.mark.parametrize("first", ["w", "layer.2.bias"])
def test_a_first_tensor_in_a_directory_of_another_size_is_left_to_the_directory(first):
    """One entry more (the count differs), or an entry with an extra field (the size differs):
    no entry is where the writer's layout puts it, from the first tensor asked for on."""
    longer = raw_zip([RawEntry(f"{n}.npy".encode(), npy(a)) for n, a in ASCII.items()]
                     + [RawEntry(b"extra.npy", npy(np.zeros(1)))])
    placed, offsets = _placed(longer, list(ASCII))
    assert placed.member(first, offsets[first]) is None
    extended = raw_zip([RawEntry(f"{n}.npy".encode(), npy(a), extra=b"\xfe\xca\x00\x00" if n == "w" else b"")
                        for n, a in ASCII.items()])
    placed, offsets = _placed(extended, list(ASCII))
    assert placed.member(first, offsets[first]) is None
    assert placed.member("b", offsets["b"]) is None  # (later ones, from the places of all)


def test_a_deflated_member_is_left_to_the_directory():
    bundle = raw_zip([RawEntry(b"a.npy", deflate(npy(ARRAYS["a"])), method=8, plain=npy(ARRAYS["a"]))])
    placed, offsets = _placed(bundle, ["a"])
    assert placed.member("a", offsets["a"]) is None


def _wide_bundle(monkeypatch, threshold: int = 1) -> bytes:
    """ARRAYS as the writer bundles them with sizes and offsets from ``threshold`` on in zip64
    fields (from 1, all but the first offset; from 150, the first member's sizes and the second
    member's offset)."""
    monkeypatch.setattr(zipwrite, "ZIP64_SIZE", threshold)
    buffer = io.BytesIO()
    write_npz(buffer, ARRAYS)
    return buffer.getvalue()


def test_a_member_whose_entry_holds_zip64_fields_is_found(monkeypatch):
    bundle = _wide_bundle(monkeypatch)
    placed, offsets = _placed(bundle, list(ARRAYS))
    member = placed.member("bé", offsets["bé"])
    assert member is not None and bundle[member.data_offset : member.data_offset + member.size] == npy(ARRAYS["bé"])


@pytest.mark.parametrize("tamper", ["id", "length", "trailing"])
def test_an_entry_whose_zip64_field_is_not_the_writers_is_left_to_the_directory(monkeypatch, tamper):
    """Only a zip64 field of exactly the entry's saturated fields is read here; anything else
    (another field's id, a field longer than they need, another field after it, such as a
    Unicode path that some tools read as the name) goes to the directory's reader. The first
    entry is tampered with; where it grows, the second shrinks, so the directory keeps its
    size and every other entry its place."""
    bundle = bytearray(_wide_bundle(monkeypatch, threshold=150))
    _, offsets = _placed(bytes(bundle), list(ARRAYS))
    first = bundle.index(b"PK\x01\x02")  # the first directory entry
    assert bundle[first + CENTRAL.size : first + CENTRAL.size + 5] == b"a.npy"
    extra = first + CENTRAL.size + len(b"a.npy")
    assert bundle[extra : extra + 4] == struct.pack("<HH", 1, 16)  # both its sizes are in a zip64 field
    if tamper == "id":
        bundle[extra : extra + 2] = (0x7075).to_bytes(2, "little")
    elif tamper == "length":
        bundle[extra + 2 : extra + 4] = (8).to_bytes(2, "little")
    else:  # an empty Unicode path field after it, and the second entry's zip64 field 4 bytes shorter
        bundle[extra + 20 : extra + 20] = struct.pack("<HH", 0x7075, 0)
        struct.pack_into("<H", bundle, first + 30, 20 + 4)  # the entry's extra field length
        second = bundle.rindex(b"PK\x01\x02")
        struct.pack_into("<H", bundle, second + 30, 12 - 4)
        end = second + CENTRAL.size + len("bé.npy".encode()) + 12 - 4
        del bundle[end : end + 4]
    source = Source.whole(io.BytesIO(bytes(bundle)), where="b.npz")
    placed = PlacedMembers(source, list(ARRAYS), lambda: list(offsets.values()), DEFAULT_LIMITS)
    assert placed.member("a", offsets["a"]) is None


def test_an_entry_announcing_a_zip64_field_past_the_end_of_what_is_read_is_no_member():
    """``central_member`` on its own: an entry announcing a zip64 field of three values, where
    the bytes end with its name (in a bundle, an end record always follows)."""
    bundle = bytearray(raw_zip([RawEntry("bé.npy".encode(), npy(ARRAYS["bé"]), flags=0x800)]))
    entry = bundle.rindex(b"PK\x01\x02")
    struct.pack_into("<2I", bundle, entry + 20, 0xFFFFFFFF, 0xFFFFFFFF)  # both sizes
    struct.pack_into("<H", bundle, entry + 30, 28)  # its extra field's length
    struct.pack_into("<I", bundle, entry + 42, 0xFFFFFFFF)  # its offset
    cut = bytes(bundle[: entry + CENTRAL.size + len("bé.npy".encode())])
    assert central_member(Source.whole(io.BytesIO(cut), where="b.npz"), entry, "bé.npy") is None


def test_predicted_gives_the_entrys_member_and_the_writers_local_header():
    """The member its entry alone describes, with where its data starts if the writer's
    local header is there; that header is the file's own bytes at the offset."""
    bundle = _written(ARRAYS)
    placed, offsets = _placed(bundle, list(ARRAYS))
    for name in ARRAYS:
        member, header = placed.predicted(name, offsets[name])
        assert member == placed.member(name, offsets[name])
        assert bundle[offsets[name] : member.data_offset] == header
    assert placed.predicted("a", offsets["a"] + 1) is None  # (not the offset the entry says)


def test_predicted_leaves_a_member_over_the_limits_to_member():
    bundle = _written(ARRAYS)
    placed, offsets = _placed(bundle, list(ARRAYS))
    size = placed.predicted("a", offsets["a"])[0].size
    placed._limits = Limits(max_total_bytes=size - 1)
    assert placed.predicted("a", offsets["a"]) is None
    with pytest.raises(LimitError, match="max_total_bytes"):
        placed.member("a", offsets["a"])


def test_a_tensor_read_through_its_prediction_equals_the_exact_read_whatever_byte_changes(tmp_path, monkeypatch):
    """Any one byte of a small archive changed: ``get_tensor`` through ``predicted`` gives
    what it gives without (the same array, or the same error in the same words)."""
    import modelpack

    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.arange(3, dtype=np.int16)}
    buffer = io.BytesIO()
    modelpack.save(buffer, arrays)
    original, path = buffer.getvalue(), tmp_path / "t.mpk"

    def outcome(data: bytes, name: str) -> object:
        path.write_bytes(data)
        try:
            with modelpack.open(path) as archive:
                return archive.get_tensor(name).tobytes()
        except modelpack.ModelpackError as exc:
            return type(exc), str(exc)

    predicted = PlacedMembers.predicted
    for position in range(len(original)):
        for mask in (0x01, 0x80):
            data = bytearray(original)
            data[position] ^= mask
            for name in arrays:
                monkeypatch.setattr(PlacedMembers, "predicted", predicted)
                fast = outcome(bytes(data), name)
                monkeypatch.setattr(PlacedMembers, "predicted", lambda *args: None)
                assert fast == outcome(bytes(data), name), (position, mask, name)
