"""``gluon.data``: datasets (``ArrayDataset``, ``SimpleDataset``, ``vision``'s MNIST,
FashionMNIST and CIFAR) and a ``DataLoader`` whose shuffling can be checkpointed.

>>> dataset = gluon.data.ArrayDataset(X, y)                                 # doctest: +SKIP
>>> loader = gluon.data.DataLoader(dataset, batch_size=32, shuffle=True)    # doctest: +SKIP
>>> for xb, yb in loader: ...                                               # doctest: +SKIP

Each pass draws a permutation from the ``"data"`` stream of ``modelpack.random`` (or from the
generator given as ``rng``), so ``modelpack.random.seed`` fixes the order of every pass. A
loader in the middle of a pass can be checkpointed (``Checkpointer.save(..., data=loader)``):
its order and position are saved (with ``last_batch="rollover"``, also the examples carried
over to the next pass), and after ``restore`` the next ``for`` loop over it serves the rest of
that pass, then new passes exactly as an uninterrupted run would.

Batches are built as MXNet 1.9.1's ``default_batchify_fn`` (numpy mode) builds them: arrays
are stacked, other values go through ``numpy.asarray`` (Python ints become int64, floats
float64), and an example that is a tuple gives a *list* with one batch per field, nested
tuples field by field.

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
from ...nn.devices import NDArray, on_device
from . import vision
from .dataset import Dataset, SimpleDataset

__all__ = ["Dataset", "SimpleDataset", "ArrayDataset", "DataLoader", "vision"]

_LAST_BATCH = ("keep", "discard", "rollover")
_NO_INDICES = np.zeros(0, np.int64)
_NO_INDICES.flags.writeable = False


class _Indexable(Protocol):
    """What a ``DataLoader`` reads: anything with a length and integer indexing."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


def __getattr__(name: str) -> Any:
    """Gluon's names not provided here (samplers, ``RecordFileDataset``, ...)."""
    raise UnsupportedFeatureError.missing(__name__, name, f"gluon.data has {', '.join(__all__)}")


def _default_batchify(items: list[Any]) -> Any:
    """One batch from a list of examples, as MXNet 1.9.1's ``default_batchify_fn``: examples
    that are tuples give a list of batches, one per field (recursively, so a nested tuple field
    is a list too); arrays are stacked; anything else is ``numpy.asarray(items)`` with the
    dtype numpy gives it (Python ints int64, floats float64, bools bool)."""
    if isinstance(items[0], tuple):
        widths = {len(item) for item in items}
        if len(widths) != 1:
            raise UsageError(f"the examples of a batch have different numbers of fields {sorted(widths)}")
        return [_default_batchify(list(field)) for field in zip(*items, strict=True)]
    try:
        batch = np.asarray(items)
    except ValueError as exc:  # numpy's "inhomogeneous shape"
        raise UsageError(
            "the examples of a batch have fields of different shapes, which cannot be stacked; "
            f"pass a batchify_fn that pads or packs them ({exc})"
        ) from None
    if batch.dtype == object:
        raise UsageError("the examples of a batch hold values that make no array (numpy dtype object); "
                         "pass a batchify_fn that builds the batch")
    return batch


class ArrayDataset(Dataset):
    """Examples from dataset-like objects of equal length (arrays, lists, datasets): item ``i``
    is ``(a[i], b[i], ...)`` (or ``a[i]`` for one).

    As MXNet's: each object is kept as it is, so a list of lists of different lengths (d2l's
    word2vec contexts) gives its inner lists; a 1-D NDArray is kept as a plain numpy array
    (MXNet's ``asnumpy()``), so its items are numpy scalars.
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise UsageError("ArrayDataset needs at least one array")
        self._data = [_field(array, number) for number, array in enumerate(arrays)]
        lengths = [len(field) for field in self._data]
        if len(set(lengths)) != 1:
            raise UsageError(f"ArrayDataset arrays must have the same length, got lengths {lengths}")

    def __len__(self) -> int:
        return len(self._data[0])

    def __getitem__(self, index: int) -> Any:
        if len(self._data) == 1:
            return self._data[0][index]
        return tuple(field[index] for field in self._data)

    def _batch(self, indices: np.ndarray) -> Any:
        """The default batch of the examples at ``indices``: an array field by one fancy index
        (what stacking its items gives), any other field item by item."""
        batch = [_field_batch(field, indices) for field in self._data]
        return batch[0] if len(batch) == 1 else batch


def _field(array: Any, number: int) -> Any:
    try:
        len(array)
    except TypeError:
        raise UsageError(f"ArrayDataset's array {number} has no length: {type(array).__name__}") from None
    if isinstance(array, NDArray):
        return np.array(array, subok=False) if array.ndim == 1 else array.view(NDArray)
    return array


def _field_batch(field: Any, indices: np.ndarray) -> Any:
    if isinstance(field, np.ndarray):
        return field[indices]
    return _default_batchify([field[int(i)] for i in indices])


class DataLoader:
    """Batches of a dataset, in order or shuffled per pass. Batches are ``NDArray`` views
    (MXNet's ``X.as_in_ctx``), built as MXNet's default batchify builds them (a list of
    fields for tuple examples), or by ``batchify_fn`` from the list of a batch's examples.

    ``last_batch`` is MXNet's: ``"keep"`` (a smaller last batch), ``"discard"``, or
    ``"rollover"``: the examples left over at the end of a pass are not served, but start the
    next pass (d2l's recommender systems). Then ``len(loader)`` counts the batches of the next
    pass (with those examples), as MXNet's; as MXNet's, a pass left before its loop ends
    (``break``, even right after its last batch) loses them. A checkpoint taken after a pass's
    last batch keeps them: the restored loader starts its next pass with them, as the
    uninterrupted loop would.

    ``num_workers`` is accepted for Gluon code and changes nothing: batches are read in this
    process, in the same order, so a seeded run gives the same batches with any value.
    """

    def __init__(
        self,
        dataset: _Indexable,
        batch_size: int,
        shuffle: bool = False,
        last_batch: str | None = "keep",
        batchify_fn: Callable[[list[Any]], Any] | None = None,
        num_workers: int = 0,
        *,
        rng: np.random.Generator | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size must be a positive int, got {batch_size!r}")
        last_batch = "keep" if last_batch is None else last_batch  # MXNet's default is None
        if last_batch not in _LAST_BATCH:
            raise UsageError(f"last_batch must be 'keep', 'discard' or 'rollover', got {last_batch!r}")
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
        self._carry = _NO_INDICES  # rollover: examples restored to start the next pass
        self._finished = False  # the loop over the pass asked for more after its last batch

    def __len__(self) -> int:
        size = len(self._dataset)
        if self._last_batch == "rollover":
            return (len(self._pending()) + size) // self._batch_size
        return self._batches(size)

    def __iter__(self) -> Iterator[Any]:
        if not (self._resume and self._order is not None):
            self._order, self._position = self._new_order(), 0
            self._carry = _NO_INDICES
        self._resume = self._finished = False
        order, size = self._order, self._batch_size
        for batch in range(self._position, self._batches(len(order))):
            served = on_device(self._take(order[batch * size : (batch + 1) * size]))
            self._position = batch + 1
            yield served
        self._finished = True

    def _batches(self, examples: int) -> int:
        """How many batches a pass over ``examples`` examples serves."""
        if self._last_batch == "keep":
            return math.ceil(examples / self._batch_size)
        return examples // self._batch_size

    def _pending(self, *, continued: bool = False) -> np.ndarray:
        """The examples the next pass starts with: with ``rollover``, those left over by the
        last pass once its loop has ended (as MXNet's sampler, which keeps them only when asked
        for more after the last batch), or, ``continued``, once its last batch is served (what
        the loop in progress leads to: a checkpoint's view); else none."""
        if self._last_batch != "rollover":
            return _NO_INDICES
        if self._order is None:
            return self._carry
        served_all = self._position >= self._batches(len(self._order))
        if not (served_all and (self._finished or continued)):  # a pass left before its end
            return _NO_INDICES
        return self._order[self._position * self._batch_size :]

    def _new_order(self) -> np.ndarray:
        carried = self._pending()
        if not self._shuffle:
            order = np.arange(len(self._dataset), dtype=np.int64)
        else:
            rng = self._rng if self._rng is not None else random.generator("data")
            order = rng.permutation(len(self._dataset))
        return np.concatenate([carried, order]) if len(carried) else order

    def _take(self, indices: np.ndarray) -> Any:
        # Whole batches at once where the dataset is known to give its examples' rows; any
        # other object is read item by item (a ``take`` of its own may mean something else:
        # numpy's indexes the flattened array, pandas' or a user's their own way).
        if self._batchify is None and isinstance(self._dataset, np.ndarray):
            return self._dataset[indices]
        if self._batchify is None and isinstance(self._dataset, ArrayDataset):
            return self._dataset._batch(indices)
        items = [self._dataset[int(i)] for i in indices]
        return (self._batchify or _default_batchify)(items)

    # -- checkpoints -------------------------------------------------------------------------------
    def export_state(self) -> tuple[int, np.ndarray | None]:
        """``(batches served, order)`` of the pass in progress. Between passes ``(0, None)``,
        or with ``rollover`` ``(0, carried)``: the examples the next pass starts with."""
        if self._order is not None and 0 < self._position < self._batches(len(self._order)):
            return self._position, self._order.copy()
        carried = self._pending(continued=True)
        return (0, carried.copy()) if len(carried) else (0, None)

    def import_state(self, position: int, order: np.ndarray | None, *, source: str = "<state>") -> None:
        """Make the next ``for`` loop serve the rest of the saved pass (nothing if between passes,
        then the next pass starts with the saved carried examples, if any)."""
        self.check_state(position, order, source=source)
        self._carry, self._order, self._position, self._resume = _NO_INDICES, None, 0, False
        self._finished = True  # a restored pass is ended, or resumed (which sets it False)
        if order is None:
            return
        order = order.astype(np.int64)
        if self._last_batch == "rollover" and position == 0:
            self._carry = order
        else:
            self._order, self._position = order, position
            self._resume = position < self._batches(len(order))

    def check_state(self, position: int, order: np.ndarray | None, *, source: str = "<state>") -> None:
        """Refuse a saved pass that does not fit this loader's dataset, batch size and
        ``last_batch``."""
        if order is None:
            return
        size = len(self._dataset)
        if order.ndim != 1 or not (order.size == 0 or np.issubdtype(order.dtype, np.integer)):
            raise CheckpointError(f"{source}: the saved data order is not a list of example indices")
        if self._last_batch == "rollover":
            carried = len(order) if position == 0 else len(order) - size
            in_range = bool(np.all((order[:carried] >= 0) & (order[:carried] < size)))
            if position == 0 and not (0 < carried < self._batch_size and in_range):
                raise CheckpointError(
                    f"{source}: the saved carried examples are not 1 to {self._batch_size - 1} of this "
                    f"loader's {size} examples"
                )
            if position > 0 and not (0 <= carried < self._batch_size and in_range
                                     and _is_permutation(order[carried:], size)):
                raise CheckpointError(
                    f"{source}: the saved data order is not at most {self._batch_size - 1} carried "
                    f"examples then a permutation of this loader's {size} examples"
                )
        elif not _is_permutation(order, size):
            raise CheckpointError(
                f"{source}: the saved data order is not a permutation of this loader's {size} examples"
            )
        batches = self._batches(len(order))
        if position > batches:
            raise CheckpointError(f"{source}: the saved position {position} is past this loader's "
                                  f"{batches} batches")


def _is_permutation(order: np.ndarray, size: int) -> bool:
    return order.shape == (size,) and np.array_equal(np.sort(order), np.arange(size))
