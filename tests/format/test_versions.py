"""Format versions (format.versions): newer minors are read, other majors refused with both
versions named, format 1.0 (no hashes) still loads, and 1.1's manifest hash is required."""

from __future__ import annotations

import re

import pytest
from craft import edit, edit_file, members_of, stored_zip

import modelpack
from modelpack import nn
from modelpack.errors import IntegrityError, SchemaError, UnknownLayerError, VersionError
from modelpack.format.versions import FORMAT_VERSION, READER_VERSION


def test_newer_minor_ignores_unknown_manifest_and_tensor_fields(exported):
    def newer(document):
        document["format_version"] = "1.7"
        document["signature"] = {"alg": "ed25519", "value": "..."}
        document["weights"]["0.weight"]["quantization"] = "none"

    net = modelpack.load(edit_file(exported, manifest=newer), integrity="sha256")
    assert isinstance(net, nn.Sequential)
    manifest = modelpack.inspect(exported)
    assert manifest.format_version == "1.7" and "quantization" not in manifest.weights["0.weight"].model_dump()
    assert modelpack.verify(exported).ok


def test_same_minor_refuses_unknown_tensor_fields(exported):
    edit_file(exported, manifest=lambda d: d["weights"]["0.weight"].update(quantization="none"))
    with pytest.raises(SchemaError, match=r"weights\.0\.weight\.quantization: Extra inputs are not permitted"):
        modelpack.load(exported)


def test_newer_minor_still_refuses_unknown_layer_types(exported):
    def newer(document):
        document["format_version"] = "1.7"
        document["architecture"]["children"]["1"]["type"] = "FlashAttention"

    with pytest.raises(UnknownLayerError, match="unknown layer type 'FlashAttention'"):
        modelpack.load(edit_file(exported, manifest=newer))


def test_unreleased_older_major_refused(exported):
    edit_file(exported, manifest=lambda d: d.update(format_version="0.9"))
    with pytest.raises(VersionError, match=r"format version 0\.9, but this reader understands major version 1 "
                       rf"\(up to {re.escape(READER_VERSION)}\); no released format has that major version"):
        modelpack.load(exported)


def test_hand_made_1_0_archive_loads(exported):
    """Format 1.0: no tensor hashes, no manifest hash; any zip comment is not ours to judge."""
    def as_1_0(document):
        document["format_version"] = "1.0"
        for info in document["weights"].values():
            del info["sha256"]

    data = edit(exported.read_bytes(), manifest=as_1_0)
    members = members_of(data)
    exported.write_bytes(stored_zip([("manifest.yaml", members["manifest.yaml"]), ("weights.npz", members["weights.npz"])],
                                    comment=b"zipped by a backup tool"))
    assert isinstance(modelpack.load(exported, integrity="sha256"), nn.Sequential)
    report = modelpack.verify(exported)
    assert report.ok and report.format_version == "1.0" and report.notes


def test_1_0_archive_with_a_wrong_hash_comment_refused(exported):
    edit_file(exported, manifest=lambda d: d.update(format_version="1.0"), rehash=False)
    with pytest.raises(IntegrityError, match=r"net\.mpk: member 'manifest\.yaml' is damaged: its SHA-256"):
        modelpack.load(exported)


def test_1_1_comment_must_be_the_hash(exported):
    members = members_of(exported.read_bytes())
    exported.write_bytes(stored_zip(members, comment=b"hello"))
    # Every hashed version (1.1 on) requires it; a fresh export is of the current one.
    with pytest.raises(IntegrityError, match=rf"format {re.escape(FORMAT_VERSION)} archives record the manifest's "
                       r"SHA-256 in the zip comment, found comment b'hello'"):
        modelpack.load(exported)
