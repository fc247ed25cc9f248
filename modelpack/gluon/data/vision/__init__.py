"""``gluon.data.vision``: MXNet's image datasets (``MNIST``, ``FashionMNIST``, ``CIFAR10``,
``CIFAR100``) and ``transforms``, enough for d2l's ``load_data_fashion_mnist`` and its
image-augmentation chapters.

``datasets`` reads the files (``readers``: strict parsers of idx and CIFAR files;
``download``: MXNet's repository, SHA-1 checked); ``transforms`` wraps ``image``'s numerics.
Only ``gluon.data`` imports this package.
"""

from __future__ import annotations

from typing import Any

from ....errors import UnsupportedFeatureError
from . import transforms
from .datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST

__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "transforms"]

# Gluon's vision names left out, and what to do instead.
_LEFT_OUT = {
    name: "modelpack decodes no image files; read the images into an (N, H, W, C) uint8 array "
          "(e.g. with PIL) and serve it with gluon.data.ArrayDataset(images, labels)"
    for name in ("ImageFolderDataset", "ImageListDataset", "ImageRecordDataset")
}


def __getattr__(name: str) -> Any:
    instead = _LEFT_OUT.get(name, f"gluon.data.vision has {', '.join(__all__)}")
    raise UnsupportedFeatureError.missing(__name__, name, instead)
