"""MXNet's symbol JSON (``net.export`` → ``-symbol.json``), parsed strictly into checked nodes.

The file lists nodes in execution order: ``null`` nodes are inputs and parameters, every
other node names an operator, its inputs (``[node, output, version]``) and its attributes,
all strings (``"(3, 3)"``, ``"True"``, ``"1e-05"``). ``heads`` are the outputs. Nothing here
knows what an operator means (``lowering`` does); this module only guarantees a well-formed
graph: each input refers to an earlier node, names are bounded, attributes are strings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...errors import FormatError, LimitError
from ...io.limits import DEFAULT_LIMITS, Limits
from ...io.paths import PathOrFile, describe, open_for_reading

__all__ = ["Symbol", "SymbolNode", "read_symbol", "parse_symbol", "Attrs", "MAX_ATTR_CHARS"]

MAX_NODES = 1_000_000
MAX_ATTR_CHARS = 4096  # attribute values are short literals; bounds the hand-written parsers


class _Loose(BaseModel):
    # MXNet adds keys over versions (node_row_ptr, control_deps, ...): unknown keys are ignored,
    # the ones used are strict.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, defer_build=True)


Entry = list[int]


class SymbolNode(_Loose):
    """One node as the file states it; ``attrs`` merges MXNet's older ``attr``/``param`` keys."""

    op: str = Field(max_length=256)
    name: str = Field(max_length=4096)
    inputs: list[Entry] = Field(default_factory=list)
    attrs: dict[str, str] = Field(default_factory=dict)
    attr: dict[str, str] = Field(default_factory=dict)
    param: dict[str, str] = Field(default_factory=dict)

    def attributes(self) -> dict[str, str]:
        return {**self.param, **self.attr, **self.attrs}


class _SymbolFile(_Loose):
    nodes: list[SymbolNode] = Field(max_length=MAX_NODES)
    arg_nodes: list[int] = Field(default_factory=list)
    heads: list[Entry] = Field(min_length=1)


@dataclass(frozen=True)
class Symbol:
    """A checked symbol: nodes in execution order and the (node, output) pairs it returns."""

    source: str
    nodes: list[SymbolNode]
    heads: list[tuple[int, int]]

    def where(self, index: int) -> str:
        node = self.nodes[index]
        return f"{self.source}: node {index} {node.name!r} ({node.op})"


def read_symbol(source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> Symbol:
    """Read and check a ``-symbol.json`` file (at most ``limits.max_manifest_bytes`` long)."""
    name = describe(source)
    with open_for_reading(source) as handle:
        data = handle.read(limits.max_manifest_bytes + 1)
    if len(data) > limits.max_manifest_bytes:
        raise LimitError(name, "the symbol JSON's size in bytes", len(data), limit="max_manifest_bytes",
                         allowed=limits.max_manifest_bytes, note=" (at least; the rest is unread)")
    return parse_symbol(data, name)


def parse_symbol(data: bytes, source: str) -> Symbol:
    """Check a symbol JSON document: structure, then that every reference points backwards."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"{source} is not a JSON document: {type(exc).__name__}: {exc}") from None
    try:
        parsed = _SymbolFile.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise FormatError(f"{source} is not an MXNet symbol: {location}: {first['msg']}") from None
    for index, node in enumerate(parsed.nodes):
        if node.op == "null" and node.inputs:
            raise FormatError(f"{source}: node {index} {node.name!r} is a variable but has inputs")
        for entry in node.inputs:
            _check_entry(entry, index, f"{source}: node {index} {node.name!r} ({node.op}) input")
        for key, value in node.attributes().items():
            if len(value) > MAX_ATTR_CHARS or len(key) > 256:
                raise FormatError(f"{source}: node {index} {node.name!r}: attribute {key[:64]!r} is too long")
    for entry in parsed.heads:
        _check_entry(entry, len(parsed.nodes), f"{source}: output")
    return Symbol(source, list(parsed.nodes), [(entry[0], entry[1]) for entry in parsed.heads])


def _check_entry(entry: list[int], before: int, where: str) -> None:
    if len(entry) not in (2, 3) or not 0 <= entry[0] < before or not 0 <= entry[1] < 1 << 16:
        raise FormatError(
            f"{where} {entry} must be [node, output(, version)] naming an earlier node (0 to {before - 1})"
        )


# -- attribute values -------------------------------------------------------------------------

_INT = re.compile(r"^\s*(-?[0-9]{1,19})L?\s*$")
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}
_REQUIRED: Any = object()


@dataclass
class Attrs:
    """A node's string attributes, parsed on request; ``unused()`` lists what nobody read.

    Every error names the node and the attribute, with the text found.
    """

    raw: dict[str, str]
    where: str
    read: set[str] = field(default_factory=set)

    def _raw(self, key: str, default: Any) -> str | None:
        self.read.add(key)
        value = self.raw.get(key)
        if value is None:
            if default is _REQUIRED:
                raise FormatError(f"{self.where}: attribute {key!r} is required but missing")
            return None
        return value

    def _bad(self, key: str, text: str, expected: str) -> FormatError:
        return FormatError(f"{self.where}: attribute {key!r} is {text[:80]!r}, expected {expected}")

    def integer(self, key: str, default: Any = _REQUIRED) -> int:
        text = self._raw(key, default)
        if text is None:
            return int(default)
        match = _INT.match(text)
        if match is None:
            raise self._bad(key, text, "an integer")
        return int(match.group(1))

    def number(self, key: str, default: Any = _REQUIRED) -> float:
        text = self._raw(key, default)
        if text is None:
            return float(default)
        try:
            return float(text.strip())
        except ValueError:
            raise self._bad(key, text, "a number") from None

    def optional_number(self, key: str) -> float | None:
        text = self._raw(key, None)
        return None if text is None or text.strip() == "None" else self.number(key)

    def flag(self, key: str, default: Any = _REQUIRED) -> bool:
        text = self._raw(key, default)
        if text is None:
            return bool(default)
        lowered = text.strip().lower()
        if lowered not in _TRUE | _FALSE:
            raise self._bad(key, text, "True or False")
        return lowered in _TRUE

    def text(self, key: str, default: Any = _REQUIRED) -> str:
        text = self._raw(key, default)
        return str(default) if text is None else text.strip()

    def integers(self, key: str, default: Any = _REQUIRED) -> tuple[int, ...]:
        """A tuple such as ``(3, 3)``, ``[1, 2]``, ``(1,)``, ``()`` or a bare ``3``."""
        return self._tuple(key, default, none=False)  # type: ignore[return-value]

    def bounds(self, key: str, default: Any = _REQUIRED) -> tuple[int | None, ...]:
        """A tuple of integers and ``None``s, as ``slice``'s ``(None, 1)``."""
        return self._tuple(key, default, none=True)

    def _tuple(self, key: str, default: Any, *, none: bool) -> tuple[int | None, ...]:
        text = self._raw(key, default)
        if text is None:
            return tuple(default)
        inner = text.strip()
        if inner[:1] in "([" and inner[-1:] in ")]":
            inner = inner[1:-1]
        parts = [part.strip() for part in inner.split(",")]
        if parts and not parts[-1]:
            parts.pop()  # "(1,)" and "()"
        values: list[int | None] = []
        for part in parts:
            match = _INT.match(part)
            if none and part == "None":
                values.append(None)
            elif match is None:
                raise self._bad(key, text, "a tuple of integers and None" if none else "a tuple of integers")
            else:
                values.append(int(match.group(1)))
        return tuple(values)

    def optional_integers(self, key: str) -> tuple[int, ...] | None:
        text = self._raw(key, None)
        return None if text is None or text.strip() in ("None", "") else self.integers(key)

    def unused(self) -> list[str]:
        """Attributes nobody read, except MXNet's hints that never change a result."""
        return sorted(k for k in self.raw if k not in self.read and not _is_hint(k))


# Attributes that steer speed, memory or training only: the inference result is the same.
_HINTS = {"cudnn_off", "cudnn_tune", "workspace", "sparse_grad", "momentum", "lr_mult", "wd_mult"}


def _is_hint(key: str) -> bool:
    return key in _HINTS or key.startswith("__")
