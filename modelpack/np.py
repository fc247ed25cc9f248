"""``modelpack.np``: numpy as MXNet's ``np`` is called, for code that passes ``ctx=``.

``from mxnet import np`` → ``from modelpack import np``. Every name is numpy's own, except
that the functions that create arrays accept MXNet's ``ctx=`` (the CPU; see ``nn.devices``)
and, as MXNet does, make float32 where numpy would make float64, and that every function
gives an ``NDArray`` (a numpy array with ``ctx``, ``as_in_ctx``, ``asnumpy``, ...) where numpy
gives an array. ``np.random`` draws from the
``"np"`` stream of ``modelpack.random`` (so ``modelpack.random.seed`` and checkpoints cover it).
Plain ``import numpy as np`` works too wherever no ``ctx=`` is passed.

>>> from modelpack import np
>>> np.zeros((2, 3), ctx=npx.cpu()).dtype, np.arange(3).dtype            # doctest: +SKIP
(dtype('float32'), dtype('int64'))
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import numpy as _numpy

from . import random as _random
from .nn.devices import NDArray, check_device, on_device

ndarray = NDArray

# The creators that take ``ctx=`` in MXNet's np; every other name is numpy's, unchanged.
_CREATORS = (
    "array", "asarray", "zeros", "ones", "full", "empty", "arange", "linspace", "eye", "identity",
    "zeros_like", "ones_like", "full_like", "empty_like", "tri",
)


def _on_cpu(make: Callable[..., Any]) -> Callable[..., Any]:
    """``make`` taking and checking ``ctx=``, giving an NDArray, float32 for numpy's float64."""

    @functools.wraps(make)
    def creator(*args: Any, ctx: Any = None, **kwargs: Any) -> Any:
        check_device(ctx)
        explicit = kwargs.get("dtype") is not None
        result = make(*args, **kwargs)
        if not isinstance(result, _numpy.ndarray):
            return result
        if result.dtype == _numpy.float64 and not explicit and not _keeps_dtype(args):
            result = result.astype(_numpy.float32)
        return result.view(NDArray)

    return creator


def _keeps_dtype(args: tuple[Any, ...]) -> bool:
    """``array(x)``/``zeros_like(x)`` of an existing float64 array keep its dtype (as MXNet)."""
    return bool(args) and isinstance(args[0], _numpy.ndarray)


def _ndarray_results(function: Callable[..., Any]) -> Callable[..., Any]:
    """numpy's ``function`` giving ``NDArray`` where it gives a plain array (``concatenate``,
    ``stack``, ``dot`` drop the subclass; MXNet's np keeps its own): d2l's
    ``np.concatenate(weights).asnumpy()``. Results that are not arrays are left as they are."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        return on_device(function(*args, **kwargs))

    return call


def __getattr__(name: str) -> Any:
    value = getattr(_numpy, name)
    if name in _CREATORS:
        value = _on_cpu(value)
    elif type(value) is _ARRAY_FUNCTION:  # (ufuncs keep the subclass; types and modules stay numpy's)
        value = _ndarray_results(value)
    else:
        return value
    globals()[name] = value
    return value


_ARRAY_FUNCTION = type(_numpy.concatenate)  # numpy's public functions' type (not the ufuncs')


def _draw(method: str) -> Callable[..., Any]:
    @_on_cpu
    def draw(*args: Any, **kwargs: Any) -> Any:
        if method in ("random", "standard_normal"):  # rand(2, 3): the sizes as arguments
            args, kwargs = (), {"size": args or None}
        dtype = kwargs.pop("dtype", None)
        result = getattr(_random.generator("np"), method)(*args, **kwargs)
        return _numpy.asarray(result, dtype=dtype) if dtype is not None else _numpy.asarray(result)

    draw.__name__ = draw.__qualname__ = method
    return draw


def _seed(seed_state: int, ctx: Any = "all") -> None:
    """MXNet's ``np.random.seed``: seeds every stream of ``modelpack.random``."""
    _random.seed(seed_state)


def _shuffle(x: Any) -> None:
    _random.generator("np").shuffle(x)


class _Random(types.SimpleNamespace):
    """MXNet's ``np.random`` draws; any other name is ``numpy.random``'s (``default_rng``, ...)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_numpy.random, name)


random = _Random(
    uniform=_draw("uniform"),
    normal=_draw("normal"),
    randint=_draw("integers"),
    choice=_draw("choice"),
    permutation=_draw("permutation"),
    exponential=_draw("exponential"),
    gamma=_draw("gamma"),
    rand=_draw("random"),  # rand(d0, d1, ...) below
    randn=_draw("standard_normal"),
    shuffle=_shuffle,
    seed=_seed,
)
