"""MXNet's legacy ``mxnet.ndarray`` (``nd``): the pre-numpy-mode arrays and operators that
older MXNet code, and a few d2l chapters, still use.

>>> from modelpack.ndarray import nansum
>>> nansum(np.array([0.5, np.nan]).as_nd_ndarray())                     # doctest: +SKIP
<BLANKLINE>
[0.5]
<NDArray 1 @cpu(0)>

``x.as_nd_ndarray()`` turns a modelpack array into a legacy ``NDArray`` (same memory) and
``y.as_np_ndarray()`` turns it back. Legacy arrays keep MXNet 1.9.1's legacy rules, which are
not numpy's (see ``ndarray.ndarray``): results in the operands' dtype, comparisons as 1/0,
reductions over everything giving shape (1,), ``nd.concat`` joining on axis 1, ``flatten``
giving 2-d, ``reshape``'s codes 0/-1/-2/-3/-4, ``take``/``pick`` clipping indices. The
operators provided (``FUNCTIONS``: elementwise math, arithmetic and comparisons with their
``broadcast_``/``elemwise_`` forms, reductions, shape and indexing operators, ``dot``,
``softmax``, ``sort``/``topk``, the creators ``array``/``zeros``/``ones``/``full``/
``arange``/``linspace``/``eye``) each compute what MXNet computes, checked against MXNet's
own output (tests/reference/mxnet_metric_nd.json). Every other MXNet legacy name (layers such
as ``FullyConnected``, ``nd.random``, optimizer updates, ...) is refused with an error that
names the numpy-mode way to do it.
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedFeatureError
from . import ndarray, op
from .ndarray import NDArray, arange, array, empty, eye, full, linspace, ones, zeros
from .op import FUNCTIONS

__all__ = [
    "NDArray",
    "array",
    "empty",
    "zeros",
    "ones",
    "full",
    "arange",
    "linspace",
    "eye",
    "ndarray",
    "op",
    *sorted(FUNCTIONS),
]

globals().update(FUNCTIONS)


def __getattr__(name: str) -> Any:
    """Any other MXNet legacy name: refused, saying what to use instead."""
    raise UnsupportedFeatureError.missing(__name__, name, op.instead(name))
