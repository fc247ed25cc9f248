"""Formats numpy has no dtype for, read as float32: every value exact, NaNs with their sign."""

from __future__ import annotations

import numpy as np
import pytest

from modelpack.interop.widened import STORED_AS, stored_dtype, widened


def _bits(values: np.ndarray) -> list[str]:
    return [f"{v:08x}" for v in values.view(np.uint32)]


def test_bfloat16_is_the_upper_half_of_a_float32():
    halves = np.array([0x3F80, 0xC020, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x7FC1], np.uint16)
    assert _bits(widened(halves, "bfloat16")) == [f"{h:04x}0000" for h in halves]


@pytest.mark.parametrize(("bits", "value"), [
    (0x00, 0.0), (0x80, -0.0), (0x38, 1.0), (0xB8, -1.0), (0x7E, 448.0), (0xFE, -448.0),
    (0x01, 2.0**-9), (0x08, 2.0**-6), (0x3C, 1.5),
])
def test_float8_e4m3fn_values(bits, value):
    got = widened(np.array([bits], np.uint8), "float8_e4m3fn")[0]
    assert got == value and np.signbit(got) == np.signbit(value)


@pytest.mark.parametrize(("bits", "value"), [
    (0x00, 0.0), (0x3C, 1.0), (0x7B, 57344.0), (0x7C, np.inf), (0xFC, -np.inf), (0x01, 2.0**-16), (0x04, 2.0**-14),
])
def test_float8_e5m2_values(bits, value):
    assert widened(np.array([bits], np.uint8), "float8_e5m2")[0] == value


def test_float8_nans_keep_their_sign():
    e4m3 = widened(np.array([0x7F, 0xFF], np.uint8), "float8_e4m3fn")
    e5m2 = widened(np.array([0x7D, 0x7E, 0x7F, 0xFD], np.uint8), "float8_e5m2")
    assert np.isnan(e4m3).all() and np.isnan(e5m2).all()
    assert list(np.signbit(e4m3)) == [False, True] and list(np.signbit(e5m2)) == [False, False, False, True]


def test_widened_keeps_the_shape_and_is_new_memory():
    raw = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = widened(raw, "float8_e5m2")
    assert out.shape == (3, 4) and out.dtype == np.float32 and not np.shares_memory(out, raw)


def test_stored_dtype_is_the_bits_for_these_formats_else_numpys():
    assert stored_dtype("bfloat16") == np.dtype("<u2") and stored_dtype("float8_e4m3fn") == np.dtype("u1")
    assert stored_dtype("float32") == np.dtype("float32") and set(STORED_AS) == {"bfloat16", "float8_e4m3fn", "float8_e5m2"}


@pytest.mark.parametrize("name", ["bfloat16", "float8_e4m3fn", "float8_e5m2"])
def test_every_bit_pattern_as_torch_widens_it(name):
    torch = pytest.importorskip("torch", reason="torch is not installed: no reference for the conversion")
    raw = np.arange(2 ** (8 * STORED_AS[name].itemsize), dtype=STORED_AS[name])
    theirs = torch.from_numpy(raw.view(np.int16) if name == "bfloat16" else raw).view(getattr(torch, name)).float()
    assert widened(raw, name).tobytes() == theirs.numpy().tobytes()
