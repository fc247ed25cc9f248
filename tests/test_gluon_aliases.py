"""Gluon's top-level names of MXNet 1.9.1 (``gluon/__init__.py``: ``from .parameter import *``,
``from .block import *``): ``gluon.Block``, ``gluon.HybridBlock``, ``gluon.SymbolBlock``,
``gluon.Parameter``, ``gluon.ParameterDict``, ``gluon.DeferredInitializationError`` are
modelpack's own classes; the two it leaves out are refused by name."""

from __future__ import annotations

import pytest

from modelpack import gluon, nn
from modelpack.errors import DeferredInitializationError, UnsupportedFeatureError


def test_block_names_are_nns_classes():
    assert gluon.Block is nn.Block and gluon.HybridBlock is nn.HybridBlock
    assert gluon.Parameter is nn.Parameter and gluon.ParameterDict is nn.ParameterDict
    assert gluon.DeferredInitializationError is DeferredInitializationError
    assert {"Block", "HybridBlock", "SymbolBlock", "DeferredInitializationError"} <= set(gluon.__all__)


def test_a_block_subclassed_from_gluon_block():
    """d2l's ``class Module(d2l.nn_Module, d2l.HyperParameters)`` is ``gluon.Block``'s subclass
    (``nn_Module = gluon.Block`` in d2l/mxnet.py)."""
    from modelpack import np

    class Twice(gluon.Block):
        def __init__(self) -> None:
            super().__init__()
            self.dense = gluon.nn.Dense(2)

        def forward(self, x):
            return self.dense(x) * 2

    net = Twice()
    net.initialize()
    assert net(np.ones((3, 4))).shape == (3, 2)
    assert isinstance(net, gluon.HybridBlock)


def test_deferred_initialisation_is_catchable_by_gluons_name():
    net = gluon.nn.Dense(3)
    net.initialize()
    with pytest.raises(gluon.DeferredInitializationError):
        net.weight.data()


@pytest.mark.parametrize("name", ["Constant", "tensor_types"])
def test_names_left_out_are_refused(name):
    with pytest.raises(UnsupportedFeatureError, match=f"gluon.{name}"):
        getattr(gluon, name)
