"""Arrays a kernel derives from a weight alone (``winograd``'s and ``winograd3d``'s transformed
kernels), kept between calls for as long as the weight's bits stay the same.

A loaded model at inference calls each convolution with the same weight every time, and
transforming a 128-channel 3×3 kernel for Winograd costs ~0.47 ms a call at 2 threads (a
ResNet-18-style forward: ~2 ms of ~40), while comparing its bits with a copy kept from the
last call costs ~0.02 ms. An entry is found by where the weight's values lie, its shape and
dtype, and served only when the weight's bits equal the copy kept with it: what is derived is
a function of those bits, so a weight changed in place (a training step, d2l's
``weight.data()[:] += 1``), replaced, or freed with its memory reused is derived again, never
served stale. At most ``MAX_BYTES`` are kept (copies and derived arrays), the least recently
used dropped first; an array served from here is read-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .. import budget

__all__ = ["MAX_BYTES", "derived", "clear", "bits_of"]

MAX_BYTES = 64 << 20  # what all entries may hold; one entry takes at most a quarter of it

_Key = tuple[str, int, tuple[int, ...], str]  # kind, address, shape, dtype (C-contiguous)


class _Entry(NamedTuple):
    bits: np.ndarray  # a copy of the weight's bits, as unsigned integers of its item size
    value: np.ndarray  # what ``compute`` derived from them (read-only)


_entries: OrderedDict[_Key, _Entry] = OrderedDict()
_held = 0  # bytes the entries hold
_lock = threading.Lock()  # (a model may run on several threads at once)
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def derived(weight: np.ndarray, kind: str, compute: Callable[[np.ndarray], np.ndarray], *,
            keep: bool = True) -> np.ndarray:
    """``compute(weight)``, from the last call's result when ``kind`` was derived from these
    very bits (the same values at the same place); a read-only array either way. ``keep``
    False where the weight is not a layer's own, called again (a gradient's flipped copy)."""
    bits = bits_of(weight) if keep else None
    if bits is None:  # (not kept, not contiguous, or of an item size without an unsigned type)
        return _read_only(compute(weight))
    key = (kind, weight.ctypes.data, weight.shape, weight.dtype.str)
    with _lock:
        entry = _entries.get(key)
        if entry is not None:
            _entries.move_to_end(key)
    if entry is not None and np.array_equal(entry.bits, bits):
        return entry.value
    value = _read_only(compute(weight))
    size = bits.nbytes + value.nbytes
    if size <= MAX_BYTES // 4:
        budget.charge(bits.nbytes, "the copy of its weight kept with what it derives")
        _keep(key, _Entry(bits.copy(), value), size)
    return value


def clear() -> None:
    """Drop every entry (the memory they hold is freed)."""
    global _held
    with _lock:
        _entries.clear()
        _held = 0


def bits_of(weight: np.ndarray) -> np.ndarray | None:
    """A C-contiguous array's bits as a flat view of unsigned integers of its item size (so
    that a NaN equals itself and -0.0 differs from 0.0); None for any other array."""
    unsigned = _UNSIGNED.get(weight.dtype.itemsize)
    if unsigned is None or not weight.flags.c_contiguous or weight.dtype.hasobject:
        return None
    return weight.reshape(-1).view(unsigned)


def _read_only(value: np.ndarray) -> np.ndarray:
    value.flags.writeable = False
    return value


def _keep(key: _Key, entry: _Entry, size: int) -> None:
    global _held
    with _lock:
        old = _entries.pop(key, None)
        if old is not None:
            _held -= old.bits.nbytes + old.value.nbytes
        _entries[key] = entry
        _held += size
        while _held > MAX_BYTES:
            _, dropped = _entries.popitem(last=False)
            _held -= dropped.bits.nbytes + dropped.value.nbytes
