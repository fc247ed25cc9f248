"""MXNet's reshape codes, resolved into the plain target shapes modelpack's ``reshape`` takes.

Legacy ``Reshape`` and ``npx.reshape`` spell "copy this input size", "merge two sizes",
"split one" as negative codes (each with its own numbering). modelpack's reshape takes sizes,
``-1`` once, and names of dynamic input sizes. So the target is computed from the input's
shape in two runs with different dynamic sizes; a size equal in both is fixed, a size that
tracks one dynamic input size becomes its name, and one other changing size becomes ``-1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...errors import UnsupportedBlockError

__all__ = ["mxnet_reshape", "symbolic_shape"]

# What each code means, per spelling: legacy Reshape and npx.reshape number them differently.
_CODES = {
    "legacy": {0: "copy", -1: "infer", -2: "rest", -3: "merge", -4: "split"},
    "npx": {-1: "infer", -2: "copy", -3: "skip", -4: "rest", -5: "merge", -6: "split"},
}


def mxnet_reshape(shape: Sequence[int], target: Sequence[int], codes: str, where: str) -> tuple[int, ...]:
    """The output shape MXNet gives ``target`` on an input of ``shape``."""
    meaning = _CODES[codes]
    out: list[int] = []
    infer_at = -1
    source = 0
    i = 0

    def bad(reason: str) -> UnsupportedBlockError:
        return UnsupportedBlockError(f"{where}: reshape {tuple(target)} of shape {tuple(shape)}: {reason}")

    def take(count: int) -> list[int]:
        nonlocal source
        if source + count > len(shape):
            raise bad("it reads more input axes than there are")
        taken = list(shape[source: source + count])
        source += count
        return taken

    while i < len(target):
        code = target[i]
        kind = "size" if code > 0 or (code == 0 and codes != "legacy") else meaning.get(code)
        if kind == "size":
            out.append(code)
            source += 1
        elif kind == "copy":
            out.extend(take(1))
        elif kind == "infer":
            if infer_at >= 0:
                raise bad("two sizes to infer")
            infer_at = len(out)
            out.append(1)
            source += 1
        elif kind == "rest":
            out.extend(take(len(shape) - source) if source <= len(shape) else [])
        elif kind == "merge":
            first, second = take(2)
            out.append(first * second)
        elif kind == "skip":
            if take(1) != [1]:
                raise bad("a skipped axis is not of size 1")
        elif kind == "split":
            if i + 2 >= len(target):
                raise bad("a split needs two sizes after it")
            (whole,), first, second = take(1), target[i + 1], target[i + 2]
            if first == -1 and second > 0:
                first = whole // second
            elif second == -1 and first > 0:
                second = whole // first
            if first <= 0 or second <= 0 or first * second != whole:
                raise bad(f"cannot split {whole} into ({target[i + 1]}, {target[i + 2]})")
            out.extend([first, second])
            i += 2
        else:
            raise bad(f"unknown code {code}")
        i += 1
    total = math.prod(shape)
    if infer_at >= 0:
        known = math.prod(out)  # the placeholder counts as 1
        if known == 0 or total % known:
            raise bad("the inferred size is not a whole number")
        out[infer_at] = total // known
    if math.prod(out) != total:
        raise bad(f"the result {tuple(out)} has a different number of elements")
    return tuple(out)


def symbolic_shape(
    first: Sequence[int], second: Sequence[int], names: dict[tuple[int, int], str], where: str
) -> list[int | str]:
    """A reshape target valid at every input size, from the targets at two sizes."""
    if len(first) != len(second):
        raise UnsupportedBlockError(f"{where}: the reshape's rank depends on the input sizes")
    target: list[int | str] = []
    for a, b in zip(first, second, strict=True):
        if a == b:
            target.append(a)
        elif (a, b) in names:
            target.append(names[(a, b)])
        else:
            target.append(-1)
    if target.count(-1) > 1:
        raise UnsupportedBlockError(
            f"{where}: the reshape's target has several sizes that depend on the input sizes "
            f"({tuple(first)} vs {tuple(second)}); pass fixed input_shapes to convert it"
        )
    return target
