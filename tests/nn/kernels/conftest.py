"""Fixtures the kernel tests share: numba's compiled kernels, skipped without the accel extra."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelpack.nn.kernels import backend, parallel


@pytest.fixture(scope="module")
def numba_kernels() -> Iterator[None]:
    """numba installed (else skip); the kernels' choice put back after the module's tests."""
    pytest.importorskip("numba")
    before = backend.name()
    yield
    backend.use(before)


@pytest.fixture
def small_passes_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pass with more than one chunk goes to the threads, however small (a test's inputs
    are far below ``parallel.SPLIT_MIN_WORK``, which ``direct``'s loops split from)."""
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
