"""The writer's checksums: one queue of tasks, drained by workers and by the thread asking."""

from __future__ import annotations

import hashlib
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from modelpack.io import npz_write


def _expected(tensors: npz_write.Tensors) -> tuple[list[int], list[str]]:
    crcs = [zlib.crc32(view, zlib.crc32(header)) for header, view in zip(tensors.headers, tensors.views, strict=True)]
    return crcs, [hashlib.sha256(view).hexdigest() for view in tensors.views]


def _tensors() -> npz_write.Tensors:
    rng = np.random.default_rng(0)
    sizes = [5 << 20, 5, 1, 3 << 20, 2 << 20, 0, 9 << 20, 1]  # tasks of one, and of several, tensors
    return npz_write.Tensors.of({f"t{i}": rng.integers(0, 255, n, dtype=np.uint8) for i, n in enumerate(sizes)})


def test_checksums_in_file_order_whoever_computes_them():
    tensors = _tensors()
    assert len(tensors.tasks()) > 2
    with ThreadPoolExecutor(2) as pool:
        assert tensors.checksums(pool).result() == _expected(tensors)


def test_the_asking_thread_takes_what_no_worker_took():
    """A worker busy elsewhere: the caller computes every task itself, in order."""
    tensors, release = _tensors(), threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(release.wait)
        pending = tensors.checksums(pool)
        try:
            assert pending.result() == _expected(tensors)
        finally:
            release.set()
        pending.settle()


def test_settle_hands_out_no_more_tasks():
    tensors, taken = _tensors(), []
    task = tensors._checksum_task
    pending = npz_write.PendingChecksums(tensors.tasks(), lambda indices: taken.append(indices) or task(indices))
    pending.settle()
    with ThreadPoolExecutor(1) as pool:
        pending.hand_over(pool)
    assert taken == []
