"""``nn.kernels.compiled_pool`` (a 3-wide, stride-2 window folded by a numba loop) against
numpy's passes, the reference: the same bits, NaN and signed zeros included, in 1-D to 3-D
pools with padding and ceil mode's clipped windows. Skipped when numba is not installed (CI's
full pass requires it, tests/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pool_norm import AVG_POOL, MAX_POOL

from modelpack.nn.kernels import backend
from modelpack.nn.kernels import pool as pool_kernels


def _awkward(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float32, nan: float = 0.05
             ) -> np.ndarray:
    """Values where a maximum's ties and NaN show: ±0 side by side, NaN here and there (a share
    ``nan`` of the values: with none, every row takes the loop's plain comparisons)."""
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.random(flat.size) < 0.3] = -0.0
    flat[rng.random(flat.size) < 0.3] = 0.0
    flat[rng.random(flat.size) < nan] = np.nan
    return x


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each call of the compiled loop, counted (its rows)."""
    from modelpack.nn.kernels import compiled_pool

    calls: list[int] = []
    loop = compiled_pool.fold_three_by_two

    def counted(source, *args):
        calls.append(source.shape[0])
        return loop(source, *args)

    monkeypatch.setattr(compiled_pool, "fold_three_by_two", counted)
    return calls


@st.composite
def _pools(draw):
    """A pool whose last axis is 3 wide at stride 2, the axes before it anything small."""
    dims = draw(st.integers(1, 3))
    pool = (*(draw(st.integers(1, 3)) for _ in range(dims - 1)), 3)
    strides = (*(draw(st.integers(1, 3)) for _ in range(dims - 1)), 2)
    padding = tuple(draw(st.integers(0, k // 2)) for k in pool)
    sizes = tuple(draw(st.integers(k, k + (6 if dims < 3 else 3))) for k in pool)
    return pool, strides, padding, sizes, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(drawn=_pools(), kind=st.sampled_from(["max", "avg"]), batch=st.integers(1, 3), seed=st.integers(0, 2**32 - 1),
       nan=st.sampled_from([0.0, 0.01, 0.05]))
def test_the_loop_gives_numpys_bits(numba_kernels, drawn, kind, batch, seed, nan):
    """Rows with NaN and rows without (which the loop folds by plain comparisons) alike."""
    pool, strides, padding, sizes, ceil = drawn
    x = _awkward(np.random.default_rng(seed), (batch, 2, *sizes), nan=nan)
    layer = (MAX_POOL if kind == "max" else AVG_POOL)[len(pool)](pool, strides, padding, ceil_mode=ceil)
    backend.use("numpy")
    expected = layer(x)
    backend.use("numba")
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = _counting(monkeypatch)
        ours = layer(x)
    assert ours.tobytes() == expected.tobytes()  # bitwise: NaN where numpy's is, the same zeros' signs
    inside = pool_kernels._inside((3, 2, padding[-1]), sizes[-1], ours.shape[-1])
    assert bool(calls) == (inside[0] < inside[1])  # the loop ran wherever some window lies inside


def test_the_loop_takes_numpys_tie_and_nan():
    """Where numba's own ``np.maximum`` keeps the first of ±0, the loop keeps numpy's choice."""
    pytest.importorskip("numba")
    from modelpack.nn.kernels import compiled_pool

    f = np.float32
    for a, b in [(-0.0, 0.0), (0.0, -0.0), (np.nan, 1.0), (1.0, np.nan), (2.0, 1.0), (1.0, 2.0)]:
        for c in (-np.inf, -0.0, 0.0, np.nan):  # (a row without NaN takes the plain comparisons)
            source = np.array([[a, b, c]], np.float32)
            out = np.empty((1, 1), np.float32)
            compiled_pool.fold_three_by_two(source, out, 0, 0, 1, True)
            assert out.tobytes() == np.maximum(np.maximum(f(a), f(b)), f(c)).reshape(1, 1).tobytes()


@pytest.mark.parametrize(("pool", "strides", "dtype"), [
    ((3,), (1,), np.float32), ((5,), (2,), np.float32), ((3,), (3,), np.float32), ((3,), (2,), np.float64),
    ((3, 2), (2, 2), np.float32),
])
def test_other_windows_and_dtypes_take_numpys_passes(numba_kernels, monkeypatch, pool, strides, dtype):
    x = _awkward(np.random.default_rng(0), (2, 3, 9, 10)[: 2 + len(pool)], dtype)
    layer = MAX_POOL[len(pool)](pool, strides)
    backend.use("numpy")
    expected = layer(x)
    backend.use("numba")
    calls = _counting(monkeypatch)
    assert layer(x).tobytes() == expected.tobytes()
    assert calls == []


def test_a_strided_output_takes_numpys_passes(numba_kernels, monkeypatch):
    """The loop writes through a C-contiguous (rows, outputs) view of the output: a strided
    output (which reshaping would silently copy) is folded by numpy's passes instead."""
    backend.use("numba")
    calls = _counting(monkeypatch)
    x = _awkward(np.random.default_rng(1), (2, 3, 11))
    expected = np.full((2, 3, 5), 7, np.float32)
    pool_kernels._fold_running(x, expected, (3, 2, 0), np.maximum, -np.inf)
    into = np.full((2, 3, 10), 7, np.float32)
    pool_kernels._fold_axis(x, into[..., ::2], 2, (3, 2, 0), np.maximum, -np.inf)
    assert calls == []
    assert into[..., ::2].tobytes() == expected.tobytes() and (into[..., 1::2] == 7).all()
    pool_kernels._fold_axis(x, into[..., :5].copy(), 2, (3, 2, 0), np.maximum, -np.inf)
    assert calls == [6]  # (a contiguous one takes the loop)
