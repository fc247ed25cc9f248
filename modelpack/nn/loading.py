"""Parameter files and loads: reading them (``.npz``, an archive's weights, Gluon's, torch's,
safetensors), writing them, and matching saved arrays to a block's parameters (renaming,
selecting, the ``LoadReport``).

``Block``'s and ``ParameterDict``'s ``save``/``load`` methods all come here: ``plan_load``
decides, before anything changes, which array fills which parameter. Reusing saved layers
in a new network (the first layers of a trained model under another name) is
``rename={"0.": "features.0."}`` plus ``select=r"features\\."``; what did not fit is in the
report, or an error unless allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from ..errors import (
    DtypeMismatchError,
    ExtraParameterError,
    FileKindError,
    FormatError,
    MissingParameterError,
    ShapeMismatchError,
    UsageError,
)
from ..io import npz, npz_write
from ..io.paths import PathOrFile, atomic_writer, describe, open_for_reading
from ..io.sniff import is_mxnet, is_safetensors, refuse_other_kind, sniff
from .parameter import Parameter, shapes_compatible

if TYPE_CHECKING:
    from .block import Block

__all__ = [
    "LoadReport", "LoadOptions", "LoadSelection", "plan_load", "read_parameter_file",
    "write_parameter_file",
]

Shape = tuple[int, ...]


@dataclass
class LoadReport:
    """What a load did: parameters ``loaded``; parameters ``missing`` from the file; file entries
    ``unexpected`` by the model; ``mismatched`` shapes (name → (expected, found)), left as they were.
    Names are the model's (after ``rename``); unselected ones appear nowhere."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[Shape, Shape]] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)}"]
        for label, names in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("shape-mismatched", list(self.mismatched))):
            if names:
                parts.append(f"{label} {len(names)} ({', '.join(names)})")
        return "; ".join(parts)


class LoadSelection(TypedDict, total=False):
    """Which of a file's arrays a load uses: ``select`` (a regex matched at the start of the
    model's names), ``rename`` ({old prefix: new prefix} for the file's names), and
    ``ignore_mismatch`` (skip, and report, arrays of the wrong shape)."""

    select: str | None
    rename: Mapping[str, str] | None
    ignore_mismatch: bool


class LoadOptions(LoadSelection, total=False):
    """Every option of a load (``set_parameters``, ``ParameterDict.assign``): the selection,
    plus Gluon's ``allow_missing``, ``ignore_extra`` and ``cast_dtype``."""

    allow_missing: bool
    ignore_extra: bool
    cast_dtype: bool


def read_parameter_file(
    filename: PathOrFile, params: Mapping[str, Parameter], net: Block | None = None
) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of a parameter file and its name for messages: modelpack's ``.npz`` (never
    unpickled), a modelpack archive's weights (``_archive_weights``), a Gluon file (MXNet's
    ``save_parameters``, an export's ``.params``), whose flat names (``dense0_weight``) are
    matched to ``params``' structured ones, a safetensors file, or a torch ``state_dict`` file
    (read without torch); given the ``net``, torch's names in either are mapped by its layers."""
    source = describe(filename)
    with open_for_reading(filename) as handle:
        if is_mxnet(handle):
            from ..interop.mxnet import gluon_parameters, match_parameters  # only for its files

            return match_parameters(gluon_parameters(handle), params), source
        if is_safetensors(handle):
            from ..interop.safetensors import read_safetensors  # only for its files

            arrays, _ = read_safetensors(handle)
            if net is None:
                return arrays, source
            from ..interop.torch import rename_state_dict  # torch's names, as torch writes them

            return rename_state_dict(arrays, net), source
        try:
            return npz.read_npz(handle, source=source), source
        except FormatError:
            kind = sniff(handle).name
            if kind == "mpk":
                return _archive_weights(filename, source), source
            if net is None or kind != "torch":
                refuse_other_kind(handle, source, expected="npz")  # an ONNX file, ...
                raise
            from ..interop.torch import read_state_dict, rename_state_dict  # only for its files

            return rename_state_dict(read_state_dict(handle), net), source



def _archive_weights(filename: PathOrFile, source: str) -> dict[str, np.ndarray]:
    """A modelpack archive's arrays by name, as parameters: a model's weights (an export's,
    under its parameters' names), or named tensors (``npx.save`` of a dict), as MXNet's
    ``load_parameters`` reads what its ``npx.save`` wrote. Unnamed tensors (a list, one
    array) are refused: no name could match a parameter."""
    from ..api import open_archive  # (the archive reader imports the layer library lazily too)

    with open_archive(filename) as archive:
        layout = archive.manifest.layout
        if archive.kind == "tensors" and layout not in (None, "dict"):
            count = len(archive.tensors)
            held = "one array" if layout == "single" else f"a {layout} of {count} array{'s' * (count != 1)}"
            raise FileKindError(
                f"{source} holds {held}, not named parameters; save a dict of name → array "
                "(npx.save(path, {name: array, ...})) to load it as parameters", kind="mpk")
        return archive.read_all()


def write_parameter_file(filename: PathOrFile, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as a standard ``.npz`` file, atomically, at exactly ``filename``."""
    with atomic_writer(filename) as handle:
        npz_write.write_npz(handle, arrays)


def plan_load(
    params: Mapping[str, Parameter],
    arrays: Mapping[str, np.ndarray],
    *,
    source: str,
    model: str = "the model",
    select: str | None = None,
    rename: Mapping[str, str] | None = None,
    allow_missing: bool = False,
    ignore_extra: bool = False,
    ignore_mismatch: bool = False,
    cast_dtype: bool = False,
) -> tuple[list[tuple[Parameter, np.ndarray]], LoadReport]:
    """Which array goes to which parameter, and the report; raises on anything not allowed,
    and when nothing at all would be loaded (the names never meet: a prefix, a wrong file)."""
    renamed = _renamed(arrays, rename or {}, source)
    pattern = re.compile(select) if select else None
    if pattern is not None:
        params = {name: p for name, p in params.items() if pattern.match(name)}
        renamed = {name: a for name, a in renamed.items() if pattern.match(name)}
    if params and not any(name in renamed for name in params):
        raise MissingParameterError(_nothing_matches(source, model, list(params), list(renamed)))
    report = LoadReport(unexpected=[name for name in renamed if name not in params])
    if report.unexpected and not ignore_extra:
        raise ExtraParameterError(
            f"{source}: parameter {report.unexpected[0]!r} is in the file but not in the model "
            f"{model} (extra: {report.unexpected}; model has: {list(params)}); "
            "pass ignore_extra=True to skip it"
        )
    staged: list[tuple[Parameter, np.ndarray]] = []
    for name, param in params.items():
        if name not in renamed:
            if not allow_missing:
                raise MissingParameterError(
                    f"{source}: parameter {name!r} (expected shape {param.shape}, dtype "
                    f"{param.dtype.name}) is missing from the file, which has: "
                    f"{list(renamed)}; pass allow_missing=True to leave it as is"
                )
            report.missing.append(name)
            continue
        array = np.asarray(renamed[name])
        if not shapes_compatible(param.shape, array.shape):
            if not ignore_mismatch:
                raise ShapeMismatchError.of_parameter(
                    name, f"{param.shape} (0 = not known yet)", array.shape, where=source
                )
            report.mismatched[name] = (param.shape, array.shape)
            continue
        if array.dtype != param.dtype:
            if not cast_dtype:
                raise DtypeMismatchError.of_parameter(
                    name, param.dtype.name, array.dtype.name, where=source,
                    hint="; pass cast_dtype=True to convert",
                )
            array = array.astype(param.dtype)
        staged.append((param, array))
        report.loaded.append(name)
    return staged, report


def _renamed(
    arrays: Mapping[str, np.ndarray], rename: Mapping[str, str], source: str
) -> dict[str, np.ndarray]:
    """File names with the longest matching ``old prefix`` replaced by its new prefix."""
    prefixes = sorted(rename, key=len, reverse=True)
    result: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for name, array in arrays.items():
        old = next((prefix for prefix in prefixes if name.startswith(prefix)), None)
        new = name if old is None else rename[old] + name[len(old):]
        if new in result:
            raise UsageError(f"{source}: rename maps both {origin[new]!r} and {name!r} to {new!r}")
        result[new], origin[new] = array, name
    return result


def _nothing_matches(source: str, model: str, params: list[str], names: list[str]) -> str:
    """Why loading would change nothing, with the prefix that would make the names meet."""
    message = (
        f"{source}: none of the file's {len(names)} names matches a parameter of {model}, so "
        f"nothing would be loaded (file: {names[:3]}{' ...' if len(names) > 3 else ''}; "
        f"model: {params[:3]}{' ...' if len(params) > 3 else ''})"
    )
    for longer, shorter, side in ((names, params, "file's"), (params, names, "model's")):
        prefixes = sorted({a[: -len(b)] for a in longer for b in shorter if a.endswith("." + b)})
        if prefixes:
            listed = " or ".join(repr(p) for p in prefixes[:4])
            return f"{message}; the {side} names match once the prefix {listed} is taken off"
    return message
