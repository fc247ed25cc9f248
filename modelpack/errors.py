"""The exception tree: every error modelpack raises on purpose derives from ``ModelpackError``.

Messages name the file (where there is one), the member or parameter, what was expected and
what was found, so a user can act on them without reading a traceback.
"""

from __future__ import annotations

__all__ = [
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
    "TraceError",
    "UnknownOpError",
    "TensorNotFoundError",
]


class ModelpackError(Exception):
    """Root of every error modelpack raises on purpose; catch this to catch them all."""


class FormatError(ModelpackError):
    """A file is not what it claims to be: not a zip, a missing member, unreadable bytes."""


class SchemaError(FormatError):
    """A manifest or configuration does not validate against the schema."""


class UnknownLayerError(SchemaError):
    """A layer type name is not in the registry; the message lists the known names."""


class VersionError(FormatError):
    """An archive was written by a format version this reader does not understand."""


class IntegrityError(FormatError):
    """Bytes differ from what the archive recorded for them (a CRC-32 or SHA-256 mismatch)."""


class LimitError(FormatError):
    """An archive exceeds a resource limit; pass a larger ``modelpack.Limits`` if you trust it."""


class ParameterError(ModelpackError):
    """A parameter is missing, unexpected, or has the wrong shape or dtype."""


class MissingParameterError(ParameterError):
    """A parameter the model needs is not in the file."""


class ExtraParameterError(ParameterError):
    """The file holds a parameter the model does not have."""


class ShapeMismatchError(ParameterError):
    """An array's shape differs from the parameter's (or the manifest's) shape."""


class DtypeMismatchError(ParameterError):
    """An array's dtype differs from the parameter's (or the manifest's) dtype."""


class DeferredInitializationError(ParameterError):
    """A parameter's shape is not known yet: the layer has not seen its first input."""


class UninitializedParameterError(ParameterError):
    """A parameter was read (or exported) before ``initialize()`` or ``load_parameters()``."""


class UnsupportedBlockError(ModelpackError):
    """A Block cannot be described by the archive format (e.g. a hand-written ``forward``)."""


class UnsupportedDtypeError(ModelpackError):
    """An array's dtype cannot be stored safely (object, structured, string, ...)."""


class InputError(ModelpackError):
    """A layer was called with an input it cannot compute on (wrong rank, bad indices)."""


class TraceError(UnsupportedBlockError):
    """A ``forward`` did something tracing cannot record faithfully; the message names it."""


class UnknownOpError(SchemaError):
    """A graph names an operation that is not in the op registry; lists the known ops."""


class TensorNotFoundError(ModelpackError, KeyError):
    """An archive was asked for a tensor it does not hold (a ``KeyError`` too, as for a dict)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
