"""Mutation fuzzing of archives, shared by tests/test_fuzz.py (hypothesis) and scripts/fuzz.py.

A case is a valid seed archive with one to three mutations stacked: bit flips (anywhere, or
near zip headers), zip header fields set to boundary values, truncations, insertions and
deletions, splices, member swaps in either zip, manifest edits (as data and as text, re-hashed
so they reach validation), npy header edits (with the CRC fixed up), deflate nested in deflate,
and tensors grown into nested-deflate bombs. ``run_case`` feeds the bytes to load, inspect and
verify, runs what loads — its forward on small inputs under a memory cap, every parameter read
twice in every read mode — and returns the name of the outcome; it raises ``Inconsistent``
(an AssertionError) if anything but a ModelpackError naming the file escapes, if what loads
does not agree with its own manifest, or if a tensor ``verify`` calls damaged is ever served.

``run_writer_case`` fuzzes the other side: random layers with random configs (NaN, infinities,
out-of-range values, dotted names) are exported over a good file; the export must either
raise before touching it, or write an archive that loads back the same configs and outputs.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import signal
import struct
import tempfile
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from craft import RawEntry, manifest_comment, npy_header_end, raw_zip, stored_zip
from models import export_bytes, save_bytes, sequential_mlp

import modelpack
from modelpack import nn
from modelpack.errors import FileKindError, IntegrityError, ModelpackError
from modelpack.io.limits import DEFAULT_LIMITS
from modelpack.io.npz import tensor_sha256
from modelpack.nn import functional as F
from modelpack.nn import registry

EXAMPLES = Path(__file__).resolve().parents[1] / "spec" / "examples"
_SIGNATURES = (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"\x93NUMPY")
_INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


class Inconsistent(AssertionError):
    """Something other than a refusal or a faithful load happened."""


class Hang(BaseException):
    """Raised by ``time_bound``; a BaseException so that no handler in the code under test eats it."""


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM: main thread only, as pytest runs tests)."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- seeds -----------------------------------------------------------------------------------

class _Residual(nn.Block):
    """A custom block, exported as a traced graph (a second layer vocabulary to fuzz)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Dense(4, in_units=4)

    def forward(self, x: Any) -> Any:
        return F.relu(self.inner(x) + x * 0.5)


@cache
def seeds() -> dict[str, bytes]:
    """Several small valid archives covering every reader path."""
    mlp = sequential_mlp(6, 3, inputs=4)
    cnn = nn.Sequential()
    inner = nn.Sequential()
    inner.add(nn.Conv2D(2, kernel_size=3, padding=1), nn.BatchNorm(), nn.MaxPool2D())
    cnn.add(inner, nn.Flatten(), nn.LayerNorm(), nn.Dense(2), nn.Embedding(3, 2))
    cnn.initialize(seed=1)
    cnn[:4](np.zeros((1, 1, 4, 4)))
    cnn[4].weight.set_data(np.ones((3, 2), np.float32))
    residual = _Residual()
    residual.initialize(seed=2)
    example = np.ones((2, 4), np.float32)
    residual(example)
    tensors = {
        "ids": np.arange(6, dtype=np.int64).reshape(2, 3), "mask": np.array([True, False]),
        "half": np.array(0.5, np.float16), "empty": np.zeros((0, 3), np.float32),
        "c": np.array([1 + 2j], np.complex64), "u": np.array([7], np.uint16),
    }
    return {
        "mlp": export_bytes(mlp),
        "cnn": export_bytes(cnn),
        "graph": export_bytes(residual, example=example),
        "tensors": save_bytes(tensors),
        "deflated": save_bytes(tensors, compress=True),
        "list": save_bytes([np.arange(3, dtype=np.int8), np.ones((2, 2))]),
        # a manifest large enough for the unhooked parse and msgspec's decoder (io/jsonform.py)
        "many": save_bytes({f"t{i}": np.full(i % 3, i, np.float32) for i in range(120)}),
        "format-1.0": (EXAMPLES / "tensors.mpk").read_bytes(),
    }


# -- mutations -------------------------------------------------------------------------------

def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _signature_offsets(data: bytes) -> list[int]:
    found = []
    for signature in _SIGNATURES:
        at = data.find(signature)
        while at >= 0:
            found.append(at)
            at = data.find(signature, at + 1)
    return found


def _flip_near_header(data: bytes, rng: random.Random) -> bytes:
    offsets = _signature_offsets(data)
    if not offsets:
        return _flip_bits(data, rng)
    at = min(len(data) - 1, rng.choice(offsets) + rng.randrange(64))
    out = bytearray(data)
    out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def _set_field(data: bytes, rng: random.Random) -> bytes:
    """A 2- or 4-byte little-endian field right after a signature, set to a boundary value."""
    offsets = _signature_offsets(data)
    if not offsets:
        return _flip_bits(data, rng)
    at = rng.choice(offsets) + rng.randrange(4, 44, 2)
    width = rng.choice((2, 4))
    if at + width > len(data):
        return data
    value = rng.choice(_INTERESTING + (len(data), rng.randrange(1 << (8 * width))))
    if rng.random() < 0.3:
        old = int.from_bytes(data[at : at + width], "little")
        value = old + rng.choice((-1, 1, -16, 16))
    out = bytearray(data)
    out[at : at + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _insert(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        piece = rng.randbytes(rng.randint(1, 64))
    else:
        start = rng.randrange(len(data))
        piece = data[start : start + rng.randint(1, 256)]
    return data[:at] + piece + data[at:]


def _delete(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 256) :]


def _splice(data: bytes, rng: random.Random) -> bytes:
    other = rng.choice(list(seeds().values()))
    choice = rng.randrange(3)
    if choice == 0:
        return data + other
    if choice == 1:
        return other[: rng.randrange(len(other))] + data
    return data[: rng.randrange(len(data))] + other[rng.randrange(len(other)) :]


def _members(data: bytes) -> tuple[list[tuple[str, bytes]], bytes] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [(info.filename, archive.read(info)) for info in archive.infolist()], archive.comment
    except Exception:  # zipfile fails on mutated bytes in many ways; the mutation then skips
        return None


def _swap_members(data: bytes, rng: random.Random) -> bytes:
    """Reorder, rename, drop or duplicate members of the archive or of its bundle."""
    parsed = _members(data)
    if parsed is None:
        return _flip_bits(data, rng)
    members, comment = parsed
    inner = rng.random() < 0.6 and any(name == "weights.npz" for name, _ in members)
    if inner:
        index = next(i for i, (name, _) in enumerate(members) if name == "weights.npz")
        parsed_inner = _members(members[index][1])
        if parsed_inner is None or not parsed_inner[0]:
            return data
        tensors = _shuffle_list(parsed_inner[0], rng)
        members[index] = ("weights.npz", stored_zip(tensors))
    elif members:
        members = _shuffle_list(members, rng)
    else:  # an earlier mutation dropped every member: nothing to reorder
        return data
    return stored_zip(members, comment=comment)


def _shuffle_list(members: list[tuple[str, bytes]], rng: random.Random) -> list[tuple[str, bytes]]:
    members = list(members)
    i, j = rng.randrange(len(members)), rng.randrange(len(members))
    action = rng.randrange(5)
    if action == 0:
        members[i], members[j] = members[j], members[i]
    elif action == 1:  # swap contents, keep names
        members[i], members[j] = (members[i][0], members[j][1]), (members[j][0], members[i][1])
    elif action == 2:
        members.append(members[i])
    elif action == 3:
        del members[i]
    else:
        members[i] = (rng.choice(["x.npy", "../x", "manifest.yaml", "weights.npz", members[j][0]]), members[i][1])
    return members


def _with_manifest(data: bytes, text: bytes, rng: random.Random) -> bytes:
    parsed = _members(data)
    if parsed is None:
        return data
    members = [(name, text if name == "manifest.yaml" else content) for name, content in parsed[0]]
    comment = manifest_comment(text) if rng.random() < 0.9 else parsed[1]
    return stored_zip(members, comment=comment)


def _manifest_of(data: bytes) -> bytes | None:
    parsed = _members(data)
    if parsed is None:
        return None
    return next((content for name, content in parsed[0] if name == "manifest.yaml"), None)


def _edit_manifest(data: bytes, rng: random.Random) -> bytes:
    """Change, drop or add one field anywhere in the manifest, then re-hash it."""
    text = _manifest_of(data)
    if text is None:
        return _flip_bits(data, rng)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return data
    containers = _containers(document)
    if not containers:
        return data
    container = rng.choice(containers)
    keys = list(container) if isinstance(container, dict) else list(range(len(container)))
    action = rng.randrange(4)
    if isinstance(container, dict) and (action == 0 or not keys):
        container[rng.choice(["extra", "type", "sha256", "shape", "children", "config", "0"])] = _odd_value(rng)
    elif keys and action == 1:
        del container[rng.choice(keys)]
    elif keys:
        container[rng.choice(keys)] = _odd_value(rng)
    return _with_manifest(data, yaml.safe_dump(document, sort_keys=False).encode(), rng)


def _containers(node: Any) -> list[Any]:
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (dict, list)):
            found.append(current)
            stack.extend(current.values() if isinstance(current, dict) else current)
    return found


def _odd_value(rng: random.Random) -> Any:
    return rng.choice([
        None, True, 0, -1, 1, 2**31, 2**63, 10**30, 1.5, float("nan"), float("inf"), "", "x" * 300,
        "float32", "float64", "object", "Dense", "Sequential", "Graph", "os.system", "2.0", "1.9", "0.1",
        [], [1], [2, 2], [-1], [2**40, 2**40], {}, {"type": "Dense"}, "0" * 64, "../../etc/passwd",
        4096, [4096, 4096], [2048, 2048], [1, 4096], 2**30, 0, [0, 0],  # sizes at and past the limits
    ])


def _edit_manifest_text(data: bytes, rng: random.Random) -> bytes:
    """YAML-level vandalism: tags, anchors, aliases, odd characters, deep brackets."""
    text = _manifest_of(data)
    if text is None:
        return _flip_bits(data, rng)
    at = rng.randrange(len(text) + 1)
    piece = rng.choice([b"&a ", b"*a", b"!!python/object:os.system ", b"!tag ", b"\t", b"{", b"[[[[", b"- ",
                        b": ", b"'", b'"', b"\xff", b"\x00", b"\n---\n", b"<<: ", b"? ", b"%YAML 1.1\n"])
    return _with_manifest(data, text[:at] + piece + text[at:], rng)


def _edit_npy_header(data: bytes, rng: random.Random) -> bytes:
    """Rewrite one tensor's npy header (descr, shape or order), keeping the zip consistent."""
    parsed = _members(data)
    if parsed is None:
        return _flip_bits(data, rng)
    members, comment = parsed
    index = next((i for i, (name, _) in enumerate(members) if name == "weights.npz"), None)
    inner = _members(members[index][1]) if index is not None else None
    if index is None or inner is None or not inner[0]:
        return data
    tensors = list(inner[0])
    which = rng.randrange(len(tensors))
    name, content = tensors[which]
    if len(content) < 10 or content[:6] != b"\x93NUMPY":
        return data
    header_end = npy_header_end(content)
    header = content[10:header_end].decode("latin1")
    key, value = rng.choice([
        ("'descr': ", repr(rng.choice(["<f4", ">f4", "|O", "<U3", "<f8", "|b1", "<i8", "V4"]))),
        ("'shape': ", rng.choice(["(1099511627776,)", "(-1,)", "()", "(0,)", "(1, 1, 1)", "(3,)", "(7, 7)"])),
        ("'fortran_order': ", rng.choice(["True", "False", "1", "None"])),
    ])
    start = header.find(key)
    if start < 0:
        return data
    start += len(key)
    end = header.find(", '", start)  # values are followed by the next key, or by ", }"
    end = header.find(", }", start) if end < 0 else end
    if end < 0:
        return data
    header = header[:start] + value + header[end:]
    encoded = header.rstrip().encode("latin1")
    encoded += b" " * (64 - (10 + len(encoded) + 1) % 64) + b"\n"
    tensors[which] = (name, content[:8] + struct.pack("<H", len(encoded)) + encoded + content[header_end:])
    members[index] = ("weights.npz", stored_zip(tensors))
    return stored_zip(members, comment=comment)


def _deflate_nested(data: bytes, rng: random.Random) -> bytes:
    """Repack faithfully with the bundle and its tensors both deflated (nested compression)."""
    parsed = _members(data)
    if parsed is None:
        return _flip_bits(data, rng)
    members, comment = parsed
    out = []
    for name, content in members:
        if name == "weights.npz":
            inner = _members(content)
            if inner is not None:
                content = _zip(inner[0], deflate=True)
        out.append((name, content))
    return _zip(out, deflate=rng.random() < 0.8, comment=comment)


def _grow_into_bomb(data: bytes, rng: random.Random) -> bytes:
    """Replace one tensor by zeros of a much larger declared size (manifest re-hashed to
    match), deflated, and the bundle deflated around it: a bomb that multiplies ratios."""
    parsed = _members(data)
    text = _manifest_of(data)
    if parsed is None or text is None:
        return _flip_bits(data, rng)
    members, _ = parsed
    index = next((i for i, (name, _) in enumerate(members) if name == "weights.npz"), None)
    inner = _members(members[index][1]) if index is not None else None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return data
    if index is None or inner is None or not inner[0] or not isinstance(document, dict):
        return data
    tensors = list(inner[0])
    which = rng.randrange(len(tensors))
    name = tensors[which][0].removesuffix(".npy")
    info = (document.get("weights") or {}).get(name)
    if not isinstance(info, dict):
        return data
    count = rng.choice([2**16, 2**18, 2**20, 2**21])  # float32 zeros: 256 KiB to 8 MiB
    zeros = np.zeros(count, np.float32)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, zeros)
    tensors[which] = (tensors[which][0], buffer.getvalue())
    info.update(dtype="float32", shape=[count], sha256=tensor_sha256(zeros))
    # Deflated with a flush every KiB: a ratio under 100, so each member passes alone.
    members[index] = ("weights.npz", _zip(tensors, deflate=True, flush_every=1024))
    manifest = yaml.safe_dump(document, sort_keys=False).encode()
    members = [(n, manifest if n == "manifest.yaml" else c) for n, c in members]
    return _zip(members, deflate=rng.random() < 0.7, comment=manifest_comment(manifest))


def _grow_graph(data: bytes, rng: random.Random) -> bytes:
    """Append nodes to a traced graph that make its values grow: doubling by concatenation,
    or an outer product by broadcasting (the manifest re-hashed so that it loads)."""
    text = _manifest_of(data)
    if text is None:
        return _flip_bits(data, rng)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return data
    graphs = [node["config"]["graph"] for node in _containers(document)
              if isinstance(node, dict) and node.get("type") == "Graph" and isinstance(node.get("config"), dict)
              and isinstance(node["config"].get("graph"), dict)]
    if not graphs:
        return data
    graph = rng.choice(graphs)
    try:
        last = graph["outputs"]["values"][0]
        nodes = graph["nodes"]
    except (KeyError, IndexError, TypeError):
        return data
    if rng.random() < 0.5:
        for i in range(rng.randint(10, 40)):
            nodes.append({"op": "concatenate", "inputs": [last, last], "outputs": [f"g{i}"], "attrs": {"axis": 0}})
            last = f"g{i}"
    else:
        nodes.append({"op": "reshape", "inputs": [last], "outputs": ["gc"], "attrs": {"shape": [-1, 1]}})
        nodes.append({"op": "reshape", "inputs": [last], "outputs": ["gr"], "attrs": {"shape": [1, -1]}})
        nodes.append({"op": rng.choice(["add", "multiply", "greater"]), "inputs": ["gc", "gr"], "outputs": ["gs0"]})
        last = "gs0"
        for i in range(1, rng.randint(1, 3)):
            nodes.append({"op": "reshape", "inputs": [last], "outputs": [f"gc{i}"], "attrs": {"shape": [-1, 1]}})
            nodes.append({"op": "reshape", "inputs": [last], "outputs": [f"gr{i}"], "attrs": {"shape": [1, -1]}})
            nodes.append({"op": "add", "inputs": [f"gc{i}", f"gr{i}"], "outputs": [f"gs{i}"]})
            last = f"gs{i}"
    graph["outputs"]["values"][0] = last
    return _with_manifest(data, yaml.safe_dump(document, sort_keys=False).encode(), rng)


def _zip(
    members: list[tuple[str, bytes]], *, deflate: bool, comment: bytes = b"", flush_every: int = 0
) -> bytes:
    """A zip of ``members``; ``flush_every`` deflates by hand with a full flush that often."""
    if flush_every:
        entries = []
        for name, content in members:
            packer = zlib.compressobj(9, zlib.DEFLATED, -15)
            view = memoryview(content)
            packed = b"".join(packer.compress(view[i : i + flush_every]) + packer.flush(zlib.Z_FULL_FLUSH)
                              for i in range(0, len(content), flush_every)) + packer.flush()
            entries.append(RawEntry(name.encode(), packed, method=8, plain=content))
        return raw_zip(entries, comment=comment)
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method, compresslevel=9) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are the point, sometimes
        for name, content in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = method
            archive.writestr(info, content)
        archive.comment = comment
    return buffer.getvalue()


def seconds_for(data: bytes) -> float:
    """The time a case may take: 2 s, plus 1 s per 16 MiB of file (a large valid file, e.g.
    a grown tensor stored again by a later mutation, is read, hashed and mapped in full)."""
    return 2.0 + len(data) / 2**24


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip-bits": _flip_bits,
    "flip-near-header": _flip_near_header,
    "set-field": _set_field,
    "truncate": _truncate,
    "insert": _insert,
    "delete": _delete,
    "splice": _splice,
    "swap-members": _swap_members,
    "edit-manifest": _edit_manifest,
    "edit-manifest-text": _edit_manifest_text,
    "edit-npy-header": _edit_npy_header,
    "deflate-nested": _deflate_nested,
    "grow-into-bomb": _grow_into_bomb,
    "grow-graph": _grow_graph,
}


def mutate(data: bytes, rng: random.Random, count: int) -> tuple[bytes, list[str]]:
    """``count`` random mutations applied in turn; returns the bytes and their names."""
    applied = []
    for _ in range(count):
        name = rng.choice(sorted(MUTATIONS))
        if data:
            try:
                data = MUTATIONS[name](data, rng)
            except (KeyError, IndexError, TypeError, AttributeError, ValueError):
                pass  # a structured mutation found an earlier one's damage where it looked: skip it
        applied.append(name)
    return data, applied


# -- one case ------------------------------------------------------------------------------

# Cases are read from a file (not a buffer) so that every read mode, memory mapping
# included, is tried, and so that each error can be checked for naming it.
FUZZ_FILE = Path(tempfile.mkdtemp(prefix="modelpack-fuzz-")) / "fuzz.mpk"
# Inputs a loaded model is run on: the seeds' shapes, and one of integers.
SMALL_INPUTS = (np.ones((2, 4), np.float32), np.ones((1, 1, 4, 4), np.float32), np.arange(6).reshape(2, 3))
FORWARD_PEAK_BYTES = 200 * 2**20  # issue 11's bound; the default activation budget's floor is 32 MiB


def run_case(data: bytes) -> str:
    """Load, inspect and verify ``data``, run and re-read what loads; the outcome is the
    load's error class, "loaded", or "parameter file" (a mutation that leaves only an archive's
    weights bundle, itself an ``.npz``, which ``load`` reads as one)."""
    path = FUZZ_FILE
    path.write_bytes(data)
    try:
        loaded = _call(lambda: modelpack.load(path))
        outcome = "loaded"
    except ModelpackError as exc:
        _names_the_file(exc, "load")
        loaded, outcome = None, type(exc).__name__
        if isinstance(exc, IntegrityError):
            _read_twice(lambda: modelpack.load(path), "load")  # a retry fails again
    parameter_file = False
    try:
        manifest = _call(lambda: modelpack.inspect(path))
    except ModelpackError as exc:
        _names_the_file(exc, "inspect")
        manifest = None
        parameter_file = isinstance(exc, FileKindError) and exc.kind == "npz"
    report = _call(lambda: modelpack.verify(path))
    if loaded is not None and parameter_file:  # (a mutation that leaves the weights' bundle alone)
        _check_parameter_file(loaded, path)
        return "parameter file"
    if loaded is not None:
        if manifest is None:
            raise Inconsistent("load succeeded but inspect refused the same bytes")
        _check_loaded(loaded, manifest)
        _check_amplification(loaded, len(data))
        if manifest.kind == "model":
            _run_forward(loaded)
    if report.ok:
        if loaded is None:
            raise Inconsistent(f"verify passed but load refused: {outcome}")
        _call(lambda: modelpack.load(path, integrity="sha256"))
    _never_serve_damage(path, {name for name, status in report.tensors.items() if status == "damaged"})
    _one_tensor_reads_agree(path)
    return outcome


def _check_parameter_file(loaded: Any, path: Path) -> None:
    """A file that is a parameter file (an ``.npz``; ``load`` reads those too) loads as numpy
    reads it: the same names, dtypes, shapes and bytes."""
    with np.load(path, allow_pickle=False) as expected:
        if not isinstance(loaded, dict) or list(loaded) != list(expected.files):
            raise Inconsistent(f"a parameter file loaded as {type(loaded).__name__}, not numpy's arrays")
        for name, array in loaded.items():
            want = expected[name]
            if (array.dtype, array.shape, array.tobytes()) != (want.dtype, want.shape, want.tobytes()):
                raise Inconsistent(f"a parameter file's array {name!r} loaded other than numpy reads it")


def _one_tensor_reads_agree(path: Path) -> None:
    """A tensor read on its own (``get_tensor``, by the offset the manifest records) is the
    tensor a read of the whole archive gives, whenever both read: zip's two views of a member
    (its local header, its directory entry) never serve different bytes."""
    try:
        with modelpack.open(path) as archive:
            whole = _call(archive.read_all)
    except ModelpackError:
        return
    with modelpack.open(path) as archive:
        for name in archive:
            try:
                alone = _call(lambda name=name: archive.get_tensor(name))
            except ModelpackError as exc:
                _names_the_file(exc, f"get_tensor({name!r})")
                continue
            if (alone.dtype, alone.shape, alone.tobytes()) != (whole[name].dtype, whole[name].shape,
                                                                whole[name].tobytes()):
                raise Inconsistent(f"get_tensor({name!r}) read other bytes than a whole read")


def _names_the_file(exc: ModelpackError, step: str) -> None:
    if str(FUZZ_FILE) not in str(exc):
        raise Inconsistent(f"{step} raised {type(exc).__name__} without naming the file: {exc}")


def _run_forward(net: nn.Block) -> None:
    """What loads runs on small inputs, or refuses them with an error naming the file, within
    a memory cap (tracemalloc's peak counts numpy's buffers)."""
    for x in SMALL_INPUTS:
        tracemalloc.start()
        try:
            with np.errstate(all="ignore"):
                _call(lambda x=x: net(x))
        except ModelpackError as exc:
            _names_the_file(exc, f"forward on {x.shape}")
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        if peak > FORWARD_PEAK_BYTES:
            raise Inconsistent(f"forward on {x.shape} allocated {peak} bytes")


def _read_twice(read: Callable[[], Any], what: str) -> Any:
    """Read twice: both fail with IntegrityError (None), or both succeed with equal bytes."""
    results = []
    for _ in range(2):
        try:
            results.append(_call(read))
        except IntegrityError as exc:
            _names_the_file(exc, what)
            results.append(exc)
        except ModelpackError as exc:
            _names_the_file(exc, what)
            results.append(exc)
    first, second = results
    if isinstance(first, Exception) or isinstance(second, Exception):
        if type(first) is not type(second):
            raise Inconsistent(f"{what}: {first!r} on the first read, {second!r} on the retry")
        return None
    if isinstance(first, np.ndarray) and not np.array_equal(_raw(first), _raw(second)):
        raise Inconsistent(f"{what}: two reads gave different bytes")
    return first


def _raw(array: np.ndarray) -> np.ndarray:
    """The array's bytes, for a bitwise comparison without copying (NaN payloads included)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def _never_serve_damage(path: Path, damaged: set[str]) -> None:
    """No read mode hands out a tensor ``verify`` found damaged, on a first read or a retry."""
    try:
        mapped = _call(lambda: modelpack.load(path, mmap=True, integrity="sha256"))
    except ModelpackError as exc:
        _names_the_file(exc, "load(mmap=True)")
        mapped = None
    served: list[str] = []
    if isinstance(mapped, nn.Block):
        for name, param in mapped.collect_params().items():
            if _read_twice(param.data, f"mapped parameter {name!r}") is not None:
                served.append(name)
    elif mapped is not None and damaged:
        raise Inconsistent(f"a mapped load served tensors {sorted(damaged)} that verify found damaged")
    try:
        archive = _call(lambda: modelpack.open(path, integrity="sha256"))
    except ModelpackError as exc:
        _names_the_file(exc, "open")
        archive = None
    if archive is not None:
        with archive:
            for name in archive:
                if _read_twice(lambda name=name: archive.get_tensor(name), f"get_tensor({name!r})") is not None:
                    served.append(name)
                try:
                    mapped_tensor = _read_twice(lambda name=name: archive.get_tensor(name, mmap=True), "mapped")
                except Inconsistent:
                    raise
                if mapped_tensor is not None:
                    served.append(name)
    if damaged & set(served):
        raise Inconsistent(f"tensors {sorted(damaged & set(served))} were served though verify found them damaged")


def _call(step: Callable[[], Any]) -> Any:
    try:
        return step()
    except ModelpackError:
        raise
    except Exception as exc:  # the point of the fuzzer: report anything else, with its type
        raise Inconsistent(f"{type(exc).__name__} escaped: {exc}") from exc


def _check_amplification(loaded: Any, file_size: int) -> None:
    """What loads is backed by the file: stored bytes, or deflated ones within the ratio
    limit of the whole file, however compression was nested."""
    if isinstance(loaded, nn.Block):
        arrays = [param.data() for param in loaded.collect_params().values()]
    else:
        arrays = list(loaded.values()) if isinstance(loaded, dict) else (
            [loaded] if isinstance(loaded, np.ndarray) else list(loaded))
    total = sum(array.nbytes for array in arrays)
    # spec/FORMAT.md §8, computed here independently of the reader's own arithmetic.
    allowed = DEFAULT_LIMITS.max_compression_ratio * file_size + 2**20
    if total > max(file_size, allowed):
        raise Inconsistent(f"{total} bytes loaded from a file of {file_size}: amplification beyond the ratio limit")


def _check_loaded(loaded: Any, manifest: Any) -> None:
    """What loaded must be what the manifest describes: names, shapes and dtypes."""
    if manifest.kind == "tensors":
        arrays = {"0": loaded} if manifest.layout == "single" else (
            loaded if isinstance(loaded, dict) else {str(i): a for i, a in enumerate(loaded)})
        expected_type = {"single": np.ndarray, "list": list, "tuple": tuple, "dict": dict}[manifest.layout]
        if not isinstance(loaded, expected_type):
            raise Inconsistent(f"layout {manifest.layout} loaded as {type(loaded).__name__}")
    else:
        params = {name: param.data() for name, param in loaded.collect_params().items()}
        arrays = {name: params.get(name) for name in manifest.weights if "#const" not in name}
        if set(params) - set(arrays):
            raise Inconsistent(f"parameters {sorted(set(params) - set(arrays))} are not in the manifest")
    for name, array in arrays.items():
        info = manifest.weights.get(name)
        if info is None or array is None:
            raise Inconsistent(f"tensor {name!r} loaded but not described, or described but not loaded")
        if array.dtype.name != info.dtype or list(array.shape) != list(info.shape):
            raise Inconsistent(f"tensor {name!r} is {array.dtype} {array.shape}, the manifest says {info}")


# -- the writer: random configs in, the same model out (or nothing written) ------------------

_ODD_FLOATS = (0.0, 1e-5, 0.25, -1.0, 2.0, 1e308, 5e-324, math.nan, math.inf, -math.inf)
_ACTIVATIONS = (None, "relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "silu")


def _random_layer(rng: random.Random) -> nn.Block:
    """A registered layer taking (N, features) input, with configs drawn from odd values."""
    pick = rng.randrange(7)
    if pick == 0:
        return nn.Dense(rng.randint(1, 5), activation=rng.choice(_ACTIVATIONS), use_bias=rng.random() < 0.5)
    if pick == 1:
        return nn.LeakyReLU(rng.choice(_ODD_FLOATS))
    if pick == 2:
        return nn.ELU(rng.choice(_ODD_FLOATS))
    if pick == 3:
        return nn.BatchNorm(momentum=rng.choice(_ODD_FLOATS), epsilon=rng.choice(_ODD_FLOATS))
    if pick == 4:
        return nn.LayerNorm(epsilon=rng.choice(_ODD_FLOATS))
    if pick == 5:
        return nn.Activation(rng.choice(_ACTIVATIONS[1:]))
    return nn.Flatten()


class _Scaled(nn.Block):
    """A traced block: a graph with an odd scalar, a child under a random (maybe bad) name."""

    def __init__(self, factor: float, child: nn.Block, name: str) -> None:
        super().__init__()
        self.factor = factor
        self.child_name = name
        self.register_child(child, name)

    def forward(self, x: Any) -> Any:
        return self.children[self.child_name](x) * self.factor + x[:, :1]


def _random_net(rng: random.Random) -> tuple[nn.Block, bool]:
    """A network and whether it needs tracing (an example) to export."""
    net = nn.Sequential()
    for _ in range(rng.randint(1, 3)):
        net.add(_random_layer(rng))
    if rng.random() < 0.3:
        name = rng.choice(["body", "0", "a.0", "a/b", "x" * 1100, "é"])
        return _Scaled(rng.choice(_ODD_FLOATS), net, name), True
    return net, False


def _same_config(a: Any, b: Any) -> bool:
    """Configs equal, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_config(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_config(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def run_writer_case(rng: random.Random) -> str:
    """Export a random network over a good file: refused before writing (the good file is
    intact), or written so that it loads back with the same configs and outputs."""
    net, traced = _random_net(rng)
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    net.initialize(seed=rng.randrange(1000))
    with np.errstate(all="ignore"):
        expected = net(x)
    path = FUZZ_FILE.with_name("written.mpk")
    path.write_bytes(seeds()["mlp"])
    try:
        with np.errstate(all="ignore"):
            _call(lambda: modelpack.export(net, path, example=x if traced else None))
    except ModelpackError as exc:
        if path.read_bytes() != seeds()["mlp"]:
            raise Inconsistent(f"export raised {type(exc).__name__} but replaced the file: {exc}") from exc
        return f"refused: {type(exc).__name__}"
    try:
        loaded = _call(lambda: modelpack.load(path))
    except ModelpackError as exc:
        raise Inconsistent(f"export wrote what load refuses: {type(exc).__name__}: {exc}") from exc
    originals = dict(net.named_blocks())
    for block_path, block in loaded.named_blocks():
        original = originals.get(block_path)
        if original is None or (registry.config_model_of(type(original)) is not None and not _same_config(
                original.get_config(), block.get_config())):
            raise Inconsistent(f"block {block_path!r} did not round-trip: {original!r} vs {block!r}")
    with np.errstate(all="ignore"):
        got = loaded(x)
    if got.shape != expected.shape or not np.array_equal(got, expected, equal_nan=True):
        raise Inconsistent("the loaded model computes something else")
    return "written"
