"""Gluon's ``Dataset`` base: ``transform`` and ``transform_first``, which d2l's data loaders
call on every dataset (``FashionMNIST(train=True).transform_first(ToTensor())``).

A dataset is anything with ``len()`` and integer indexing; subclassing ``Dataset`` adds the
two methods. Nothing here imports the rest of ``gluon.data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Dataset", "SimpleDataset"]


class Dataset:
    """Gluon's abstract dataset: subclasses give ``__getitem__`` and ``__len__``.

    >>> squares = gluon.data.SimpleDataset([0, 1, 4]).transform(lambda x: x + 1)   # doctest: +SKIP
    >>> squares[2]                                                               # doctest: +SKIP
    5
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def transform(self, fn: Callable[..., Any], lazy: bool = True) -> Dataset:
        """Each example passed through ``fn`` (a tuple example as ``fn(*example)``), as MXNet.

        ``lazy=True`` calls ``fn`` on every read, so a random augmentation differs per pass;
        ``lazy=False`` calls it once per example now and keeps the results.
        """
        transformed = _LazyTransformDataset(self, fn)
        if lazy:
            return transformed
        return SimpleDataset([transformed[i] for i in range(len(transformed))])

    def transform_first(self, fn: Callable[[Any], Any], lazy: bool = True) -> Dataset:
        """Only each example's first field (the image) through ``fn``; the label is kept."""
        return self.transform(_TransformFirst(fn), lazy)


class SimpleDataset(Dataset):
    """A list, an array or any sequence as a ``Dataset`` (Gluon's wrapper for them)."""

    def __init__(self, data: Any) -> None:
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> Any:
        return self._data[index]

    def __repr__(self) -> str:
        return f"SimpleDataset({len(self)} examples)"


class _LazyTransformDataset(Dataset):
    """``dataset`` read through ``fn`` on every access."""

    def __init__(self, dataset: Any, fn: Callable[..., Any]) -> None:
        self._dataset, self._fn = dataset, fn

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index: int) -> Any:
        item = self._dataset[index]
        return self._fn(*item) if isinstance(item, tuple) else self._fn(item)


class _TransformFirst:
    """``fn`` applied to the first field only; a class, not a closure, so it pickles."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self._fn = fn

    def __call__(self, first: Any, *rest: Any) -> Any:
        return (self._fn(first), *rest) if rest else self._fn(first)

    def __repr__(self) -> str:
        return f"transform_first({self._fn!r})"
