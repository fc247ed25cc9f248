"""``gluon.data.vision``: MXNet's image datasets (``MNIST``, ``FashionMNIST``, ``CIFAR10``,
``CIFAR100``) and ``transforms``, enough for d2l's ``load_data_fashion_mnist`` and its
image-augmentation chapters.

``datasets`` reads the files (``readers``: strict parsers of idx and CIFAR files;
``download``: MXNet's repository, SHA-1 checked); ``transforms`` wraps ``image``'s numerics.
As MXNet's, this package holds every name of ``datasets.__all__``; ``datasets`` also says why
Gluon's other datasets (``ImageFolderDataset``, ...) are left out, for both namespaces.
Only ``gluon.data`` imports this package.
"""

from __future__ import annotations

from typing import Any

from . import datasets, transforms
from .datasets import *  # noqa: F403  (MXNet's own `from .datasets import *`)

__all__ = [*datasets.__all__, "transforms"]


def __getattr__(name: str) -> Any:
    raise datasets.missing(__name__, name, __all__)
