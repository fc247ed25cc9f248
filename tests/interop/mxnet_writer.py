"""A tiny, test-only writer of MXNet's NDArray file format (modelpack itself only reads it).

Written from the format's description, independently of the reader, and checked byte for
byte against files MXNet wrote; every field can be overridden to build hostile files. And
symbol JSON files built node by node (``Sym``), converted with their parameters
(``convert_symbol``), for operators and attributes no reference export holds.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from modelpack.interop import mxnet

# MXNet's type flags, declared here again on purpose (the tests must not trust the reader's).
FLAGS = {"float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4, "int8": 5, "int64": 6,
         "bool": 7, "int16": 8, "uint16": 9, "uint32": 10, "uint64": 11, "bfloat16": 12}
MAGIC = {"numpy": 0xF993FACA, "legacy": 0xF993FAC9, "v1": 0xF993FAC8}


def record(
    array: np.ndarray,
    *,
    layout: str = "numpy",
    dtype: str | None = None,
    flag: int | None = None,
    storage: int = 0,
    shape: tuple[int, ...] | None = None,
    ndim: int | None = None,
    device: tuple[int, int] = (1, 0),
    data: bytes | None = None,
) -> bytes:
    """One array record; ``dtype="bfloat16"`` takes ``array`` as the raw uint16 bit patterns."""
    dtype = dtype or array.dtype.name
    shape = tuple(array.shape) if shape is None else shape
    ndim = len(shape) if ndim is None else ndim
    out = b""
    if layout == "v0":
        out += struct.pack("<I", ndim) + struct.pack(f"<{len(shape)}I", *shape)
    else:
        out += struct.pack("<I", MAGIC[layout])
        if layout in ("numpy", "legacy"):
            out += struct.pack("<i", storage)
        out += struct.pack("<i", ndim) + struct.pack(f"<{len(shape)}q", *shape)
    out += struct.pack("<ii", *device)
    out += struct.pack("<i", FLAGS[dtype] if flag is None else flag)
    raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    return out + (raw if data is None else data)


def ndarray_file(
    records: list[bytes],
    names: list[str | bytes] | None = None,
    *,
    magic: int = 0x112,
    count: int | None = None,
    name_count: int | None = None,
    name_lengths: list[int] | None = None,
) -> bytes:
    """The list: header, records, names (``names=None``: a list; else a dict)."""
    raw_names = [n.encode("utf-8") if isinstance(n, str) else n for n in names or []]
    parts = [struct.pack("<QQQ", magic, 0, len(records) if count is None else count), *records]
    parts.append(struct.pack("<Q", len(raw_names) if name_count is None else name_count))
    for i, name in enumerate(raw_names):  # (joined once: a model's file holds hundreds of names)
        length = len(name) if name_lengths is None else name_lengths[i]
        parts += [struct.pack("<Q", length), name]
    return b"".join(parts)


def save(arrays: list[np.ndarray] | dict[str, np.ndarray], *, layout: str = "numpy") -> bytes:
    """What ``npx.save`` (layout ``numpy``) or ``nd.save`` (``legacy``) would write."""
    if isinstance(arrays, dict):
        return ndarray_file([record(a, layout=layout) for a in arrays.values()], list(arrays))
    return ndarray_file([record(a, layout=layout) for a in arrays])


# -- symbol files ---------------------------------------------------------------------------------


class Sym:
    """A symbol JSON built by hand, as MXNet lays it out."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []

    def var(self, name: str) -> int:
        self.nodes.append({"op": "null", "name": name, "inputs": []})
        return len(self.nodes) - 1

    def op(self, op: str, *inputs: int, name: str | None = None, **attrs: Any) -> int:
        self.nodes.append({"op": op, "name": name or f"{op.lower()}{len(self.nodes)}",
                           "inputs": [[i, 0, 0] for i in inputs], "attrs": {k: str(v) for k, v in attrs.items()}})
        return len(self.nodes) - 1

    def json(self, *heads: int) -> bytes:
        args = [i for i, n in enumerate(self.nodes) if n["op"] == "null"]
        return json.dumps({"nodes": self.nodes, "arg_nodes": args, "heads": [[h, 0, 0] for h in heads]}).encode()


def convert_symbol(
    tmp_path: Path, sym: Sym, heads: list[int], params: dict[str, np.ndarray], x: np.ndarray | None, **kwargs: Any
) -> Any:
    """Convert ``sym`` (outputs ``heads``) with ``params`` written beside it; run it on ``x``."""
    (tmp_path / "t-symbol.json").write_bytes(sym.json(*heads))
    (tmp_path / "t-0000.params").write_bytes(save({f"arg:{k}": v for k, v in params.items()} or {"arg:unused": np.zeros(1)}))
    kwargs.setdefault("ignore_extra", not params)
    net = mxnet.convert(tmp_path / "t-symbol.json", tmp_path / "t-0000.params", **kwargs)
    return net if x is None else net(x)
