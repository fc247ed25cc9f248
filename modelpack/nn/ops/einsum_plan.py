"""An einsum equation as the op set computes it: which axes are summed, which are a batch,
which are contracted by a matmul, in what order, for one operand or two, and for more two at
a time left to right. Letters only: the numpy composite (``composites.einsum``) and ONNX's
``Einsum`` import (``interop.onnx``) each carry the plan out on their own values.

The forms taken are numpy's and ONNX's: an explicit output (``->``) or the implicit one (the
letters that occur once, in alphabetical order), ``...`` for the leading axes an operand has
beyond its letters, spaces ignored. An index twice in one operand (a diagonal or a trace) is
refused: no op takes a diagonal.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

__all__ = ["Pair", "parse", "pair", "single", "chain"]

# Letters an ellipsis's axes are named by: never one an equation may use (those are ASCII).
_ELLIPSIS_LETTERS = "αβγδεζηθικλμνξοπρστυφχψω"


def parse(equation: str, ranks: list[int]) -> tuple[list[str], str]:
    """The operands' indices and the output's, an ellipsis spelled out as letters of its own
    (right-aligned, as numpy broadcasts it); ``ValueError`` naming what is wrong."""
    text = equation.replace(" ", "")
    inputs, arrow, output = text.partition("->")
    operands = inputs.split(",")
    if len(operands) != len(ranks):
        raise ValueError(f"equation {equation!r} names {len(operands)} operands, given {len(ranks)}")
    if any(ch not in string.ascii_letters + ".,->" for ch in text) or (arrow and "->" in output):
        raise ValueError(f"equation {equation!r} may hold letters, ',', '->' and '...' only")
    widest = 0
    spelled = []
    for indices, rank in zip(operands, ranks, strict=True):
        letters, extra = _ellipsis(indices, rank, equation)
        widest = max(widest, extra)
        spelled.append(letters)
    if arrow:
        ellipsis = _last(widest)
        if output.replace("...", "").count(".") or output.count("...") > 1:
            raise ValueError(f"equation {equation!r}: a '.' outside '...' in the output")
        if widest and "..." not in output:
            raise ValueError(f"equation {equation!r}: the output omits '...', which stands for axes")
        result = output.replace("...", ellipsis)
    else:
        seen = "".join(spelled)
        result = _last(widest) + "".join(sorted(
            letter for letter in set(seen) if seen.count(letter) == 1 and letter not in _ELLIPSIS_LETTERS))
    for letters in spelled:
        if len(set(letters)) != len(letters):
            raise ValueError(f"equation {equation!r}: an index twice in one operand (a diagonal) has no op")
    if len(set(result)) != len(result) or not set(result) <= set("".join(spelled)):
        raise ValueError(f"equation {equation!r}: each output index must be an operand's, once")
    return spelled, result


def _ellipsis(indices: str, rank: int, equation: str) -> tuple[str, int]:
    """An operand's indices with its ellipsis (if any) as the last ``rank - letters`` of the
    ellipsis letters, and how many axes it stands for."""
    if indices.replace("...", "").count(".") or indices.count("...") > 1:
        raise ValueError(f"equation {equation!r}: a '.' outside '...' in operand {indices!r}")
    named = len(indices.replace("...", ""))
    extra = rank - named
    fits = extra == 0 if "..." not in indices else 0 <= extra <= len(_ELLIPSIS_LETTERS)
    if not fits:
        raise ValueError(f"equation {equation!r}: operand {indices!r} has {named} indices for {rank} axes")
    if "..." not in indices:
        return indices, 0
    return indices.replace("...", _last(extra)), extra


def _last(count: int) -> str:
    """The ellipsis letters of the last ``count`` axes (right-aligned, as numpy broadcasts)."""
    return _ELLIPSIS_LETTERS[len(_ELLIPSIS_LETTERS) - count:] if count else ""


@dataclass(frozen=True)
class Pair:
    """Two operands contracted: each first summed over the axes nothing else reads (``sums``,
    leaving ``a`` and ``b``), then transposed to (batch, free, contracted) and (batch,
    contracted, free), each group's axes merged into one, multiplied (a batched matmul), the
    product split back into ``laid``'s axes and transposed to ``output``."""

    sums: tuple[tuple[int, ...], tuple[int, ...]]
    a: str
    b: str
    batch: str  # in both and in the output
    contracted: str  # in both, not in the output
    free_a: str  # in a only (so in the output)
    free_b: str
    output: str

    @property
    def order_a(self) -> list[int]:
        return [self.a.index(i) for i in self.batch + self.free_a + self.contracted]

    @property
    def order_b(self) -> list[int]:
        return [self.b.index(i) for i in self.batch + self.contracted + self.free_b]

    @property
    def laid(self) -> str:
        """The product's axes once split: batch, a's free, b's free."""
        return self.batch + self.free_a + self.free_b

    @property
    def final(self) -> list[int]:
        """The transpose from ``laid`` to the output."""
        return [self.laid.index(i) for i in self.output]


def single(a: str, output: str) -> tuple[tuple[int, ...], list[int]]:
    """One operand: the axes summed (those not in the output), then the transpose of what is
    left to the output's order."""
    summed = tuple(axis for axis, index in enumerate(a) if index not in output)
    left = "".join(index for index in a if index in output)
    return summed, [left.index(index) for index in output]


def pair(a: str, b: str, output: str) -> Pair:
    """Two operands' plan (``Pair``)."""
    sums_a = tuple(axis for axis, index in enumerate(a) if index not in output and index not in b)
    sums_b = tuple(axis for axis, index in enumerate(b) if index not in output and index not in a)
    a = "".join(index for axis, index in enumerate(a) if axis not in sums_a)
    b = "".join(index for axis, index in enumerate(b) if axis not in sums_b)
    return Pair(
        (sums_a, sums_b), a, b,
        batch="".join(i for i in output if i in a and i in b),
        contracted="".join(i for i in a if i in b and i not in output),
        free_a="".join(i for i in a if i not in b),
        free_b="".join(i for i in b if i not in a),
        output=output,
    )


def chain(operands: list[str], output: str) -> list[tuple[str, str, str]]:
    """Three operands or more as two-operand steps, left to right: (left, right, kept) each,
    ``kept`` the indices a later operand or the output reads, in the order they come."""
    steps = []
    current = operands[0]
    for k in range(1, len(operands)):
        last = k == len(operands) - 1
        read_later = set("".join(operands[k + 1:])) | set(output)
        kept = output if last else "".join(dict.fromkeys(i for i in current + operands[k] if i in read_later))
        steps.append((current, operands[k], kept))
        current = kept
    return steps
