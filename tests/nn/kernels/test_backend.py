"""``nn.kernels.backend``: which kernels run, and ``gemm_loops``, the one rule for where a
compiled loop that calls BLAS's GEMM itself may run (the compiled kernels in use, a 2-D
float32 convolution, numpy's BLAS's GEMM found)."""

from __future__ import annotations

import numpy as np
import pytest

from modelpack.nn.kernels import backend, blas


def test_gemm_loops_where_they_can_run(numba_kernels, monkeypatch) -> None:
    f32, f64 = np.empty(1, np.float32), np.empty(1, np.float64)
    backend.use("numba")
    if blas.sgemm() is None:
        pytest.skip("numpy's BLAS is not an OpenBLAS whose GEMM is found")
    loops = backend.gemm_loops("compiled_shifted", 2, f32, f32)
    assert loops is not None and loops.__name__ == "modelpack.nn.kernels.compiled_shifted"
    assert backend.gemm_loops("compiled_shifted", 1, f32, f32) is None
    assert backend.gemm_loops("compiled_shifted", 3, f32, f32) is None
    assert backend.gemm_loops("compiled_shifted", 2, f32, f64) is None
    monkeypatch.setattr(blas, "_sgemm", None)  # another BLAS than OpenBLAS
    assert backend.gemm_loops("compiled_shifted", 2, f32, f32) is None
    monkeypatch.undo()
    backend.use("numpy")
    assert backend.gemm_loops("compiled_shifted", 2, f32, f32) is None


def test_loop_bias_is_float32_contiguous_or_empty() -> None:
    assert backend.loop_bias(None).shape == (0,) and backend.loop_bias(None).dtype == np.float32
    strided = np.arange(8, dtype=np.float64)[::2]
    got = backend.loop_bias(strided)
    assert got.dtype == np.float32 and got.flags.c_contiguous and np.array_equal(got, [0, 2, 4, 6])
