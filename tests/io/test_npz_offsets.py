"""Members of a bundle found by their recorded offsets (io.npz_offsets): taken only when the
local header and the member's own directory entry agree; anything else is left to the
directory's reader (None)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from craft import RawEntry, deflate, npy, raw_zip

from modelpack.io.limits import DEFAULT_LIMITS
from modelpack.io.npz_offsets import PlacedMembers
from modelpack.io.zipio import Source

ARRAYS = {"a": np.arange(6, dtype=np.float32), "bé": np.ones((2, 2), np.int8)}


def _placed(bundle: bytes, names: list[str]) -> tuple[PlacedMembers, dict[str, int]]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        offsets = {info.filename[:-4]: info.header_offset for info in zf.infolist()}
    return PlacedMembers(Source.whole(io.BytesIO(bundle), where="b.npz"), names, DEFAULT_LIMITS), offsets


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


def test_a_deflated_member_is_left_to_the_directory():
    bundle = raw_zip([RawEntry(b"a.npy", deflate(npy(ARRAYS["a"])), method=8, plain=npy(ARRAYS["a"]))])
    placed, offsets = _placed(bundle, ["a"])
    assert placed.member("a", offsets["a"]) is None
