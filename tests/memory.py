"""Where a test's arrays live in memory, from the kernel's own counters (Linux)."""

from __future__ import annotations

import ctypes
import mmap

import numpy as np
import pytest

from modelpack.io.pages import HUGE_PAGE

needs_huge_pages = pytest.mark.skipif(not HUGE_PAGE, reason="no transparent huge pages here")

_PAGE = mmap.PAGESIZE


def advised(address: int) -> tuple[int, int, bool]:
    """The mapping holding ``address``: its start, its end, and whether it is marked for huge
    pages (``hg`` among its VmFlags: what ``madvise(MADV_HUGEPAGE)`` sets, whatever the kernel
    then manages to hand out)."""
    span: tuple[int, int] | None = None
    with open("/proc/self/smaps", encoding="ascii", errors="replace") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(part, 16) for part in fields[0].split("-"))
                span = (start, end) if start <= address < end else None
            elif span is not None and fields[0] == "VmFlags:":
                return span[0], span[1], "hg" in fields[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def compacts_for_advised() -> bool:
    """Whether the kernel compacts memory to find a huge page for a marked range when none is
    free (its ``defrag`` mode), so that a test can expect one."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/defrag", encoding="ascii") as mode:
            chosen = mode.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return False
    return chosen in ("always", "madvise", "defer+madvise")


def huge_kib(array: np.ndarray) -> int:
    """AnonHugePages (KiB) of the mappings ``array`` lies in. At least what it holds on huge
    pages: a neighbouring mapping with the same flags may have been merged into one of them."""
    low, high = array.ctypes.data, array.ctypes.data + array.nbytes
    total, inside = 0, False
    with open("/proc/self/smaps", encoding="ascii", errors="replace") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(part, 16) for part in fields[0].split("-"))
                inside = start < high and low < end
            elif inside and fields[0] == "AnonHugePages:":
                total += int(fields[1])
    return total


def region(array: np.ndarray) -> tuple[int, int]:
    """Address and length of the anonymous mapping behind an array from ``io.pages``."""
    owner: object = array
    while isinstance(owner, (np.ndarray, memoryview)):
        owner = owner.base if isinstance(owner, np.ndarray) else owner.obj
    assert isinstance(owner, mmap.mmap), f"not on a mapping of its own: {type(owner)}"
    return np.frombuffer(owner, dtype=np.uint8, count=1).ctypes.data, len(owner)


def resident_bytes(address: int, length: int) -> int:
    """How many bytes of the pages in [address, address + length) are in memory (mincore)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    start = address - address % _PAGE
    pages = -(-(address + length - start) // _PAGE)
    vector = (ctypes.c_ubyte * pages)()
    assert libc.mincore(start, pages * _PAGE, vector) == 0, ctypes.get_errno()
    return sum(byte & 1 for byte in vector) * _PAGE
