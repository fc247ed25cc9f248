"""``gluon.data``: datasets (``ArrayDataset``, ``SimpleDataset``, ``vision``'s MNIST,
FashionMNIST and CIFAR) and a ``DataLoader`` whose shuffling can be checkpointed.

>>> dataset = gluon.data.ArrayDataset(X, y)                                 # doctest: +SKIP
>>> loader = gluon.data.DataLoader(dataset, batch_size=32, shuffle=True)    # doctest: +SKIP
>>> for xb, yb in loader: ...                                               # doctest: +SKIP

Each pass draws a permutation from the ``"data"`` stream of ``modelpack.random`` (or from the
generator given as ``rng``), so ``modelpack.random.seed`` fixes the order of every pass. A
loader in the middle of a pass can be checkpointed (``Checkpointer.save(..., data=loader)``):
its order and position are saved, and after ``restore`` the next ``for`` loop over it serves
the rest of that pass, then new passes exactly as an uninterrupted run would.

``dataset`` holds Gluon's ``Dataset`` base (``transform``, ``transform_first``); ``vision``
the image datasets and transforms. This package imports ``random``, ``errors`` and
``nn.devices``; within ``gluon`` nothing else imports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from ... import random
from ...errors import CheckpointError, UnsupportedFeatureError, UsageError
from ...nn.devices import on_device
from . import vision
from .dataset import Dataset, SimpleDataset

__all__ = ["Dataset", "SimpleDataset", "ArrayDataset", "DataLoader", "vision"]


class _Indexable(Protocol):
    """What a ``DataLoader`` reads: anything with a length and integer indexing."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


def __getattr__(name: str) -> Any:
    """Gluon's names not provided here (samplers, ``RecordFileDataset``, ...)."""
    raise UnsupportedFeatureError.missing(__name__, name, f"gluon.data has {', '.join(__all__)}")


class ArrayDataset(Dataset):
    """Examples from arrays of equal length: item ``i`` is ``(a[i], b[i], ...)`` (or ``a[i]``)."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise UsageError("ArrayDataset needs at least one array")
        self._arrays = [np.asarray(array) for array in arrays]
        lengths = [len(array) for array in self._arrays]
        if len(set(lengths)) != 1:
            raise UsageError(f"ArrayDataset arrays must have the same length, got lengths {lengths}")

    def __len__(self) -> int:
        return len(self._arrays[0])

    def __getitem__(self, index: int) -> Any:
        items = tuple(array[index] for array in self._arrays)
        return items[0] if len(items) == 1 else items

    def take(self, indices: np.ndarray) -> Any:
        """The examples at ``indices`` as one batch (one fancy index per array)."""
        batch = tuple(array[indices] for array in self._arrays)
        return batch[0] if len(batch) == 1 else batch


class DataLoader:
    """Batches of a dataset, in order or shuffled per pass; ``last_batch`` is ``"keep"`` (a
    smaller last batch) or ``"discard"``. Batches are ``NDArray`` views (MXNet's ``X.as_in_ctx``).

    ``batchify_fn`` builds a batch from the list of its examples (Gluon's; by default each field
    is stacked). ``num_workers`` is accepted for Gluon code and changes nothing: batches are read
    in this process, in the same order, so a seeded run gives the same batches with any value.
    """

    def __init__(
        self,
        dataset: _Indexable,
        batch_size: int,
        shuffle: bool = False,
        last_batch: str = "keep",
        batchify_fn: Callable[[list[Any]], Any] | None = None,
        num_workers: int = 0,
        *,
        rng: np.random.Generator | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size must be a positive int, got {batch_size!r}")
        if last_batch not in ("keep", "discard"):
            raise UsageError(f"last_batch must be 'keep' or 'discard', got {last_batch!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise UsageError(f"num_workers must be an int >= 0, got {num_workers!r}")
        self._batchify = batchify_fn
        self._dataset = dataset
        self._batch_size = batch_size
        self._shuffle = bool(shuffle)
        self._last_batch = last_batch
        self._rng = rng
        self._order: np.ndarray | None = None  # of the pass in progress (or last finished)
        self._position = 0  # batches of that pass served so far
        self._resume = False  # the next __iter__ continues the restored pass

    def __len__(self) -> int:
        count = len(self._dataset) / self._batch_size
        return math.ceil(count) if self._last_batch == "keep" else math.floor(count)

    def __iter__(self) -> Iterator[Any]:
        if not (self._resume and self._order is not None):
            self._order, self._position = self._new_order(), 0
        self._resume = False
        order = self._order
        for batch in range(self._position, len(self)):
            indices = order[batch * self._batch_size : (batch + 1) * self._batch_size]
            self._position = batch + 1
            yield on_device(self._take(indices))

    def _new_order(self) -> np.ndarray:
        if not self._shuffle:
            return np.arange(len(self._dataset))
        rng = self._rng if self._rng is not None else random.generator("data")
        return rng.permutation(len(self._dataset))

    def _take(self, indices: np.ndarray) -> Any:
        # Whole batches at once where the dataset is known to give its examples' rows; any
        # other object is read item by item (a ``take`` of its own may mean something else:
        # numpy's indexes the flattened array, pandas' or a user's their own way).
        if self._batchify is None and isinstance(self._dataset, np.ndarray):
            return self._dataset[indices]
        if self._batchify is None and isinstance(self._dataset, ArrayDataset):
            return self._dataset.take(indices)
        items = [self._dataset[int(i)] for i in indices]
        if self._batchify is not None:
            return self._batchify(items)
        if isinstance(items[0], tuple):
            return tuple(np.stack(field) for field in zip(*items, strict=True))
        return np.stack(items)

    # -- checkpoints -------------------------------------------------------------------------------
    def export_state(self) -> tuple[int, np.ndarray | None]:
        """``(batches served, order)`` of the pass in progress, or ``(0, None)`` between passes."""
        if self._order is None or not 0 < self._position < len(self):
            return 0, None
        return self._position, self._order.copy()

    def import_state(self, position: int, order: np.ndarray | None, *, source: str = "<state>") -> None:
        """Make the next ``for`` loop serve the rest of the saved pass (nothing if between passes)."""
        self.check_state(position, order, source=source)
        if order is None:
            self._order, self._position, self._resume = None, 0, False
        else:
            self._order, self._position, self._resume = order.astype(np.int64), position, True

    def check_state(self, position: int, order: np.ndarray | None, *, source: str = "<state>") -> None:
        """Refuse a saved pass that does not fit this loader's dataset and batch size."""
        if order is None:
            return
        size = len(self._dataset)
        if order.shape != (size,) or not np.array_equal(np.sort(order), np.arange(size)):
            raise CheckpointError(
                f"{source}: the saved data order is not a permutation of this loader's {size} examples"
            )
        if position > len(self):
            raise CheckpointError(
                f"{source}: the saved position {position} is past this loader's {len(self)} batches"
            )
