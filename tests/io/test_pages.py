"""Fresh memory on huge pages: the bytes are the same, only whole pages (or, when asked, a last
one over half used) are huge, and the kernel does hand them out where it can."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from memory import advised, compacts_for_advised, huge_kib, needs_huge_pages, region, resident_bytes

from modelpack.errors import ModelpackError
from modelpack.io import pages
from modelpack.io.pages import HUGE_PAGE, fresh_array, fresh_bytes, marked_bytes

HUGE = 2 << 20


@given(st.integers(0, 10 * HUGE), st.booleans())
def test_whole_huge_pages_are_marked_and_a_last_one_only_when_over_half_used_and_asked(size, round_up):
    marked = marked_bytes(size, HUGE, round_up=round_up)
    whole, rest = divmod(size, HUGE)
    assert marked % HUGE == 0 and whole * HUGE <= marked <= (whole + 1) * HUGE
    assert (marked > whole * HUGE) == (round_up and rest > HUGE // 2)
    assert marked <= size or (marked - size < HUGE // 2 and marked - size < size)


def test_no_huge_pages_marks_nothing():
    assert marked_bytes(10 * HUGE, 0, round_up=True) == 0


@needs_huge_pages
@pytest.mark.parametrize("pages_in", [1, 3])
def test_whole_pages_are_marked_for_huge_pages_and_the_rest_not(pages_in):
    """A buffer of whole huge pages and a quarter: the whole ones marked, from the buffer's
    start, the quarter not, and nothing else of its mapping resident once it is all written
    (the slack around it is never touched)."""
    huge = HUGE_PAGE
    array = fresh_array((pages_in * huge + huge // 4,), np.dtype(np.uint8))
    address = array.ctypes.data
    assert address % huge == 0
    start, end, marked = advised(address)
    assert marked and start <= address and end == address + pages_in * huge
    assert advised(address + pages_in * huge)[2] is False
    array[:] = 7  # every page touched
    assert resident_bytes(*region(array)) == array.nbytes
    assert int(array.sum(dtype=np.int64)) == 7 * array.nbytes


@needs_huge_pages
@pytest.mark.skipif(not compacts_for_advised(), reason="the kernel does not compact for marked ranges")
def test_the_kernel_hands_out_huge_pages_for_them():
    array = fresh_array((3 * HUGE_PAGE,), np.dtype(np.uint8))
    array[:] = 1
    assert huge_kib(array) >= 3 * HUGE_PAGE // 1024


@needs_huge_pages
def test_rounding_up_marks_a_last_page_over_half_used():
    huge = HUGE_PAGE
    buffer = fresh_bytes(huge + 3 * huge // 4, round_up=True)
    assert advised(buffer.ctypes.data)[1] == buffer.ctypes.data + 2 * huge
    buffer[:] = 1
    if compacts_for_advised():  # (the unused quarter is resident once the kernel backs it huge)
        assert resident_bytes(*region(buffer)) == 2 * huge
    small = fresh_bytes(huge + huge // 4, round_up=True)
    assert advised(small.ctypes.data)[1] == small.ctypes.data + huge
    small[:] = 1
    assert resident_bytes(*region(small)) == small.nbytes


@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "complex64"])
@pytest.mark.parametrize("shape", [(0,), (3, 5), (HUGE // 8 + 3, 3), (1, HUGE // 2 + 1, 1)])
def test_fresh_arrays_are_empty_arrays_of_that_shape_and_dtype(shape, dtype):
    array = fresh_array(shape, np.dtype(dtype))
    assert array.shape == shape and array.dtype == np.dtype(dtype)
    assert array.flags.c_contiguous and array.flags.writeable and array.flags.aligned
    values = np.arange(array.size).astype(dtype).reshape(shape)
    array[...] = values
    assert array.tobytes() == values.tobytes()


def test_small_arrays_are_plain_numpy_arrays():
    array = fresh_array((4, 4), np.dtype(np.float32))
    assert array.base is None  # (np.empty: frees its memory like any array)


@pytest.mark.parametrize(("mode", "size", "expected"), [
    ("always [madvise] never", "2097152", 2097152), ("[always] madvise never", "2097152", 2097152),
    ("always madvise [never]", "2097152", 0), ("always [madvise] never", "garbage", 0), (None, "2097152", 0),
])
def test_the_huge_page_size_is_the_kernels_unless_huge_pages_are_off(tmp_path, monkeypatch, mode, size, expected):
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        pytest.skip("no MADV_HUGEPAGE on this platform")
    (tmp_path / "size").write_text(size + "\n")
    if mode is not None:
        (tmp_path / "enabled").write_text(mode + "\n")
    monkeypatch.setattr(pages, "_MODE", str(tmp_path / "enabled"))
    monkeypatch.setattr(pages, "_PMD_SIZE", str(tmp_path / "size"))
    assert pages._huge_page_size() == expected


needs_the_advice = pytest.mark.skipif(not hasattr(mmap, "MADV_HUGEPAGE"), reason="no MADV_HUGEPAGE here")


@needs_the_advice
def test_without_address_space_for_the_mapping_numpy_allocates(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(pages, "HUGE_PAGE", HUGE)
    monkeypatch.setattr(mmap, "mmap", refuse)
    array = fresh_bytes(3 * HUGE)
    assert array.base is None and array.nbytes == 3 * HUGE


@needs_the_advice
def test_a_kernel_without_the_advice_still_gives_the_buffer(monkeypatch):
    """``madvise`` refused (an old kernel): the same bytes on small pages."""
    monkeypatch.setattr(pages, "HUGE_PAGE", HUGE)
    monkeypatch.setattr(mmap, "MADV_HUGEPAGE", -1)  # (an advice no kernel knows: EINVAL)
    buffer = fresh_bytes(HUGE + 5)
    buffer[:] = 3
    assert buffer.nbytes == HUGE + 5 and int(buffer[-1]) == 3


def _starved(shape, dtype):
    raise MemoryError


def test_a_tensor_without_memory_is_refused_by_name_and_size_with_what_to_do(monkeypatch):
    monkeypatch.setattr(pages, "fresh_array", _starved)
    with pytest.raises(ModelpackError, match=r"^m\.mpk: tensor 'w': out of memory for its 24 bytes; .*mmap=True"):
        pages.read_target("m.mpk: tensor 'w'", (2, 3), np.dtype(np.float32))


def test_read_target_is_fresh_array_where_memory_suffices():
    array = pages.read_target("m.mpk", (2, 3), np.dtype(np.float64))
    assert array.shape == (2, 3) and array.dtype == np.float64 and array.flags.writeable
