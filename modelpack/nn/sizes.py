"""Size expressions: how a graph writes a size that follows the dynamic input sizes.

A dynamic input size has a name (``batch``, ``seq``), bound when the graph runs. An op
attribute declared as a size (a reshape target, the shape of ``full``, a slice bound, a
repeat count) holds an integer or an expression over those names, in one small grammar::

    size := [INT "*"] NAME ["*" NAME] ["/" INT] [("+" | "-") INT]

so ``batch``, ``4*batch`` (batch × heads), ``batch/4``, ``batch*seq``, ``seq-1``. Division
must be exact; nothing else is ever evaluated. Tracing writes these (``tracing.symbols``);
the graph evaluator resolves them (``resolve``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from pydantic import Field

__all__ = [
    "SYMBOL_PATTERN",
    "SIZE_PATTERN",
    "SizeExpr",
    "Size",
    "parse",
    "resolve",
    "names_in",
    "combined",
    "product",
]

# A dynamic size's name ("batch", "seq"): declared once, used by the schema, ops and tracing.
SYMBOL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,31}$"
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,31}"
_INT = r"[1-9][0-9]{0,8}"
SIZE_PATTERN = (
    rf"^(?:({_INT})\*)?({_NAME})(?:\*({_NAME}))?(?:/({_INT}))?(?:([+-])([0-9]{{1,9}}))?$"
)
_SIZE = re.compile(SIZE_PATTERN)

# An attribute that is a size: a fixed integer or an expression over the dynamic sizes.
Size = int | Annotated[str, Field(pattern=SIZE_PATTERN)]


@dataclass(frozen=True)
class SizeExpr:
    """``(scale · names…) / divisor + offset`` — the parsed form of one size expression."""

    names: tuple[str, ...]
    scale: int = 1
    divisor: int = 1
    offset: int = 0

    def value(self, sizes: dict[str, int]) -> int:
        """The size at these bindings; ``ValueError`` if a name is unbound or it is not whole."""
        product = self.scale
        for name in self.names:
            if name not in sizes:
                raise ValueError(f"size {self} uses dynamic size {name!r}, which no input binds")
            product *= sizes[name]
        if product % self.divisor:
            raise ValueError(f"size {self} is not a whole number at {sizes}")
        result = product // self.divisor + self.offset
        if result < 0:
            raise ValueError(f"size {self} is negative ({result}) at {sizes}")
        return result

    def __str__(self) -> str:
        text = "*".join(self.names)
        if self.scale != 1:
            text = f"{self.scale}*{text}"
        if self.divisor != 1:
            text = f"{text}/{self.divisor}"
        if self.offset:
            text = f"{text}{self.offset:+d}"
        return text

    @classmethod
    def fit(cls, names: tuple[str, ...], points: list[tuple[dict[str, int], int]]) -> SizeExpr | None:
        """The expression over ``names`` taking each point's value, if the grammar has one.

        One name: the line through the points (a rational slope, an integer offset); two names:
        their product times a rational constant. Every point must then fit exactly.
        """
        (s0, v0), (s1, v1) = points[0], points[1]
        if len(names) == 1:
            (name,) = names
            if s1[name] == s0[name]:
                return None
            slope = Fraction(v1 - v0, s1[name] - s0[name])
            if slope <= 0:
                return None
            base = Fraction(s0[name]) * slope
            offset = v0 - base
            if offset.denominator != 1 or base.denominator != 1:
                return None
            expr = cls(names, slope.numerator, slope.denominator, int(offset))
        else:
            product = 1
            for name in names:
                product *= s0[name]
            scale = Fraction(v0, product)
            if scale <= 0:
                return None
            expr = cls(names, scale.numerator, scale.denominator, 0)
        try:
            return expr if all(expr.value(s) == v for s, v in points) else None
        except ValueError:
            return None


def parse(text: str) -> SizeExpr:
    """The expression ``text`` stands for; ``ValueError`` outside the grammar."""
    match = _SIZE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a size expression")
    scale, first, second, divisor, sign, offset = match.groups()
    names = (first,) if second is None else (first, second)
    return SizeExpr(
        names,
        int(scale or 1),
        int(divisor or 1),
        (-1 if sign == "-" else 1) * int(offset or 0),
    )


def resolve(value: Any, sizes: dict[str, int]) -> Any:
    """``value`` with every size expression in it (nested in lists and dicts) evaluated."""
    if isinstance(value, str):
        return parse(value).value(sizes)
    if isinstance(value, list):
        return [resolve(item, sizes) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, sizes) for key, item in value.items()}
    return value


def names_in(value: Any) -> set[str]:
    """The dynamic size names an attribute value refers to."""
    if isinstance(value, str):
        return set(parse(value).names)
    if isinstance(value, list):
        return set().union(*(names_in(item) for item in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(names_in(item) for item in value.values())) if value else set()
    return set()


def combined(op: str, a: int | str, b: int | str) -> int | str | None:
    """``a op b`` for sizes (integers or expressions; op one of "add", "subtract", "multiply",
    "divide", the last exact) as a size, where the grammar can write it; else None. What an
    imported graph's shape arithmetic computes (an ONNX file's batch × heads: ``2*batch``)."""
    if op not in ("add", "subtract", "multiply", "divide"):
        return None
    if isinstance(a, int) and isinstance(b, int):
        exact = a // b if b and a % b == 0 else None
        return {"add": a + b, "subtract": a - b, "multiply": a * b}.get(op, exact)
    if isinstance(a, int) and isinstance(b, str) and op in ("add", "multiply"):
        a, b = b, a  # commutative: the expression first
    if not isinstance(a, str):
        return None
    left = parse(a)
    ratio = Fraction(left.scale, left.divisor)
    if isinstance(b, int) and op in ("add", "subtract"):
        parts = (ratio, left.offset + (b if op == "add" else -b))
    elif isinstance(b, int) and op == "multiply" and b > 0:
        parts = (ratio * b, left.offset * b)
    elif isinstance(b, int) and op == "divide" and b > 0 and left.offset % b == 0:
        parts = (ratio / b, left.offset // b)
    elif isinstance(b, str) and op == "multiply":
        right = parse(b)
        if left.offset or right.offset or len(left.names) + len(right.names) > 2:
            return None
        return _written(left.names + right.names, ratio * Fraction(right.scale, right.divisor), 0)
    else:
        return None
    return _written(left.names, *parts)


def _written(names: tuple[str, ...], ratio: Fraction, offset: int) -> str | None:
    """The expression ``ratio · names + offset`` as the grammar writes it, or None."""
    text = str(SizeExpr(names, ratio.numerator, ratio.denominator, offset))
    return text if _SIZE.match(text) else None


def product(values: list[int | str]) -> int | str | None:
    """The product of sizes (``combined`` multiplication, 1 for none), or None where the
    grammar cannot write it."""
    total: int | str | None = 1
    for value in values:
        total = None if total is None else combined("multiply", total, value)
    return total
