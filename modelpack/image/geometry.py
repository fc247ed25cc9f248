"""Resizing and crop windows as MXNet 1.9.1 computes them, on HWC numpy images (a batch
``(N, H, W, C)`` too for resizing): the one home of these computations, used by
``modelpack.image`` (``imresize``, the crops) and ``gluon.data.vision.transforms``.

Resizing is ``cv::resize`` of the OpenCV 3.4.2 MXNet's wheels link.

Interpolations are OpenCV's codes: 0 nearest, 1 bilinear, 2 bicubic (A = -0.75), 3 area,
4 Lanczos (8 taps). Source positions are OpenCV's (pixel centres at +0.5, computed in
double, then rounded to float32), as are the tap weights (float32), the borders (edge pixels
repeated) and the special cases (a 2:1 bilinear shrink and every whole-number area shrink
average blocks; other area shrinks weigh each source pixel by its overlap; an area resize
that enlarges either side is bilinear with area-style weights).

What is computed, by dtype:

- uint8: OpenCV's fixed point: weights rounded to 1/2048, each row's taps summed exactly in
  integers, then the rows combined as OpenCV's x86-64 vector code does (bilinear: each term
  shifted, multiplied, shifted, then rounded; bicubic: in float32, rounded half to even, the
  last ``width·C mod 8`` values of each row in integers as its scalar tail; Lanczos:
  integers). Equal to MXNet 1.9.1's for every case of ``tests/test_image.py`` (all five
  interpolations, 1 to 4 channels, shrinking and enlarging); another CPU's vector path could
  round a value differently, by one level at most.
- float32: OpenCV's float32 arithmetic in its order of operations (equal to MXNet's in the
  same tests).
- anything else: float64 with the float32 weights, cast back to the dtype.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..errors import InputError, UsageError

__all__ = [
    "NEAREST", "BILINEAR", "BICUBIC", "AREA", "LANCZOS", "INTERPOLATIONS", "resize", "crop",
    "scale_down", "center_window", "random_window", "choose_interpolation",
]

NEAREST, BILINEAR, BICUBIC, AREA, LANCZOS = 0, 1, 2, 3, 4
INTERPOLATIONS = {NEAREST: "nearest", BILINEAR: "bilinear", BICUBIC: "bicubic", AREA: "area",
                  LANCZOS: "Lanczos"}
_TAPS = {BILINEAR: 2, AREA: 2, BICUBIC: 4, LANCZOS: 8}
_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE: fixed-point weights in 1/2048
_SHIFT = 22  # two weights' worth of bits


def choose_interpolation(interp: int, sizes: tuple[int, int, int, int] | None = None,
                         rng: np.random.Generator | None = None) -> int:
    """MXNet's ``_get_interp_method``: 0..4 as they are; 9 picks by ``sizes`` (old height,
    old width, new height, new width): bicubic to enlarge both sides, area to shrink both,
    else bilinear (bicubic without sizes); 10 draws one of 0..4 from ``rng``."""
    if isinstance(interp, bool) or not isinstance(interp, (int, np.integer)):
        raise UsageError(f"interp must be an int (0..4, 9 or 10), got {interp!r}")
    if interp == 9:
        if sizes is None:
            return BICUBIC
        old_h, old_w, new_h, new_w = sizes
        if new_h > old_h and new_w > old_w:
            return BICUBIC
        if new_h < old_h and new_w < old_w:
            return AREA
        return BILINEAR
    if interp == 10:
        if rng is None:
            raise UsageError("interp=10 (a random method) needs a random generator")
        return int(rng.integers(0, 4, endpoint=True))
    if interp not in INTERPOLATIONS:
        raise UsageError(f"unknown interp {interp}: 0 nearest, 1 bilinear, 2 bicubic, 3 area, "
                         "4 Lanczos, 9 by the sizes, 10 random (OpenCV's codes, as MXNet)")
    return int(interp)


def scale_down(source: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """MXNet's ``scale_down``: a crop ``(w, h)`` shrunk, keeping its aspect, to fit ``source``
    ``(w, h)``."""
    w, h = float(size[0]), float(size[1])
    sw, sh = source
    if sh < h:
        w, h = w * sh / h, sh
    if sw < w:
        w, h = sw, h * sw / w
    return int(w), int(h)


def center_window(width: int, height: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """MXNet's ``center_crop`` window ``(x0, y0, w, h)`` in a ``width`` × ``height`` image for
    a crop of ``size`` ``(w, h)``, shrunk by ``scale_down`` when it does not fit."""
    w, h = scale_down((width, height), size)
    return int((width - w) / 2), int((height - h) / 2), w, h


def random_window(rng: np.random.Generator, width: int, height: int, area: tuple[float, float],
                  ratio: tuple[float, float]) -> tuple[int, int, int, int] | None:
    """MXNet's ``random_size_crop`` draw: up to ten tries of an area (a fraction of the
    image's, uniform in ``area``) and an aspect ratio (uniform on a log scale in ``ratio``);
    the first window that fits, placed uniformly, as ``(x0, y0, w, h)``; None when none fit
    (MXNet then takes the centre crop). A window rounding to zero pixels does not fit (in
    MXNet it fails later, in the resize)."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = float(rng.uniform(area[0], area[1])) * (height * width)
        aspect = math.exp(float(rng.uniform(*log_ratio)))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 1 <= w <= width and 1 <= h <= height:
            x0 = int(rng.integers(0, width - w, endpoint=True))
            y0 = int(rng.integers(0, height - h, endpoint=True))
            return x0, y0, w, h
    return None


def crop(x: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """The ``width`` × ``height`` window of HWC ``x`` whose top-left pixel is ``(x0, y0)``,
    a view; a window not inside the image is refused (MXNet's slicing would return a
    smaller one without a word)."""
    if x.ndim != 3:
        raise InputError(f"crop takes an image of shape (H, W, C), got shape {x.shape}")
    rows, cols = x.shape[:2]
    if min(width, height) < 1 or min(x0, y0) < 0 or x0 + width > cols or y0 + height > rows:
        raise InputError(f"crop window x0={x0}, y0={y0}, w={width}, h={height} is not inside the "
                         f"{cols}×{rows} (w×h) image")
    return x[y0 : y0 + height, x0 : x0 + width]


def resize(x: np.ndarray, height: int, width: int, interp: int = BILINEAR) -> np.ndarray:
    """``x`` (``(H, W, C)`` or ``(N, H, W, C)``) resized to ``height`` × ``width`` with
    OpenCV's interpolation ``interp`` (0..4), in its dtype (see the module's notes)."""
    if interp not in INTERPOLATIONS:
        raise UsageError(f"unknown interp {interp}: resizing takes 0 nearest, 1 bilinear, 2 bicubic, "
                         "3 area or 4 Lanczos (OpenCV's codes)")
    if x.ndim not in (3, 4):
        raise InputError(f"resize takes an image of shape (H, W, C) or (N, H, W, C), got shape {x.shape}")
    if height < 1 or width < 1:
        raise UsageError(f"resize to {width}×{height} (w×h): both sides must be at least 1")
    source_h, source_w = x.shape[-3], x.shape[-2]
    if min(source_h, source_w, x.shape[-1]) < 1:
        raise InputError(f"resize takes a non-empty image, got shape {x.shape}")
    if (source_h, source_w) == (height, width):
        return x.copy()
    if interp == NEAREST:
        return x[..., _nearest(source_h, height), :, :][..., _nearest(source_w, width), :]
    scale_x, scale_y = 1.0 / (width / source_w), 1.0 / (height / source_h)
    whole_x, whole_y = _whole(scale_x), _whole(scale_y)
    if interp == BILINEAR and whole_x == 2 and whole_y == 2:
        interp = AREA  # OpenCV: a 2:1 bilinear shrink is the 2×2 block average
    if interp == AREA and scale_x >= 1 and scale_y >= 1:
        if whole_x and whole_y:
            return _area_whole(x, whole_y, whole_x, height, width)
        return _area(x, height, width, scale_y, scale_x)
    rows, row_weights = _taps(source_h, height, interp, clamp_edges=False)
    cols, col_weights = _taps(source_w, width, interp, clamp_edges=True)
    if x.dtype == np.uint8:
        return _fixed_point(x, rows, row_weights, cols, col_weights, interp)
    compute = np.float32 if x.dtype == np.float32 else np.float64
    horizontal = _weigh(x.astype(compute, copy=False), cols, col_weights.astype(compute), axis=-2)
    out = _weigh(horizontal, rows, row_weights.astype(compute), axis=-3)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


def _whole(scale: float) -> int:
    """``scale`` as an int when it is one to double precision (OpenCV's ``is_area_fast``), else 0."""
    nearest = round(scale)
    return int(nearest) if abs(scale - nearest) < np.finfo(np.float64).eps else 0


def _nearest(source: int, target: int) -> np.ndarray:
    """OpenCV's INTER_NEAREST: ``floor(d · (1 / (target / source)))``, at most the last index."""
    step = 1.0 / (target / source)
    return np.minimum(np.floor(np.arange(target) * step).astype(np.int64), source - 1)


def _cubic(f: np.ndarray) -> np.ndarray:
    """OpenCV's ``interpolateCubic`` in float32: the four weights of a fraction ``f``."""
    a = np.float32(-0.75)
    one = np.float32(1)
    g = f + one
    w0 = ((a * g - np.float32(5) * a) * g + np.float32(8) * a) * g - np.float32(4) * a
    w1 = ((a + np.float32(2)) * f - (a + np.float32(3))) * f * f + one
    h = one - f
    w2 = ((a + np.float32(2)) * h - (a + np.float32(3))) * h * h + one
    w3 = one - w0 - w1 - w2
    return np.stack([w0, w1, w2, w3], axis=-1)


_S45 = 0.70710678118654752440084436210485
_LANCZOS_CS = ((1, 0), (-_S45, -_S45), (0, 1), (_S45, -_S45), (-1, 0), (_S45, _S45), (0, -1), (-_S45, _S45))


def _lanczos_one(f: float) -> list[float]:
    """OpenCV's ``interpolateLanczos4`` for one float32 fraction: eight float32 weights."""
    if f < np.finfo(np.float32).eps:
        return [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    shifted = np.float32(np.float32(f) + np.float32(3))  # C++'s float x + 3 is a float
    y0 = -float(shifted) * math.pi * 0.25
    s0, c0 = math.sin(y0), math.cos(y0)
    coeffs, total = [], np.float32(0)
    for i, (cs, cc) in enumerate(_LANCZOS_CS):
        y = -float(np.float32(shifted - np.float32(i))) * math.pi * 0.25
        value = np.float32((cs * s0 + cc * c0) / (y * y))
        coeffs.append(value)
        total = np.float32(total + value)
    inverse = np.float32(np.float32(1) / total)
    return [float(np.float32(c * inverse)) for c in coeffs]


@lru_cache(maxsize=128)
def _taps(source: int, target: int, interp: int, clamp_edges: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per target index along one side: the ``(target, taps)`` source indices (edges
    repeated) and float32 weights OpenCV gives them. ``clamp_edges``: OpenCV moves a
    bilinear/area position past either edge onto the edge pixel for columns, not rows."""
    scale = 1.0 / (target / source)
    d = np.arange(target, dtype=np.float64)
    if interp == AREA:  # enlarging with area weights
        start = np.floor(d * scale)
        frac = ((d + 1) - (start + 1) * (target / source)).astype(np.float32)
        frac = np.where(frac <= 0, np.float32(0), frac - np.floor(frac)).astype(np.float32)
        start = start.astype(np.int64)
    else:
        position = ((d + 0.5) * scale - 0.5).astype(np.float32)
        start = np.floor(position).astype(np.int64)
        frac = (position - start.astype(np.float32)).astype(np.float32)
    taps = _TAPS[interp]
    if interp in (BILINEAR, AREA):
        if clamp_edges:
            before, after = start < 0, start >= source - 1
            frac[before | after] = 0
            start = np.where(before, 0, np.where(after, source - 1, start))
        weights = np.stack([np.float32(1) - frac, frac], axis=-1)
    elif interp == BICUBIC:
        weights = _cubic(frac)
    else:
        weights = np.array([_lanczos_one(float(f)) for f in frac], dtype=np.float32)
    index = np.clip(start[:, None] + np.arange(taps) - (taps // 2 - 1), 0, source - 1)
    weights = weights.astype(np.float32)
    for array in (index, weights):
        array.setflags(write=False)
    return index, weights


def _weigh(x: np.ndarray, index: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Along ``axis``: ``sum_k x[index[:, k]] * weights[:, k]``, added left to right in ``x``'s
    dtype (OpenCV's order of operations)."""
    shape = [1] * x.ndim
    shape[axis] = -1
    out = np.take(x, index[:, 0], axis=axis) * weights[:, 0].reshape(shape)
    for k in range(1, index.shape[1]):
        out += np.take(x, index[:, k], axis=axis) * weights[:, k].reshape(shape)
    return out


def _fixed(weights: np.ndarray) -> np.ndarray:
    """Weights in 1/2048 as OpenCV stores them (``saturate_cast<short>``: half to even)."""
    return np.rint(weights * np.float32(_COEF_SCALE)).astype(np.int64)


def _fixed_point(x: np.ndarray, rows: np.ndarray, row_weights: np.ndarray, cols: np.ndarray,
                 col_weights: np.ndarray, interp: int) -> np.ndarray:
    """uint8 resizing with OpenCV's integer weights and its vertical pass's rounding."""
    if x.ndim == 4:
        return np.stack([_fixed_point(one, rows, row_weights, cols, col_weights, interp) for one in x])
    source_h, source_w, channels = x.shape
    width = cols.shape[0] * channels  # values per output row, as OpenCV counts them
    # horizontal: exact integer sums (OpenCV's int: at most 255 · 2048 · 1.4 here)
    alpha = _fixed(col_weights).astype(np.int32)
    source = x.astype(np.int32)
    summed = np.zeros((source_h, cols.shape[0], channels), dtype=np.int32)
    for k in range(cols.shape[1]):
        term = source[:, cols[:, k]]
        term *= alpha[:, k, None]
        summed += term
    horizontal = summed.reshape(source_h, width)
    beta = _fixed(row_weights)
    if interp in (BILINEAR, AREA):
        # OpenCV's VResizeLinear for 8 bits (vector code and its scalar twin): each term's
        # input shifted by 4, multiplied, shifted by 16 (as the SSE2 mulhi), then rounded
        shifted = horizontal >> 4
        out = np.zeros((rows.shape[0], width), dtype=np.int32)
        for k in range(rows.shape[1]):
            term = shifted[rows[:, k]]
            term *= beta[:, k, None].astype(np.int32)
            term >>= 16
            out += term
        out += 2
        out >>= 2
    else:
        if interp == BICUBIC:
            # OpenCV's SSE2 VResizeCubicVec_32s8u: float32 sums of terms · beta/2^22, rounded
            # half to even, on each row's first (width rounded down to 8) values; the rest in
            # integers as its scalar code
            scale = np.float32(1.0 / (_COEF_SCALE * _COEF_SCALE))
            values = horizontal.astype(np.float32)
            total = np.zeros((rows.shape[0], width), dtype=np.float32)
            for k in range(rows.shape[1]):
                term = values[rows[:, k]]
                term *= (beta[:, k].astype(np.float32) * scale)[:, None]
                total += term
            out = np.clip(np.rint(total), -32768, 32767).astype(np.int64)
            tail = slice(width - width % 8, width)
        else:  # Lanczos: OpenCV's scalar code only
            out = np.empty((rows.shape[0], width), dtype=np.int64)
            tail = slice(0, width)
        # exact integer sums as a float64 matrix product, rounded by OpenCV's fixed-point cast
        weights = np.zeros((rows.shape[0], source_h))
        np.add.at(weights, (np.repeat(np.arange(rows.shape[0]), rows.shape[1]), rows.ravel()), beta.ravel())
        exact = (weights @ horizontal[:, tail].astype(np.float64)).astype(np.int64)
        out[:, tail] = (exact + (1 << (_SHIFT - 1))) >> _SHIFT
    return np.clip(out, 0, 255).astype(np.uint8).reshape(rows.shape[0], cols.shape[0], channels)


def _area_whole(x: np.ndarray, step_y: int, step_x: int, height: int, width: int) -> np.ndarray:
    """OpenCV's area shrink by whole factors: the mean of each ``step_y × step_x`` block."""
    *lead, _, _, channels = x.shape
    blocks = x[..., : height * step_y, : width * step_x, :].reshape(
        *lead, height, step_y, width, step_x, channels)
    if x.dtype == np.uint8:
        total = blocks.sum(axis=(-4, -2), dtype=np.int64)
        if step_x == 2 and step_y == 2 and channels in (1, 3, 4):
            return ((total + 2) >> 2).astype(np.uint8)  # its 2×2 code: round half up
        mean = total.astype(np.float32) * np.float32(1.0 / (step_x * step_y))
        return np.clip(np.rint(mean), 0, 255).astype(np.uint8)
    compute = np.float32 if x.dtype == np.float32 else np.float64
    total = blocks.astype(compute).sum(axis=(-4, -2))
    return (total * compute(1.0 / (step_x * step_y))).astype(x.dtype)


@lru_cache(maxsize=64)
def _area_table(source: int, target: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``computeResizeAreaTab``: for each target index, the source indices it
    overlaps and their float32 shares, as ``(target, taps)`` (unused taps: weight 0)."""
    entries: list[list[tuple[int, np.float32]]] = []
    for d in range(target):
        start = d * scale
        end = start + scale
        cell = min(scale, source - start)
        first, last = math.ceil(start), math.floor(end)
        last = min(last, source - 1)
        first = min(first, last)
        row: list[tuple[int, np.float32]] = []
        if first - start > 1e-3:
            row.append((first - 1, np.float32((first - start) / cell)))
        row.extend((s, np.float32(1.0 / cell)) for s in range(first, last))
        if end - last > 1e-3:
            row.append((last, np.float32(min(min(end - last, 1.0), cell) / cell)))
        entries.append(row)
    taps = max(len(row) for row in entries)
    index = np.zeros((target, taps), dtype=np.int64)
    weights = np.zeros((target, taps), dtype=np.float32)
    for d, row in enumerate(entries):
        for k, (s, w) in enumerate(row):
            index[d, k], weights[d, k] = s, w
    for array in (index, weights):
        array.setflags(write=False)
    return index, weights


def _area(x: np.ndarray, height: int, width: int, scale_y: float, scale_x: float) -> np.ndarray:
    """OpenCV's area shrink by other factors: overlap-weighted float32 sums, rows then columns."""
    cols, col_weights = _area_table(x.shape[-2], width, scale_x)
    rows, row_weights = _area_table(x.shape[-3], height, scale_y)
    compute = np.float64 if x.dtype == np.float64 else np.float32
    horizontal = _weigh(x.astype(compute), cols, col_weights.astype(compute), axis=-2)
    out = _weigh(horizontal, rows, row_weights.astype(compute), axis=-3)
    if x.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(x.dtype)
