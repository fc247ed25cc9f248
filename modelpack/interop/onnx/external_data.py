"""ONNX tensors stored beside the model (``external_data``: a file name, an offset and a
length), read into the model before it is translated: a model over protobuf's 2 GB must keep
its weights this way, and exporters do so for smaller ones too.

The file names come from the model, so each is checked before anything is opened: a name
below the model's own folder (no absolute path, no ``..``, no link leading out of the folder),
a regular file that holds the tensor's exact byte count (its dims times its type's size) at
the offset given. Read by offset, never past what the tensor declares.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import onnx

from ...errors import FormatError, PathError
from ...io.paths import PathOrFile, is_file_object, open_for_reading
from ...io.remote import is_url, local_path

__all__ = ["read_external_data"]


def read_external_data(tensors: Sequence[onnx.TensorProto], source: PathOrFile, where: str,
                       dtype_of: Callable[[onnx.TensorProto], np.dtype]) -> int:
    """Put the bytes of every tensor stored in another file into the tensor itself (as
    ``raw_data``), reading each file beside ``source``, a local path; ``dtype_of`` gives a
    tensor's numpy dtype (refusing a type modelpack does not hold). Returns how many bytes
    were read: part of the model's size, as its own file is."""
    external = [tensor for tensor in tensors if tensor.data_location == onnx.TensorProto.EXTERNAL]
    if not external:
        return 0
    if is_file_object(source) or is_url(source):
        raise FormatError(f"{where}: tensor {external[0].name!r} is stored in another file, which is read "
                          "beside the model's own: give the model as a local path")
    local = local_path(source) or os.fspath(source)  # type: ignore[arg-type]
    folder = os.path.dirname(os.path.realpath(local))
    total = 0
    for tensor in external:
        expected = math.prod(tensor.dims) * dtype_of(tensor).itemsize
        location, path, offset, length = _entry(tensor, folder, where, expected)
        what = f"{where}: tensor {tensor.name!r}: its data file {location!r}"
        tensor.raw_data = _read(path, offset, length, what)
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
        total += length
    return total


def _entry(tensor: onnx.TensorProto, folder: str, where: str, expected: int) -> tuple[str, str, int, int]:
    """(the data file's name as given and its resolved path, offset, length) of a tensor, each
    checked."""
    what = f"{where}: tensor {tensor.name!r}"
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    parts = location.replace("\\", "/").split("/")
    if not location or "\x00" in location or os.path.isabs(location) or ".." in parts:
        raise FormatError(f"{what}: its data file {location!r} is not a name below the model's folder")
    path = os.path.realpath(os.path.join(folder, location))
    if os.path.commonpath([path, folder]) != folder:
        raise FormatError(f"{what}: its data file {location!r} leads out of the model's folder")
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries.get("length", str(expected)))
    except ValueError:
        raise FormatError(f"{what}: its data's offset or length is not a number") from None
    if offset < 0 or length != expected:
        raise FormatError(f"{what}: its data file gives {length} bytes at offset {offset}, for a tensor "
                          f"of {expected} bytes ({list(tensor.dims)})")
    return location, path, offset, length


def _read(path: str, offset: int, length: int, what: str) -> bytes:
    """``length`` bytes of a regular file from ``offset``, all of them there (``what`` names the
    tensor and its data file in a refusal); opened as every file to read is (``io.paths``)."""
    try:
        with open_for_reading(path, buffered=False) as handle:
            fd = handle.fileno()
            size = os.fstat(fd).st_size
            if size < offset + length:
                raise FormatError(f"{what} holds {size} bytes, not {length} from offset {offset}")
            chunks, done = [], 0
            while done < length:
                chunk = os.pread(fd, min(length - done, 1 << 30), offset + done)
                if not chunk:
                    raise FormatError(f"{what} ended early")
                chunks.append(chunk)
                done += len(chunk)
            return b"".join(chunks)
    except PathError as exc:
        raise FormatError(f"{what}: {exc.problem}") from None
