"""The reading and writing worker threads, started once per process.

A save hands its checksums (CRC-32 and SHA-256, which release the GIL) to these threads and
lays out and writes the file meanwhile; a full load of a large archive reads its tensors
(positioned reads and CRC-32s, which release it too) on them, and ``verify`` checks its runs
of tensors on them. Starting two threads costs ~0.15 ms, as much as
checksumming a small archive, so they are started on first use and kept, idle, for the next
save (they end with the process). A forked child has none of its parent's threads: it starts
its own pool on first use.

Tasks given to this pool must not wait on other tasks of the same pool (two long tasks would
then wait for each other forever): they compute and return.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["WORKERS", "shared_pool"]

WORKERS = max(1, min(4, os.cpu_count() or 1))

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def shared_pool() -> ThreadPoolExecutor:
    """This process's pool of ``WORKERS`` threads."""
    global _pool
    pool = _pool
    if pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="modelpack-io")
            pool = _pool
    return pool


def _forget_in_child() -> None:
    """After fork: the parent's threads (and whoever held the lock) are not in the child."""
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
