"""Which implementation the kernels run: numpy's, the reference that is always there, or the
compiled loops of ``compiled`` when numba is installed (the ``accel`` extra).

One switch for the whole process: ``MODELPACK_KERNELS=numpy|numba|auto`` when it starts, or
``use(...)`` later (tests and ``bench/compute.py`` force each side). ``auto``, the default,
takes numba when it imports and numpy otherwise; ``numba`` without numba is an error, never a
silent fallback. The kernels ask ``compiled()`` and take the numpy path when it is None, and
``gemm_loops`` for the compiled loops that call BLAS's GEMM themselves.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["CHOICES", "use", "name", "compiled", "available", "gemm_loops", "loop_bias"]

CHOICES = ("auto", "numpy", "numba")
_VARIABLE = "MODELPACK_KERNELS"

_module: ModuleType | None = None
_chosen: str | None = None


def available() -> bool:
    """Whether numba imports here (the ``accel`` extra is installed)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def use(choice: str) -> None:
    """Run the kernels on ``choice`` from now on: "numpy", "numba" or "auto" (numba if installed)."""
    global _module, _chosen
    if choice not in CHOICES:
        raise ValueError(f"{_VARIABLE} must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "auto":
        choice = "numba" if available() else "numpy"
    if choice == "numba":
        if not available():
            raise ImportError(f"{_VARIABLE}=numba needs numba: pip install 'modelpack[accel]'")
        from . import compiled

        _module = compiled
    else:
        _module = None
    _chosen = choice


def name() -> str:
    """The implementation in use: "numpy" or "numba"."""
    if _chosen is None:
        use(os.environ.get(_VARIABLE, "auto").strip().lower() or "auto")
    assert _chosen is not None
    return _chosen


def compiled() -> ModuleType | None:
    """The compiled kernels (``kernels.compiled``) when they are in use, else None."""
    name()
    return _module


def gemm_loops(module: str, dims: int, *arrays: Any) -> ModuleType | None:
    """The kernels' module ``module`` (``compiled_col2im``, ``compiled_shifted``, …: a numba loop
    that calls BLAS's GEMM itself) where it can run a convolution of ``dims`` spatial axes on
    ``arrays``: the compiled kernels in use, 2-D, float32, and numpy's BLAS an OpenBLAS whose
    GEMM a loop can call (``blas.sgemm``); else None, and numpy's path runs."""
    if compiled() is None or dims != 2 or any(array.dtype != "float32" for array in arrays):
        return None
    from . import blas

    if blas.sgemm() is None:
        return None
    return importlib.import_module(f"{__package__}.{module}")  # (numba: imported once in use)


def loop_bias(bias: Any) -> Any:
    """A bias as the compiled loops take it: float32, contiguous, and empty for none (a loop's
    arguments have one type whether or not there is a bias)."""
    return np.empty(0, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
