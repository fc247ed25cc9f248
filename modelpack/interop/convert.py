"""``modelpack.convert``: other tools' files as a modelpack model, chosen by what the files are.

- an ONNX model → ``interop.onnx.from_onnx`` (the onnx extra);
- a torch ``state_dict`` file (``torch.save``) or a safetensors file, and an ``architecture`` →
  that architecture with the file's weights, torch's names mapped layer by layer (no torch or
  safetensors needed);
- MXNet files (a Gluon export, or parameters and an ``architecture``) → ``interop.mxnet.convert``.

Files are told apart by their first bytes (``io.sniff``), never by their names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import FileKindError, UsageError
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.paths import PathOrFile, describe, is_file_object, open_for_reading
from ..io.sniff import sniff, unreadable_zip
from ..nn.block import Block

__all__ = ["convert", "source_kind", "load_architecture", "CONVERTERS"]

# file kind -> what the converter is called in messages and archive metadata
CONVERTERS = {"onnx": "ONNX", "torch": "PyTorch", "safetensors": "safetensors", "mxnet": "MXNet"}


def source_kind(source: PathOrFile) -> str:
    """``"onnx"``, ``"torch"``, ``"safetensors"``, or ``"mxnet"`` (MXNet's parameter files, and
    files of no known kind: the MXNet converter reads symbol JSON and words what is wrong with
    the others). A file of another known kind, or a zip that cannot be read (a damaged torch
    file among them), is refused here, saying what it is (``FileKindError``)."""
    with open_for_reading(source) as handle:
        kind = sniff(handle)
        trouble = unreadable_zip(handle, describe(source)) if kind.name == "zip" else None
    if kind.name in CONVERTERS:
        return kind.name
    if kind.name == "unknown":
        return "mxnet"
    if trouble is not None:
        raise FileKindError(f"{trouble}; a zip that cannot be read is not a file convert reads ({_READS})")
    raise FileKindError(f"{describe(source)} is {kind.description}, not a file convert reads ({_READS}); "
                        f"{kind.advice}")


_READS = "ONNX models, PyTorch, safetensors and MXNet files"


def convert(
    *sources: PathOrFile,
    architecture: Block | PathOrFile | None = None,
    input_shapes: Mapping[str, Any] | None = None,
    allow_missing: bool = False,
    ignore_extra: bool = False,
    cast_dtype: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> Block:
    """A modelpack model from an ONNX file, a torch state_dict or safetensors file plus
    ``architecture``, or MXNet files.

    >>> net = modelpack.convert("model.onnx")                                  # doctest: +SKIP
    >>> net = modelpack.convert("weights.pt", architecture="arch.mpk")         # doctest: +SKIP
    >>> net = modelpack.convert("model.safetensors", architecture="arch.mpk")  # doctest: +SKIP
    >>> net = modelpack.convert("mlp-symbol.json", "mlp-0000.params")          # doctest: +SKIP
    """
    if any(isinstance(source, (list, tuple)) for source in sources):
        raise UsageError("convert takes its files as separate arguments, e.g. "
                         "convert('net-symbol.json', 'net-0000.params'), not in a list")
    kinds = [source_kind(source) for source in sources]
    if "onnx" in kinds:
        if len(sources) != 1 or architecture is not None or input_shapes:
            raise UsageError(
                "convert takes one ONNX file alone (its graph is the architecture; its "
                "inputs' shapes are in the file)"
            )
        matching = [name for name, given in (("allow_missing", allow_missing), ("ignore_extra", ignore_extra),
                                             ("cast_dtype", cast_dtype)) if given]
        if matching:  # (they choose how a parameter file is matched to an architecture: none here)
            raise UsageError(f"{', '.join(matching)} applies to weights loaded into an architecture; "
                             "an ONNX file's weights are its graph's own")
        from .onnx import from_onnx  # imported only for its files: it needs the onnx extra

        return from_onnx(sources[0], limits=limits)
    if "torch" in kinds or "safetensors" in kinds:
        kind = "torch" if "torch" in kinds else "safetensors"
        if len(sources) != 1 or architecture is None:
            reader = "torch.load" if kind == "torch" else "safetensors.read_safetensors"
            raise UsageError(
                f"convert takes one {_WEIGHTS[kind]} file and an architecture (a Block, or an .mpk whose "
                f"weights it replaces); found {len(sources)} file(s) and "
                f"{'an' if architecture is not None else 'no'} architecture; for its tensors alone, "
                f"modelpack.interop.{reader}(path) or `modelpack convert FILE -o OUT.mpk`"
            )
        if input_shapes:
            raise UsageError(f"input_shapes applies to a Gluon export (-symbol.json); a {_WEIGHTS[kind]} "
                             "file's weights go into the architecture as it is")
        from .torch import read_state_dict, rename_state_dict  # imported only for its files

        net = load_architecture(architecture, limits)
        if kind == "torch":
            arrays = read_state_dict(sources[0], limits=limits)
        else:
            from .safetensors import read_safetensors

            arrays, _ = read_safetensors(sources[0], limits=limits)
        arrays = rename_state_dict(arrays, net)  # a safetensors file from torch has torch's names
        net.set_parameters(
            arrays,
            source=describe(sources[0]),
            allow_missing=allow_missing,
            ignore_extra=ignore_extra,
            cast_dtype=cast_dtype,
        )
        return net
    from .mxnet import convert as convert_mxnet  # imported only for its files

    return convert_mxnet(
        *sources,
        architecture=architecture,
        input_shapes=input_shapes,
        allow_missing=allow_missing,
        ignore_extra=ignore_extra,
        cast_dtype=cast_dtype,
        limits=limits,
    )


_WEIGHTS = {"torch": "torch state_dict", "safetensors": "safetensors"}


def load_architecture(architecture: Any, limits: Limits) -> Block:
    """A Block as given, or the model of an ``.mpk`` (whose weights the caller replaces)."""
    if isinstance(architecture, Block):
        return architecture
    from .. import api  # the core's reader; imported here so the core never imports interop

    if not (is_file_object(architecture) or isinstance(architecture, (str, os.PathLike))):
        raise UsageError(f"architecture must be a Block or an .mpk path, found {type(architecture).__name__}")
    net = api.load(architecture, limits=limits)
    if not isinstance(net, Block):
        raise UsageError(f"{describe(architecture)} holds tensors, not a model")
    return net
