"""The exception tree: every error modelpack raises on purpose derives from ``ModelpackError``.

Messages name the file (where there is one), the member or parameter, what was expected and
what was found, so a user can act on them without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "ModelpackError",
    "UsageError",
    "PathError",
    "MissingFileError",
    "FileKindError",
    "FormatError",
    "SchemaError",
    "UnknownLayerError",
    "VersionError",
    "IntegrityError",
    "LimitError",
    "ImageLimitError",
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
    "AutogradError",
    "CheckpointError",
    "UnsupportedFeatureError",
]


class ModelpackError(Exception):
    """Root of every error modelpack raises on purpose; catch this to catch them all."""


class UsageError(ModelpackError, ValueError):
    """A call's arguments are wrong (not a file's bytes): a bad option, name or combination."""


class PathError(ModelpackError, OSError):
    """A path cannot be used as asked: a folder given as a file, a missing or unwritable folder.

    Built from the user's path and the reason, so no message ever names a temporary file.
    """

    def __init__(self, path: str, problem: str, fix: str = "") -> None:
        self.path, self.problem, self.fix = path, problem, fix
        super().__init__(f"{path}: {problem}" + (f"; {fix}" if fix else ""))

    def __str__(self) -> str:  # OSError would format its args as a tuple
        return str(self.args[0])


class MissingFileError(PathError, FileNotFoundError):
    """The file to read does not exist (a ``FileNotFoundError`` too, so old handlers work)."""


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


class FileKindError(FormatError):
    """A file of another kind than the call reads (a parameter file given to ``open``, an
    ONNX or torch file, ...); the message says what the file is and which function reads it.
    ``kind`` names the kind found (``io.sniff.KINDS``' key), where one was recognised."""

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class LimitError(FormatError):
    """An archive exceeds a resource limit; pass a larger ``modelpack.Limits`` if you trust it.

    Built from its fields: ``where`` (file and member), ``what`` exceeds, by how much, and the
    ``Limits`` field that would allow it, so every limit message reads the same way.
    """

    def __init__(
        self, where: str, what: str, value: float, *, limit: str, allowed: float, note: str = ""
    ) -> None:
        self.where, self.what, self.value, self.limit, self.allowed = where, what, value, limit, allowed
        super().__init__(
            f"{where}: {what} ({_number(value)}) is over the limit of {_number(allowed)}{note}; "
            f"pass limits=modelpack.Limits({limit}=...) to allow more"
        )


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and not value.is_integer() else str(int(value))



class ImageLimitError(LimitError):
    """An image file declares more than a limit allows (a ``LimitError``, hence a
    ``FormatError``); the message says what to pass to allow more."""

    def __init__(self, where: str, what: str, value: int, *, limit: str, allowed: int, fix: str) -> None:
        FormatError.__init__(self, f"{where}: {what} ({value}) is over the limit of {allowed}; {fix}")
        self.where, self.what, self.value, self.limit, self.allowed = where, what, value, limit, allowed


class ParameterError(ModelpackError):
    """A parameter is missing, unexpected, or has the wrong shape or dtype."""


class MissingParameterError(ParameterError):
    """A parameter the model needs is not in the file."""


class ExtraParameterError(ParameterError):
    """The file holds a parameter the model does not have."""


class _MismatchError(ParameterError):
    """An array's ``aspect`` (shape or dtype) differs from its parameter's.

    ``of_parameter`` builds the message from fields (``where`` the file, or nothing for a
    call; the ``parameter``; what was ``expected`` and ``found``; a ``hint``), so every
    parameter mismatch reads the same way; other mismatches pass their own text.
    """

    aspect: ClassVar[str]
    parameter: str | None = None
    expected: object = None
    found: object = None

    @classmethod
    def of_parameter(
        cls, parameter: str, expected: object, found: object, *, where: str = "", hint: str = ""
    ) -> _MismatchError:
        """``[where: ]parameter 'name' expected <aspect> E, found F[hint]``."""
        prefix = f"{where}: " if where else ""
        error = cls(f"{prefix}parameter {parameter!r} expected {cls.aspect} {expected}, found {found}{hint}")
        error.parameter, error.expected, error.found = parameter, expected, found
        return error


class ShapeMismatchError(_MismatchError):
    """An array's shape differs from the parameter's (or the manifest's) shape."""

    aspect = "shape"


class DtypeMismatchError(_MismatchError):
    """An array's dtype differs from the parameter's (or the manifest's) dtype."""

    aspect = "dtype"


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
    """A graph names an operation that is not in the op registry; lists the known ops.

    ``not_an_op`` builds the message from fields: ``what`` was asked for, the ``consequence``
    of it not being an op, and the ``known`` op names (or a ``detail``) to choose from.
    """

    what: str | None = None
    known: tuple[str, ...] = ()

    @classmethod
    def not_an_op(
        cls,
        what: str,
        consequence: str,
        *,
        known: Iterable[str] = (),
        detail: str = "",
        as_called: bool = False,
    ) -> UnknownOpError:
        """``what: not in the op set[ as called], <consequence> (ops: a, b, ...)``; ``as_called``
        when the function is an op but not with these arguments."""
        known = tuple(known)
        listed = f"ops: {', '.join(known)}" if known else detail
        qualifier = " as called" if as_called else ""
        listed = f" ({listed})" if listed else ""
        error = cls(f"{what}: not in the op set{qualifier}, {consequence}{listed}")
        error.what, error.known = what, known
        return error


class TensorNotFoundError(ModelpackError, KeyError):
    """An archive was asked for a tensor it does not hold (a ``KeyError`` too, as for a dict)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AutogradError(ModelpackError):
    """A gradient cannot be computed or used as asked (a freed graph, a frozen or stale one)."""


class CheckpointError(ModelpackError):
    """A checkpoint does not fit what it is restored into (the model, the trainer, a generator)."""


class UnsupportedFeatureError(ModelpackError, AttributeError):
    """A name of MXNet's API that modelpack deliberately does not provide (``gluon.model_zoo``,
    ``npx.deconvolution``, ...); the message names it and says what to do instead. An
    ``AttributeError`` too, so ``hasattr`` and ``getattr(module, name, default)`` still work."""

    def __init__(self, feature: str, instead: str) -> None:
        super().__init__(f"{feature} is not supported by modelpack: {instead}")
        self.feature, self.instead = feature, instead

    @classmethod
    def missing(cls, module: str, name: str, instead: str) -> AttributeError:
        """What module ``module``'s ``__getattr__`` raises for ``name``: this error, naming
        ``module.name`` as MXNet code writes it (``gluon.data.vision``); for a dunder name, which
        Python's own machinery probes and expects may be missing, a plain AttributeError."""
        if name.startswith("__"):
            return AttributeError(f"module {module!r} has no attribute {name!r}")
        return cls(f"{module.removeprefix('modelpack.')}.{name}", instead)
