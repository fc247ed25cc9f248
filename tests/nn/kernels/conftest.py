"""Fixtures the kernel tests share: numba's compiled kernels, skipped without the accel extra."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelpack.nn.kernels import backend


@pytest.fixture(scope="module")
def numba_kernels() -> Iterator[None]:
    """numba installed (else skip); the kernels' choice put back after the module's tests."""
    pytest.importorskip("numba")
    before = backend.name()
    yield
    backend.use(before)
