"""``nn.kernels.blas`` (numpy's BLAS held to one thread) and ``parallel.split`` (a pass with
GEMMs, one chunk of the batch per thread): the switch restores what it found, a nested pass
runs on its chunk's thread, and every convolution path gives the same bits split or whole
(each product element is the same sum in BLAS's order; the chunks only pick the rows)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_conv import assert_split_equal

from modelpack.nn.kernels import blas, parallel, shifted
from modelpack.nn.kernels import conv as kernels
from modelpack.nn.kernels import transposed as transposed_kernels

needs_openblas = pytest.mark.skipif(not blas.usable(), reason="numpy's BLAS is not a switchable OpenBLAS")


@pytest.fixture
def two_threads():
    before = parallel.threads()
    parallel.set_threads(2)
    yield
    parallel.set_threads(before)


@needs_openblas
def test_serial_holds_blas_to_one_thread_and_restores_it() -> None:
    assert blas._handle() is not None
    _, count = blas._handle()
    before = count()
    with blas.serial():
        assert count() == 1
        with blas.serial():  # nested: the outer region restores, once
            assert count() == 1
        assert count() == 1
    assert count() == before


@needs_openblas
def test_regions_on_two_threads_restore_when_the_last_closes() -> None:
    """One thread's region closing while another's is open leaves BLAS on one thread."""
    _, count = blas._handle()
    before = count()
    opened, release = threading.Event(), threading.Event()

    def other() -> None:
        with blas.serial():
            opened.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert opened.wait(10)
        with blas.serial():
            pass
        assert count() == 1
    finally:
        release.set()
        thread.join(10)
    assert count() == before


def test_split_runs_one_chunk_per_thread(two_threads, monkeypatch) -> None:
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    names: list[tuple[int, str]] = []

    def run(b: slice) -> int:
        names.append((b.start, threading.current_thread().name))
        return b.stop - b.start

    assert parallel.split(run, 7, 1) == ([3, 4] if blas.usable() else [7])
    if blas.usable():
        assert len({name for _, name in names}) == 2


def test_split_keeps_the_batch_whole_without_a_switchable_blas(two_threads, monkeypatch) -> None:
    """With no BLAS thread switch, splitting would run each chunk's GEMMs on BLAS's threads
    too (threads × threads on the cores): the calling thread runs the whole batch."""
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    monkeypatch.setattr(blas, "usable", lambda: False)
    seen: list[slice] = []
    parallel.split(lambda b: seen.append(b), 8, 1)
    assert seen == [slice(0, 8)]


def test_small_work_stays_on_the_calling_thread(two_threads) -> None:
    seen: list[str] = []
    parallel.split(lambda b: seen.append(threading.current_thread().name), 8, parallel.SPLIT_MIN_WORK - 1)
    assert seen == [threading.current_thread().name]


@needs_openblas
def test_a_pass_nested_in_a_chunk_runs_on_its_thread(two_threads, monkeypatch) -> None:
    """A copy inside a chunk must not wait for the pool: its one worker runs the other chunk
    (a nested hand-off would wait on itself). Run in a thread, so a hang fails the test."""
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    big = np.ones((8, parallel.ELEMENTWISE_MIN_ELEMENTS // 4), np.float32)
    out = np.zeros_like(big)
    inner: list[tuple[str, str]] = []

    def run(b: slice) -> None:
        mine = threading.current_thread().name
        parallel.over_batch(lambda c: inner.append((mine, threading.current_thread().name)), 4,
                            parallel.ELEMENTWISE_MIN_ELEMENTS)
        parallel.copy(out[b], big[b])

    done = threading.Event()
    worker = threading.Thread(target=lambda: (parallel.split(run, 8, 1), done.set()), daemon=True)
    worker.start()
    assert done.wait(30), "a pass nested in a chunk waited for the pool"
    assert inner and all(chunk == nested for chunk, nested in inner)
    np.testing.assert_array_equal(out, big)


CASES = {
    # (x shape, weight shape, geometry): one per path that splits
    "channels last, im2col and col2im": ((6, 16, 9, 9), (8, 16, 3, 3), kernels.Geometry((3, 3), (2, 2), (1, 1), (1, 1))),
    "channels last, stride 1 (shifted input gradient)": ((6, 16, 8, 8), (16, 16, 3, 3),
                                                         kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))),
    "channels first, 1×1 strided": ((6, 16, 8, 8), (32, 16, 1, 1), kernels.Geometry((1, 1), (2, 2), (0, 0), (1, 1))),
    "channels first, few channels, padded": ((6, 3, 8, 8), (8, 3, 3, 3),
                                             kernels.Geometry((3, 3), (2, 2), (1, 1), (1, 1))),
    "grouped, channels last": ((6, 16, 7, 7), (8, 8, 3, 3), kernels.Geometry((3, 3), (2, 2), (1, 1), (1, 1), 2)),
}


def _everything(x: np.ndarray, w: np.ndarray, b: np.ndarray, g: kernels.Geometry, grad_seed: int
                ) -> list[np.ndarray]:
    out, saved = kernels.forward(x, w, b, g)
    grad = np.random.default_rng(grad_seed).standard_normal(out.shape).astype(np.float32)
    grad_x, grad_w = kernels.backward(grad, saved, w, g)
    assert grad_x is not None and grad_w is not None
    inference = kernels.forward(x, w, b, g, backward=False)[0]
    transposed = transposed_kernels.transpose_forward(out, w, None, g, (0,) * len(g.kernel))
    t_x, t_w = transposed_kernels.transpose_backward(transposed, out, w, g)  # (its own output as the gradient)
    return [out, grad_x, grad_w, inference, transposed, *(a for a in (t_x, t_w) if a is not None)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_path_gives_the_same_bits_split_or_whole(case, monkeypatch) -> None:
    shape, wshape, g = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(wshape).astype(np.float32)
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    before = parallel.threads()
    results = []
    try:
        for count, threshold in ((1, parallel.SPLIT_MIN_WORK), (2, 0), (3, 0)):
            parallel.set_threads(count)
            monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", threshold)
            results.append(_everything(x, w, b, g, 1))
    finally:
        parallel.set_threads(before)
    for other in results[1:]:
        for ours, theirs in zip(results[0], other, strict=True):
            assert_split_equal(theirs, ours, err_msg=case)


def test_the_shifted_forward_splits_the_same(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 16, 10, 10)).astype(np.float32)
    w = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    before = parallel.threads()
    try:
        parallel.set_threads(1)
        whole = shifted.forward(x, w, None, g, (10, 10))
        parallel.set_threads(2)
        monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
        split = shifted.forward(x, w, None, g, (10, 10))
    finally:
        parallel.set_threads(before)
    np.testing.assert_array_equal(whole, split)
    reference = kernels.forward(x.astype(np.float64), w.astype(np.float64), None, g, last=True)[0]
    np.testing.assert_allclose(split, reference, rtol=1e-4, atol=1e-4)


@needs_openblas
def test_small_products_run_on_one_blas_thread() -> None:
    """A threaded small product would leave OpenBLAS's workers spinning; a large one keeps
    BLAS's threads."""
    _, count = blas._handle()
    before = count()
    with blas.for_product(64, 10, 4096):  # a Dense layer after convolutions
        assert count() == 1
    assert count() == before
    with blas.for_product(256, 1024, 784):  # an MLP's layer
        assert count() == before


def test_global_average_pooling_sums_on_one_blas_thread(monkeypatch) -> None:
    """Its product with ones is a GEMV, which OpenBLAS threads from a few thousand rows on."""
    import contextlib

    from modelpack import nn

    entered: list[bool] = []

    @contextlib.contextmanager
    def recorded():
        entered.append(True)
        yield

    monkeypatch.setattr(blas, "serial", recorded)
    x = np.random.default_rng(0).standard_normal((8, 16, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(nn.GlobalAvgPool2D()(x)[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    assert entered


@needs_openblas
def test_sgemm_is_the_gemm_numpys_matmul_calls() -> None:
    """``blas.sgemm`` called through ctypes (as a compiled loop calls it): numpy's product, bit
    for bit, its output's leading dimension honoured (a column slice of a wider matrix)."""
    gemm = blas.sgemm()
    assert gemm is not None
    rng = np.random.default_rng(3)
    a = rng.standard_normal((37, 70)).astype(np.float32)
    b = rng.standard_normal((70, 48)).astype(np.float32)
    c = np.full((37, 48), np.nan, np.float32)
    m, k = a.shape
    gemm(blas.ROW_MAJOR, blas.NO_TRANSPOSE, blas.NO_TRANSPOSE, m, 16, k, 1.0, a.ctypes.data, k,
         b[:, 16:].ctypes.data, 48, 0.0, c.ctypes.data, 48)
    assert np.array_equal(c[:, :16], a @ b[:, 16:32])
    assert np.isnan(c[:, 16:]).all()
