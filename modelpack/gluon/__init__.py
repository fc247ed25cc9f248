"""``modelpack.gluon``: training with MXNet Gluon's names: ``nn``, ``loss``, ``data``, ``Trainer``,
and ``SymbolBlock.imports`` for exported models.

>>> from modelpack import autograd, gluon
>>> net = gluon.nn.Sequential(); net.add(gluon.nn.Dense(10)); net.initialize()      # doctest: +SKIP
>>> trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})    # doctest: +SKIP
>>> loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()                                  # doctest: +SKIP
>>> with autograd.record(): l = loss_fn(net(X), y)                                  # doctest: +SKIP
>>> l.backward(); trainer.step(len(X))                                              # doctest: +SKIP

``gluon.nn`` is ``modelpack.nn`` and ``gluon.rnn`` is ``modelpack.nn.rnn`` (the same modules);
``gluon.parameter`` (and ``gluon.Parameter``, ``gluon.ParameterDict``) are nn's classes.
This package builds on ``autograd``, ``nn`` and ``format`` (optimiser states are checkpoint
archives); nothing below imports it.
"""

from __future__ import annotations

from typing import Any

from .. import nn
from ..errors import DeferredInitializationError, UnsupportedFeatureError
from ..nn import Block, HybridBlock, rnn
from . import data, loss, parameter, utils
from .parameter import Parameter, ParameterDict
from .symbol_block import SymbolBlock
from .trainer import Trainer

__all__ = [
    "nn", "rnn", "loss", "data", "parameter", "utils", "Parameter", "ParameterDict", "Trainer", "SymbolBlock",
    "Block", "HybridBlock", "DeferredInitializationError",
]

# Gluon's names modelpack deliberately leaves out, and what to do instead.
_LEFT_OUT = {
    "model_zoo": "pretrained models are neither bundled nor downloaded; build the network "
                 "with modelpack.nn and load its weights with load_parameters (MXNet .params files load "
                 "too) or modelpack.convert",
    "contrib": "Gluon's contrib layers are not provided; write the block with modelpack.nn",
}


def __getattr__(name: str) -> Any:
    instead = _LEFT_OUT.get(name, f"gluon has {', '.join(__all__)}")
    raise UnsupportedFeatureError.missing(__name__, name, instead)
