"""``modelpack.numpy`` (``modelpack.np``): numpy as MXNet's ``mxnet.numpy`` (``np``) is called.

``from mxnet import np`` → ``from modelpack import np``; ``from mxnet.numpy.random import
multinomial`` → ``from modelpack.numpy.random import multinomial``. Every name is numpy's own,
except that the functions that create arrays accept MXNet's ``ctx=`` (the CPU; see
``nn.devices``) and, as MXNet does, make float32 where numpy would make float64 (``creators``),
and that every function gives an ``NDArray`` (a numpy array with ``ctx``, ``as_in_ctx``,
``asnumpy``, ...) where numpy gives an array. ``np.random`` (``random``) draws from the ``"np"``
stream of ``modelpack.random`` (so ``modelpack.random.seed`` and checkpoints cover it). Plain
``import numpy as np`` works too wherever no ``ctx=`` is passed.

>>> from modelpack import np
>>> np.zeros((2, 3), ctx=npx.cpu()).dtype, np.arange(3).dtype            # doctest: +SKIP
(dtype('float32'), dtype('int64'))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as _numpy

from ..nn.devices import NDArray, on_device
from . import random
from .creators import CREATORS, on_cpu

__all__ = ["ndarray", "random"]  # and, on first use, every name of numpy's (``__getattr__``)

ndarray = NDArray


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
    if name in CREATORS:
        value = on_cpu(value)
    elif type(value) is _ARRAY_FUNCTION:  # (ufuncs keep the subclass; types and modules stay numpy's)
        value = _ndarray_results(value)
    else:
        return value
    globals()[name] = value
    return value


_ARRAY_FUNCTION = type(_numpy.concatenate)  # numpy's public functions' type (not the ufuncs')
