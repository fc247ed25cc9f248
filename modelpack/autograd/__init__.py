"""``modelpack.autograd``: gradients with MXNet Gluon's API, for every layer and graph op.

>>> from modelpack import autograd
>>> with autograd.record():                       # doctest: +SKIP
...     loss = loss_fn(net(X), y)
>>> loss.backward()                               # doctest: +SKIP
>>> net[0].weight.grad()                          # doctest: +SKIP

What lives here, reading downwards: ``recording`` (record/pause, the hook that turns
parameters into leaves, ``backward``); ``layer_vjps`` and ``spatial_vjps`` (one VJP per
registered layer) over ``rules`` (one node per layer call); ``variable`` (``Variable``, and
how numpy code on it becomes recorded ops); ``vjps`` (one VJP per op of ``modelpack.nn.ops``).
This package imports the layer library; the layer library never imports it (it reaches it
through ``nn.hooks``). ``gluon`` and ``modelpack.checkpoint`` build on it.
"""

from __future__ import annotations

from ..nn.mode import is_training
from . import layer_vjps, neural_vjps, shape_vjps, spatial_vjps  # noqa: F401  (register the VJPs and rules)
from .recording import backward, pause, predict_mode, record, train_mode
from .variable import Variable, is_recording

__all__ = [
    "record",
    "pause",
    "train_mode",
    "predict_mode",
    "is_recording",
    "is_training",
    "backward",
    "Variable",
]
