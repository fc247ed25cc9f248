"""MXNet 1.9.1's ``mxnet.image`` functions on modelpack's arrays: reading (``decode``, with
Pillow), resizing and cropping (``geometry``, numpy only), normalising.

Images are ``(H, W, C)`` arrays, uint8 as read; results are ``NDArray`` (MXNet's arrays:
``.asnumpy()``, ``.ctx``). Sizes are MXNet's ``(width, height)``. The random crops draw from
``modelpack.random``'s ``"data"`` stream (as the Gluon transforms and the DataLoader), so
``modelpack.random.seed`` fixes them and a checkpoint carries them.

Deliberate differences from MXNet: a crop window not inside the image is refused (MXNet's
slicing returns a smaller image without a word); ``color_normalize`` returns a new array
instead of changing ``src`` in place.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import random
from ..errors import InputError, UsageError
from ..nn.devices import on_device
from . import decode, geometry
from .decode import DEFAULT_IMAGE_LIMITS, ImageLimits

__all__ = [
    "imread", "imdecode", "imresize", "resize_short", "fixed_crop", "center_crop", "random_crop",
    "random_size_crop", "color_normalize", "scale_down", "copyMakeBorder",
]

Rect = tuple[int, int, int, int]


def _rng() -> np.random.Generator:
    return random.generator("data")


def _image(src: Any, who: str) -> np.ndarray:
    x = np.asarray(src)
    if x.ndim != 3:
        raise InputError(f"{who} takes an image of shape (H, W, C), got shape {x.shape}")
    return x


def _pair(size: Any, who: str) -> tuple[int, int]:
    """MXNet's ``(width, height)``, both positive ints."""
    try:
        w, h = size
    except (TypeError, ValueError):
        raise UsageError(f"{who}'s size is (width, height), got {size!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (w, h)):
        raise UsageError(f"{who}'s size is (width, height) of positive ints, got {size!r}")
    return int(w), int(h)


def _deliver(result: np.ndarray, out: Any, who: str) -> Any:
    """``result`` as an NDArray, or written into MXNet's ``out=`` array (same shape and dtype)."""
    if out is None:
        return on_device(result)
    if not isinstance(out, np.ndarray) or out.shape != result.shape or out.dtype != result.dtype:
        found = (getattr(out, "shape", None), getattr(out, "dtype", None))
        raise UsageError(f"{who}'s out= must be an array of shape {result.shape} and dtype {result.dtype}, "
                         f"got {found}")
    out[...] = result
    return out


def imread(filename: str | os.PathLike[str], flag: int = 1, to_rgb: bool = True, out: Any = None, *,
           limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> Any:
    """The image file ``filename`` (JPEG, PNG, BMP or TIFF) as an ``(H, W, 3)`` uint8 RGB array
    (``flag=0``: ``(H, W, 1)`` gray; ``to_rgb=False``: BGR), as MXNet's ``imread``. Needs
    Pillow (``pip install "modelpack[image]"``); ``limits`` bounds the decoded size.

    >>> img = modelpack.image.imread("cat.jpg")          # doctest: +SKIP
    """
    return _deliver(decode.read_file(filename, flag, to_rgb, limits), out, "imread")


def imdecode(buf: Any, flag: int = 1, to_rgb: bool = True, out: Any = None, *,
             limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> Any:
    """The image encoded in ``buf`` (bytes, bytearray or a uint8 array), as MXNet's
    ``imdecode``; otherwise as ``imread``."""
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8:
            raise UsageError(f"imdecode takes a uint8 buffer, got an array of {buf.dtype}")
        data: bytes | bytearray | memoryview = buf.tobytes()
    elif isinstance(buf, (bytes, bytearray, memoryview)):
        data = buf
    else:
        raise UsageError(f"imdecode takes bytes, bytearray or a uint8 array, got {type(buf).__name__}"
                         + ("; to read a file by its name use imread" if isinstance(buf, str) else ""))
    where = f"imdecode's buffer ({len(data)} bytes)"
    return _deliver(decode.read_bytes(data, where, flag, to_rgb, limits), out, "imdecode")


def imresize(src: Any, w: int, h: int, interp: int = 1, out: Any = None) -> Any:
    """``src`` (H, W, C) resized to ``w`` × ``h`` with OpenCV's ``interp`` (0 nearest,
    1 bilinear, 2 bicubic, 3 area, 4 Lanczos), as MXNet's ``imresize`` (OpenCV 3.4.2's
    ``cv::resize``; uint8 and float32 as MXNet computes them)."""
    x = _image(src, "imresize")
    return _deliver(geometry.resize(x, int(h), int(w), _interp(interp)), out, "imresize")


def _interp(interp: Any) -> int:
    known = isinstance(interp, (int, np.integer)) and not isinstance(interp, bool)
    if not known or interp not in geometry.INTERPOLATIONS:
        raise UsageError(f"imresize's interp is 0 nearest, 1 bilinear, 2 bicubic, 3 area or 4 Lanczos "
                         f"(OpenCV's codes), got {interp!r}")
    return int(interp)


def _resized(x: np.ndarray, w: int, h: int, interp: int) -> np.ndarray:
    """``x`` resized to ``w`` × ``h``; MXNet's 9 (by the sizes) and 10 (random) resolved."""
    method = geometry.choose_interpolation(interp, (x.shape[0], x.shape[1], h, w), _rng())
    return geometry.resize(x, h, w, method)


def resize_short(src: Any, size: int, interp: int = 2) -> Any:
    """``src`` resized so its shorter side is ``size`` (the longer one scaled and truncated),
    as MXNet's ``resize_short``; ``interp`` as ``imresize``, plus 9 and 10 (MXNet's
    ``_get_interp_method``). Bicubic by default, as MXNet."""
    x = _image(src, "resize_short")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise UsageError(f"resize_short's size is a positive int, got {size!r}")
    h, w = x.shape[:2]
    new_h, new_w = (size * h // w, size) if h > w else (size, size * w // h)
    return on_device(_resized(x, new_w, new_h, interp))


def fixed_crop(src: Any, x0: int, y0: int, w: int, h: int, size: Sequence[int] | None = None,
               interp: int = 2) -> Any:
    """The ``w`` × ``h`` window of ``src`` at ``(x0, y0)``, resized to ``size`` ``(w, h)`` when
    given and different, as MXNet's ``fixed_crop``."""
    x = _image(src, "fixed_crop")
    window = geometry.crop(x, int(x0), int(y0), int(w), int(h))
    if size is not None:
        width, height = _pair(size, "fixed_crop")
        if (width, height) != (w, h):
            return on_device(_resized(window, width, height, interp))
    return on_device(window.copy())


def random_crop(src: Any, size: Sequence[int], interp: int = 2) -> tuple[Any, Rect]:
    """A window of ``size`` ``(w, h)`` at a random place (drawn from the ``"data"`` stream),
    and its ``(x0, y0, w, h)``; when ``size`` exceeds the image, the largest window of its
    aspect that fits, resized up to ``size`` (MXNet's ``random_crop``)."""
    x = _image(src, "random_crop")
    size = _pair(size, "random_crop")
    height, width = x.shape[:2]
    w, h = geometry.scale_down((width, height), size)
    rng = _rng()
    x0 = int(rng.integers(0, width - w, endpoint=True))
    y0 = int(rng.integers(0, height - h, endpoint=True))
    return fixed_crop(x, x0, y0, w, h, size, interp), (x0, y0, w, h)


def center_crop(src: Any, size: Sequence[int], interp: int = 2) -> tuple[Any, Rect]:
    """The centre window of ``size`` ``(w, h)`` and its ``(x0, y0, w, h)``, shrunk to fit and
    resized up as ``random_crop`` (MXNet's ``center_crop``)."""
    x = _image(src, "center_crop")
    size = _pair(size, "center_crop")
    rect = geometry.center_window(x.shape[1], x.shape[0], size)
    return fixed_crop(x, *rect, size, interp), rect


def random_size_crop(src: Any, size: Sequence[int], area: float | Sequence[float],
                     ratio: Sequence[float], interp: int = 2, **kwargs: Any) -> tuple[Any, Rect]:
    """A random window (area a fraction of the image's drawn from ``area``, a number meaning
    ``(area, 1.0)``; aspect ratio drawn on a log scale from ``ratio``; ten tries, then the
    centre crop) resized to ``size`` ``(w, h)``, and its ``(x0, y0, w, h)``, as MXNet's
    ``random_size_crop`` (``min_area=`` still taken, with its deprecation warning)."""
    x = _image(src, "random_size_crop")
    size = _pair(size, "random_size_crop")
    if "min_area" in kwargs:
        warnings.warn("`min_area` is deprecated. Please use `area` instead.", DeprecationWarning,
                      stacklevel=2)
        area = kwargs.pop("min_area")
    if kwargs:
        raise UsageError(f"random_size_crop takes no argument {', '.join(map(repr, kwargs))}")
    bounds = (float(area), 1.0) if isinstance(area, (int, float, np.number)) else tuple(map(float, area))
    ratios = tuple(map(float, ratio))
    if len(bounds) != 2 or len(ratios) != 2 or min(ratios) <= 0:
        raise UsageError(f"random_size_crop takes area (min, max) and ratio (min, max) > 0, got {area!r}, "
                         f"{ratio!r}")
    rect = geometry.random_window(_rng(), x.shape[1], x.shape[0], (bounds[0], bounds[1]),
                                  (ratios[0], ratios[1]))
    if rect is None:
        return center_crop(x, size, interp)
    return fixed_crop(x, *rect, size, interp), rect


def color_normalize(src: Any, mean: Any, std: Any = None) -> Any:
    """``(src - mean) / std`` per channel (either may be None), as MXNet's ``color_normalize``,
    in ``src``'s float dtype (float32 for an integer image); a new array, ``src`` unchanged."""
    x = np.asarray(src)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    out = x.astype(dtype)
    if mean is not None:
        out = out - np.asarray(mean, dtype=dtype)
    if std is not None:
        out = out / np.asarray(std, dtype=dtype)
    return on_device(out)


def scale_down(src_size: Sequence[int], size: Sequence[int]) -> tuple[int, int]:
    """A crop ``size`` ``(w, h)`` shrunk, keeping its aspect, to fit an image of ``src_size``
    ``(w, h)`` (MXNet's ``scale_down``)."""
    return geometry.scale_down((int(src_size[0]), int(src_size[1])), (size[0], size[1]))


# OpenCV's border types (cv2.BORDER_*: MXNet's docstring numbers them otherwise) as numpy.pad modes
_BORDERS = {0: "constant", 1: "edge", 2: "symmetric", 3: "wrap", 4: "reflect"}


def copyMakeBorder(src: Any, top: int, bot: int, left: int, right: int, type: int = 0,  # noqa: A002, N802
                   value: float = 0.0, values: Sequence[float] = ()) -> Any:
    """``src`` (H, W, C) with borders of ``top``, ``bot``, ``left`` and ``right`` pixels, as
    MXNet's ``copyMakeBorder`` (OpenCV's, whose codes its docstring misnumbers): ``type`` 0 a
    constant (``values`` per channel, else ``value`` on the first three channels and 0 on a
    fourth), 1 the edge repeated, 2 mirrored (``fedcba|abcdef``), 3 wrapped, 4 mirrored about
    the edge pixel (``fedcb|abcdef``)."""
    x = _image(src, "copyMakeBorder")
    pads = tuple(int(p) for p in (top, bot, left, right))
    if min(pads) < 0:
        raise UsageError(f"copyMakeBorder's margins must be >= 0, got {pads}")
    if type not in _BORDERS:
        raise UsageError(f"copyMakeBorder's type is 0 constant, 1 replicate, 2 reflect, 3 wrap or "
                         f"4 reflect-101 (OpenCV's codes), got {type!r}")
    widths = ((pads[0], pads[1]), (pads[2], pads[3]), (0, 0))
    if type != 0:
        if type == 4 and min(x.shape[:2]) == 1 and max(pads) > 0:
            return on_device(np.pad(x, widths, mode="edge"))  # OpenCV: one pixel reflects onto itself
        return on_device(np.pad(x, widths, mode=_BORDERS[type]))  # type: ignore[call-overload]
    channels = x.shape[2]
    fill = [float(v) for v in values][:4] if len(values) else [float(value)] * 3 + [0.0]
    fill = (fill + [0.0] * 4)[:channels]
    colour = np.array(fill)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        colour = np.clip(np.rint(colour), info.min, info.max)
    out = np.empty((x.shape[0] + pads[0] + pads[1], x.shape[1] + pads[2] + pads[3], channels), dtype=x.dtype)
    out[...] = colour.astype(x.dtype)
    out[pads[0] : pads[0] + x.shape[0], pads[2] : pads[2] + x.shape[1]] = x
    return on_device(out)
