"""Mutation fuzzing of archives, shared by tests/test_fuzz.py (hypothesis) and scripts/fuzz.py.

A case is a valid seed archive with one to three mutations stacked: bit flips (anywhere, or
near zip headers), zip header fields set to boundary values, truncations, insertions and
deletions, splices, member swaps in either zip, manifest edits (as data and as text, re-hashed
so they reach validation), and npy header edits (with the CRC fixed up). ``run_case`` feeds
the bytes to load, inspect and verify and returns the name of the outcome; it raises
``Inconsistent`` (an AssertionError) if anything but a ModelpackError escapes or if what
loads does not agree with its own manifest.
"""

from __future__ import annotations

import contextlib
import io
import random
import signal
import struct
import zipfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from craft import manifest_comment, stored_zip

import modelpack
from modelpack import nn
from modelpack.errors import ModelpackError
from modelpack.nn import functional as F

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


def _export(net: nn.Block, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    modelpack.export(net, buffer, **kwargs)
    return buffer.getvalue()


def _save(data: Any, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    modelpack.save(buffer, data, **kwargs)
    return buffer.getvalue()


@cache
def seeds() -> dict[str, bytes]:
    """Several small valid archives covering every reader path."""
    mlp = nn.Sequential()
    mlp.add(nn.Dense(6, activation="relu"), nn.Dense(3))
    mlp.initialize(seed=0)
    mlp(np.zeros((1, 4)))
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
        "mlp": _export(mlp),
        "cnn": _export(cnn),
        "graph": _export(residual, example=example),
        "tensors": _save(tensors),
        "deflated": _save(tensors, compress=True),
        "list": _save([np.arange(3, dtype=np.int8), np.ones((2, 2))]),
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
    else:
        members = _shuffle_list(members, rng)
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
    header_end = 10 + struct.unpack_from("<H", content, 8)[0]
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
}


def mutate(data: bytes, rng: random.Random, count: int) -> tuple[bytes, list[str]]:
    """``count`` random mutations applied in turn; returns the bytes and their names."""
    applied = []
    for _ in range(count):
        name = rng.choice(sorted(MUTATIONS))
        if data:
            data = MUTATIONS[name](data, rng)
        applied.append(name)
    return data, applied


# -- one case ------------------------------------------------------------------------------

def run_case(data: bytes) -> str:
    """Load, inspect and verify ``data``; the outcome is the load's error class or "loaded"."""
    try:
        loaded = _call(lambda: modelpack.load(io.BytesIO(data)))
        outcome = "loaded"
    except ModelpackError as exc:
        loaded, outcome = None, type(exc).__name__
    try:
        manifest = _call(lambda: modelpack.inspect(io.BytesIO(data)))
    except ModelpackError:
        manifest = None
    report = _call(lambda: modelpack.verify(io.BytesIO(data)))
    if loaded is not None:
        if manifest is None:
            raise Inconsistent("load succeeded but inspect refused the same bytes")
        _check_loaded(loaded, manifest)
    if report.ok:
        if loaded is None:
            raise Inconsistent(f"verify passed but load refused: {outcome}")
        _call(lambda: modelpack.load(io.BytesIO(data), integrity="sha256"))
    return outcome


def _call(step: Callable[[], Any]) -> Any:
    try:
        return step()
    except ModelpackError:
        raise
    except Exception as exc:  # the point of the fuzzer: report anything else, with its type
        raise Inconsistent(f"{type(exc).__name__} escaped: {exc}") from exc


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
