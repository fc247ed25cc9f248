"""modelpack: a neural network's architecture and weights together in one safe archive.

Public API on one screen; everything else is an implementation detail.
"""

from __future__ import annotations

from . import nn
from .errors import (
    DeferredInitializationError,
    DtypeMismatchError,
    ExtraParameterError,
    FormatError,
    InputError,
    MissingParameterError,
    ModelpackError,
    ParameterError,
    SchemaError,
    ShapeMismatchError,
    UninitializedParameterError,
    UnknownLayerError,
    UnsupportedBlockError,
    UnsupportedDtypeError,
    VersionError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "nn",
    "ModelpackError",
    "FormatError",
    "SchemaError",
    "UnknownLayerError",
    "VersionError",
    "ParameterError",
    "MissingParameterError",
    "ExtraParameterError",
    "ShapeMismatchError",
    "DtypeMismatchError",
    "DeferredInitializationError",
    "UninitializedParameterError",
    "UnsupportedBlockError",
    "UnsupportedDtypeError",
    "InputError",
]
