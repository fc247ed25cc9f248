"""The numerics behind ``vision.transforms``, on HWC numpy images, as MXNet 1.9.1's image
operators compute them (``src/operator/image``, ``python/mxnet/image``).

Resizing, crop windows and ``scale_down`` have one home, ``modelpack.image.geometry`` (OpenCV
3.4.2's ``cv::resize``, as MXNet calls it: uint8 in OpenCV's fixed point, equal to MXNet's);
the transforms take its nearest (0) and bilinear (1) interpolations. Colour operators
compute in float32 and store as MXNet's ``saturate_cast`` does: uint8 results are clipped to
[0, 255] and truncated; other dtypes are stored unclipped.
"""

from __future__ import annotations

import numpy as np

from ....errors import InputError, UsageError
from ....image import geometry
from ....image.geometry import center_window, crop, random_window, scale_down

__all__ = [
    "resize", "output_size", "crop", "scale_down", "center_window", "random_window", "store",
    "brightness", "contrast", "saturation", "hue", "lighting", "GRAY_COEFFICIENTS", "LIGHTING_EIGEN",
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


def resize(x: np.ndarray, height: int, width: int, interpolation: int = 1) -> np.ndarray:
    """``x`` (HWC or NHWC) resized to ``height`` × ``width``, in its dtype."""
    if interpolation not in INTERPOLATIONS:
        raise UsageError(f"interpolation {interpolation} is not provided: modelpack resizes with 1 "
                         "(bilinear, MXNet's default) or 0 (nearest)")
    check_image(x, "Resize", (3, 4))
    return geometry.resize(x, height, width, interpolation)


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
