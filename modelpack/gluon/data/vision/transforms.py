"""Gluon's ``vision.transforms``: callables on one image (HWC, as the datasets give them; some
on a batch too) that d2l composes for its data loaders and augmentation chapters.

>>> trans = transforms.Compose([transforms.Resize(64), transforms.ToTensor()])   # doctest: +SKIP
>>> train = gluon.data.vision.FashionMNIST(train=True).transform_first(trans)     # doctest: +SKIP

MXNet's are Blocks; these are plain callables (``__call__``, ``__repr__``): they hold no
parameters. The random ones draw from ``modelpack.random``'s ``"data"`` stream, so
``modelpack.random.seed`` fixes them and a checkpoint carries their state. Results are
``NDArray`` views, as the datasets' images. Numerics in ``image``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .... import random
from ....errors import InputError, UnsupportedFeatureError, UsageError
from ....nn.devices import on_device
from . import image

__all__ = [
    "Compose", "Cast", "ToTensor", "Normalize", "Resize", "CenterCrop", "RandomResizedCrop",
    "RandomFlipLeftRight", "RandomFlipTopBottom", "RandomBrightness", "RandomContrast",
    "RandomSaturation", "RandomHue", "RandomColorJitter", "RandomLighting",
]


def __getattr__(name: str) -> Any:
    """Gluon's other transforms (``RandomRotation``, ``CropResize``, ...) are not provided."""
    raise UnsupportedFeatureError.missing(
        __name__, name, f"gluon.data.vision.transforms has {', '.join(__all__)}; write others as a "
        "function of the (H, W, C) array and put it in Compose")


def _rng() -> np.random.Generator:
    return random.generator("data")


def _array(x: Any) -> np.ndarray:
    return np.asarray(x)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    width, height = size
    return int(width), int(height)


class Transform:
    """A transform's shape: ``__call__`` and ``__repr__`` naming its settings."""

    def __call__(self, x: Any) -> Any:
        raise NotImplementedError

    def _settings(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._settings()})"


class Compose(Transform):
    """The transforms in order, each on the previous one's result (Gluon's ``Compose``)."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self._transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for transform in self._transforms:
            x = transform(x)
        return x

    def __len__(self) -> int:
        return len(self._transforms)

    def __getitem__(self, index: int) -> Callable[[Any], Any]:
        return self._transforms[index]

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {t!r}" for i, t in enumerate(self._transforms))
        return f"Compose({inner}\n)"


class Cast(Transform):
    """The input in ``dtype`` (float32 by default)."""

    def __init__(self, dtype: Any = "float32") -> None:
        self._dtype = np.dtype(dtype)

    def __call__(self, x: Any) -> Any:
        return on_device(_array(x).astype(self._dtype))

    def _settings(self) -> str:
        return f"dtype={self._dtype.name}"


class ToTensor(Transform):
    """An image ``(H, W, C)`` in 0..255 as a float32 tensor ``(C, H, W)`` in [0, 1] (a batch
    ``(N, H, W, C)`` as ``(N, C, H, W)``): what d2l's models take."""

    def __call__(self, x: Any) -> Any:
        x = _array(x)
        image.check_image(x, "ToTensor", (3, 4))
        moved = np.moveaxis(x, -1, -3).astype(np.float32)
        return on_device(np.divide(moved, np.float32(255.0), out=moved))


class Normalize(Transform):
    """Each channel of a tensor ``(C, H, W)`` or ``(N, C, H, W)`` as ``(x - mean[c]) / std[c]``;
    a scalar mean or std applies to every channel."""

    def __init__(self, mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0) -> None:
        self._mean, self._std = mean, std

    def __call__(self, x: Any) -> Any:
        x = _array(x)
        if x.ndim not in (3, 4):
            raise InputError(
                f"Normalize takes a tensor of shape (C, H, W) or (N, C, H, W), got shape {x.shape}")
        channels = x.shape[-3]
        mean, std = (np.asarray(v, dtype=np.float32).reshape(-1) for v in (self._mean, self._std))
        for name, values in (("mean", mean), ("std", std)):
            if values.size not in (1, channels):
                raise InputError(f"Normalize's {name} has {values.size} values, the tensor {channels} "
                                 f"channels (shape {x.shape}): give 1 or {channels}")
        shape = (-1, 1, 1)
        out = (x.astype(np.float32) - mean.reshape(shape)) / std.reshape(shape)
        return on_device(out.astype(x.dtype if x.dtype.kind == "f" else np.float32))

    def _settings(self) -> str:
        return f"mean={self._mean}, std={self._std}"


class Resize(Transform):
    """An image (or batch) resized to ``size``: an int (a square, or with ``keep_ratio`` the
    short edge) or ``(width, height)``; bilinear as OpenCV's INTER_LINEAR (``interpolation=1``)
    or nearest (0). Apply it before ``ToTensor``, as in Gluon."""

    def __init__(self, size: int | Sequence[int], keep_ratio: bool = False, interpolation: int = 1) -> None:
        self._size, self._keep, self._interpolation = size, bool(keep_ratio), interpolation

    def __call__(self, x: Any) -> Any:
        x = _array(x)
        image.check_image(x, "Resize", (3, 4))
        size = self._size if isinstance(self._size, (int, np.integer)) else _pair(self._size)
        height, width = image.output_size(x.shape[-3], x.shape[-2], size, self._keep)
        return on_device(image.resize(x, height, width, self._interpolation))

    def _settings(self) -> str:
        return f"size={self._size}, keep_ratio={self._keep}, interpolation={self._interpolation}"


def _crop_resize(x: np.ndarray, x0: int, y0: int, w: int, h: int, size: tuple[int, int], interp: int) -> Any:
    """MXNet's ``fixed_crop``: the window, resized to ``size`` (w, h) unless already that size."""
    out = image.crop(x, x0, y0, w, h)
    if (w, h) != size:
        out = image.resize(out, size[1], size[0], interp)
    return on_device(np.array(out))


def _center_crop(x: np.ndarray, size: tuple[int, int], interp: int) -> Any:
    height, width = x.shape[:2]
    return _crop_resize(x, *image.center_window(width, height, size), size, interp)


class CenterCrop(Transform):
    """The centre of an image at ``size`` (int or (width, height)); a crop larger than the
    image is shrunk to fit at the same aspect, then resized up to ``size`` (MXNet's)."""

    def __init__(self, size: int | Sequence[int], interpolation: int = 1) -> None:
        self._size, self._interpolation = _pair(size), interpolation

    def __call__(self, x: Any) -> Any:
        x = _array(x)
        image.check_image(x, "CenterCrop")
        return _center_crop(x, self._size, self._interpolation)

    def _settings(self) -> str:
        return f"size={self._size}"


class RandomResizedCrop(Transform):
    """A random window (area a ``scale`` fraction of the image's, aspect ``ratio``, both drawn
    uniformly, the ratio on a log scale) resized to ``size``; up to ten draws, then the centre
    crop, as MXNet's ``random_size_crop``."""

    def __init__(self, size: int | Sequence[int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0), interpolation: int = 1) -> None:
        self._size, self._interpolation = _pair(size), interpolation
        self._scale = (scale, 1.0) if isinstance(scale, (int, float)) else tuple(scale)
        self._ratio = tuple(ratio)

    def __call__(self, x: Any) -> Any:
        x = _array(x)
        image.check_image(x, "RandomResizedCrop")
        height, width = x.shape[:2]
        window = image.random_window(_rng(), width, height, (self._scale[0], self._scale[1]),
                                     (self._ratio[0], self._ratio[1]))
        if window is None:
            return _center_crop(x, self._size, self._interpolation)
        return _crop_resize(x, *window, self._size, self._interpolation)

    def _settings(self) -> str:
        return f"size={self._size}, scale={self._scale}, ratio={self._ratio}"


class _RandomFlip(Transform):
    _axis: int

    def __call__(self, x: Any) -> Any:
        x = _array(x)
        image.check_image(x, type(self).__name__, (3, 4))
        if _rng().random() < 0.5:  # MXNet flips with probability 1/2
            return on_device(np.ascontiguousarray(np.flip(x, axis=self._axis)))
        return on_device(x.copy())


class RandomFlipLeftRight(_RandomFlip):
    """The image mirrored left to right, with probability 1/2."""

    _axis = -2


class RandomFlipTopBottom(_RandomFlip):
    """The image flipped upside down, with probability 1/2."""

    _axis = -3


class _RandomEnhance(Transform):
    """One colour operator with its factor drawn from ``[max(0, 1 - amount), 1 + amount]``."""

    _adjust: Callable[[np.ndarray, float], np.ndarray]

    def __init__(self, amount: float) -> None:
        if amount < 0:
            raise UsageError(f"{type(self).__name__} takes an amount >= 0, got {amount}")
        self._amount = amount
        self._range = (max(0.0, 1.0 - amount), 1.0 + amount)

    def __call__(self, x: Any) -> Any:
        x = _array(x)
        image.check_image(x, type(self).__name__)
        return on_device(type(self)._adjust(x, float(_rng().uniform(*self._range))))

    def _settings(self) -> str:
        return f"{self._amount}"


class RandomBrightness(_RandomEnhance):
    """Brightness scaled by a random factor (``x·alpha``)."""

    _adjust = staticmethod(image.brightness)


class RandomContrast(_RandomEnhance):
    """Contrast to the mean gray level scaled by a random factor."""

    _adjust = staticmethod(image.contrast)


class RandomSaturation(_RandomEnhance):
    """Saturation (distance from each pixel's gray) scaled by a random factor."""

    _adjust = staticmethod(image.saturation)


class RandomHue(_RandomEnhance):
    """Hue turned by a random factor of a full turn (MXNet draws it from the same range as
    the others, ``[max(0, 1 - hue), 1 + hue]``, so ``hue=0.5`` turns by ±180°)."""

    _adjust = staticmethod(image.hue)


class RandomColorJitter(Transform):
    """Brightness, contrast, saturation and hue jittered in a random order, each (when its
    amount is > 0) by ``1 + uniform(-amount, amount)`` (hue: ``uniform(-hue, hue)`` of a turn)."""

    def __init__(
        self, brightness: float = 0, contrast: float = 0, saturation: float = 0, hue: float = 0
    ) -> None:
        self._amounts = (brightness, contrast, saturation, hue)

    def __call__(self, x: Any) -> Any:
        x = _array(x)
        image.check_image(x, "RandomColorJitter")
        rng, out = _rng(), x
        adjusts = (image.brightness, image.contrast, image.saturation, image.hue)
        for which in rng.permutation(4):
            amount = self._amounts[which]
            if amount > 0:
                alpha = float(rng.uniform(-amount, amount))
                out = adjusts[which](out, alpha if which == 3 else 1.0 + alpha)
        return on_device(out.copy() if out is x else out)

    def _settings(self) -> str:
        names = ("brightness", "contrast", "saturation", "hue")
        return ", ".join(f"{n}={a}" for n, a in zip(names, self._amounts, strict=True))


class RandomLighting(Transform):
    """AlexNet-style PCA lighting noise: weights ``N(0, alpha)`` on the RGB eigenvectors."""

    def __init__(self, alpha: float) -> None:
        self._alpha = alpha

    def __call__(self, x: Any) -> Any:
        x = _array(x)
        image.check_image(x, "RandomLighting")
        return on_device(image.lighting(x, _rng().normal(0.0, self._alpha, size=3)))

    def _settings(self) -> str:
        return f"alpha={self._alpha}"
