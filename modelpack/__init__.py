"""modelpack: a neural network's architecture and weights together in one safe archive.

Public API on one screen; everything else is an implementation detail.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import nn  # noqa: E402  (nn registers the layer types the archive may name)
from .api import export, inspect, load, save, verify  # noqa: E402
from .errors import (  # noqa: E402
    DeferredInitializationError,
    DtypeMismatchError,
    ExtraParameterError,
    FormatError,
    InputError,
    IntegrityError,
    LimitError,
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
from .limits import Limits  # noqa: E402
from .reader import Archive  # noqa: E402
from .reader import open_archive as open  # noqa: E402,A004  (modelpack.open, like tarfile.open)
from .verify import VerifyReport  # noqa: E402

__all__ = [
    "__version__",
    "nn",
    "export",
    "load",
    "save",
    "inspect",
    "open",
    "Archive",
    "verify",
    "VerifyReport",
    "Limits",
    "ModelpackError",
    "FormatError",
    "SchemaError",
    "UnknownLayerError",
    "VersionError",
    "IntegrityError",
    "LimitError",
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
