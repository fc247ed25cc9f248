"""Format 1.5's vectors: each tensor's recorded ``offset`` in the bundle (FORMAT.md §2.2, §7.3).

Valid: archives modelpack writes at 1.5 (every tensor placed), and archives of a second writer
(``zipcraft``) where some tensors record no offset, or where a placed tensor is one a reader
of one local header cannot take alone (deflated, sizes in a data descriptor, ZIP64 sizes).
Invalid: offsets that point elsewhere — at another tensor's member, past the bundle, where no
local header starts, at a copy hidden inside another member's data — and offsets that are
not non-negative integers. An offset is checked against the bundle's directory whenever the
directory is read (a whole load), so those refusals are of stage ``load``; a reader that
takes one tensor by its offset (a lazy open, §7.3) refuses the ones whose ``lazy`` says so.
Imported late by ``valid.vectors()`` and ``invalid.vectors()``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import zipcraft as zc
from invalid import Invalid
from valid import Run, Valid, _base_model, _entries, all_dtypes, crafted, f32, ready

import modelpack
from modelpack import nn

VERSION = "1.5"


def placed(document: dict[str, Any], entries: list[zc.Entry], *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """``document`` at 1.5, each tensor but those in ``skip`` recording where its member's local
    header starts in the bundle ``entries`` make (entries in manifest order)."""
    layout = zc.Layout()
    zc.make_zip(entries, layout=layout)
    weights = {}
    for (name, info), offset in zip(document["weights"].items(), layout.local_offsets, strict=True):
        weights[name] = dict(info) if name in skip else dict(info, offset=offset)
    return dict(document, format_version=VERSION, weights=weights)


# -- valid ----------------------------------------------------------------------------------

def written_tensors() -> Valid:
    arrays = all_dtypes()
    return Valid("offsets-tensors", "a tensor archive of every dtype as modelpack writes format 1.5: every "
                 "tensor records its offset", ["§2.2 offset", "§7.3"], lambda p: modelpack.save(p, arrays))


def written_model() -> Valid:
    net = nn.Sequential()
    net.add(nn.Dense(6, activation="relu", in_units=5), nn.BatchNorm(in_channels=6), nn.Dense(3, in_units=6))
    x = f32(4, 5, seed=80)
    ready(net, 80, x)
    return Valid("offsets-model", "a model as modelpack writes format 1.5: every tensor records its offset",
                 ["§2.2 offset", "§7.3"], lambda p: modelpack.export(net, p, metadata={"vector": "offsets"}),
                 [Run([x])])


def crafted_placements() -> list[Valid]:
    doc, arrays, inputs = _base_model()

    def some_unplaced() -> bytes:
        entries = _entries(arrays)
        document = placed(doc, entries, skip=("0.bias", "1.running_var"))
        return bytes(zc.Archive(zc.json_form(document).encode(), entries))

    def needs_directory() -> bytes:
        entries = _entries(arrays)
        entries[1].method = 8  # 0.bias deflated
        gamma = entries[2]  # 1.gamma: sizes in a data descriptor after the data
        gamma.descriptor = struct.pack("<4s3L", zc.DESCRIPTOR, zlib.crc32(gamma.data), len(gamma.data), len(gamma.data))
        entries[3].zip64 = True  # 1.beta: sizes in the local header's ZIP64 extra field
        entries[4].local_extra = struct.pack("<HHH", 0xD935, 2, 64)  # 1.running_mean: an alignment extra field
        document = placed(doc, entries)
        return bytes(zc.Archive(zc.json_form(document).encode(), entries, weights_first=True))

    return [
        crafted("craft-offsets-some", "format 1.5 with two tensors that record no offset (found through the "
                "bundle's directory) among five that do", ["§2.2 offset", "§7.3"], some_unplaced, inputs),
        crafted("craft-offsets-directory", "format 1.5, every tensor placed, but one deflated, one whose sizes "
                "follow in a data descriptor, one with ZIP64 local sizes, one with an extra field; weights.npz "
                "first", ["§2.2 offset", "§7.3", "§1.2"], needs_directory, inputs),
    ]


def valid_vectors() -> list[Valid]:
    return [written_tensors(), written_model(), *crafted_placements()]


# -- invalid --------------------------------------------------------------------------------

W = np.arange(6, dtype=np.float32).reshape(2, 3) / 7 - 0.3
B = np.array([0.25, -0.5], dtype=np.float32)


def model(change: Callable[[dict[str, Any], list[int], int], object] | None = None,
          entries: list[zc.Entry] | None = None) -> bytes:
    """A Dense(2, in_units=3) at 1.5, offsets recorded; ``change(document, local offsets,
    bundle size)`` breaks one thing."""
    entries = entries or [zc.Entry(b"0.weight.npy", zc.npy(W)), zc.Entry(b"0.bias.npy", zc.npy(B))]
    document = {
        "format": "modelpack", "format_version": VERSION, "producer": "conformance", "kind": "model",
        "architecture": {"type": "Sequential", "children": {
            "0": {"type": "Dense", "config": {"units": 2, "in_units": 3}}}},
        "weights": {"0.weight": zc.tensor_info(W), "0.bias": zc.tensor_info(B)},
        "metadata": {},
    }
    layout = zc.Layout()
    bundle = zc.make_zip(entries, layout=layout)
    document = placed(document, entries)
    if change is not None:
        change(document, layout.local_offsets, len(bundle))
    return bytes(zc.Archive(zc.json_form(document).encode(), entries))


def offset_of(name: str, value: Callable[[list[int], int], Any]) -> Callable[[], bytes]:
    def change(document: dict[str, Any], offsets: list[int], size: int) -> None:
        document["weights"][name]["offset"] = value(offsets, size)
    return lambda: model(change)


def directory_disagrees() -> bytes:
    """0.bias's directory entry says its local header is 30 bytes later than it is (and than
    the manifest records): what a reader of the directory finds differs from the local header
    at the offset, so the bundle is refused (§1.1), though that local header is intact."""
    entries = [zc.Entry(b"0.weight.npy", zc.npy(W)), zc.Entry(b"0.bias.npy", zc.npy(B))]
    layout = zc.Layout()
    zc.make_zip(entries, layout=layout)
    entries[1].header_offset = layout.local_offsets[1] + 30
    return model(entries=entries)


def hidden_member() -> bytes:
    """A tensor archive whose 'w' records an offset inside tensor 'pad''s data, where a whole
    zip member 'w.npy' (local header, other values, their true CRC-32) is hidden: the zip is
    valid, and only comparing the offset with the directory (or the SHA-256) tells."""
    forged = zc.npy(W[::-1].copy())
    hidden = struct.pack("<4s5H3L2H", zc.LOCAL, 20, 0, 0, 0, zc.DOS_DATE, zlib.crc32(forged), len(forged),
                         len(forged), 5, 0) + b"w.npy" + forged
    pad = np.frombuffer(hidden, dtype=np.uint8)
    arrays = {"w": W, "pad": pad}
    entries = [zc.Entry(b"w.npy", zc.npy(W)), zc.Entry(b"pad.npy", zc.npy(pad))]
    document = {"format": "modelpack", "format_version": VERSION, "producer": "conformance", "kind": "tensors",
                "layout": "dict", "weights": {name: zc.tensor_info(a) for name, a in arrays.items()}}
    document = placed(document, entries)
    pad_data = document["weights"]["pad"]["offset"] + 30 + len(b"pad.npy") + len(zc.npy(pad)) - len(hidden)
    document["weights"]["w"]["offset"] = pad_data
    return bytes(zc.Archive(zc.json_form(document).encode(), entries))


def invalid_vectors() -> list[Invalid]:
    rule = "§2.2 offset"
    lazy = [
        ("other-tensor", "0.weight's offset is where 0.bias's member starts", offset_of("0.weight", lambda o, s: o[1])),
        ("past-bundle", "0.bias's offset is the bundle's size: no local header fits there",
         offset_of("0.bias", lambda o, s: s)),
        ("no-local-header", "0.bias's offset is 1 byte after where its member starts: no local header starts "
         "there", offset_of("0.bias", lambda o, s: o[1] + 1)),
        ("beyond-2-53", "0.weight's offset is 2**53 + 1 (a valid integer, past any file; a reader whose "
         "numbers are doubles must not round it)", offset_of("0.weight", lambda o, s: 2**53 + 1)),
    ]
    out = [Invalid(f"offset-{name}", about, rule, "load", "FormatError", make, lazy="FormatError")
           for name, about, make in lazy]
    out += [
        Invalid("offset-directory-disagrees", "0.bias's local header is where its offset says, but the bundle's "
                "directory puts its member 30 bytes later", f"{rule}, §1.1", "load", "FormatError",
                directory_disagrees, lazy="FormatError"),
        Invalid("offset-hidden-member", "'w''s offset points at a complete zip member 'w.npy' (other values, "
                "their own CRC-32) hidden inside tensor 'pad''s data; the bundle itself is a valid zip",
                rule, "load", "FormatError", hidden_member, lazy="FormatError"),
    ]
    schema = [
        ("negative", "an offset of -1", -1),
        ("float", "an offset of 64.0 (a float token where an integer is required)", 64.0),
        ("string", "an offset of '64' (a string)", "64"),
        ("bool", "an offset of true", True),
        ("too-large", "an offset of 2**63 (outside the manifest's integers)", 2**63),
    ]
    out += [Invalid(f"offset-{name}", about, f"{rule}, §2.1 numbers", "open", "SchemaError",
                    offset_of("0.bias", lambda o, s, value=value: value)) for name, about, value in schema]
    return out
