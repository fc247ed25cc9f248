"""``modelpack.nn``: a small numpy layer library with MXNet Gluon 1.9's API and numerics.

>>> from modelpack import nn
>>> net = nn.Sequential()
>>> net.add(nn.Dense(256, activation="relu"), nn.Dense(10))
>>> net.initialize(seed=0)
"""

from __future__ import annotations

from . import functional, init
from . import functional as F
from .activations import ELU, Activation, LeakyReLU
from .basic import Dense, Dropout, Embedding, Flatten
from .block import Block, HybridBlock, HybridSequential, Sequential
from .compose import (
    Concatenate,
    Concurrent,
    HybridConcatenate,
    HybridConcurrent,
    HybridLambda,
    Identity,
    Lambda,
)
from .conv import AvgPool2D, Conv2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D
from .graph import GraphBlock
from .mode import is_training, training
from .norm import BatchNorm, LayerNorm
from .parameter import Parameter
from .parameter_dict import ParameterDict

__all__ = [
    "Activation",
    "AvgPool2D",
    "BatchNorm",
    "Block",
    "Concatenate",
    "Concurrent",
    "Conv2D",
    "Dense",
    "Dropout",
    "ELU",
    "Embedding",
    "Flatten",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "GraphBlock",
    "F",
    "functional",
    "HybridBlock",
    "HybridConcatenate",
    "HybridConcurrent",
    "HybridLambda",
    "HybridSequential",
    "Identity",
    "Lambda",
    "LayerNorm",
    "LeakyReLU",
    "MaxPool2D",
    "Parameter",
    "ParameterDict",
    "Sequential",
    "init",
    "is_training",
    "training",
]
