"""Fresh memory for what a load reads, in huge pages where whole ones are used.

Every array a load returns is fresh memory, and each 4 KiB page of it costs a fault the
first time it is written: on this kind of machine (a VM) ~2.5 µs a page, 0.6 ms a megabyte,
more than copying the megabyte from the page cache. Linux hands out a 2 MiB page in one
fault, for about a fifth of that cost per byte, where three things hold: transparent huge
pages are on ("madvise", the usual default, or "always"), the range is marked
``MADV_HUGEPAGE`` in a private anonymous mapping, and it is a whole aligned 2 MiB. numpy
marks its own allocations of 4 MiB or more, but they start anywhere, so smaller arrays and
the ends of larger ones fault page by page.

So a buffer here starts on a huge-page boundary of a mapping one huge page longer than it
(the slack is address space, never touched, so never resident), and its whole huge pages are
marked. Its last, partial one is marked only when the caller allows the unused rest to be
resident (``round_up``: under half a huge page, 1 MiB, and under the buffer's size).
Measured here: 1 MB read into fresh memory in 0.55–0.69 ms page by page, 0.29–0.33 ms in one
huge page; bench/run.py's 100 MB load (tensors of 4 MiB) 36–43 → 18–24 ms. Elsewhere (no
``MADV_HUGEPAGE``, huge pages off, a small buffer) it is ``np.empty``: the same bytes, page by
page. (Where memory is fragmented the kernel may compact it to find a huge page, as it does
for numpy's own marked arrays: no new kind of stall.)
"""

from __future__ import annotations

import contextlib
import math
import mmap

import numpy as np

from ..errors import ModelpackError

__all__ = ["HUGE_PAGE", "fresh_array", "read_target", "fresh_bytes", "marked_bytes"]

_PMD_SIZE = "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"
_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


def _huge_page_size() -> int:
    """The transparent huge page's size, or 0 where none can be asked for."""
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return 0
    try:
        with open(_MODE, encoding="ascii") as mode:
            if "[never]" in mode.read():
                return 0
        with open(_PMD_SIZE, encoding="ascii") as size:
            return int(size.read())
    except (OSError, ValueError):
        return 0


# Read once: a load of 10,000 small tensors asks 10,000 times.
HUGE_PAGE = _huge_page_size()


def fresh_bytes(size: int, *, round_up: bool = False) -> np.ndarray:
    """``size`` writable bytes, uninitialised, as a uint8 array that keeps its memory alive:
    on huge pages for each whole one and, with ``round_up``, for a last one over half used."""
    huge = HUGE_PAGE
    marked = marked_bytes(size, huge, round_up=round_up)
    if not marked:
        return np.empty(size, dtype=np.uint8)
    try:
        region = mmap.mmap(-1, max(size, marked) + huge, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except OSError:  # (no address space left: np.empty words it as numpy does)
        return np.empty(size, dtype=np.uint8)
    address = np.frombuffer(region, dtype=np.uint8, count=1).ctypes.data
    start = (huge - address % huge) % huge  # the mapping's first huge-page boundary
    with contextlib.suppress(OSError):  # a kernel that refuses the advice gives small pages
        region.madvise(mmap.MADV_HUGEPAGE, start, marked)
    return np.frombuffer(region, dtype=np.uint8, count=size, offset=start)


def marked_bytes(size: int, huge: int, *, round_up: bool = False) -> int:
    """How much of a ``size``-byte buffer starting on a huge page goes on huge pages of
    ``huge`` bytes (0: none can be asked for): every whole one, and with ``round_up`` a last
    one over half used (the rest of it, under half a page and under ``size``, resident
    unused)."""
    if not huge:
        return 0
    whole, rest = divmod(size, huge)
    return whole * huge + (huge if round_up and 2 * rest > huge else 0)


def fresh_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, on huge pages for each whole one it spans (none unused)."""
    nbytes = math.prod(shape) * dtype.itemsize
    if not HUGE_PAGE or nbytes < HUGE_PAGE:
        return np.empty(shape, dtype=dtype)
    return fresh_bytes(nbytes).view(dtype).reshape(shape)


def read_target(where: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``fresh_array`` for a stored tensor about to be read (``where`` names the file and the
    tensor): out of memory, a refusal that says so and what to do, never a bare MemoryError."""
    try:
        return fresh_array(shape, dtype)
    except MemoryError:
        nbytes = math.prod(shape) * dtype.itemsize
        raise ModelpackError(
            f"{where}: out of memory for its {nbytes} bytes; free memory, or read it mapped where "
            "the format allows (get_tensor(name, mmap=True), load(path, mmap=True))"
        ) from None
