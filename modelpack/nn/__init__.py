"""``modelpack.nn``: a small numpy layer library with MXNet Gluon 1.9's API and numerics.

>>> from modelpack import nn
>>> net = nn.Sequential()
>>> net.add(nn.Dense(256, activation="relu"), nn.Dense(10))
>>> net.initialize(seed=0)

What lives here: ``block`` (``Block``: children, parameters, ``get_config`` derived from the
layer's config model), ``parameter``/``parameter_dict`` (``Parameter``, Gluon's
``ParameterDict``), ``loading`` (parameter files and load options), ``registry`` (layer type
name → class and config model); the layers, a file per family (``basic``, ``activations``,
``conv``, ``pooling``, ``padding``, ``norm``, ``compose``, ``rnn/``), each a class plus its
config model; ``ops/`` (the one op table) with ``functional`` (``F``) derived from it;
``graph_spec`` (the stored graph format) and ``graph`` (``GraphBlock``, which runs it);
``budget`` (activation memory of a loaded model), ``hooks`` (where tracing and autograd
intercept calls), ``sizes``, ``structure``, ``init``, ``mode``, ``summary``.

It may import ``io``, ``errors`` and ``random``. Everything above it (``tracing``,
``autograd``, ``format``, ``interop``, ``gluon``, the public verbs) imports it; it reaches
tracing and autograd only at run time, through ``hooks`` (and ``functional``'s one late,
commented import), never at import time; ``loading`` imports interop's MXNet and torch
readers lazily, only when a parameter file of theirs is read.
"""

from __future__ import annotations

from . import functional, init, rnn
from . import functional as F
from .activations import ELU, GELU, SELU, Activation, LeakyReLU, PReLU, Swish
from .basic import Dense, Dropout, Embedding, Flatten
from .block import Block, HybridBlock
from .compose import (
    Concatenate,
    Concurrent,
    HybridConcatenate,
    HybridConcurrent,
    HybridLambda,
    HybridSequential,
    Identity,
    Lambda,
    Sequential,
)
from .conv import Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose
from .graph import GraphBlock
from .mode import is_training, training
from .norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, SyncBatchNorm
from .padding import ReflectionPad2D
from .parameter import Parameter
from .parameter_dict import ParameterDict
from .pooling import (
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalAvgPool3D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPool3D,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
)

__all__ = [
    "Activation",
    "AvgPool1D",
    "AvgPool2D",
    "AvgPool3D",
    "BatchNorm",
    "Block",
    "Concatenate",
    "Concurrent",
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Conv3DTranspose",
    "Dense",
    "Dropout",
    "ELU",
    "Embedding",
    "F",
    "Flatten",
    "functional",
    "GELU",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalAvgPool3D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPool3D",
    "GraphBlock",
    "GroupNorm",
    "HybridBlock",
    "HybridConcatenate",
    "HybridConcurrent",
    "HybridLambda",
    "HybridSequential",
    "Identity",
    "init",
    "InstanceNorm",
    "is_training",
    "Lambda",
    "LayerNorm",
    "LeakyReLU",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPool3D",
    "Parameter",
    "ParameterDict",
    "PReLU",
    "ReflectionPad2D",
    "SELU",
    "Sequential",
    "Swish",
    "SyncBatchNorm",
    "training",
    "rnn",
]
