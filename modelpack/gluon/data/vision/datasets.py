"""MXNet's downloaded image datasets: ``MNIST``, ``FashionMNIST``, ``CIFAR10``, ``CIFAR100``.

>>> train = gluon.data.vision.FashionMNIST(train=True)       # doctest: +SKIP
>>> image, label = train[0]        # (28, 28, 1) uint8 NDArray, a 0-d int32 NDArray label
>>> len(train)                                               # doctest: +SKIP
60000

As MXNet 1.9.1 (numpy mode): the same file names, folders (``$MXNET_HOME/datasets/<name>``,
``~/.mxnet`` by default), repository URLs and SHA-1s, and items ``(image HWC uint8, label
int32)``, both NDArrays (a slice ``train[:18]`` gives ``(18, H, W, C)`` images and ``(18,)``
labels). A file already in ``root`` is read as it is; a missing one is downloaded and checked
(``download``).

``ImageFolderDataset`` (a folder per class, decoded by ``modelpack.image``) is ``folder``'s;
Gluon's other vision datasets (``ImageListDataset``, ...) are refused here, in ``LEFT_OUT``,
for this module and ``gluon.data.vision`` alike (it re-exports ``__all__`` and asks
``missing`` for any other name).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import FormatError, UnsupportedFeatureError
from ....io.paths import regular_file_opener
from ....nn.devices import on_device
from ..dataset import Dataset
from . import download, readers
from .folder import ImageFolderDataset

__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "ImageFolderDataset"]

# Gluon's vision datasets that modelpack does not provide, and what to do instead: the one
# place they are refused, for ``gluon.data.vision.datasets.<name>`` and ``gluon.data.vision.<name>``.
# To provide one (as ImageFolderDataset, from folder.py): import it in this module, add it to
# ``__all__`` and delete its entry here; ``gluon.data.vision`` then has it too.
LEFT_OUT = {
    name: "read the images with modelpack.image.imread (or ImageFolderDataset for a folder per "
          "class) and serve them with a gluon.data Dataset (e.g. ArrayDataset(images, labels))"
    for name in ("ImageListDataset", "ImageRecordDataset")
}


def missing(module: str, name: str, provided: list[str]) -> AttributeError:
    """What ``module``'s ``__getattr__`` raises for a name it lacks: ``LEFT_OUT``'s reason, or
    the list of what it has (``provided``)."""
    instead = LEFT_OUT.get(name, f"{module.removeprefix('modelpack.')} has {', '.join(provided)}")
    return UnsupportedFeatureError.missing(module, name, instead)


def __getattr__(name: str) -> Any:
    raise missing(__name__, name, __all__)

# (file name, MXNet's SHA-1) of each split's images and labels: MXNet 1.9.1's tables.
MNIST_FILES = {
    "mnist": {
        True: (("train-images-idx3-ubyte.gz", "6c95f4b05d2bf285e1bfb0e7960c31bd3b3f8a7d"),
               ("train-labels-idx1-ubyte.gz", "2a80914081dc54586dbdf242f9805a6b8d2a15fc")),
        False: (("t10k-images-idx3-ubyte.gz", "c3a25af1f52dad7f726cce8cacb138654b760d48"),
                ("t10k-labels-idx1-ubyte.gz", "763e7fa3757d93b0cdec073cef058b2004252c17")),
    },
    "fashion-mnist": {
        True: (("train-images-idx3-ubyte.gz", "0cf37b0d40ed5169c6b3aba31069a9770ac9043d"),
               ("train-labels-idx1-ubyte.gz", "236021d52f1e40852b06a4c3008d8de8aef1e40b")),
        False: (("t10k-images-idx3-ubyte.gz", "626ed6a7c06dd17c0eec72fa3be1740f146a2863"),
                ("t10k-labels-idx1-ubyte.gz", "17f9ab60e7257a1620f4ad76bbbaf857c3920701")),
    },
}
# CIFAR: the archive MXNet downloads (name, SHA-1), and each split's batch files in it with
# their numbers of records.
CIFAR_ARCHIVES = {
    "cifar10": ("cifar-10-binary.tar.gz", "fab780a1e191a7eda0f345501ccd62d20f7ed891"),
    "cifar100": ("cifar-100-binary.tar.gz", "a0bb982c76b83111308126cc779a992fa506b90b"),
}
CIFAR_FILES: dict[str, dict[bool, tuple[tuple[str, int], ...]]] = {
    "cifar10": {True: tuple((f"data_batch_{i}.bin", 10000) for i in range(1, 6)),
                False: (("test_batch.bin", 10000),)},
    "cifar100": {True: (("train.bin", 50000),), False: (("test.bin", 10000),)},
}


def _root(root: str | os.PathLike[str] | None, namespace: str) -> Path:
    path = download.data_dir() / "datasets" / namespace if root is None else Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


class _DownloadedDataset(Dataset):
    """Images ``(N, H, W, C)`` uint8 and labels ``(N,)`` int32 read once from ``root``."""

    _data: np.ndarray
    _label: np.ndarray

    def __init__(self, root: Path, transform: Callable[[Any, Any], Any] | None) -> None:
        self._root, self._transform = root, transform

    def __len__(self) -> int:
        return len(self._label)

    def __getitem__(self, index: int) -> Any:
        # NDArrays both, as MXNet's numpy mode: a label is a 0-d array, a slice's labels (N,)
        image, label = on_device(self._data[index]), on_device(np.asarray(self._label[index]))
        return (image, label) if self._transform is None else self._transform(image, label)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self._root)!r}, {len(self)} examples)"


class MNIST(_DownloadedDataset):
    """MNIST's handwritten digits: 28×28×1 uint8 images, labels 0..9 (60000 train, 10000 test).

    ``transform`` (MXNet's deprecated argument) is called as ``transform(image, label)``;
    prefer ``.transform_first(...)``.
    """

    _namespace = "mnist"

    def __init__(
        self, root: str | os.PathLike[str] | None = None, train: bool = True,
        transform: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        super().__init__(_root(root, self._namespace), transform)
        self._train = bool(train)
        (images, images_sha1), (labels, labels_sha1) = MNIST_FILES[self._namespace][self._train]
        label_path = download.obtain(self._root, self._namespace, labels, labels_sha1)
        image_path = download.obtain(self._root, self._namespace, images, images_sha1)
        self._label = readers.read_idx(label_path, 1).astype(np.int32)
        data = readers.read_idx(image_path, 3)
        if len(data) != len(self._label):
            raise FormatError(f"{image_path}: {len(data)} images, but {label_path} holds "
                                      f"{len(self._label)} labels")
        self._data = data[..., np.newaxis]  # (N, 28, 28, 1): HWC, as MXNet


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST, MNIST's drop-in replacement (d2l's ``load_data_fashion_mnist``):
    28×28×1 uint8 images of ten kinds of clothing."""

    _namespace = "fashion-mnist"


class CIFAR10(_DownloadedDataset):
    """CIFAR-10: 32×32×3 uint8 colour images of ten classes, read from the binary batches
    (MXNet's ``cifar-10-binary.tar.gz``; the pickled python version is never read)."""

    _namespace = "cifar10"
    _label_limits: tuple[int, ...] = (10,)

    def __init__(
        self, root: str | os.PathLike[str] | None = None, train: bool = True,
        transform: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        super().__init__(_root(root, self._namespace), transform)
        self._train = bool(train)
        names = [name for name, _ in CIFAR_FILES[self._namespace][self._train]]
        if not all((self._root / name).is_file() for name in names):
            self._extract()
        parts = [readers.read_records(self._root / name, len(self._label_limits), self._label_limits)
                 for name in names]
        self._data = np.concatenate([images for images, _ in parts])
        self._label = np.concatenate([labels for _, labels in parts])[:, self._label_column()]

    def _label_column(self) -> int:
        return 0

    def _extract(self) -> None:
        """Take the batch files out of MXNet's archive (downloaded if absent or not MXNet's)."""
        archive_name, sha1 = CIFAR_ARCHIVES[self._namespace]
        archive = self._root / archive_name
        if not archive.is_file() or _sha1(archive) != sha1:
            download.download(download.file_url(self._namespace, archive_name), archive, sha1)
        record = len(self._label_limits) + 3 * 32 * 32
        wanted = {name: count * record for split in (True, False)
                  for name, count in CIFAR_FILES[self._namespace][split]}
        readers.extract_members(archive, wanted, self._root)


class CIFAR100(CIFAR10):
    """CIFAR-100: 32×32×3 images; ``fine_label=True`` gives the 100 classes, else the 20
    superclasses (MXNet's default)."""

    _namespace = "cifar100"
    _label_limits = (20, 100)

    def __init__(
        self, root: str | os.PathLike[str] | None = None, fine_label: bool = False, train: bool = True,
        transform: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        self._fine_label = bool(fine_label)
        super().__init__(root, train, transform)

    def _label_column(self) -> int:
        return int(self._fine_label)


def _sha1(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb", opener=regular_file_opener) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
