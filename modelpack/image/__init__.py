"""``modelpack.image``: MXNet 1.9.1's ``mxnet.image``, so d2l's computer-vision chapters run
with ``from mxnet import image`` changed to modelpack.

>>> img = image.imread("catdog.jpg")                   # (H, W, 3) uint8 RGB NDArray  # doctest: +SKIP
>>> small = image.imresize(img, 256, 256)              # (w, h), OpenCV's bilinear      # doctest: +SKIP
>>> crop, rect = image.random_crop(img, (200, 100))    # rect = (x0, y0, w, h)          # doctest: +SKIP

Reading image files needs Pillow, an optional extra (``pip install "modelpack[image]"``);
importing this module and the array functions (resizing, crops) do not. The numerics are
MXNet's: decoding as its OpenCV 3.4.2 does (``decode``), resizing as ``cv::resize``
(``geometry``, shared with ``gluon.data.vision.transforms``), checked against MXNet 1.9.1 in
``tests/test_image.py``. Image files are parsed as hostile input (``decode``; ``ImageLimits``).
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedFeatureError
from .decode import DEFAULT_IMAGE_LIMITS, ImageLimitError, ImageLimits
from .functions import (
    center_crop,
    color_normalize,
    copyMakeBorder,
    fixed_crop,
    imdecode,
    imread,
    imresize,
    random_crop,
    random_size_crop,
    resize_short,
    scale_down,
)

__all__ = [
    "imread", "imdecode", "imresize", "resize_short", "fixed_crop", "center_crop", "random_crop",
    "random_size_crop", "color_normalize", "scale_down", "copyMakeBorder", "ImageLimits",
    "DEFAULT_IMAGE_LIMITS", "ImageLimitError",
]

# MXNet's image names left out, and what to do instead.
_AUGMENTERS = ("Augmenter", "SequentialAug", "RandomOrderAug", "ResizeAug", "ForceResizeAug",
               "RandomCropAug", "RandomSizedCropAug", "CenterCropAug", "BrightnessJitterAug",
               "ContrastJitterAug", "SaturationJitterAug", "HueJitterAug", "ColorJitterAug",
               "LightingAug", "ColorNormalizeAug", "RandomGrayAug", "HorizontalFlipAug", "CastAug",
               "CreateAugmenter")
_LEFT_OUT = {
    **{name: "compose gluon.data.vision.transforms (Resize, CenterCrop, RandomResizedCrop, "
             "RandomFlipLeftRight, RandomColorJitter, RandomLighting, Cast, Normalize) or the functions "
             "here (resize_short, random_crop, ...)" for name in _AUGMENTERS},
    **{name: "read the images with image.imread and serve them with a gluon.data Dataset and DataLoader"
       for name in ("ImageIter", "ImageDetIter", "CreateDetAugmenter", "CreateMultiRandCropAugmenter")},
    **{name: "rotate a float32 (N, C, H, W) batch with your own sampling grid; modelpack has no "
             "BilinearSampler" for name in ("imrotate", "random_rotate")},
}


def __getattr__(name: str) -> Any:
    instead = _LEFT_OUT.get(name, f"modelpack.image has {', '.join(__all__)}")
    raise UnsupportedFeatureError.missing(__name__, name, instead)
