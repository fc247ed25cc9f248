"""A pickle reader that runs nothing: the opcodes of torch's ``data.pkl``, interpreted here.

Python's own unpickler calls whatever a pickle names. This one is a small interpreter of the
opcodes ``torch.save`` writes (protocol 2, and the plain opcodes of protocols 3 to 5); it
builds only numbers, strings, bytes, tuples, lists and dicts, and a name (``GLOBAL``) resolves
only through the caller's allow-list to one of the caller's own functions. ``BUILD`` sets state
only on the caller's own placeholders (``Pending``: numpy pickles its values in two steps) and
on a dict, where it is ignored. Any other opcode or name is refused with the file, the byte
offset and what was found. Every length read from the stream is checked against the bytes
that remain before anything is sliced, so a lying length costs nothing; the interpreter is a
loop, never a recursion, so nesting cannot overflow the stack.
"""

from __future__ import annotations

import reprlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import FormatError

__all__ = ["Allowed", "Pending", "restricted_load", "shown"]

_MAX_LONG_BYTES = 64  # LONG1/LONG4 integers: no legitimate torch pickle needs more
_MAX_MEMO = 10_000_000


@dataclass(frozen=True)
class Allowed:
    """An allowed global: its dotted name, and the function a ``REDUCE`` on it calls instead.

    ``call=None`` marks a global that is only a marker (a storage type read by
    ``persistent_load``, a tensor's dtype), never callable.
    """

    name: str
    call: Callable[..., Any] | None = None


class _Mark:
    """The stack's MARK sentinel, and a Pending's value before its BUILD."""


_MARK = _Mark()
_UNBUILT = _Mark()


class Pending:
    """A value a pickle makes in two steps: a REDUCE on one of the caller's functions returns
    this placeholder (the caller's subclass), then ``BUILD`` hands it its state, once.

    From then on it stands for what ``build`` returned: the interpreter puts that value in its
    place as the placeholder enters a tuple, list or dict, or is the pickle's result. Used
    there before its ``BUILD``, it is refused. (The memo holds the placeholder itself, as a
    pickle's memo holds the object its BUILD later fills.)
    """

    what = "a value"  # names it in the interpreter's messages
    built: Any = _UNBUILT  # set by the interpreter's BUILD to what ``build`` returned

    def build(self, state: Any) -> Any:
        """The value this placeholder stands for, made from ``state`` (checked: a bad state
        raises ``FormatError``, or ``TypeError`` for a state of the wrong shape)."""
        raise NotImplementedError


class _Reader:
    """The interpreter's state: the bytes, the position, the stack, the memo."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.where, self.pos = data, where, 0
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def settled(self, value: Any) -> Any:
        """``value``, or the value a built ``Pending`` stands for (as it enters a container)."""
        if not isinstance(value, Pending):
            return value
        if value.built is _UNBUILT:
            raise self.fail(f"{value.what} is used before BUILD gives its state")
        return value.built

    def fail(self, problem: str) -> FormatError:
        return FormatError(f"{self.where}: byte {self.pos}: {problem}")

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail(f"a {count}-byte field runs past the end of the pickle (truncated or lying)")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def line(self) -> str:
        end = self.data.find(b"\n", self.pos, self.pos + 256)
        if end < 0:
            raise self.fail("a text field has no end of line within 256 bytes")
        text = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return text.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"a name {text!r} is not ASCII") from None

    def text(self, count: int) -> str:
        raw = self.take(count)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("a string is not valid UTF-8") from None

    def pop(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise self.fail("an opcode needs a value but the stack is empty")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.fail("an opcode needs a MARK but none is open")
        start = self.marks.pop()
        items = self.stack[start + 1 :]
        del self.stack[start:]
        return items

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def put(self, index: int) -> None:
        if not self.stack or self.stack[-1] is _MARK:
            raise self.fail("memo store with no value on the stack")
        if index >= _MAX_MEMO or len(self.memo) >= _MAX_MEMO:
            raise self.fail(f"memo index {index} is over the limit of {_MAX_MEMO}")
        self.memo[index] = self.stack[-1]

    def get(self, index: int) -> None:
        if index not in self.memo:
            raise self.fail(f"memo index {index} is read before it is stored")
        self.push(self.memo[index])


def restricted_load(
    data: bytes,
    *,
    where: str,
    allowed: Mapping[str, Allowed],
    persistent_load: Callable[[Any], Any],
) -> Any:
    """The object a pickle describes, built from plain values and the allowed functions only.

    ``allowed`` maps ``"module.name"`` to its stand-in; ``persistent_load`` receives each
    ``BINPERSID`` id (torch's storage references).
    """
    r = _Reader(data, where)
    while True:
        opcode = r.take(1)
        handler = _HANDLERS.get(opcode)
        if handler is None:
            if opcode == b".":
                if len(r.stack) != 1 or r.marks:
                    raise r.fail(f"STOP with {len(r.stack)} values on the stack")
                if r.pos != len(data):
                    raise r.fail(f"{len(data) - r.pos} bytes follow the end of the pickle")
                return r.settled(r.stack[0])
            name = _OPCODE_NAMES.get(opcode, "unknown")
            r.pos -= 1
            raise r.fail(f"pickle opcode {opcode!r} ({name}) is not allowed in a torch weights file")
        if opcode in (b"c", b"\x93"):
            module, name = (r.line(), r.line()) if opcode == b"c" else _stack_global(r)
            dotted = f"{module}.{name}"
            if dotted not in allowed:
                raise r.fail(f"global {dotted!r} is not allowed ({_summary(allowed)}); nothing was run"
                             f"{_whole_module(module)}")
            r.push(allowed[dotted])
        elif opcode == b"R":
            args = r.pop()
            function = r.pop()
            if not isinstance(function, Allowed) or function.call is None or not isinstance(args, tuple):
                raise r.fail(f"REDUCE calls {_kind(function)}, which is not an allowed function")
            try:
                r.push(function.call(*args))
            except TypeError as exc:
                raise r.fail(f"{function.name} called with arguments it does not take ({exc})") from None
        elif opcode == b"Q":
            r.push(persistent_load(r.pop()))
        else:
            handler(r)


_REPR = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_REPR.maxlevel, _REPR.maxtuple, _REPR.maxlist, _REPR.maxdict = 3, 8, 8, 4
_REPR.maxstring = _REPR.maxother = 60


def shown(value: Any) -> str:
    """A value read from a pickle as a message shows it: an allowed global by its name, else
    its repr, at most 80 characters (a long one is cut before it is made, not after)."""
    text = value.name if isinstance(value, Allowed) else _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _whole_module(module: str) -> str:
    """What to do instead, where the refused global says the file holds a whole torch module
    (``torch.save(model)`` pickles its classes, ``torch.jit.save`` its TorchScript) rather
    than tensors."""
    if module.startswith("__torch__"):
        return ("; this is a TorchScript module (torch.jit.save): save its weights with "
                "torch.save(model.state_dict(), path)")
    if module.startswith("torch.nn.") or module == "__main__":
        return ("; this file pickles a whole module (torch.save(model)), not its tensors: save "
                "torch.save(model.state_dict(), path)")
    return ""


def _summary(allowed: Mapping[str, Allowed]) -> str:
    """The allow-list in a few words: the callables by name, the markers counted."""
    calls = sorted(name for name, entry in allowed.items() if entry.call is not None)
    markers = len(allowed) - len(calls)
    names = f" and {markers} storage type and dtype names" if markers else ""
    return f"allowed: {', '.join(calls)}{names}"


def _stack_global(r: _Reader) -> tuple[str, str]:
    name, module = r.pop(), r.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise r.fail("STACK_GLOBAL needs two strings")
    return module, name


def _kind(value: Any) -> str:
    return f"{value.name!r}" if isinstance(value, Allowed) else f"a {type(value).__name__}"


def _mark(r: _Reader) -> None:
    r.marks.append(len(r.stack))
    r.push(_MARK)


def _setitems(r: _Reader, pairs: list[Any]) -> None:
    target = r.pop()
    if not isinstance(target, dict):
        raise r.fail(f"SETITEM(S) on a {type(target).__name__}, not a dict")
    if len(pairs) % 2:
        raise r.fail("SETITEMS with an odd number of values")
    for key, value in zip(map(r.settled, pairs[::2]), map(r.settled, pairs[1::2]), strict=True):
        if not isinstance(key, (str, int, float, bool, type(None), tuple)):
            raise r.fail(f"a dict key is a {type(key).__name__}")
        target[key] = value
    r.push(target)


def _appends(r: _Reader, items: list[Any]) -> None:
    target = r.pop()
    if not isinstance(target, list):
        raise r.fail(f"APPEND(S) on a {type(target).__name__}, not a list")
    target.extend(map(r.settled, items))
    r.push(target)


def _build(r: _Reader) -> None:
    """BUILD sets an object's state: a ``Pending``'s, once; on a dict (torch's ``_metadata``)
    it is ignored; on anything else refused."""
    state = r.pop()
    target = r.pop()
    if isinstance(target, Pending):
        if target.built is not _UNBUILT:
            raise r.fail(f"BUILD gives {target.what} its state a second time")
        try:
            target.built = target.build(state)
        except TypeError as exc:
            raise r.fail(f"BUILD gives {target.what} a state it does not take ({exc})") from None
    elif not isinstance(target, dict) or not isinstance(state, dict):
        raise r.fail(f"BUILD on a {type(target).__name__} is not allowed")
    r.push(target)


def _proto(r: _Reader) -> None:
    version = r.take(1)[0]
    if version > 5:
        raise r.fail(f"pickle protocol {version} is unknown")


def _dup(r: _Reader) -> None:
    value = r.pop()
    r.push(value)
    r.push(value)


def _dict(r: _Reader) -> None:
    items = r.pop_mark()
    r.push({})
    _setitems(r, items)


def _setitem(r: _Reader) -> None:
    value = r.pop()
    key = r.pop()
    _setitems(r, [key, value])


def _long(r: _Reader, width: str) -> None:
    count = r.unpack(width)
    if count > _MAX_LONG_BYTES:
        raise r.fail(f"an integer of {count} bytes is over the limit of {_MAX_LONG_BYTES}")
    r.push(int.from_bytes(r.take(count), "little", signed=True))


def _tuple(r: _Reader, count: int) -> None:
    items = [r.settled(r.pop()) for _ in range(count)][::-1]
    r.push(tuple(items))


def _nothing(r: _Reader) -> None:
    """GLOBAL, STACK_GLOBAL, REDUCE and BINPERSID: handled in ``restricted_load`` itself."""


_HANDLERS: dict[bytes, Callable[[_Reader], object]] = {
    b"\x80": _proto,
    b"\x95": lambda r: r.take(8) and None,  # FRAME: a length hint; take() checks every read anyway
    b"(": _mark,
    b"0": lambda r: r.pop() and None,
    b"1": lambda r: r.pop_mark() and None,
    b"2": _dup,
    b"N": lambda r: r.push(None),
    b"\x88": lambda r: r.push(True),
    b"\x89": lambda r: r.push(False),
    b"J": lambda r: r.push(r.unpack("<i")),
    b"K": lambda r: r.push(r.unpack("<B")),
    b"M": lambda r: r.push(r.unpack("<H")),
    b"\x8a": lambda r: _long(r, "<B"),
    b"\x8b": lambda r: _long(r, "<I"),
    b"G": lambda r: r.push(r.unpack(">d")),
    b"X": lambda r: r.push(r.text(r.unpack("<I"))),
    b"\x8c": lambda r: r.push(r.text(r.unpack("<B"))),
    b"\x8d": lambda r: r.push(r.text(r.unpack("<Q"))),
    b"B": lambda r: r.push(r.take(r.unpack("<I"))),
    b"C": lambda r: r.push(r.take(r.unpack("<B"))),
    b"\x8e": lambda r: r.push(r.take(r.unpack("<Q"))),
    b"\x96": lambda r: r.push(bytearray(r.take(r.unpack("<Q")))),  # BYTEARRAY8: numpy's arrays at protocol 5
    b"U": lambda r: r.push(r.take(r.unpack("<B")).decode("latin-1")),
    b"T": lambda r: r.push(r.take(r.unpack("<i")).decode("latin-1")),
    b")": lambda r: r.push(()),
    b"]": lambda r: r.push([]),
    b"}": lambda r: r.push({}),
    b"t": lambda r: r.push(tuple(map(r.settled, r.pop_mark()))),
    b"\x85": lambda r: _tuple(r, 1),
    b"\x86": lambda r: _tuple(r, 2),
    b"\x87": lambda r: _tuple(r, 3),
    b"l": lambda r: r.push(list(map(r.settled, r.pop_mark()))),
    b"d": _dict,
    b"a": lambda r: _appends(r, [r.pop()]),
    b"e": lambda r: _appends(r, r.pop_mark()),
    b"s": _setitem,
    b"u": lambda r: _setitems(r, r.pop_mark()),
    b"b": _build,
    b"q": lambda r: r.put(r.unpack("<B")),
    b"r": lambda r: r.put(r.unpack("<I")),
    b"\x94": lambda r: r.put(len(r.memo)),
    b"h": lambda r: r.get(r.unpack("<B")),
    b"j": lambda r: r.get(r.unpack("<I")),
    b"c": _nothing,
    b"\x93": _nothing,
    b"R": _nothing,
    b"Q": _nothing,
}

_OPCODE_NAMES = {
    b"i": "INST",
    b"o": "OBJ",
    b"\x81": "NEWOBJ",
    b"\x92": "NEWOBJ_EX",
    b"P": "PERSID",
    b"\x82": "EXT1",
    b"\x83": "EXT2",
    b"\x84": "EXT4",
    b"I": "INT",
    b"L": "LONG",
    b"S": "STRING",
    b"V": "UNICODE",
    b"F": "FLOAT",
    b"p": "PUT",
    b"g": "GET",
    b"\x8f": "EMPTY_SET",
    b"\x90": "ADDITEMS",
    b"\x91": "FROZENSET",
    b"\x97": "NEXT_BUFFER",
    b"\x98": "READONLY_BUFFER",
}
