"""Keep the allocator and the VM from making one method's timing depend on the one before.

By default glibc raises its mmap threshold (up to 32 MiB) each time a large mapped block is
freed, after which blocks of that size come from the heap and stay resident when freed. A
load that follows another then reuses pages that are already faulted in and looks faster,
and a save's buffers can hide in pages its input's construction left behind. So the bench
fixes the threshold (which also turns the dynamic adjustment off): every block of 128 KiB
or more is a fresh mapping, as in a process that loads one model, and is unmapped when freed.
Elsewhere (no glibc) these are no-ops.
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np

__all__ = ["fix_mmap_threshold", "trim_heap", "prefault"]

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024  # glibc's default starting value


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018  (musl has no mallopt)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def fix_mmap_threshold() -> bool:
    """Map every block ≥ 128 KiB freshly, from now on; True if glibc accepted it."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def trim_heap() -> None:
    """Give freed heap pages back to the OS, so memory a method reuses is counted again."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def prefault(nbytes: int) -> None:
    """Touch ``nbytes`` of fresh memory and free it, so the next allocations get warm pages.

    On a virtual machine the host may take back guest memory that was freed (virtio-balloon
    free page reporting); touching it again then costs the host's page faults too, at random:
    here 0.13–1.4 s per GB where 0.13 s is the norm. Pages freed just now are handed out
    again first, so a timed call that follows pays the guest's own cost only, every time.
    """
    if nbytes > 0:
        block = np.empty(nbytes, dtype=np.uint8)
        block[::4096] = 1
        del block
