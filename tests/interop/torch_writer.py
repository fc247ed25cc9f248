"""Writes torch.save's zip-of-pickle layout without torch, opcode by opcode, for tests.

Independent of both torch and modelpack's reader, so the reader is tested against bytes it did
not produce (and, where torch is installed, ``torch.load`` checks this writer). Every piece is
a function of bytes, so a test can swap one opcode, one name or one size for a lie.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

STORAGE_OF = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
              "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage",
              "uint8": "ByteStorage", "bool": "BoolStorage"}


def global_(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def integer(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def tuple_(*parts: bytes) -> bytes:
    return b"(" + b"".join(parts) + b"t"


def tensor(storage: str, key: str, numel: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    """``_rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())``."""
    pid = tuple_(text("storage"), global_("torch", storage), text(key), text("cpu"), integer(numel))
    return (global_("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"Q" + integer(offset)
            + tuple_(*map(integer, size)) + tuple_(*map(integer, stride)) + b"\x89"
            + global_("collections", "OrderedDict") + b")R" + b"tR")


# dtypes torch saves on an untyped (byte) storage, the tensor naming its dtype (``tensor_v3``)
UNTYPED = ("uint16", "uint32", "uint64")


def tensor_v3(dtype: str, key: str, nbytes: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
              *, storage: tuple[str, str] = ("torch.storage", "UntypedStorage"), extra: bytes = b"") -> bytes:
    """``_rebuild_tensor_v3(persistent untyped storage, offset, size, stride, False, OrderedDict(),
    torch.<dtype>)``: ``nbytes`` bytes in the storage, offset and strides in ``dtype``'s elements."""
    pid = tuple_(text("storage"), global_(*storage), text(key), text("cpu"), integer(nbytes))
    return (global_("torch._utils", "_rebuild_tensor_v3") + b"(" + pid + b"Q" + integer(offset)
            + tuple_(*map(integer, size)) + tuple_(*map(integer, stride)) + b"\x89"
            + global_("collections", "OrderedDict") + b")R" + global_("torch", dtype) + extra + b"tR")


def state_dict_pickle(entries: dict[str, bytes]) -> bytes:
    """An OrderedDict of name -> pickled value, as torch.save writes a state_dict."""
    body = b"".join(text(name) + value for name, value in entries.items())
    return b"\x80\x02" + global_("collections", "OrderedDict") + b")R(" + body + b"u."


def contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))


def torch_zip(pickle_bytes: bytes, storages: dict[str, bytes], *, name: str = "archive",
              byteorder: bytes | None = b"little") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{name}/data.pkl", pickle_bytes)
        if byteorder is not None:
            archive.writestr(f"{name}/byteorder", byteorder)
        for key, data in storages.items():
            archive.writestr(f"{name}/data/{key}", data)
        archive.writestr(f"{name}/version", b"3\n")
    return buffer.getvalue()


def state_dict_file(arrays: dict[str, np.ndarray], *, big_endian: bool = False) -> bytes:
    """A torch.save file of ``arrays`` (one storage each), readable by torch.load."""
    entries, storages = {}, {}
    for index, (name, array) in enumerate(arrays.items()):
        key = str(index)
        if array.dtype.name in UNTYPED:
            entries[name] = tensor_v3(array.dtype.name, key, array.nbytes, 0, array.shape, contiguous(array.shape))
        else:
            entries[name] = tensor(STORAGE_OF[array.dtype.name], key, array.size, 0, array.shape,
                                   contiguous(array.shape))
        flat = np.ascontiguousarray(array).reshape(-1)
        storages[key] = (flat.astype(flat.dtype.newbyteorder(">")) if big_endian else flat).tobytes()
    return torch_zip(state_dict_pickle(entries), storages, byteorder=b"big" if big_endian else b"little")


# -- numpy's values, as numpy pickles them at protocol 2 (torch.save's) -----------------------


def latin1(raw: bytes) -> bytes:
    """Bytes as protocol 2 spells them: ``_codecs.encode(text, "latin1")``."""
    return global_("_codecs", "encode") + text(raw.decode("latin-1")) + text("latin1") + b"\x86R"


def numpy_dtype(code: str, order: str, *, state: bytes | None = None) -> bytes:
    """``numpy.dtype(code, False, True)`` then BUILD with its state (a plain number's by default)."""
    state = state if state is not None else tuple_(integer(3), text(order), b"NNN", integer(-1), integer(-1),
                                                   integer(0))
    return global_("numpy", "dtype") + text(code) + b"\x89\x88\x87R" + state + b"b"


def numpy_scalar(code: str, order: str, raw: bytes, *, module: str = "numpy._core") -> bytes:
    """``numpy._core.multiarray.scalar(dtype, raw)``: a numpy scalar such as np.float64(0.5)."""
    return global_(f"{module}.multiarray", "scalar") + numpy_dtype(code, order) + latin1(raw) + b"\x86R"


def numpy_array(shape: tuple[int, ...], code: str, order: str, raw: bytes, *, fortran: bool = False,
                cls: tuple[str, str] = ("numpy", "ndarray"), encoding: str = "latin1",
                module: str = "numpy._core") -> bytes:
    """``_reconstruct(numpy.ndarray, (0,), b"b")`` then BUILD ``(1, shape, dtype, fortran, raw)``."""
    tag = global_("_codecs", "encode") + text("b") + text(encoding) + b"\x86R"
    return (global_(f"{module}.multiarray", "_reconstruct") + global_(*cls) + integer(0) + b"\x85" + tag + b"\x87R"
            + tuple_(integer(1), tuple_(*map(integer, shape)), numpy_dtype(code, order), b"\x88" if fortran else b"\x89",
                     latin1(raw)) + b"b")


def pickled(value: bytes) -> bytes:
    """A whole protocol-2 pickle of one value."""
    return b"\x80\x02" + value + b"."
