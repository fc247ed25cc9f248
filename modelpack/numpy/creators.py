"""MXNet's conventions for the functions that make arrays: ``ctx=`` (the CPU), float32 where
numpy would make float64, and an ``NDArray`` back. One home for both ``modelpack.numpy``'s
creators and its ``random`` draws, which MXNet makes the same way."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as _numpy

from ..nn.devices import NDArray, check_device

__all__ = ["CREATORS", "on_cpu"]

# The creators that take ``ctx=`` in MXNet's np; every other name is numpy's, unchanged.
CREATORS = (
    "array", "asarray", "zeros", "ones", "full", "empty", "arange", "linspace", "eye", "identity",
    "zeros_like", "ones_like", "full_like", "empty_like", "tri",
)


def on_cpu(make: Callable[..., Any]) -> Callable[..., Any]:
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
