"""``zipexact``: a zip is taken the quick way only when it is exactly what ``zipwrite`` writes,
and then its members are the ones the strict reader (``zipread``) gives; any change to any
byte makes it decline or agree, never differ."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from craft import stored_zip

import modelpack
from modelpack.errors import LimitError, ModelpackError
from modelpack.format import container
from modelpack.io.limits import DEFAULT_LIMITS, GRACE_BYTES, Limits
from modelpack.io.zipexact import written_members
from modelpack.io.zipio import Source
from modelpack.io.zipread import read_directory

COMMENT_LENGTH = len(container.MANIFEST_HASH_PREFIX) + 64


def _written(path: Path, data: bytes, *, max_leading: int = 1 << 20):
    path.write_bytes(data)
    with open(path, "rb", buffering=0) as handle:
        return written_members(Source.whole(handle, where=path.name), container.MEMBERS, COMMENT_LENGTH,
                               max_leading)


def _strict(path: Path, data: bytes):
    """The strict reader's members and comment, or the error it raises."""
    path.write_bytes(data)
    with open(path, "rb", buffering=0) as handle:
        try:
            directory = read_directory(
                Source.whole(handle, where=path.name), kind="a test zip", max_members=16,
                too_many=lambda count: LimitError("t", "members", count, limit="m", allowed=16),
                max_ratio=100.0, grace_bytes=GRACE_BYTES, max_inflated=float("inf"),
            )
        except ModelpackError as exc:
            return exc
    return directory.members, directory.comment


@pytest.fixture(scope="module")
def archive() -> bytes:
    buffer = io.BytesIO()
    modelpack.save(buffer, {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, np.int8)})
    return buffer.getvalue()


def test_the_writers_zip_is_taken_with_the_strict_readers_members(tmp_path, archive):
    found = _written(tmp_path / "a.mpk", archive)
    assert found is not None, "the quick path declined a file the writer made"
    assert found == _strict(tmp_path / "a.mpk", archive)


def test_any_flipped_byte_declines_or_agrees(tmp_path, archive):
    """Every byte of the file in turn, changed two ways: where the quick path still answers,
    the strict reader answers the same (a changed tensor byte changes neither: CRCs are
    checked when members are read, not here)."""
    path = tmp_path / "a.mpk"
    taken = 0
    for position in range(len(archive)):
        for mask in (0x01, 0xFF):
            data = bytearray(archive)
            data[position] ^= mask
            found = _written(path, bytes(data))
            if found is not None:
                taken += 1
                assert found == _strict(path, bytes(data)), (position, mask)
    assert taken  # (data bytes: the directory is the same, and both paths agree on it)


@pytest.mark.parametrize("change", ["appended", "prepended", "truncated", "other writer", "third member"])
def test_other_layouts_decline(tmp_path, archive, change):
    data = {
        "appended": archive + b"\0",
        "prepended": b"\0" + archive,
        "truncated": archive[:-1],
        "other writer": stored_zip([("manifest.yaml", b"{}"), ("weights.npz", b"")],
                                   comment=archive[-COMMENT_LENGTH:]),
        "third member": stored_zip([("manifest.yaml", b"{}"), ("weights.npz", b""), ("x", b"")],
                                   comment=archive[-COMMENT_LENGTH:]),
    }[change]
    assert _written(tmp_path / "a.mpk", data) is None


def test_a_manifest_over_the_limit_is_left_to_the_strict_reader(tmp_path, archive):
    """The head read holds the manifest, so a manifest over the caller's limit is not read
    here: the archive's open then refuses it in the usual words."""
    manifest_size = _written(tmp_path / "a.mpk", archive)[0][0].size
    assert _written(tmp_path / "a.mpk", archive, max_leading=manifest_size - 1) is None
    path = tmp_path / "a.mpk"
    with pytest.raises(LimitError, match="member 'manifest.yaml'.*max_manifest_bytes"):
        modelpack.open(path, limits=Limits(max_manifest_bytes=manifest_size - 1))
    assert DEFAULT_LIMITS.max_manifest_bytes >= manifest_size
