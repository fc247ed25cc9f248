"""The numerics behind ``vision.transforms``, on HWC numpy images, as MXNet 1.9.1's image
operators compute them (``src/operator/image``, ``python/mxnet/image``).

Resizing is OpenCV's ``INTER_LINEAR`` (MXNet calls ``cv::resize``): half-pixel centres, edge
pixels repeated, no antialiasing when shrinking, computed here in float64 as two small matrix
products and rounded to nearest for uint8 (OpenCV's fixed-point weights may differ by one
level). Colour operators compute in float32 and store as MXNet's ``saturate_cast`` does:
uint8 results are clipped to [0, 255] and truncated; other dtypes are stored unclipped.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ....errors import InputError, UsageError

__all__ = [
    "resize", "output_size", "crop", "scale_down", "store", "brightness", "contrast",
    "saturation", "hue", "lighting", "GRAY_COEFFICIENTS", "LIGHTING_EIGEN",
]

# ITU-R 601 luma weights of R, G, B (MXNet's ``coef``).
GRAY_COEFFICIENTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# AlexNet's PCA lighting: eigenvectors scaled by their eigenvalues (rows R, G, B; MXNet's ``eig``).
LIGHTING_EIGEN = np.array([
    [55.46 * -0.5675, 4.794 * 0.7192, 1.148 * 0.4009],
    [55.46 * -0.5808, 4.794 * -0.0045, 1.148 * -0.8140],
    [55.46 * -0.5836, 4.794 * -0.6948, 1.148 * 0.4203],
], dtype=np.float32)
INTERPOLATIONS = {0: "nearest", 1: "bilinear"}


def check_image(x: np.ndarray, who: str, ndims: tuple[int, ...] = (3,)) -> None:
    """Refuse what is not an image of the ranks ``who`` takes (HWC, or NHWC where allowed)."""
    if x.ndim not in ndims:
        shapes = " or ".join({3: "(H, W, C)", 4: "(N, H, W, C)"}[n] for n in ndims)
        raise InputError(f"{who} takes an image of shape {shapes}, got shape {x.shape}")


def output_size(height: int, width: int, size: int | tuple[int, int], keep_ratio: bool) -> tuple[int, int]:
    """``(height, width)`` of a resize to ``size`` (an int, or MXNet's ``(width, height)``);
    with ``keep_ratio`` an int is the short edge's length (the long edge's truncated)."""
    if isinstance(size, (int, np.integer)):
        if size <= 0:
            raise UsageError(f"Resize size must be positive, got {size}")
        if not keep_ratio:
            return int(size), int(size)
        if height > width:
            return height * int(size) // width, int(size)
        return int(size), width * int(size) // height
    if len(size) != 2 or min(size) <= 0:
        raise UsageError(f"Resize size must be an int or (width, height) of positive ints, got {size!r}")
    return int(size[1]), int(size[0])


@lru_cache(maxsize=64)
def _weights(source: int, target: int, interpolation: int) -> np.ndarray:
    """The ``(target, source)`` matrix mapping a line of pixels to its resized line."""
    scale = source / target
    matrix = np.zeros((target, source))
    rows = np.arange(target)
    if interpolation == 0:  # OpenCV's INTER_NEAREST: floor(dst * scale)
        matrix[rows, np.minimum(np.floor(rows * scale).astype(np.int64), source - 1)] = 1.0
        return matrix
    position = (rows + 0.5) * scale - 0.5
    left = np.floor(position)
    fraction = position - left
    left = left.astype(np.int64)
    # OpenCV: before the first pixel, or on or past the last, the edge pixel alone
    fraction[left < 0] = 0.0
    left = np.clip(left, 0, source - 1)
    fraction[left >= source - 1] = 0.0
    right = np.minimum(left + 1, source - 1)
    np.add.at(matrix, (rows, left), 1.0 - fraction)
    np.add.at(matrix, (rows, right), fraction)
    return matrix


def resize(x: np.ndarray, height: int, width: int, interpolation: int = 1) -> np.ndarray:
    """``x`` (HWC or NHWC) resized to ``height`` × ``width``, in its dtype."""
    if interpolation not in INTERPOLATIONS:
        raise UsageError(f"interpolation {interpolation} is not provided: modelpack resizes with 1 "
                         "(bilinear, MXNet's default) or 0 (nearest)")
    check_image(x, "Resize", (3, 4))
    if x.shape[-3:-1] == (height, width):
        return x.copy()
    rows = _weights(x.shape[-3], height, interpolation)
    cols = _weights(x.shape[-2], width, interpolation)
    # (h, H) @ (..., H, W·C) -> (..., h, W, C), then (w, W) @ each row -> (..., h, w, C)
    *lead, source_h, source_w, channels = x.shape
    out = rows @ x.reshape(*lead, source_h, source_w * channels).astype(np.float64)
    out = cols @ out.reshape(*lead, height, source_w, channels)
    if x.dtype == np.uint8:
        return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    return out.astype(x.dtype)


def crop(x: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """The ``width`` × ``height`` window of HWC ``x`` whose top-left pixel is ``(x0, y0)``."""
    return x[y0 : y0 + height, x0 : x0 + width]


def scale_down(source: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """MXNet's ``scale_down``: a crop ``(w, h)`` shrunk, keeping its aspect, to fit ``source``."""
    w, h = float(size[0]), float(size[1])
    sw, sh = source
    if sh < h:
        w, h = w * sh / h, sh
    if sw < w:
        w, h = sw, h * sw / w
    return int(w), int(h)


def store(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """MXNet's ``saturate_cast``: uint8 clipped then truncated; anything else cast as it is."""
    if dtype == np.uint8:
        return np.clip(values, 0.0, 255.0).astype(np.uint8)
    return values.astype(dtype)


def brightness(x: np.ndarray, alpha: float) -> np.ndarray:
    """Every value times ``alpha``."""
    return store(x.astype(np.float32) * np.float32(alpha), x.dtype)


def contrast(x: np.ndarray, alpha: float) -> np.ndarray:
    """Blend with the image's mean gray level: ``x·alpha + (1-alpha)·mean(gray)``."""
    values = x.astype(np.float32)
    gray = values @ GRAY_COEFFICIENTS if x.shape[-1] == 3 else values[..., 0]
    beta = (1.0 - np.float32(alpha)) * np.float32(gray.mean(dtype=np.float32))
    return store(values * np.float32(alpha) + beta, x.dtype)


def saturation(x: np.ndarray, alpha: float) -> np.ndarray:
    """Blend each pixel with its gray level: ``gray·(1-alpha) + x·alpha`` (one channel: unchanged).

    MXNet 1.9.1's loop assigns instead of adding, so its gray is only ``0.114·B``; this takes
    the full luma it intends (and its contrast uses), a deliberate difference.
    """
    if x.shape[-1] != 3:
        return x.copy()
    values = x.astype(np.float32)
    gray = (values @ GRAY_COEFFICIENTS)[..., np.newaxis] * (np.float32(1.0) - np.float32(alpha))
    return store(gray + values * np.float32(alpha), x.dtype)


def hue(x: np.ndarray, alpha: float) -> np.ndarray:
    """Hue turned by ``alpha`` of a full turn (``alpha·360°``) in HLS space, as MXNet (one
    channel: unchanged). Values are read as 0..255 whatever the dtype, as MXNet's do."""
    if x.shape[-1] != 3:
        return x.copy()
    h, lightness, s = _rgb_to_hls(x.astype(np.float32))
    return store(_hls_to_rgb(h + np.float32(alpha) * np.float32(360.0), lightness, s), x.dtype)


def _rgb_to_hls(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = (values[..., c] / np.float32(255.0) for c in range(3))
    vmax, vmin = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    diff, total = vmax - vmin, vmax + vmin
    lightness = total * np.float32(0.5)
    chromatic = diff > np.finfo(np.float32).eps
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(lightness < 0.5, diff / total, diff / (np.float32(2.0) - total))
        step = np.float32(60.0) / diff
        h = np.where(vmax == r, (g - b) * step,
                     np.where(vmax == g, (b - r) * step + np.float32(120.0),
                              (r - g) * step + np.float32(240.0)))
    h = np.where(h < 0, h + np.float32(360.0), h)
    h, s = (np.where(chromatic, v, 0).astype(np.float32) for v in (h, s))
    return h, lightness, s


# For each sixth of the hue circle, which of (p2, p1, rising, falling) is B, G and R.
_SECTORS = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])


def _hls_to_rgb(h: np.ndarray, lightness: np.ndarray, s: np.ndarray) -> np.ndarray:
    p2 = np.where(lightness <= 0.5, lightness * (1 + s), lightness + s - lightness * s)
    p1 = 2 * lightness - p2
    h = np.mod(h / np.float32(60.0), np.float32(6.0))
    h = np.where(h >= 6, h - 6, h)  # np.mod of a tiny negative can round to 6
    sector = h.astype(np.int64)
    f = h - sector
    table = np.stack([p2, p1, p1 + (p2 - p1) * (1 - f), p1 + (p2 - p1) * f], axis=-1)
    bgr = np.take_along_axis(table, _SECTORS[sector], axis=-1)
    rgb = np.where((s != 0)[..., np.newaxis], bgr[..., ::-1], lightness[..., np.newaxis])
    return (rgb * np.float32(255.0)).astype(np.float32)


def lighting(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """AlexNet's PCA noise: ``LIGHTING_EIGEN · alpha`` added to each pixel's R, G, B."""
    if x.shape[-1] != 3:
        return x.copy()
    shift = LIGHTING_EIGEN @ np.asarray(alpha, dtype=np.float32)
    return store(x.astype(np.float32) + shift, x.dtype)
