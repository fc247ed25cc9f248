"""``torch.save`` files read without torch: a zip holding ``<name>/data.pkl`` and one member
``<name>/data/<key>`` per storage.

``data.pkl`` is interpreted by ``unpickler.restricted_load`` with the few names a weights file
uses (``OrderedDict``, torch's tensor and parameter rebuilders, the storage types), each bound
to a function here that checks its arguments. A storage's declared element count must match
its member's size exactly; a tensor's size, stride and offset must stay inside its storage;
every byte count is checked against ``Limits`` before it is allocated. The file is opened
with modelpack's strict zip reader and every member's CRC-32 is checked.

Every dtype numpy holds comes back as it is, including those torch saves on an untyped byte
storage with the dtype named by the tensor (``_rebuild_tensor_v3``: uint16, uint32, uint64);
bfloat16 and the 8-bit floats float8_e4m3fn and float8_e5m2 come back as float32, which holds
each of their values exactly (``interop.widened``). Other dtypes are refused by name.

numpy's values beside the tensors (a checkpoint's ``np.float64`` accuracy, an ``np.array``
of means) come back as numpy scalars and arrays, made by ``numpy_values`` from their bytes;
numpy values of other than plain numbers (object arrays above all) are refused by name.

>>> arrays = read_state_dict("model.pt")          # doctest: +SKIP
>>> flatten(load("checkpoint.pt")).arrays         # doctest: +SKIP  (nested: 'model.fc.weight', ...)
>>> net.load_parameters("model.pt")               # doctest: +SKIP  (names mapped by layer type)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from ...errors import FileKindError, FormatError, LimitError, UnsupportedDtypeError
from ...format.tensor_index import MAX_NAME
from ...io.limits import DEFAULT_LIMITS, GRACE_BYTES, Limits
from ...io.npy import MAX_DIMS
from ...io.pages import read_target
from ...io.paths import PathOrFile, describe, open_for_reading
from ...io.sniff import sniff
from ...io.zipio import Member, MemberReader, Source
from ...io.zipread import read_directory
from ..widened import STORED_AS, stored_dtype, widened
from .numpy_values import NumpyValues, are_sizes
from .unpickler import Allowed, restricted_load, shown

__all__ = ["load", "read_state_dict", "flatten", "Flattened", "is_torch_zip", "STORAGE_DTYPES", "V3_DTYPES"]

# torch's storage type name -> numpy dtype, or a format read as float32 (``widened``); None: a
# dtype numpy or modelpack cannot hold. ``UntypedStorage`` is bytes: the tensor says its dtype.
STORAGE_DTYPES: dict[str, str | None] = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "BFloat16Storage": "bfloat16",
    "QInt8Storage": None,
    "QUInt8Storage": None,
    "QInt32Storage": None,
}
_UNTYPED = "torch.storage.UntypedStorage"
# The dtypes torch saves on an untyped storage (``_rebuild_tensor_v3``; torch.storage._new_dtypes)
# -> numpy dtype or a format read as float32; None: refused by name.
V3_DTYPES: dict[str, str | None] = {
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2",
    **dict.fromkeys(("float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "complex32",
                     "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2")),
}
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a"  # the old (pre-1.6) format: a pickle whose first object is a magic number


def is_torch_zip(handle: IO[bytes]) -> bool:
    """True when an open, seekable file is a zip with a ``<name>/data.pkl`` member (torch.save)."""
    return sniff(handle).name == "torch"


def read_state_dict(source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """A saved ``state_dict`` (or any ``dict`` of tensors) as numpy arrays by name."""
    where = describe(source)
    loaded = load(source, limits=limits)
    if not isinstance(loaded, dict):
        raise FormatError(f"{where} holds a {_kind(loaded)}, not a state_dict (a dict of tensors)")
    others = {
        str(k): _kind(v) for k, v in loaded.items() if not (isinstance(k, str) and isinstance(v, np.ndarray))
    }
    if others:
        nested = [
            k
            for k, v in loaded.items()
            if isinstance(v, dict) and v and all(isinstance(a, np.ndarray) for a in v.values())
        ]
        hint = (
            f"; its entry {nested[0]!r} looks like one: take it from "
            f"modelpack.interop.torch.load(path)[{nested[0]!r}]"
            if nested
            else ""
        )
        shown = ", ".join(f"{k!r}: {v}" for k, v in list(others.items())[:4])
        raise FormatError(
            f"{where} holds a dict with entries that are not named tensors ({shown}), not a state_dict{hint}"
        )
    return loaded


MAX_PATH = MAX_NAME  # the longest path ``flatten`` names: an archive's tensor names are at most that


@dataclass
class Flattened:
    """What a torch file holds, by dotted path: its arrays, its plain values (numbers, strings,
    numpy scalars), and how many other values were left out (None, bytes, a dtype, a dict or
    list met a second time)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, bool | int | float | complex | str | np.generic] = field(default_factory=dict)
    skipped: int = 0


def flatten(loaded: Any, *, where: str = "the file") -> Flattened:
    """Every array and plain value in what ``load`` returned, named by its keys and indices
    through dicts, lists and tuples joined by dots (``model.0.weight``,
    ``optimizer.state.0.momentum_buffer``): a flat state_dict's names are its own keys, as
    ``read_state_dict`` gives them. A value that is not in a container is named ``0``.

    A container a pickle shares (or nests in itself) is walked where it is first met and
    counted as skipped after. A path longer than an archive's tensor names may be is refused
    (a deep file would otherwise cost the square of its depth in names), and so are two values
    that come to one name, naming ``where`` and the path.

    >>> flatten(load("checkpoint.pt")).arrays["model.fc.weight"]   # doctest: +SKIP
    """
    flat, seen = Flattened(), set()
    todo: list[tuple[str, Any]] = [("", loaded)]
    while todo:
        name, value = todo.pop()
        if isinstance(value, (dict, list, tuple)):
            if len(name) > MAX_PATH:
                raise FormatError(f"{where}: a value's path {name[:40]}... is over {MAX_PATH} characters")
            if id(value) in seen:
                flat.skipped += 1
                continue
            seen.add(id(value))
            items = list(value.items() if isinstance(value, dict) else enumerate(value))
            todo.extend((f"{name}.{key}" if name else str(key), item) for key, item in reversed(items))
            continue
        name = name or "0"
        if name in flat.arrays or name in flat.values:
            raise FormatError(f"{where}: two values are both named {name!r} once nested names are joined")
        if isinstance(value, np.ndarray):
            flat.arrays[name] = value
        elif isinstance(value, (bool, int, float, complex, str, np.generic)):
            flat.values[name] = value
        else:
            flat.skipped += 1
    return flat


def load(source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Whatever a ``torch.save`` file holds, with tensors as numpy arrays and nothing executed.

    Only plain values (numbers, strings, bytes, tuples, lists, dicts), tensors, and numpy's
    scalars, arrays and dtypes of plain numbers can come back: a file that names any other
    Python object is refused before anything is built from it.
    """
    with open_for_reading(source) as handle:
        return _Reading(handle, describe(source), limits).run()


@dataclass
class _StorageType:
    name: str
    dtype: str | None


@dataclass
class _Storage:
    key: str
    array: np.ndarray  # its elements (a widened format's as float32)
    dtype: str  # as declared: a numpy dtype's name or a ``widened`` format's


@dataclass
class _Reading:
    """One file being read: its members, the storages met so far, the bytes allocated."""

    handle: IO[bytes]
    where: str
    limits: Limits
    members: dict[str, Member] = field(default_factory=dict)
    storages: dict[str, _Storage] = field(default_factory=dict)
    types: dict[str, _StorageType] = field(default_factory=dict)
    source: Source | None = None
    allocated: int = 0
    prefix: str = ""
    big_endian: bool = False

    def run(self) -> Any:
        self.handle.seek(0)
        if self.handle.read(4) == _LEGACY_MAGIC:
            raise FileKindError(
                f"{self.where} is a PyTorch file in the legacy format (torch.save before 1.6, or "
                "_use_new_zipfile_serialization=False), which modelpack does not read; re-save it "
                "with a current torch"
            )
        self.source = Source.whole(self.handle, where=self.where)
        directory = read_directory(
            self.source,
            kind="a PyTorch file (torch.save)",
            max_members=self.limits.max_tensors + 16,
            too_many=lambda count: LimitError(
                self.where,
                "its number of zip members",
                count,
                limit="max_tensors",
                allowed=self.limits.max_tensors,
            ),
            max_ratio=self.limits.max_compression_ratio,
            grace_bytes=GRACE_BYTES,
            max_inflated=self.limits.max_inflated(self.source.size),  # end to end, as for archives
        )
        self.members = {member.name: member for member in directory.members}
        pickles = [name for name in self.members if name.count("/") == 1 and name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise FormatError(
                f"{self.where}: a torch.save zip has exactly one '<name>/data.pkl' member; found {pickles}"
            )
        self.prefix = pickles[0][: -len("data.pkl")]
        order = self._small_member("byteorder", default=b"little")
        if order not in (b"little", b"big"):
            raise FormatError(f"{self.where}: member '{self.prefix}byteorder' says {order[:20]!r}")
        self.big_endian = order == b"big"
        data = self._read(self.members[pickles[0]], self.limits.max_manifest_bytes, "max_manifest_bytes")
        return restricted_load(
            data,
            where=f"{self.where}: member {pickles[0]!r}",
            allowed=self._allowed(),
            persistent_load=self._storage,
        )

    # -- members -----------------------------------------------------------------------------
    def _small_member(self, name: str, *, default: bytes) -> bytes:
        member = self.members.get(self.prefix + name)
        return default if member is None else self._read(member, 64, "")

    def _read(self, member: Member, limit: int, limit_name: str) -> bytes:
        if member.size > limit:
            if not limit_name:
                raise FormatError(
                    f"{self.where}: member {member.name!r} is {member.size} bytes, at most {limit}"
                )
            raise LimitError(
                f"{self.where}: member {member.name!r}",
                "its size",
                member.size,
                limit=limit_name,
                allowed=limit,
            )
        assert self.source is not None
        reader = MemberReader(self.source, member)
        data = reader.read(member.size)
        reader.finish()
        return data

    def _charge(self, count: int, what: str) -> None:
        """Count ``count`` bytes against ``max_total_bytes`` before they are allocated."""
        if self.allocated + count > self.limits.max_total_bytes:
            raise LimitError(
                self.where,
                f"the tensors' total size with {what}",
                self.allocated + count,
                limit="max_total_bytes",
                allowed=self.limits.max_total_bytes,
            )
        self.allocated += count

    # -- what the pickle may name ----------------------------------------------------------
    def _allowed(self) -> dict[str, Allowed]:
        allowed = {
            "collections.OrderedDict": Allowed("collections.OrderedDict", _ordered_dict),
            "torch._utils._rebuild_tensor_v2": Allowed("torch._utils._rebuild_tensor_v2", self._tensor),
            "torch._utils._rebuild_tensor_v3": Allowed("torch._utils._rebuild_tensor_v3", self._tensor_v3),
            "torch._utils._rebuild_tensor": Allowed("torch._utils._rebuild_tensor", self._tensor),
            "torch._utils._rebuild_parameter": Allowed("torch._utils._rebuild_parameter", _parameter),
            "torch._utils._rebuild_parameter_with_state": Allowed(
                "torch._utils._rebuild_parameter_with_state", _parameter
            ),
        }
        for name, dtype in STORAGE_DTYPES.items():
            allowed[f"torch.{name}"] = Allowed(f"torch.{name}", None)
            self.types[f"torch.{name}"] = _StorageType(name, dtype)
        allowed[_UNTYPED] = Allowed(_UNTYPED, None)
        self.types[_UNTYPED] = _StorageType("UntypedStorage", "uint8")
        for name in V3_DTYPES:
            allowed[f"torch.{name}"] = Allowed(f"torch.{name}", None)
        return {**allowed, **NumpyValues(self.where, self._charge).allowed()}

    def _storage(self, pid: Any) -> _Storage:
        """A ``BINPERSID`` reference: ('storage', type, key, location, element count)."""
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], Allowed)
            and pid[1].name in self.types
            and isinstance(pid[2], str)
            and isinstance(pid[4], int)
            and not isinstance(pid[4], bool)
        ):
            raise FormatError(f"{self.where}: a persistent id is not a storage reference: {shown(pid)}")
        kind, key, count = self.types[pid[1].name], pid[2], pid[4]
        if kind.dtype is None:
            raise UnsupportedDtypeError(
                f"{self.where}: storage {key!r} is a {kind.name} ({kind.name[:-7].lower()}), which numpy "
                "cannot hold; convert those tensors (e.g. to float32) before torch.save"
            )
        dtype = stored_dtype(kind.dtype)
        if key in self.storages:
            known = self.storages[key]
            if known.dtype != kind.dtype or known.array.size != count:
                raise FormatError(f"{self.where}: storage {key!r} is declared twice, differently")
            return known
        member = self.members.get(f"{self.prefix}data/{key}")
        if member is None:
            raise FormatError(f"{self.where}: storage {key!r} has no member '{self.prefix}data/{key}'")
        if count < 0 or count * dtype.itemsize != member.size:
            raise FormatError(
                f"{self.where}: storage {key!r} declares {count} {dtype.name} elements "
                f"({count * dtype.itemsize} bytes) but its member holds {member.size} bytes"
            )
        self._charge(member.size, f"storage {key!r}")
        stored = dtype.newbyteorder(">") if self.big_endian else dtype
        array = read_target(f"{self.where}: storage {key!r}", (count,), stored)
        assert self.source is not None
        reader = MemberReader(self.source, member)
        reader.readinto(array.view(np.uint8).data)
        reader.finish()
        if self.big_endian:
            array = array.astype(dtype)
        if dtype == np.bool_ and count and array.view(np.uint8).max() > 1:
            raise FormatError(f"{self.where}: bool storage {key!r} holds bytes other than 0 and 1")
        storage = _Storage(key, self._widened(array, kind.dtype, key), kind.dtype)
        self.storages[key] = storage
        return storage

    def _widened(self, array: np.ndarray, name: str, key: str) -> np.ndarray:
        """``array`` as float32 where ``name`` is a format numpy has no dtype for; else as it is."""
        if name not in STORED_AS:
            return array
        self._charge(array.size * 4, f"storage {key!r} read as float32")
        return widened(array, name)

    def _tensor_v3(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                   hooks: Any = None, dtype: Any = None, *rest: Any) -> np.ndarray:
        """torch's ``_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks,
        dtype, metadata)``: a tensor of a dtype saved on an untyped (byte) storage."""
        if not isinstance(storage, _Storage) or storage.dtype != "uint8" or not isinstance(dtype, Allowed):
            found = _kind(storage)
            if isinstance(storage, _Storage):
                found = f"{storage.dtype} storage {storage.key!r}"
            raise FormatError(f"{self.where}: a tensor of dtype {shown(dtype)} is built from a {found}, "
                              "not an untyped storage")
        name = dtype.name.removeprefix("torch.")
        target = V3_DTYPES.get(name)
        if target is None:
            raise UnsupportedDtypeError(
                f"{self.where}: storage {storage.key!r} holds {name} tensors, which numpy cannot hold; "
                "convert those tensors (e.g. to float32) before torch.save"
            )
        key = f"{storage.key} as {name}"
        if key not in self.storages:
            element = stored_dtype(target)
            if storage.array.size % element.itemsize:
                raise FormatError(f"{self.where}: storage {storage.key!r} holds {storage.array.size} bytes, "
                                  f"not a whole number of {name} elements")
            elements = storage.array.view(element.newbyteorder(">" if self.big_endian else "<"))
            if self.big_endian:
                self._charge(elements.nbytes, f"storage {storage.key!r} in this machine's byte order")
                elements = elements.astype(element)
            self.storages[key] = _Storage(storage.key, self._widened(elements, target, storage.key), target)
        return self._tensor(self.storages[key], offset, size, stride, requires_grad, hooks, *rest)

    def _tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> np.ndarray:
        """torch's ``_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, meta)``."""
        if not isinstance(storage, _Storage):
            raise FormatError(f"{self.where}: a tensor is built from a {_kind(storage)}, not a storage")
        where = f"{self.where}: a tensor on storage {storage.key!r}"
        if not (are_sizes(size) and are_sizes(stride) and len(size) == len(stride) <= MAX_DIMS
                and are_sizes((offset,))):
            raise FormatError(
                f"{where} has a malformed size {shown(size)}, stride {shown(stride)} "
                f"or offset {shown(offset)}"
            )
        if len(rest) > 3 or (len(rest) >= 2 and rest[1] not in ({}, None)):
            raise FormatError(f"{where} carries backward hooks or unknown arguments")
        count = math.prod(size)
        end = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1 if count else offset
        if end > storage.array.size:
            raise FormatError(
                f"{where} (size {tuple(size)}, stride {tuple(stride)}, offset {offset}) reaches element "
                f"{end - 1}, past the storage's {storage.array.size} elements"
            )
        if tuple(stride) == _contiguous(size) or count == 0:
            return storage.array[offset : offset + count].reshape(size)
        itemsize = storage.array.itemsize
        self._charge(count * itemsize, f"a strided tensor of shape {tuple(size)}")
        view = np.lib.stride_tricks.as_strided(
            storage.array[offset:],
            shape=tuple(size),
            strides=tuple(s * itemsize for s in stride),
            writeable=False,
        )
        return view.copy()


def _ordered_dict(*args: Any) -> dict[Any, Any]:
    if args:
        raise TypeError("OrderedDict is rebuilt empty, then filled")
    return {}


def _parameter(data: Any, requires_grad: Any = False, hooks: Any = None, *state: Any) -> Any:
    if not isinstance(data, np.ndarray):
        raise TypeError(f"a parameter wraps a {_kind(data)}, not a tensor")
    return data


def _contiguous(size: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(size):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"tensor {value.dtype.name}{list(value.shape)}"
    if isinstance(value, Allowed):
        return value.name
    return type(value).__name__
