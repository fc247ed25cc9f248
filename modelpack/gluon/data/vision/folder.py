"""Gluon's ``ImageFolderDataset``: image files in one folder per class, read on access.

>>> train = gluon.data.vision.ImageFolderDataset("hotdog/train")    # doctest: +SKIP
>>> train.synsets                                                    # doctest: +SKIP
['hotdog', 'not-hotdog']
>>> image, label = train[0]        # (H, W, 3) uint8 NDArray, an int  # doctest: +SKIP

As MXNet 1.9.1: the class folders of ``root`` in sorted order give the labels 0, 1, ...
(``synsets``); their ``.jpg``, ``.jpeg`` and ``.png`` files (any case), sorted, are the
``items`` ``(path, label)``; anything else is skipped with a warning. Images are decoded by
``modelpack.image.imread`` on each ``__getitem__`` (Pillow: ``pip install
"modelpack[image]"``; listing the folder needs nothing), each file checked as hostile input.
Unlike MXNet, an entry with an image extension that is not a file (a folder named
``x.jpg``) is skipped with a warning rather than failing when read.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

from ....errors import MissingFileError, PathError
from ....image import decode
from ....image.decode import DEFAULT_IMAGE_LIMITS, ImageLimits
from ....nn.devices import on_device
from ..dataset import Dataset

__all__ = ["ImageFolderDataset"]


class ImageFolderDataset(Dataset):
    """Images stored as ``root/<class>/<file>``, labelled by class folder (MXNet's).

    - ``flag``: 1 for 3-channel RGB images, 0 for 1-channel gray.
    - ``transform``: called as ``transform(image, label)`` (MXNet's); prefer
      ``.transform_first(...)``.
    - ``limits``: bounds on each image's decoded size (``modelpack.image.ImageLimits``).

    Attributes ``synsets`` (class names; ``synsets[i]`` is label ``i``) and ``items``
    (``(path, label)`` pairs), as MXNet's.
    """

    def __init__(self, root: str | os.PathLike[str], flag: int = 1,
                 transform: Callable[[Any, Any], Any] | None = None, *,
                 limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> None:
        self._root = os.path.expanduser(os.fspath(root))
        self._flag = decode.check_flag(flag)
        self._transform = transform
        self._limits = limits
        self._exts = [".jpg", ".jpeg", ".png"]
        self._list_images(self._root)

    def _list_images(self, root: str) -> None:
        if not os.path.exists(root):
            raise MissingFileError(root, "no such folder (ImageFolderDataset reads root/<class>/<image>)")
        if not os.path.isdir(root):
            raise PathError(root, "is a file, not a folder of class folders")
        self.synsets: list[str] = []
        self.items: list[tuple[str, int]] = []
        for folder in sorted(os.listdir(root)):
            path = os.path.join(root, folder)
            if not os.path.isdir(path):
                warnings.warn(f"Ignoring {path}, which is not a directory.", stacklevel=3)
                continue
            label = len(self.synsets)
            self.synsets.append(folder)
            for filename in sorted(os.listdir(path)):
                filename = os.path.join(path, filename)
                ext = os.path.splitext(filename)[1]
                if ext.lower() not in self._exts:
                    warnings.warn(f"Ignoring {filename} of type {ext}. Only support {', '.join(self._exts)}",
                                  stacklevel=3)
                    continue
                if not os.path.isfile(filename):
                    warnings.warn(f"Ignoring {filename}, which is not a file.", stacklevel=3)
                    continue
                self.items.append((filename, label))

    def __getitem__(self, idx: int) -> Any:
        path, label = self.items[idx]
        image = on_device(decode.read_file(path, self._flag, True, self._limits))
        if self._transform is not None:
            return self._transform(image, label)
        return image, label

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return (f"ImageFolderDataset(root={self._root!r}, {len(self.synsets)} classes, "
                f"{len(self.items)} images)")
