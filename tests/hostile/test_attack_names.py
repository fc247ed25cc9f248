"""Member-name and member-kind attacks, in the outer archive and in the inner npz bundle:
traversal, absolute paths, backslashes, NUL, duplicates, links, encryption, extras."""

from __future__ import annotations

import re
import stat

import numpy as np
import pytest
from craft import RawEntry, members_of, npy, raw_archive, raw_zip
from harness import model_bytes, raw_with_bundle, refused

from modelpack.errors import FormatError

_W = npy(np.arange(3, dtype=np.float32))


def _outer(entries: list[RawEntry]) -> bytes:
    """An archive of the valid model's two members plus ``entries``, edited as given."""
    members = members_of(model_bytes())
    return raw_archive(members["manifest.yaml"], members["weights.npz"], *entries)


def _inner(entries: list[RawEntry]) -> bytes:
    """An archive whose bundle holds a valid ``w.npy`` plus ``entries``."""
    return raw_with_bundle({"w": ("float32", [3])}, raw_zip([RawEntry(b"w.npy", _W), *entries]))


BAD_NAMES = {
    "absolute": (b"/etc/passwd.npy", "is an absolute path"),
    "drive": (b"C:/Windows/x.npy", "is an absolute path"),
    "traversal": (b"../../evil.npy", r"contains a '\.\.' component"),
    "inner-traversal": (b"a/../../evil.npy", r"contains a '\.\.' component"),
    "backslash": (b"..\\evil.npy", "contains a backslash"),
    "nul": (b"w.npy\x00.txt", "contains a NUL byte"),
    "control": (b"w\x1b[2J.npy", "contains control characters"),
    "directory": (b"dir/", "is a directory"),
    "empty": (b"", "is empty"),
}


def _named(name: bytes, fragment: str) -> str:
    return f"member name {re.escape(repr(name.decode('cp437')))} {fragment}; member names must be plain"


@pytest.mark.parametrize("attack", sorted(BAD_NAMES))
def test_bad_names_in_archive(tmp_path, attack):
    name, fragment = BAD_NAMES[attack]
    refused(tmp_path, _outer([RawEntry(name, b"x")]), FormatError, r"hostile\.mpk: " + _named(name, fragment))


@pytest.mark.parametrize("attack", sorted(BAD_NAMES))
def test_bad_names_in_bundle(tmp_path, attack):
    name, fragment = BAD_NAMES[attack]
    refused(tmp_path, _inner([RawEntry(name, _W)]), FormatError, r"member 'weights\.npz': " + _named(name, fragment),
            inspect=False)


KINDS = {
    "symlink": (dict(external_attr=(stat.S_IFLNK | 0o777) << 16), r"is a symbolic link"),
    "fifo": (dict(external_attr=(stat.S_IFIFO | 0o644) << 16), r"is not a regular file \(mode 0o10644\)"),
    "dos-directory": (dict(external_attr=0x10), r"is a directory"),
    "encrypted": (dict(flags=0x1), r"is encrypted"),
    "strongly-encrypted": (dict(flags=0x41), r"is encrypted"),
    "lzma": (dict(method=14), r"uses compression method 14; only stored \(0\) and deflate \(8\)"),
}


@pytest.mark.parametrize("attack", sorted(KINDS))
def test_member_kinds_in_archive(tmp_path, attack):
    fields, fragment = KINDS[attack]
    members = members_of(model_bytes())
    data = raw_archive(RawEntry(b"manifest.yaml", members["manifest.yaml"], **fields), members["weights.npz"])
    refused(tmp_path, data, FormatError, r"hostile\.mpk: member 'manifest\.yaml' " + fragment)


@pytest.mark.parametrize("attack", sorted(KINDS))
def test_member_kinds_in_bundle(tmp_path, attack):
    fields, fragment = KINDS[attack]
    data = raw_with_bundle({"w": ("float32", [3])}, raw_zip([RawEntry(b"w.npy", _W, **fields)]))
    refused(tmp_path, data, FormatError, r"member 'weights\.npz': member 'w\.npy' " + fragment, inspect=False)


def test_duplicate_member_in_archive(tmp_path):
    members = members_of(model_bytes())
    refused(tmp_path, _outer([RawEntry(b"manifest.yaml", members["manifest.yaml"])]), FormatError,
            r"hostile\.mpk: duplicate member 'manifest\.yaml'")


def test_duplicate_member_in_bundle(tmp_path):
    refused(tmp_path, _inner([RawEntry(b"w.npy", _W)]), FormatError,
            r"member 'weights\.npz': duplicate member 'w\.npy'", inspect=False)


def test_extra_member_in_archive(tmp_path):
    refused(tmp_path, _outer([RawEntry(b"payload.py", b"import os")]), FormatError,
            r"hostile\.mpk: unexpected member 'payload\.py'; a modelpack archive holds only")


def test_extra_member_in_bundle(tmp_path):
    refused(tmp_path, _inner([RawEntry(b"README.txt", b"hi")]), FormatError,
            r"member 'weights\.npz': unexpected member 'README\.txt'", inspect=False)


def test_tensor_member_not_in_manifest(tmp_path):
    refused(tmp_path, _inner([RawEntry(b"extra.npy", _W)]), FormatError,
            r"member 'weights\.npz': holds tensor 'extra', which the manifest does not list", inspect=False)


def test_local_header_names_another_file(tmp_path):
    # Tools that trust the local header would extract 'evil.py'; the directory says w.npy.
    data = raw_with_bundle({"w": ("float32", [3])}, raw_zip([RawEntry(b"w.npy", _W, local_name=b"evil.py")]))
    refused(tmp_path, data, FormatError, r"member 'w\.npy' is called b'evil\.py' in its local header", inspect=False)


def test_name_that_is_not_utf8(tmp_path):
    refused(tmp_path, _inner([RawEntry(b"\xff\xfe.npy", _W, flags=0x800)]), FormatError,
            r"member name b'\\xff\\xfe\.npy' is not valid UTF-8", inspect=False)


def test_too_many_members_in_archive(tmp_path):
    entries = [RawEntry(f"m{i}".encode(), b"") for i in range(100)]
    refused(tmp_path, _outer(entries), FormatError, r"hostile\.mpk: holds 102 members; a modelpack archive holds only")
