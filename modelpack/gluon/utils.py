"""``gluon.utils``: ``split_and_load`` as d2l's multi-device loops call it, on the one device.

>>> X_shards = gluon.utils.split_and_load(X, [npx.cpu()])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from ..nn.devices import check_device, on_device

__all__ = ["split_and_load"]


def split_and_load(
    data: Any, ctx_list: Sequence[Any], batch_axis: int = 0, even_split: bool = True
) -> list[Any]:
    """``data`` in ``len(ctx_list)`` slices along ``batch_axis``, one per device (Gluon's); every
    device here is the CPU, so with one device this is ``[data]``."""
    check_device(list(ctx_list))
    if not ctx_list:
        raise UsageError("split_and_load: ctx_list is empty")
    array = np.asarray(data)
    count, size = len(ctx_list), array.shape[batch_axis]
    if count == 1:
        return [on_device(array)]
    if even_split and size % count:
        raise UsageError(
            f"split_and_load: {size} examples do not split evenly into {count} slices; pass even_split=False"
        )
    return [on_device(part) for part in np.array_split(array, count, axis=batch_axis)]
