"""Invalid conformance vectors: one archive per refusal rule, each breaking that rule only.

Every vector starts from one small valid model (a Sequential with one Dense layer) written
by ``zipcraft`` and changes one thing. ``stage`` says when a reader must refuse it:

- ``open``: reading the manifest already refuses it (modelpack's ``inspect``);
- ``load``: the manifest is fine, loading the model or its tensors refuses it;
- ``sha256``: only a load that checks tensor SHA-256s refuses it;
- ``verify``: only a full verification refuses it (a loader MAY skip the check, §7.2).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zipcraft as zc
from zipcraft import Archive, Entry


@dataclass
class Invalid:
    name: str
    about: str
    rule: str
    stage: str
    error: str
    make: Callable[[], bytes]
    limits: dict[str, int] | None = None
    lazy: str | None = None  # the error of reading each tensor by its recorded offset (§7.3), where one must come


W = np.arange(6, dtype=np.float32).reshape(2, 3) / 7 - 0.3
B = np.array([0.25, -0.5], dtype=np.float32)
ARRAYS = {"0.weight": W, "0.bias": B}
ZEROS = np.zeros(524289, np.float32)  # 2 MiB + 4 bytes: over the ratio limit's 1 MiB grace
TOTAL = sum(len(zc.npy(a)) for a in ARRAYS.values())


def doc(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": "modelpack", "format_version": "1.1", "producer": "conformance", "kind": "model",
        "architecture": {"type": "Sequential", "children": {
            "0": {"type": "Dense", "config": {"units": 2, "in_units": 3}}}},
        "weights": {name: zc.tensor_info(a) for name, a in ARRAYS.items()},
        "metadata": {},
    }
    document.update(changes)
    return document


def entries(arrays: dict[str, np.ndarray] | None = None) -> list[Entry]:
    return [Entry((n + ".npy").encode(), zc.npy(a)) for n, a in (arrays or ARRAYS).items()]


def base(document: dict[str, Any] | None = None, *, text: str | bytes | None = None,
         bundle: list[Entry] | None = None, **options: Any) -> Archive:
    if text is None:
        text = zc.json_form(document if document is not None else doc())
    raw = text.encode() if isinstance(text, str) else text
    return Archive(raw, bundle if bundle is not None else entries(), **options)


def good() -> bytes:
    return bytes(base())


def edited(change: Callable[[dict[str, Any]], object]) -> bytes:
    document = doc()
    change(document)
    return bytes(base(document))


def with_bundle_entry(index: int, **fields: Any) -> bytes:
    bundle = entries()
    for key, value in fields.items():
        setattr(bundle[index], key, value)
    return bytes(base(bundle=bundle))


def with_manifest_entry(**fields: Any) -> bytes:
    """The base archive with the outer manifest member's headers changed."""
    return bytes(base(outer_manifest=Entry(b"manifest.yaml", b"", **fields)))


def with_outer(**options: Any) -> bytes:
    archive = base()
    archive.outer_options = options
    return bytes(archive)


def one_tensor(member: bytes, *, info: dict[str, Any] | None = None, **entry: Any) -> bytes:
    """A tensors archive of one tensor 'w' (float32, [2, 3] unless ``info`` says otherwise)."""
    document = {"format": "modelpack", "format_version": "1.1", "producer": "conformance", "kind": "tensors",
                "layout": "dict", "weights": {"w": info or zc.tensor_info(W)}}
    return bytes(base(document, bundle=[Entry(b"w.npy", member, **entry)]))


def patch(data: bytes, offset: int, fmt: str, *values: Any) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def layout_of(make: Callable[[zc.Layout], bytes]) -> tuple[bytes, zc.Layout]:
    layout = zc.Layout()
    return make(layout), layout


def outer_layout() -> tuple[bytes, zc.Layout]:
    def make(layout: zc.Layout) -> bytes:
        archive = base()
        archive.outer_options = {"layout": layout}
        return bytes(archive)
    return layout_of(make)


def block(text: str) -> bytes:
    """A manifest in the block form, with the base model's weights appended."""
    lines = ["weights:"]
    for name, info in doc()["weights"].items():
        lines.append(f"  {name}: {{dtype: {info['dtype']}, shape: {info['shape']}, sha256: '{info['sha256']}'}}")
    return bytes(base(text=text + "\n".join(lines) + "\n"))


HEAD = "format: modelpack\nformat_version: '1.1'\nproducer: conformance\nkind: model\n"
ARCH = "architecture:\n  type: Sequential\n  children:\n    '0':\n      type: Dense\n      config: {units: 2, in_units: 3}\n"


def block_with(line: str) -> bytes:
    return block(HEAD + ARCH + line + "\n")


def dense_config(**config: Any) -> bytes:
    def change(d: dict[str, Any]) -> None:
        d["architecture"]["children"]["0"]["config"].update(config)
    return edited(change)


def graph_doc(nodes: list[dict[str, Any]], outputs: dict[str, Any] | None = None, *,
              config: dict[str, Any] | None = None, children: dict[str, Any] | None = None) -> dict[str, Any]:
    graph = {"inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 3]}], "nodes": nodes,
             "outputs": outputs or {"kind": "single", "values": [nodes[-1]["outputs"][0]]}}
    architecture: dict[str, Any] = {"type": "Graph", "config": {"graph": graph, **(config or {})}}
    if children is not None:
        architecture["children"] = children
    return doc(architecture=architecture, weights={})


def graph_archive(nodes: list[dict[str, Any]], outputs: dict[str, Any] | None = None, **kwargs: Any) -> bytes:
    return bytes(base(graph_doc(nodes, outputs, **kwargs), bundle=[]))


def relu(source: str = "x", out: str = "y", **extra: Any) -> dict[str, Any]:
    return {"op": "relu", "inputs": [source], "outputs": [out], **extra}


# -- §1.1 container -------------------------------------------------------------------------

def container() -> list[Invalid]:
    data, lay = outer_layout()
    central = lay.central_offsets
    vectors = [
        ("empty-file", "a file of 0 bytes", lambda: b""),
        ("not-a-zip", "PNG bytes", lambda: b"\x89PNG\r\n\x1a\n" + bytes(100)),
        ("truncated", "the file cut in the middle: no end record", lambda: good()[: len(good()) // 2]),
        ("truncated-end-record", "the last 5 bytes cut off", lambda: good()[:-5]),
        ("junk-appended", "bytes after the end record's comment", lambda: good() + b"#!/bin/sh\n"),
        ("junk-prepended", "bytes before the first local header", lambda: b"MZ" + bytes(62) + good()),
        ("concatenated", "two archives glued together", lambda: good() + good()),
        ("directory-offset", "the end record's directory offset is 1 too large",
         lambda: patch(data, lay.eocd_offset + 16, "<L", lay.directory_offset + 1)),
        ("count-too-small", "the end record declares 1 entry; the directory holds 2",
         lambda: patch(patch(data, lay.eocd_offset + 8, "<H", 1), lay.eocd_offset + 10, "<H", 1)),
        ("directory-too-small", "a directory size smaller than 46 bytes per declared entry",
         lambda: with_outer(directory_size=60, directory_offset=None)),
        ("central-signature", "a directory entry without its signature",
         lambda: patch(data, central[1], "<4s", b"PK\x01\x03")),
        ("split-archive", "the end record names disk 1", lambda: with_outer(eocd_disk=1)),
        ("zip64-disagrees", "a zip64 end record whose entry count disagrees with a non-saturated plain one",
         lambda: zip64_disagreeing()),
        ("zip64-disks", "a zip64 locator that counts 2 disks", lambda: with_outer(zip64_end=True, locator_disks=2)),
        ("gap-between-members", "junk between two members", lambda: with_outer(gaps={1: b"JUNK"})),
        ("gap-before-directory", "junk between the last member and the directory",
         lambda: with_outer(gaps={2: b"JUNK"})),
        ("overlap", "the second member's header offset points into the first member",
         lambda: patch(data, central[1] + 42, "<L", lay.local_offsets[1] - 8)),
        ("offset-past-directory", "a member's header offset lies past the member area",
         lambda: patch(data, central[1] + 42, "<L", lay.directory_offset + 4)),
        ("local-signature", "a local header without its signature",
         lambda: patch(data, lay.local_offsets[1], "<4s", b"PK\x03\x05")),
        ("local-name", "the local header names another file",
         lambda: with_manifest_entry(local_name=b"manifest.yam1")),
        ("local-method", "the local header's method differs", lambda: with_manifest_entry(local_method=8)),
        ("local-crc", "the local header's CRC-32 differs", lambda: with_manifest_entry(local_crc=1)),
        ("local-size", "the local header's uncompressed size differs",
         lambda: with_manifest_entry(local_size=9)),
        ("local-encryption-flag", "the local header sets the encryption flag",
         lambda: with_manifest_entry(local_flags=1)),
        ("zip64-extra-missing", "a saturated size without a zip64 extra field",
         lambda: patch(data, central[0] + 24, "<L", zc.U32)),
        ("stored-sizes-differ", "a stored member whose compressed and uncompressed sizes differ",
         lambda: with_manifest_entry(size=len(base().manifest) + 4)),
        ("method-bzip2", "compression method 12", lambda: with_manifest_entry(method=12, stored=base().manifest)),
        ("encrypted-bit0", "flag bit 0 (traditional encryption)", lambda: with_manifest_entry(flags=1)),
        ("encrypted-bit6", "flag bit 6 (strong encryption)", lambda: with_manifest_entry(flags=0x40)),
        ("encrypted-bit13", "flag bit 13 (central directory encryption)", lambda: with_manifest_entry(flags=0x2000)),
        ("symlink", "a member whose Unix mode is a symbolic link",
         lambda: with_manifest_entry(external=0o120777 << 16)),
        ("directory-mode", "a member whose Unix mode is a directory",
         lambda: with_manifest_entry(external=0o040755 << 16)),
        ("device-mode", "a member whose Unix mode is a character device",
         lambda: with_manifest_entry(external=0o020644 << 16)),
        ("dos-directory", "an MS-DOS host member with the directory attribute",
         lambda: with_manifest_entry(made_by=0, external=0x10)),
        ("too-many-members", "17 archive members declared (the fixed limit is 16)", seventeen_members),
        ("missing-manifest", "no manifest.yaml", lambda: zc.make_zip([Entry(b"weights.npz", base().bundle_bytes())])),
        ("missing-weights", "no weights.npz",
         lambda: zc.make_zip([Entry(b"manifest.yaml", base().manifest)], comment=zc.hash_comment(base().manifest))),
        ("extra-member", "a third member", lambda: bytes(base(extra_members=[Entry(b"run.py", b"import os")]))),
        ("duplicate-member", "manifest.yaml twice",
         lambda: bytes(base(extra_members=[Entry(b"manifest.yaml", base().manifest)]))),
        ("manifest-crc", "the manifest's CRC-32 in both headers is wrong",
         lambda: bytes(base(outer_manifest=Entry(b"manifest.yaml", b"", crc=0x12345678)))),
    ]
    out = [Invalid(f"zip-{n}", a, "§1.1", "open", "FormatError", m) for n, a, m in vectors]
    out[-1] = Invalid("zip-manifest-crc", out[-1].about, "§1.1, §7.2", "open", "IntegrityError", out[-1].make)
    for name, raw, flags in [("empty", b"", 0), ("absolute", b"/etc/passwd", 0), ("drive", b"C:/x.npy", 0),
                             ("dotdot", b"a/../b.npy", 0), ("backslash", b"a\\b.npy", 0), ("nul", b"a\0b.npy", 0),
                             ("control", b"a\x01b.npy", 0), ("del", b"a\x7fb.npy", 0), ("slash-end", b"dir/", 0),
                             ("bad-utf8", b"\xff\xfe.npy", 0x800)]:
        out.append(Invalid(f"zip-name-{name}", f"an archive member named {raw!r}", "§1.1 names", "open",
                           "FormatError", lambda raw=raw, flags=flags: bytes(base(extra_members=[
                               Entry(raw, b"x", flags=flags)]))))
    return out


def zip64_disagreeing() -> bytes:
    archive = base()
    archive.outer_options = {"zip64_end": True, "eocd64_fields": {"count": 3}}
    data = bytes(archive)
    end = data.rindex(zc.EOCD)
    return patch(patch(data, end + 8, "<H", 2), end + 10, "<H", 2)  # plain count 2, zip64 count 3


def seventeen_members() -> bytes:
    extra = [Entry(f"x{i}".encode(), b"") for i in range(15)]
    return bytes(base(extra_members=extra))


def bundle_rules() -> list[Invalid]:
    deflated_bomb = bytes(2 * 1024 * 1024 + 1)
    w_npy = zc.npy(W)
    return [
        Invalid("bundle-member-not-npy", "a bundle member 'w.txt'", "§4", "load", "FormatError",
                lambda: bytes(base(bundle=entries() + [Entry(b"w.txt", b"hi")]))),
        Invalid("bundle-member-slash", "a bundle member 'a/b.npy'", "§4", "load", "FormatError",
                lambda: bytes(base(bundle=entries() + [Entry(b"a/b.npy", w_npy)]))),
        Invalid("bundle-unlisted-tensor", "a tensor the manifest does not list", "§4", "load", "FormatError",
                lambda: bytes(base(bundle=entries() + [Entry(b"extra.npy", w_npy)]))),
        Invalid("bundle-missing-tensor", "a listed tensor missing from the bundle", "§4", "load", "FormatError",
                lambda: bytes(base(bundle=entries()[:1]))),
        Invalid("bundle-duplicate", "0.weight.npy twice", "§1.1", "load", "FormatError",
                lambda: bytes(base(bundle=entries() + entries()[:1]))),
        Invalid("bundle-name-dotdot", "a bundle member '../0.weight.npy'", "§1.1 names", "load", "FormatError",
                lambda: bytes(base(bundle=[Entry(b"../0.weight.npy", w_npy), *entries()[1:]]))),
        Invalid("bundle-symlink", "a bundle member that is a symbolic link", "§1.1", "load", "FormatError",
                lambda: with_bundle_entry(1, external=0o120777 << 16)),
        Invalid("bundle-junk-appended", "junk after the bundle's end record", "§1.1", "load", "FormatError",
                bundle_with_junk),
        Invalid("bundle-local-crc", "a tensor member's local CRC-32 differs from the directory's", "§1.1", "load",
                "FormatError", lambda: with_bundle_entry(0, local_crc=1)),
        Invalid("bundle-encrypted", "a tensor member with flag bit 0", "§1.1", "load", "FormatError",
                lambda: with_bundle_entry(0, flags=1)),
        Invalid("bundle-crc", "a tensor member's CRC-32 (both headers) is wrong", "§7.2", "load",
                "IntegrityError", lambda: with_bundle_entry(0, crc=0x0BADF00D)),
        Invalid("bundle-deflate-corrupt", "a corrupt deflate stream", "§1.1", "load", "FormatError",
                lambda: with_bundle_entry(0, method=8, stored=b"\xff" * 40)),
        Invalid("bundle-deflate-short", "a deflate stream that yields fewer bytes than declared", "§1.1", "load",
                "FormatError", lambda: with_bundle_entry(0, method=8, stored=zc.deflate(w_npy[:-8]))),
        Invalid("bundle-deflate-long", "a deflate stream that yields more bytes than declared", "§1.1", "load",
                "FormatError", lambda: with_bundle_entry(0, method=8, stored=zc.deflate(w_npy + bytes(8)))),
        Invalid("bundle-deflate-trailing", "bytes after the end of a deflate stream", "§1.1", "load",
                "FormatError", lambda: with_bundle_entry(0, method=8, stored=zc.deflate(w_npy) + b"JUNK")),
        Invalid("limit-ratio-bundle", "a deflated tensor member of 2 MiB from 2 KiB (ratio over 100)", "§8", "load",
                "LimitError", lambda: one_tensor(zc.npy(ZEROS), method=8, info=zc.tensor_info(ZEROS))),
        Invalid("limit-ratio-archive", "a deflated weights.npz over 1 MiB with a ratio over 100", "§8", "open",
                "LimitError", lambda: bytes(Archive(base().manifest, [Entry(b"pad.npy", deflated_bomb)],
                                                    outer_weights=Entry(b"weights.npz", b"", method=8)))),
        Invalid("limit-tensors", "2 bundle members with max_tensors 1", "§8", "load", "LimitError", good,
                {"max_tensors": 1}),
        Invalid("limit-total-bytes", f"tensor members of {TOTAL} bytes with max_total_bytes {TOTAL - 1}", "§8", "load", "LimitError",
                good, {"max_total_bytes": TOTAL - 1}),
        Invalid("limit-manifest-bytes", "a manifest over max_manifest_bytes 100", "§8", "open", "LimitError", good,
                {"max_manifest_bytes": 100}),
        Invalid("limit-manifest-nodes", "a manifest over max_manifest_nodes 30 (keys count)", "§8", "open",
                "LimitError", good, {"max_manifest_nodes": 30}),
        Invalid("bundle-weights-crc-stored", "the stored weights.npz member's CRC-32 (both headers) is wrong; "
                "its tensors are intact", "§7.2", "verify", "IntegrityError",
                lambda: bytes(base(outer_weights=Entry(b"weights.npz", b"", crc=0x0BADF00D)))),
        Invalid("bundle-weights-crc-deflated", "a deflated weights.npz whose CRC-32 is wrong", "§7.2", "load",
                "IntegrityError",
                lambda: bytes(base(outer_weights=Entry(b"weights.npz", b"", method=8, crc=0x0BADF00D)))),
    ]


def bundle_with_junk() -> bytes:
    archive = base()
    bundle = archive.bundle_bytes() + b"JUNK"
    return zc.make_zip([Entry(b"manifest.yaml", archive.manifest), Entry(b"weights.npz", bundle)],
                       comment=zc.hash_comment(archive.manifest))


# -- §2 manifest ----------------------------------------------------------------------------

def manifest_rules() -> list[Invalid]:
    text = zc.json_form(doc())
    deep = "[" * 161 + "]" * 161
    vectors: list[tuple[str, str, str, Callable[[], bytes]]] = [
        ("not-utf8", "a manifest that is not UTF-8", "§2.1", lambda: bytes(base(text=text.encode()[:-2] + b"\xff}\n"))),
        ("json-duplicate-key", "a key twice in one JSON object", "§2.1 JSON",
         lambda: bytes(base(text=text.replace('"metadata": {}', '"metadata": {}, "metadata": {}')))),
        ("json-exponent-no-point", "the number 1e-2 (no fraction) in the JSON form", "§2.1 JSON",
         lambda: bytes(base(text=json_leaky("1e-2")))),
        ("json-unsigned-exponent", "the number 1.0e5 (exponent without sign) in the JSON form", "§2.1 JSON",
         lambda: bytes(base(text=json_leaky("1.0e2")))),
        ("json-surrogate", "a \\ud83d\\ude00 surrogate pair escape", "§2.1 JSON",
         lambda: bytes(base(text=text.replace('"metadata": {}', '"metadata": {"e": "\\ud83d\\ude00"}')))),
        ("json-line-separator", "a raw U+2028 inside a JSON string", "§2.1 JSON",
         lambda: bytes(base(text=text.replace('"metadata": {}', '"metadata": {"e": "a\u2028b"}')))),
        ("json-trailing-comma", "a trailing comma (valid YAML, not JSON)", "§2.1 JSON",
         lambda: bytes(base(text=text.replace('"metadata": {}\n}', '"metadata": {},\n}')))),
        ("json-single-quotes", "single-quoted strings (valid YAML flow, not JSON)", "§2.1 JSON",
         lambda: bytes(base(text=text.replace('"producer": "conformance"', "'producer': 'conformance'")))),
        ("json-nan", "NaN in the JSON form", "§2.1 JSON", lambda: bytes(base(text=json_leaky("NaN")))),
        ("json-int-too-large", "a graph scalar of 2**63", "§2.1 numbers",
         lambda: graph_archive([{"op": "scalar", "outputs": ["s"], "attrs": {"value": 2**63}},
                                {"op": "add", "inputs": ["x", "s"], "outputs": ["y"]}])),
        ("json-number-too-long", "a 401-character float", "§2.1 numbers",
         lambda: bytes(base(text=json_leaky("0." + "0" * 398 + "1")))),
        ("json-deep", "161 nested lists", "§2.1 limits",
         lambda: bytes(base(text=text.replace('"metadata": {}', f'"metadata": {{"a": {deep}}}')))),
        ("json-bom", "a byte-order mark before the JSON form", "§2.1",
         lambda: bytes(base(text="\ufeff" + text))),
        ("block-python-tag", "a !!python/object/apply tag", "§2.1 block",
         lambda: block_with("metadata:\n  a: !!python/object/apply:os.system ['true']")),
        ("block-str-tag", "a harmless-looking !!str tag", "§2.1 block", lambda: block_with("metadata:\n  a: !!str b")),
        ("block-anchor", "an anchor and an alias", "§2.1 block",
         lambda: block_with("metadata:\n  a: &x b\n  c: *x")),
        ("block-duplicate-key", "a key twice", "§2.1 block", lambda: block_with("metadata: {}\nmetadata: {}")),
        ("block-second-document", "a second document", "§2.1 block",
         lambda: block(HEAD + ARCH + "metadata: {}\n---\nkind: model\n")),
        ("block-directive", "a %YAML directive", "§2.1 block",
         lambda: block("%YAML 1.1\n---\n" + HEAD + ARCH + "metadata: {}\n")),
        ("block-int-key", "a mapping key that is an integer", "§2.1 block", lambda: block_with("metadata:\n  1: a")),
        ("block-on", "use_bias: on (YAML 1.1 boolean)", "§2.1 table",
         lambda: block(HEAD + ARCH.replace("in_units: 3", "in_units: 3, use_bias: on"))),
        ("block-yes", "use_bias: yes", "§2.1 table",
         lambda: block(HEAD + ARCH.replace("in_units: 3", "in_units: 3, use_bias: yes"))),
        ("block-hex", "units: 0x2", "§2.1 table", lambda: block(HEAD + ARCH.replace("units: 2,", "units: 0x2,"))),
        ("block-octal", "units: 02", "§2.1 table", lambda: block(HEAD + ARCH.replace("units: 2,", "units: 02,"))),
        ("block-underscore", "in_units: 0_3", "§2.1 table",
         lambda: block(HEAD + ARCH.replace("in_units: 3", "in_units: 3_0"))),
        ("block-base60", "units: 1:30", "§2.1 table", lambda: block(HEAD + ARCH.replace("units: 2,", "units: 1:30,"))),
        ("block-timestamp", "a plain timestamp", "§2.1 table", lambda: block_with("metadata:\n  date: 2001-12-14")),
        ("block-merge", "a merge key", "§2.1 table", lambda: block_with("metadata:\n  <<: {a: b}")),
        ("block-value", "the value key =", "§2.1 table", lambda: block_with("metadata:\n  a: =")),
        ("block-bom-inside", "a raw U+FEFF in a plain scalar", "§2.1 block",
         lambda: block_with("metadata:\n  a: b\ufeffc")),
        ("block-nonprintable", "a raw U+0001", "§2.1 block", lambda: block_with("metadata:\n  a: b\x01c")),
        ("block-deep", "161 nested flow lists", "§2.1 limits", lambda: block_with(f"metadata:\n  a: {deep}")),
        ("float-for-int", "units: 2.0 where an integer is required", "§2.1 numbers",
         lambda: block(HEAD + ARCH.replace("units: 2,", "units: 2.0,"))),
        ("bool-for-int", "units: true", "§2.1 numbers", lambda: dense_config(units=True)),
        ("not-a-mapping", "a top-level list", "§2.1", lambda: bytes(base(text="- 1\n- 2\n"))),
        ("missing-producer", "no producer", "§2.2", lambda: edited(lambda d: d.pop("producer"))),
        ("missing-weights", "no weights field", "§2.2", lambda: edited(lambda d: d.pop("weights"))),
        ("unknown-field", "an unknown top-level field in the reader's own version", "§2.2",
         lambda: edited(lambda d: d.update(loader="os.system"))),
        ("model-without-architecture", "kind model without architecture", "§2.2",
         lambda: edited(lambda d: d.pop("architecture"))),
        ("model-with-layout", "kind model with a layout", "§2.2", lambda: edited(lambda d: d.update(layout="dict"))),
        ("list-layout-names", "a list layout whose tensors are not named 0, 1, ...", "§5",
         lambda: list_layout_misnamed()),
        ("tensor-name-slash", "a tensor name with '/'", "§2.2", lambda: tensors_named("a/b")),
        ("tensor-name-control", "a tensor name with a control character", "§2.2", lambda: tensors_named("a\x1fb")),
        ("tensor-name-too-long", "a tensor name of 1025 code points", "§2.2", lambda: tensors_named("😀" * 1025)),
        ("dtype-unknown", "a TensorInfo dtype 'object'", "§2.2",
         lambda: edited(lambda d: d["weights"]["0.bias"].update(dtype="object"))),
        ("shape-negative", "a TensorInfo shape with -1", "§2.2",
         lambda: edited(lambda d: d["weights"]["0.bias"].update(shape=[-1]))),
        ("sha256-uppercase", "a TensorInfo sha256 in uppercase", "§2.2",
         lambda: edited(lambda d: d["weights"]["0.bias"].update(sha256=d["weights"]["0.bias"]["sha256"].upper()))),
        ("sha256-missing", "a 1.1 TensorInfo without sha256", "§2.2",
         lambda: edited(lambda d: d["weights"]["0.bias"].pop("sha256"))),
        ("metadata-not-string", "a metadata value that is a number", "§2.2",
         lambda: edited(lambda d: d.update(metadata={"a": 1}))),
    ]
    out = [Invalid(f"manifest-{n}", a, r, "open", "SchemaError", m) for n, a, r, m in vectors]
    return out


def json_leaky(number: str) -> str:
    text = zc.json_form(doc(architecture={"type": "LeakyReLU", "config": {"alpha": 0.5}}, weights={}))
    return text.replace("0.5", number)


def list_layout_misnamed() -> bytes:
    document = {"format": "modelpack", "format_version": "1.1", "producer": "conformance", "kind": "tensors",
                "layout": "list", "weights": {"a": zc.tensor_info(B)}}
    return bytes(base(document, bundle=[Entry(b"a.npy", zc.npy(B))]))


def tensors_named(name: str) -> bytes:
    document = {"format": "modelpack", "format_version": "1.1", "producer": "conformance", "kind": "tensors",
                "layout": "dict", "weights": {name: zc.tensor_info(B)}}
    text = zc.json_form(document) if all(ord(c) <= 0xFFFF for c in name) else block_tensors(name)
    return bytes(base(text=text, bundle=[Entry((name + ".npy").encode(), zc.npy(B))]))


def block_tensors(name: str) -> str:
    info = zc.tensor_info(B)
    return (f"format: modelpack\nformat_version: '1.1'\nproducer: conformance\nkind: tensors\nlayout: dict\n"
            f"weights:\n  \"{name}\": {{dtype: float32, shape: [2], sha256: '{info['sha256']}'}}\n")


# -- §3 architecture ------------------------------------------------------------------------

def architecture_rules() -> list[Invalid]:
    nested: dict[str, Any] = {"type": "Dense", "config": {"units": 2, "in_units": 3}}
    for _ in range(64):
        nested = {"type": "Sequential", "children": {"0": nested}}
    dense = {"type": "Dense", "config": {"units": 2, "in_units": 3}}
    open_schema = [
        ("unknown-field", "a LayerNode field 'hook'", "§3",
         lambda: edited(lambda d: d["architecture"].update(hook="os.system"))),
        ("config-unknown-field", "a Dense config field 'exec'", "§3", lambda: dense_config(exec="rm")),
        ("config-out-of-range", "units: 0", "§3", lambda: dense_config(units=0)),
        ("config-wrong-type", "units: '2'", "§3", lambda: dense_config(units="2")),
        ("config-bad-activation", "activation: 'swish'", "§3", lambda: dense_config(activation="swish")),
        ("children-on-dense", "a Dense layer with children", "§3",
         lambda: edited(lambda d: d["architecture"]["children"]["0"].update(children={"0": dense}))),
        ("child-name-empty", "a Sequential child named ''", "§3",
         lambda: edited(lambda d: d["architecture"].update(children={"": dense}))),
        ("child-name-dot", "a Graph child named 'a.b'", "§3",
         lambda: graph_archive([{"op": "layer", "inputs": ["x"], "outputs": ["y"], "attrs": {"block": "a.b"}}],
                               children={"a.b": {"type": "Flatten"}})),
        ("too-deep", "65 nested layers", "§3", lambda: edited(lambda d: d.update(architecture=nested))),
        ("conv-groups", "a Conv2D whose channels are not divisible by groups", "§3",
         lambda: edited(lambda d: d.update(architecture={"type": "Conv2D", "config": {
             "channels": 3, "kernel_size": [1, 1], "groups": 2, "in_channels": 4}}, weights={}))),
        ("pool-padding", "a MaxPool2D whose padding exceeds half the window", "§3",
         lambda: edited(lambda d: d.update(architecture={"type": "MaxPool2D", "config": {
             "pool_size": [2, 2], "padding": [2, 0]}}, weights={}))),
        ("kernel-not-pair", "a kernel_size of three numbers", "§3",
         lambda: edited(lambda d: d.update(architecture={"type": "Conv2D", "config": {
             "channels": 1, "kernel_size": [1, 1, 1], "in_channels": 1}}, weights={}))),
    ]
    out = [Invalid(f"arch-{n}", a, r, "open", "SchemaError", m) for n, a, r, m in open_schema]
    out.append(Invalid("arch-unknown-layer", "layer type 'os.system'", "§3", "open", "UnknownLayerError",
                       lambda: edited(lambda d: d["architecture"].update(type="os.system"))))
    b_other = np.ones((3,), np.float32)
    out += [
        Invalid("params-missing", "the manifest and bundle lack 0.bias", "§3.1", "load", "FormatError",
                lambda: bytes(base(doc(weights={"0.weight": zc.tensor_info(W)}), bundle=entries({"0.weight": W})))),
        Invalid("params-extra", "a tensor that is neither a parameter nor a constant", "§3.1", "load", "FormatError",
                lambda: bytes(base(doc(weights={**doc()["weights"], "x": zc.tensor_info(B)}),
                                   bundle=entries({**ARRAYS, "x": B})))),
        Invalid("params-shape", "0.bias of shape [3] where the config implies [2]", "§3.1", "load", "FormatError",
                lambda: bytes(base(doc(weights={"0.weight": zc.tensor_info(W), "0.bias": zc.tensor_info(b_other)}),
                                   bundle=entries({"0.weight": W, "0.bias": b_other})))),
        Invalid("params-dtype", "0.bias in float64 for a float32 layer", "§3.1", "load", "FormatError",
                lambda: bytes(base(doc(weights={"0.weight": zc.tensor_info(W),
                                                "0.bias": zc.tensor_info(B.astype(np.float64))}),
                                   bundle=entries({"0.weight": W, "0.bias": B.astype(np.float64)})))),
    ]
    return out + graph_rules()


def graph_rules() -> list[Invalid]:
    scalar = {"op": "scalar", "outputs": ["s"], "attrs": {"value": 1.0}}
    open_schema = [
        ("unknown-attr", "a relu node with attrs {'axis': 1}", lambda: graph_archive([relu(attrs={"axis": 1})])),
        ("missing-attr", "a reshape node without shape",
         lambda: graph_archive([{"op": "reshape", "inputs": ["x"], "outputs": ["y"]}])),
        ("attr-type", "a softmax axis of 1.0", lambda: graph_archive([relu(), {
            "op": "softmax", "inputs": ["y"], "outputs": ["z"], "attrs": {"axis": 1.0}}])),
        ("read-before-defined", "a node reading a value defined later",
         lambda: graph_archive([relu("z", "y"), relu("x", "z")])),
        ("defined-twice", "a value defined twice", lambda: graph_archive([relu("x", "y"), relu("x", "y")])),
        ("bad-value-name", "a value named '1y'", lambda: graph_archive([relu("x", "1y")])),
        ("two-outputs", "an op node with two outputs",
         lambda: graph_archive([{"op": "relu", "inputs": ["x"], "outputs": ["y", "z"]}])),
        ("output-undefined", "a graph output that is never defined",
         lambda: graph_archive([relu()], {"kind": "single", "values": ["q"]})),
        ("single-two-values", "a single output with two values",
         lambda: graph_archive([relu()], {"kind": "single", "values": ["x", "y"]})),
        ("keys-not-dict", "keys on a tuple output",
         lambda: graph_archive([relu()], {"kind": "tuple", "values": ["y"], "keys": ["a"]})),
        ("dict-duplicate-keys", "a dict output with the key 'a' twice",
         lambda: graph_archive([relu()], {"kind": "dict", "values": ["x", "y"], "keys": ["a", "a"]})),
        ("scalar-string", "a scalar whose value is a string",
         lambda: graph_archive([dict(scalar, attrs={"value": "1"}), {"op": "add", "inputs": ["x", "s"], "outputs": ["y"]}])),
        ("scalar-inputs", "a scalar node with an input",
         lambda: graph_archive([dict(scalar, inputs=["x"]), {"op": "add", "inputs": ["x", "s"], "outputs": ["y"]}])),
        ("input-shape-name", "an input size name '1batch'", lambda: bytes(base(bad_input_shape(), bundle=[]))),
        ("constants-negative", "constants: -1", lambda: graph_archive([relu()], config={"constants": -1})),
        ("parameter-dtype", "an own parameter of dtype int32",
         lambda: graph_archive([relu()], config={"parameters": {"p": {"shape": [1], "dtype": "int32"}}})),
    ]
    out = [Invalid(f"graph-{n}", a, "§3.3", "open", "SchemaError", m) for n, a, m in open_schema]
    out.append(Invalid("graph-unknown-op", "an op 'system'", "§3.4", "open", "UnknownOpError",
                       lambda: graph_archive([{"op": "system", "inputs": ["x"], "outputs": ["y"]}])))
    child = {"f": {"type": "Flatten"}}
    out += [
        Invalid("graph-layer-not-child", "a layer node calling a block that is not a child", "§3.3", "load",
                "SchemaError", lambda: graph_archive([{"op": "layer", "inputs": ["x"], "outputs": ["y"],
                                                       "attrs": {"block": "g"}}], children=child)),
        Invalid("graph-unknown-parameter", "a parameter node naming a parameter the block lacks", "§3.3", "load",
                "SchemaError", lambda: graph_archive([{"op": "parameter", "outputs": ["p"], "attrs": {"name": "w"}},
                                                      {"op": "add", "inputs": ["x", "p"], "outputs": ["y"]}])),
        Invalid("graph-constant-index", "a constant node reading #const1 of 1 constant", "§3.3", "load",
                "SchemaError", lambda: graph_with_constant("#const1")),
        Invalid("graph-constant-missing", "constants: 1 but no '#const0' tensor", "§3.3", "load", "FormatError",
                lambda: graph_archive([{"op": "constant", "outputs": ["c"], "attrs": {"name": "#const0"}},
                                       {"op": "add", "inputs": ["x", "c"], "outputs": ["y"]}], config={"constants": 1})),
    ]
    return out


def bad_input_shape() -> dict[str, Any]:
    document = graph_doc([relu()])
    document["architecture"]["config"]["graph"]["inputs"][0]["shape"] = ["1batch", 3]
    return document


def graph_with_constant(name: str) -> bytes:
    c = np.ones((3,), np.float32)
    document = graph_doc([{"op": "constant", "outputs": ["c"], "attrs": {"name": name}},
                          {"op": "add", "inputs": ["x", "c"], "outputs": ["y"]}], config={"constants": 1})
    document["weights"] = {"#const0": zc.tensor_info(c)}
    return bytes(base(document, bundle=[Entry(b"#const0.npy", zc.npy(c))]))


# -- §4 .npy --------------------------------------------------------------------------------

def npy_rules() -> list[Invalid]:
    data = W.tobytes()
    h = zc.header_text
    fmt: list[tuple[str, str, Callable[[], bytes]]] = [
        ("magic", "no NUMPY magic", lambda: zc.npy_raw(h(), data, magic=b"\x93NUMPX")),
        ("version-3", "npy format 3.0", lambda: zc.npy_raw(h(), data, version=(3, 0))),
        ("header-too-long", "a header length of 10 001", lambda: zc.npy_raw(h() + " " * 10_000, data)),
        ("header-beyond-member", "a header length past the member's end", lambda: zc.npy_raw(h(), b"", length=500)),
        ("four-keys", "a fourth key", lambda: zc.npy_raw(h()[:-3] + ", 'extra': 1, }", data)),
        ("missing-key", "no fortran_order", lambda: zc.npy_raw("{'descr': '<f4', 'shape': (2, 3), }", data)),
        ("duplicate-key", "descr twice",
         lambda: zc.npy_raw("{'descr': '<f4', 'descr': '<f4', 'shape': (2, 3), }", data)),
        ("shape-list", "shape as a list", lambda: zc.npy_raw(h(shape="[2, 3]"), data)),
        ("shape-nested-parens", "shape ((2, 3)) (a Python literal, not the grammar)",
         lambda: zc.npy_raw(h(shape="((2, 3))"), data)),
        ("shape-hex", "a dimension written 0x2", lambda: zc.npy_raw(h(shape="(0x2, 3)"), data)),
        ("shape-underscore", "a dimension written 0_2", lambda: zc.npy_raw(h(shape="(0_2, 3)"), data)),
        ("shape-plus", "a dimension written +2", lambda: zc.npy_raw(h(shape="(+2, 3)"), data)),
        ("comment", "a Python comment in the header", lambda: zc.npy_raw(h() + " # hi", data)),
        ("fortran-int", "fortran_order: 0", lambda: zc.npy_raw(h(fortran="0"), data)),
        ("no-newline", "a header that does not end in a newline", lambda: npy_no_newline(h(), data)),
        ("negative-dim", "shape (-2, -3)", lambda: zc.npy_raw(h(shape="(-2, -3)"), data)),
        ("65-dims", "65 dimensions", lambda: zc.npy_raw(h(shape="(" + "1, " * 65 + ")"), data)),
        ("overflow", "a byte size of 2**63", lambda: zc.npy_raw(h(shape="(1099511627776, 2097152)"), b"")),
        ("fortran", "fortran_order True", lambda: zc.npy_raw(h(fortran="True"), W.T.tobytes())),
        ("truncated", "3 bytes missing from the data", lambda: zc.npy(W)[:-3]),
        ("trailing", "bytes after the data", lambda: zc.npy(W) + b"hidden"),
    ]
    out = [Invalid(f"npy-{n}", a, "§4", "load", "FormatError", lambda m=m: one_tensor(m())) for n, a, m in fmt]
    out += [
        Invalid("npy-object", "descr |O (pickle)", "§4", "load", "UnsupportedDtypeError",
                lambda: one_tensor(zc.npy_raw(h(descr="|O"), b"\x80\x04N."))),
        Invalid("npy-structured", "a structured dtype (descr is a list)", "§4", "load", "UnsupportedDtypeError",
                lambda: one_tensor(zc.npy(np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")])))),
        Invalid("npy-unicode", "descr <U4", "§4", "load", "UnsupportedDtypeError",
                lambda: one_tensor(zc.npy_raw(h(descr="<U1"), bytes(24)))),
        Invalid("npy-little-i1", "descr <i1 (not the table's |i1)", "§4", "load", "UnsupportedDtypeError",
                lambda: one_tensor(zc.npy_raw(h(descr="<i1"), bytes(6)), info=zc.tensor_info(np.zeros((2, 3), np.int8)))),
        Invalid("npy-dtype", "an int32 member for a float32 tensor", "§4", "load", "DtypeMismatchError",
                lambda: one_tensor(zc.npy(W.astype(np.int32)))),
        Invalid("npy-big-endian", "a big-endian float32 member", "§4", "load", "DtypeMismatchError",
                lambda: one_tensor(zc.npy(W.astype(">f4")))),
        Invalid("npy-shape", "shape (3, 2) for a [2, 3] tensor", "§4", "load", "ShapeMismatchError",
                lambda: one_tensor(zc.npy(W.reshape(3, 2)))),
    ]
    return out


def npy_no_newline(header: str, data: bytes) -> bytes:
    member = bytearray(zc.npy_raw(header, data))
    member[10 + struct.unpack_from("<H", member, 8)[0] - 1] = ord(" ")
    return bytes(member)


# -- §6 versions, §7 integrity ---------------------------------------------------------------

def version_and_integrity() -> list[Invalid]:
    def version(value: Any) -> Callable[[], bytes]:
        return lambda: edited(lambda d: d.update(format_version=value))

    newer = doc(format_version="1.9")
    newer["architecture"]["children"]["0"]["config"]["future"] = 1
    newer_node = doc(format_version="1.9")
    newer_node["architecture"]["future"] = 1
    swapped = {"0.weight": W, "0.bias": B[::-1].copy()}
    out = [
        Invalid("version-major-2", "format_version 2.0", "§6", "open", "VersionError", version("2.0")),
        Invalid("version-major-0", "format_version 0.9", "§6", "open", "VersionError", version("0.9")),
        Invalid("version-major-2-new-member", "format 2.0 with a third member and no comment: the version "
                "error comes first", "§6", "open", "VersionError",
                lambda: bytes(base(doc(format_version="2.0"), comment=b"",
                                   extra_members=[Entry(b"index.bin", b"x")]))),
        Invalid("version-leading-zero", "format_version 01.1", "§6", "open", "SchemaError", version("01.1")),
        Invalid("version-one-part", "format_version '1'", "§6", "open", "SchemaError", version("1")),
        Invalid("version-number", "format_version 1.1 as a float", "§6", "open", "SchemaError", version(1.1)),
        Invalid("version-missing", "no format_version", "§6", "open", "SchemaError",
                lambda: edited(lambda d: d.pop("format_version"))),
        Invalid("version-seven-digits", "format_version 1.1000000", "§6", "open", "SchemaError", version("1.1000000")),
        Invalid("format-wrong", "format: modelpak", "§6", "open", "SchemaError",
                lambda: edited(lambda d: d.update(format="modelpak"))),
        Invalid("newer-minor-config-field", "1.9 with an unknown Dense config field", "§6", "open", "SchemaError",
                lambda: bytes(base(newer))),
        Invalid("newer-minor-node-field", "1.9 with an unknown LayerNode field", "§6", "open", "SchemaError",
                lambda: bytes(base(newer_node))),
        Invalid("comment-missing", "a 1.1 archive without the zip comment", "§7.2", "open", "IntegrityError",
                lambda: bytes(base(comment=b""))),
        Invalid("comment-other", "a 1.1 archive with another comment", "§7.2", "open", "IntegrityError",
                lambda: bytes(base(comment=b"hello"))),
        Invalid("comment-uppercase", "the manifest hash in uppercase hex", "§7.2", "open", "IntegrityError",
                lambda: bytes(base(comment=zc.hash_comment(base().manifest).upper().replace(
                    b"MODELPACK-MANIFEST-SHA256:", zc.HASH_PREFIX)))),
        Invalid("comment-mismatch", "the comment's hash is not the manifest's", "§7.2", "open", "IntegrityError",
                lambda: bytes(base(comment=zc.hash_comment(b"another manifest")))),
        Invalid("comment-mismatch-1.0", "a 1.0 archive whose hash-form comment does not match", "§7.2", "open",
                "IntegrityError", lambda: bytes(base(doc(format_version="1.0"), comment=zc.hash_comment(b"x")))),
        Invalid("tensor-sha256", "0.bias's data reversed with a matching CRC-32: only its SHA-256 tells", "§7.2",
                "sha256", "IntegrityError", lambda: bytes(base(bundle=entries(swapped)))),
    ]
    return out


# -- §3.1 shared parameters (format 1.3) ----------------------------------------------------

TIED_W = np.arange(9, dtype=np.float32).reshape(3, 3) / 11 - 0.4
TIED_B = np.array([0.1, -0.2, 0.3], dtype=np.float32)


def tied(change: Callable[[dict[str, Any]], object] | None = None,
         arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Two Dense(3, in_units=3) whose second is tied to the first, with one change."""
    arrays = arrays or {"0.weight": TIED_W, "0.bias": TIED_B}
    dense = {"type": "Dense", "config": {"units": 3, "in_units": 3}}
    document = doc(format_version="1.3", architecture={"type": "Sequential", "children": {"0": dense, "1": dense}},
                   weights={name: zc.tensor_info(a) for name, a in arrays.items()},
                   ties={"1.weight": "0.weight", "1.bias": "0.bias"})
    if change is not None:
        change(document)
    return bytes(base(document, bundle=entries(arrays)))


def tie_rules() -> list[Invalid]:
    def narrow(d: dict[str, Any]) -> None:  # the tied layer has 2 units: (2, 3) cannot use (3, 3)
        d["architecture"]["children"]["1"] = {"type": "Dense", "config": {"units": 2, "in_units": 3}}

    def tensors_with_ties() -> bytes:
        document = {"format": "modelpack", "format_version": "1.3", "producer": "conformance", "kind": "tensors",
                    "layout": "dict", "weights": {"w": zc.tensor_info(W)}, "ties": {"v": "w"}}
        return bytes(base(document, bundle=[Entry(b"w.npy", zc.npy(W))]))

    open_rules = [
        ("target-not-stored", "a tie whose target '9.bias' is not in weights", lambda d: d["ties"].update({"1.bias": "9.bias"})),
        ("chain", "a tie to a tied name (1.bias → 1.weight)", lambda d: d["ties"].update({"1.bias": "1.weight"})),
        ("name-with-slash", "a tie named 'a/b'", lambda d: d["ties"].update({"a/b": "0.weight"})),
        ("not-a-string", "a tie whose target is a number", lambda d: d["ties"].update({"1.bias": 0})),
    ]
    out = [Invalid(f"ties-{name}", about, "§3.1 shared parameters", "open", "SchemaError",
                   lambda change=change: tied(change)) for name, about, change in open_rules]
    out += [
        Invalid("ties-alias-has-a-tensor", "'1.weight' both tied and stored", "§3.1 shared parameters", "open",
                "SchemaError", lambda: tied(arrays={"0.weight": TIED_W, "0.bias": TIED_B, "1.weight": TIED_W})),
        Invalid("ties-in-tensors-archive", "'ties' in a manifest without an architecture", "§3.1 shared parameters",
                "open", "SchemaError", tensors_with_ties),
        Invalid("ties-not-a-parameter", "a tie from '7.weight', which the architecture does not create",
                "§3.1 shared parameters", "load", "FormatError",
                lambda: tied(lambda d: d["ties"].update({"7.weight": "0.weight"}))),
        Invalid("ties-shape-mismatch", "a Dense(2) tied to a (3, 3) weight", "§3.1 shared parameters", "load",
                "FormatError", lambda: tied(narrow)),
        Invalid("ties-dropped", "a 1.3 archive whose tied layer has neither a tensor nor a tie", "§3.1", "load",
                "FormatError", lambda: tied(lambda d: d.pop("ties"))),
    ]
    return out


def vectors() -> list[Invalid]:
    from offsets import invalid_vectors as offset_vectors  # late: it builds on valid.py's helpers too

    return container() + bundle_rules() + manifest_rules() + architecture_rules() + npy_rules() + \
        version_and_integrity() + tie_rules() + offset_vectors()

