"""What kind of file is this? From its first bytes (and a zip's member names), never its code.

Each modelpack reader recognises the files the others read, so a file given to the wrong
function is answered with what it is and which function reads it, instead of a low-level
"member 'manifest.yaml' is missing". Sniffing reads at most the first 16 bytes and, for a zip,
the member names of its directory; nothing in the file is interpreted beyond that.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from typing import IO

from ..errors import FileKindError, ModelpackError
from .limits import DEFAULT_LIMITS, GRACE_BYTES
from .paths import PathOrFile, open_for_reading
from .zipio import Source
from .zipread import read_directory

__all__ = ["FileKind", "KINDS", "MXNET_LIST_MAGIC", "sniff", "read_head", "is_mxnet", "is_symbol_file",
           "is_safetensors", "refuse_other_kind", "unreadable_zip"]


@dataclass(frozen=True)
class FileKind:
    """A kind of file: what to call it in a message, and what to do with it instead."""

    name: str
    description: str
    advice: str


_KIND_TABLE = (
    # name, what it is, what to do with it instead
    ("mpk", "a modelpack archive",
     "read it with modelpack.load(path), or its weights with net.load_parameters(path)"),
    ("npz", "a parameter file (.npz, from save_parameters or numpy.savez)",
     "read it with net.load_parameters(path) on a network of the same architecture, or its arrays "
     "by name with modelpack.load(path)"),
    ("mxnet", "an MXNet NDArray file (npx.save / save_parameters)",
     "read it with modelpack.load(path), or net.load_parameters(path) for Gluon parameters"),
    ("torch", "a PyTorch file (torch.save)",
     "read a state_dict with net.load_parameters(path) on a modelpack network of the same "
     "architecture, or modelpack.interop.torch.load(path) (no torch needed)"),
    ("onnx", "an ONNX model",
     "convert it with modelpack.convert(path) or `modelpack convert FILE -o OUT.mpk` (the onnx extra)"),
    ("pickle", "a Python pickle",
     "modelpack never unpickles (that runs code from the file); unpickle it only if you trust it"),
    ("safetensors", "a safetensors file",
     "read it with net.load_parameters(path) on a modelpack network of the same architecture, "
     "modelpack.interop.safetensors.read_safetensors(path), or `modelpack convert FILE -o OUT.mpk`"),
    ("npy", "a NumPy array file (.npy)", "read it with numpy.load(path)"),
    ("gguf", "a GGUF file (llama.cpp)", "read it with the gguf package (gguf.GGUFReader(path))"),
    ("keras", "a Keras archive (.keras)", "read it with keras.saving.load_model(path)"),
    ("hdf5", "an HDF5 file (e.g. Keras .h5)", "read it with h5py"),
    ("zip", "a zip file of another kind", "list it with a zip tool to see what it holds"),
    ("unknown", "not a file modelpack knows", "read it with the tool that wrote it"),
)
KINDS: dict[str, FileKind] = {name: FileKind(name, what, advice) for name, what, advice in _KIND_TABLE}

# The first 8 bytes of an MXNet NDArray file (npx.save, save_parameters), little-endian.
MXNET_LIST_MAGIC = 0x112
_MXNET_LIST_MAGIC = MXNET_LIST_MAGIC.to_bytes(8, "little")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NPY_MAGIC = b"\x93NUMPY"
_GGUF_MAGIC = b"GGUF"
_SAFETENSORS_HEADER = 100 * 2**20  # a bound above safetensors' own (100 MB): a header's length is below it
# What every .keras archive (Keras 3's format) holds: its model's config and its format's metadata.
_KERAS_MEMBERS = frozenset(("config.json", "metadata.json"))
# The tags of ModelProto's fields 2 to 8 and 14 (producer, ..., graph, opset_import, metadata)
_ONNX_NEXT_FIELDS = frozenset((0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72))


def sniff(handle: IO[bytes]) -> FileKind:
    """The kind of an open, seekable binary file (from its start); the position is restored."""
    position = handle.tell()
    try:
        handle.seek(0)
        head = handle.read(16)
        if head.startswith(b"PK"):
            handle.seek(0)
            return KINDS[_zip_kind(handle)]
        return KINDS[_plain_kind(head)]
    finally:
        handle.seek(position)


def is_mxnet(handle: IO[bytes]) -> bool:
    """True when an open, seekable file starts with MXNet's NDArray list magic (reads 8 bytes).

    The readers that accept MXNet files ask this first and hand such a file to
    ``modelpack.interop.mxnet`` (imported only then); the position is restored. A stream that
    cannot seek is not sniffed (False): the caller's own reader then says what it needs.
    """
    return read_head(handle, len(_MXNET_LIST_MAGIC)) == _MXNET_LIST_MAGIC


def is_symbol_file(source: PathOrFile) -> bool:
    """True when a file starts as MXNet's symbol JSON does (a JSON object whose first key is
    ``"nodes"``): a cheap sniff from its first 64 bytes, not a check; the position is kept.
    (Here, not with the symbol reader: a command asks it of every file it is handed.)"""
    try:
        with open_for_reading(source) as handle:
            head = read_head(handle, 64).lstrip()
    except OSError:
        return False
    return head.startswith(b"{") and b'"nodes"' in head


def is_safetensors(handle: IO[bytes]) -> bool:
    """True when an open, seekable file starts as a safetensors file does (reads 9 bytes): a
    header length under safetensors' bound, then the header's ``{``; the position is restored.
    The parameter-file reader asks this before the zip readers, at the cost of one small read."""
    return _is_safetensors(read_head(handle, 9))


def read_head(handle: IO[bytes], size: int) -> bytes:
    """The first ``size`` bytes of an open file (fewer if it is shorter), its position left as
    it was; empty for a stream that cannot seek (what a sniff reads there is not the start)."""
    if isinstance(handle, io.FileIO) and hasattr(os, "pread"):  # one positioned read, not 3 seeks and a read
        with contextlib.suppress(OSError, ValueError):
            return os.pread(handle.fileno(), size, 0)
    try:
        position = handle.tell()
    except (OSError, ValueError, AttributeError):
        return b""
    try:
        handle.seek(0)
        return handle.read(size)
    finally:
        handle.seek(position)


def _is_safetensors(head: bytes) -> bool:
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < _SAFETENSORS_HEADER


def _plain_kind(head: bytes) -> str:
    if head.startswith(_MXNET_LIST_MAGIC):
        return "mxnet"
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_GGUF_MAGIC):
        return "gguf"
    if len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] < 0x40 and head[2] in _ONNX_NEXT_FIELDS:
        return "onnx"  # a ModelProto: ir_version (field 1) first, as protobuf writers order fields
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        # torch's legacy format is a pickle whose first object is its magic number
        return "torch" if head[2:3] == b"\x8a" else "pickle"
    if _is_safetensors(head):
        return "safetensors"
    return "unknown"


def _zip_names(handle: IO[bytes], where: str) -> list[str]:
    """The member names of a zip, read by the strict reader (a lenient one finds a damaged
    archive's inner bundle instead); its ModelpackError if it refuses the file."""
    directory = read_directory(
        Source.whole(handle, where=where), kind="a zip", max_members=DEFAULT_LIMITS.max_tensors,
        too_many=lambda count: ModelpackError(f"{where}: holds {count} members"), max_ratio=float("inf"),
        grace_bytes=GRACE_BYTES, max_inflated=float("inf"),  # nothing is inflated here
    )
    return [member.name for member in directory.members]


def unreadable_zip(handle: IO[bytes], where: str) -> str | None:
    """Why a file that starts as a zip cannot be read as one (the strict reader's refusal,
    naming ``where``), or None if it can; the position is restored."""
    position = handle.tell()
    try:
        _zip_names(handle, where)
    except ModelpackError as exc:
        return str(exc)
    except OSError as exc:
        return f"{where}: {exc}"
    finally:
        handle.seek(position)
    return None


def _zip_kind(handle: IO[bytes]) -> str:
    try:
        names = _zip_names(handle, "<sniffed>")
    except (ModelpackError, OSError):
        return "zip"
    if "manifest.yaml" in names:
        return "mpk"
    if names and all(name.endswith(".npy") for name in names):
        return "npz"
    if any(os.path.basename(name) == "data.pkl" for name in names):
        return "torch"
    if _KERAS_MEMBERS <= set(names):
        return "keras"
    return "zip"


def refuse_other_kind(handle: IO[bytes], name: str, *, expected: str) -> None:
    """Raise ``FileKindError`` if the file is of a known kind other than ``expected``.

    Called once a reader has failed, so a wrong file costs nothing on the happy path.
    """
    kind = sniff(handle)
    if kind.name in (expected, "unknown", "zip"):
        return
    wanted = KINDS[expected].description
    raise FileKindError(f"{name} is {kind.description}, not {wanted}; {kind.advice}", kind=kind.name)
