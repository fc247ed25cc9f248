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

from .. import nn
from ..nn import rnn
from . import data, loss, parameter
from .parameter import Parameter, ParameterDict
from .symbol_block import SymbolBlock
from .trainer import Trainer

__all__ = ["nn", "rnn", "loss", "data", "parameter", "Parameter", "ParameterDict", "Trainer", "SymbolBlock"]
