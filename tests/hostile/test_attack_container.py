"""Container attacks: truncated and concatenated files, junk around the zip, offsets that do
not add up, split archives, and a manifest swapped behind the archive's back."""

from __future__ import annotations

import re
import struct

import pytest
from craft import Unseekable, central_offsets, edit, manifest_comment, members_of, stored_zip
from harness import bounded, model_bytes, refused, tensors_bytes

import modelpack
from modelpack.errors import FormatError, IntegrityError, SchemaError, VersionError
from modelpack.format.versions import FORMAT_VERSION, READER_VERSION

V = re.escape(FORMAT_VERSION)  # what this writer writes and this reader knows


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_anywhere(tmp_path, keep):
    data = model_bytes()
    cut = data[: int(len(data) * keep)]
    # Cut inside the bundle, the last end record found may be the bundle's own.
    fragment = (r"hostile\.mpk: (not a modelpack archive \(not a zip file: only 0 bytes\)|truncated zip file|"
                r"\d+ unexpected bytes after the last end-of-directory record \(files concatenated, junk appended, "
                r"or a truncated file\?\))")
    refused(tmp_path, cut, FormatError, fragment)


def test_truncated_inside_the_end_record(tmp_path):
    refused(tmp_path, model_bytes()[:-5], FormatError,
            r"hostile\.mpk: truncated zip file: its end-of-directory record is cut short")


def test_junk_appended(tmp_path):
    refused(tmp_path, model_bytes() + b"#!/bin/sh\nrm -rf ~\n", FormatError,
            r"hostile\.mpk: 19 unexpected bytes after the last end-of-directory record")


def test_junk_prepended(tmp_path):
    # zipfile accepts this (a "self-extracting" stub), reading past whatever precedes the zip.
    refused(tmp_path, b"MZ\x90\x00" + b"\x00" * 60 + model_bytes(), FormatError,
            r"hostile\.mpk: the zip directory is not where the end record says \(\+64 bytes\)")


def test_two_archives_concatenated(tmp_path):
    # zipfile reads the second one: what a reviewer saw (the first) is not what loads.
    refused(tmp_path, model_bytes() + tensors_bytes(), FormatError,
            r"hostile\.mpk: the zip directory is not where the end record says")


def test_directory_offset_points_elsewhere(tmp_path):
    data = bytearray(model_bytes())
    end = data.rindex(b"PK\x05\x06")
    offset = struct.unpack_from("<L", data, end + 16)[0]
    struct.pack_into("<L", data, end + 16, offset - 1)
    refused(tmp_path, bytes(data), FormatError, r"the zip directory is not where the end record says \(\+1 bytes\)")


@pytest.mark.parametrize(
    ("shift", "fragment"),
    [
        (-1, r"member 'manifest\.yaml' overlaps the next member by 1 bytes \(a zip bomb or a damaged file\)"),
        (+1, r"1 unexpected bytes between member 'manifest\.yaml' and the next member"),
        (+10**6, r"member 'weights\.npz' starts at offset \d+, past the end of the member data \(\d+\)"),
    ],
)
def test_member_offset_points_elsewhere(tmp_path, shift, fragment):
    data = bytearray(model_bytes())
    second = central_offsets(bytes(data))[1]
    struct.pack_into("<L", data, second + 42, struct.unpack_from("<L", data, second + 42)[0] + shift)
    refused(tmp_path, bytes(data), FormatError, r"hostile\.mpk: " + fragment)


def test_directory_sizes_differ_from_local_header(tmp_path):
    data = bytearray(model_bytes())
    first = central_offsets(bytes(data))[0]
    struct.pack_into("<LL", data, first + 20, 5, 5)  # manifest.yaml "is 5 bytes"
    refused(tmp_path, bytes(data), FormatError, r"member 'manifest\.yaml': its local header \(method, encryption, "
            r"CRC-32, sizes \(0, 0, \d+, \d+, \d+\)\) disagrees with the zip directory")


def test_split_archive(tmp_path):
    data = bytearray(model_bytes())
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<H", data, end + 4, 1)
    refused(tmp_path, bytes(data), FormatError, r"hostile\.mpk: multi-disk \(split\) zip archives are not supported")


def test_empty_file(tmp_path):
    refused(tmp_path, b"", FormatError, r"hostile\.mpk: not a modelpack archive \(not a zip file: only 0 bytes\)")


def test_not_a_zip_at_all(tmp_path):
    refused(tmp_path, b"\x89PNG\r\n\x1a\n" + bytes(100), FormatError,
            r"hostile\.mpk: not a modelpack archive \(not a zip file: no end-of-directory record\)")


def test_manifest_swapped_without_its_hash(tmp_path):
    data = edit(model_bytes(), manifest=lambda d: d["metadata"].update(license="stolen"), rehash=False)
    refused(tmp_path, data, IntegrityError,
            r"hostile\.mpk: member 'manifest\.yaml' is damaged: its SHA-256 is [0-9a-f]{64}, the archive comment "
            r"records [0-9a-f]{64}")


def test_manifest_hash_missing(tmp_path):
    members = members_of(model_bytes())
    refused(tmp_path, stored_zip(members), IntegrityError,
            rf"hostile\.mpk: format {V} archives record the manifest's SHA-256 in the zip comment, found no comment")


def test_tensor_hash_missing_in_a_1_1_manifest(tmp_path):
    data = edit(model_bytes(), manifest=lambda d: d["weights"]["0.weight"].pop("sha256"))
    refused(tmp_path, data, SchemaError, rf"manifest\.yaml: tensor '0\.weight' has no sha256, which format {V}")


def test_newer_major_version(tmp_path):
    data = edit(model_bytes(), manifest=lambda d: d.update(format_version="2.0", new_layout="columnar"))
    refused(tmp_path, data, VersionError,
            r"manifest\.yaml: written in format version 2\.0, but this reader understands major version 1 "
            rf"\(up to {re.escape(READER_VERSION)}\); upgrade modelpack")


def test_newer_major_version_with_a_new_member(tmp_path):
    # A newer major may change the member set; the version is still what gets reported.
    members = members_of(model_bytes())
    data = edit(stored_zip({**members, "index.bin": b"\0"}), manifest=lambda d: d.update(format_version="2.0"))
    assert b"index.bin" not in data  # edit() keeps the two members only; add it back:
    manifest = members_of(data)["manifest.yaml"]
    data = stored_zip([("manifest.yaml", manifest), ("weights.npz", members["weights.npz"]), ("index.bin", b"\0")],
                      comment=manifest_comment(manifest))
    refused(tmp_path, data, VersionError, r"written in format version 2\.0")


def test_stream_that_cannot_seek():
    _, exc = bounded(lambda: modelpack.load(Unseekable()))
    assert type(exc) is FormatError and "cannot read an archive from a stream that cannot seek" in str(exc)


def test_directory_too_large_for_its_entries_is_not_read(tmp_path):
    # 20 MiB declared as the directory of 2 entries: refused without reading it (8 MiB bound).
    junk = bytes(20 * 2**20)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, len(junk), 0, 0)
    refused(tmp_path, junk + end, FormatError,
            r"hostile\.mpk: a zip directory of 20971520 bytes cannot hold exactly 2 entries")
