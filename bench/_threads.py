"""The BLAS thread count of a benchmark script, set from its ``--threads`` before numpy loads
(BLAS reads it once, when the library is loaded)."""

from __future__ import annotations

import os
import sys

_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads(default: str) -> None:
    """Set every BLAS thread variable to ``--threads N`` (or ``--threads=N``), else ``default``."""
    count = default
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            count = sys.argv[i + 1]
        elif arg.startswith("--threads="):
            count = arg.split("=", 1)[1]
    for variable in _VARIABLES:
        os.environ[variable] = count
