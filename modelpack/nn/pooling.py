"""Max, average and global pooling in 1, 2 and 3 dimensions on channel-first batches.

One implementation serves every dimension: ``kernels.pool`` folds each window's offsets, a
strided view of the input each, into the output (no pixel loops, no padded copy).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import numpy as np
from pydantic import create_model, model_validator

from ..errors import InputError, UsageError
from . import budget
from .activations import float_input
from .block import Block
from .conv import LAYOUTS, Sizes, as_tuple, check_layout, check_rank, sizes
from .kernels import blas
from .kernels import pool as kernels
from .registry import LayerConfig, register_layer

__all__ = [
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
]


class _PoolConfig(LayerConfig):
    ceil_mode: bool = False

    @model_validator(mode="after")
    def _padding_fits(self) -> _PoolConfig:
        padding, pool_size = vars(self)["padding"], vars(self)["pool_size"]  # per-dimension fields
        if any(2 * p > k for p, k in zip(padding, pool_size, strict=True)):
            raise UsageError(f"padding {padding} must be at most half of pool_size {pool_size}")
        return self


def _pool_config(name: str, dims: int, *, average: bool) -> type[LayerConfig]:
    """The config model of one pooling type: per-axis sizes (and ``count_include_pad``)."""
    fields: dict[str, Any] = {
        "pool_size": (sizes(dims, 1), [2] * dims),
        "strides": (sizes(dims, 1) | None, None),
        "padding": (sizes(dims, 0), [0] * dims),
    }
    if average:
        fields["count_include_pad"] = (bool, True)
    return create_model(name, __base__=_PoolConfig, **fields)


class _Pool(Block):
    """Shared shape logic of max and average pooling (PyTorch's ceil_mode rule)."""

    _dims: ClassVar[int]

    def __init__(
        self,
        pool_size: int | tuple[int, ...] = 2,
        strides: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        *,
        layout: str | None = None,
        ceil_mode: bool = False,
        prefix: str | None = None,
    ) -> None:
        # Options after padding are keyword-only: Gluon's classes order layout and ceil_mode
        # differently from one another, so no positional order could match them all.
        super().__init__(prefix=prefix)
        dims = self._dims
        check_layout(layout, dims, type(self).__name__)
        self._pool = as_tuple(pool_size, dims, "pool_size")
        self._strides = as_tuple(strides if strides is not None else self._pool, dims, "strides")
        self._padding = as_tuple(padding, dims, "padding")
        if any(2 * p > k for p, k in zip(self._padding, self._pool, strict=True)):
            raise UsageError(f"padding {self._padding} must be at most half of pool_size {self._pool}")
        self._ceil_mode = bool(ceil_mode)

    def _alias(self) -> str:
        return "pool"  # Gluon names every pooling layer pool0, pool1, ...

    def _out_size(self, size: int, axis: int) -> int:
        k, s, p = self._pool[axis], self._strides[axis], self._padding[axis]
        span = size + 2 * p - k
        out = (-(-span // s) if self._ceil_mode else span // s) + 1
        if self._ceil_mode and (out - 1) * s >= size + p:
            out -= 1  # the last window must start inside the input or its left padding
        if out < 1:  # ceil_mode keeps one window over an input a little smaller than the pool
            raise InputError(
                f"{type(self).__name__}: input size {size} with padding {p} is smaller than "
                f"pool size {k}"
            )
        return out

    def _pooled(self, array: np.ndarray, fill: float, step: Any) -> np.ndarray:
        """Each window of the input padded with ``fill`` (-inf or 0, never materialised) folded
        by ``step`` (``np.maximum`` or ``np.add``), axis by axis (``kernels.fold_axes``)."""
        out = self._output_sizes(array)
        first = (*array.shape[:2], out[0], *array.shape[3:])  # the first axis folded
        budget.charge(budget.nbytes(first, array.dtype), "its output")
        return kernels.fold_axes(array, self._pool, self._strides, self._padding, out, step, fill)

    def _output_sizes(self, array: np.ndarray) -> Sizes:
        """The output's spatial sizes; the output, and for averages the sums it is divided
        from, counted against the budget."""
        check_rank(array, self._dims, type(self).__name__)
        out = tuple(self._out_size(n, axis) for axis, n in enumerate(array.shape[2:]))
        budget.charge(2 * budget.nbytes((*array.shape[:2], *out), array.dtype), "its output")
        return out

    def get_config(self) -> dict[str, Any]:
        # pool_size is kept as self._pool: the short name the compute code reads.
        return self.config_from_attributes(pool_size=self._pool)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self._pool}, stride={self._strides}, "
                f"padding={self._padding}, ceil_mode={self._ceil_mode})")


class _MaxPool(_Pool):
    """Maximum over each window; padding never wins (it is -inf)."""

    def forward(self, x: Any) -> np.ndarray:
        return self._pooled(float_input(x), -np.inf, np.maximum)


class _AvgPool(_Pool):
    """Mean over each window; ``count_include_pad`` decides whether padding counts."""

    def __init__(
        self,
        pool_size: int | tuple[int, ...] = 2,
        strides: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        *,
        count_include_pad: bool = True,
        **options: Any,
    ) -> None:
        """As max pooling's, plus ``count_include_pad``; ``options`` are ``layout``,
        ``ceil_mode`` and ``prefix``."""
        super().__init__(pool_size, strides, padding, **options)
        self._count_include_pad = bool(count_include_pad)

    def forward(self, x: Any) -> np.ndarray:
        array = float_input(x)
        sums = self._pooled(array, 0.0, np.add)
        sums /= self._divisors(array.shape[2:], sums.shape[2:], array.dtype)
        return sums

    def _divisors(self, in_sizes: Sizes, out: Sizes, dtype: np.dtype) -> Any:
        """What each window's sum is divided by (``kernels.divisors``)."""
        return kernels.divisors(in_sizes, out, self._pool, self._strides, self._padding,
                                self._count_include_pad, dtype)


class GlobalPoolConfig(LayerConfig):
    pass


class _GlobalPool(Block):
    """Reduces the whole spatial extent to one value per channel: (N, C, ...) → (N, C, 1, ...)."""

    _dims: ClassVar[int]

    def __init__(self, layout: str | None = None, prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        check_layout(layout, self._dims, type(self).__name__)

    def _alias(self) -> str:
        return "pool"

    def _reduce(self, x: Any, maximum: bool) -> np.ndarray:
        array = float_input(x)
        check_rank(array, self._dims, type(self).__name__)
        # One contiguous axis to reduce: numpy's fast (and, for sums, pairwise) path.
        flat = array.reshape(*array.shape[:2], -1)
        kept = (*array.shape[:2], *(1,) * self._dims)
        if maximum:
            return flat.max(axis=2).reshape(kept)
        return _spatial_mean(flat).reshape(kept)

    def __repr__(self) -> str:
        ones, zeros = (1,) * self._dims, (0,) * self._dims
        return f"{type(self).__name__}(size={ones}, stride={ones}, padding={zeros}, ceil_mode=True)"


class _GlobalMaxPool(_GlobalPool):
    """Maximum over the whole spatial extent, keeping one position per axis."""

    def forward(self, x: Any) -> np.ndarray:
        return self._reduce(x, maximum=True)


class _GlobalAvgPool(_GlobalPool):
    """Mean over the whole spatial extent, keeping one position per axis."""

    def forward(self, x: Any) -> np.ndarray:
        return self._reduce(x, maximum=False)


# A BLAS product with a vector of ones sums each row 3–7× faster than ``mean``'s pairwise sum
# (32×64 planes of 16×16 float32: 119 µs → 18–33 µs); its float32 partial sums stay short up
# to this many positions per plane, past which the pairwise sum is the more accurate.
BLAS_MEAN_POSITIONS = 4096


def _spatial_mean(flat: np.ndarray) -> np.ndarray:
    """The mean of each (N, C, positions) plane, in the input's dtype."""
    positions = flat.shape[2]
    if flat.dtype in (np.float32, np.float64) and 1 < positions <= BLAS_MEAN_POSITIONS:
        rows = np.ascontiguousarray(flat).reshape(-1, positions)
        with blas.serial():  # a threaded GEMV would leave BLAS's workers spinning (``kernels.blas``)
            sums = rows @ np.ones(positions, flat.dtype)
        return (sums / flat.dtype.type(positions)).reshape(flat.shape[:2])
    return flat.mean(axis=2, dtype=flat.dtype)


PoolT = TypeVar("PoolT", bound=Block)


def _per_dimension(kind: type[PoolT], family: str) -> Iterator[type[PoolT]]:
    """The registered classes of ``kind`` for 1, 2 and 3 spatial axes, named as Gluon names
    them (``MaxPool1D``, ``MaxPool2D``, ``MaxPool3D``): the archive's type names."""
    for dims in (1, 2, 3):
        name = f"{family}{dims}D"
        if issubclass(kind, _GlobalPool):
            config: type[LayerConfig] = GlobalPoolConfig
        else:
            config = _pool_config(f"{name}Config", dims, average=issubclass(kind, _AvgPool))
        namespace = {"_dims": dims, "__module__": __name__, "__qualname__": name,
                     "__doc__": f"{kind.__doc__} On {LAYOUTS[dims]} input."}
        yield register_layer(name, config=config)(type(name, (kind,), namespace))


MaxPool1D, MaxPool2D, MaxPool3D = _per_dimension(_MaxPool, "MaxPool")
AvgPool1D, AvgPool2D, AvgPool3D = _per_dimension(_AvgPool, "AvgPool")
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = _per_dimension(_GlobalMaxPool, "GlobalMaxPool")
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = _per_dimension(_GlobalAvgPool, "GlobalAvgPool")
