"""Checkpoint archives (``kind: checkpoint``): a model's tensors plus the state of training.

A checkpoint is an ordinary archive (``container``, atomic and durable like every write):
the model's tensors under their parameter names, the optimiser's arrays as
``trainer:<parameter>:<slot>``, user arrays as ``state:<key>``, a data loader's order of
examples as ``data:<index>:order``; everything else (step, optimiser options, generator
states, user values) is the manifest's ``checkpoint`` section (``schema.CheckpointInfo``).
This module only turns a ``Checkpoint`` into a file and back, checking every tensor's
SHA-256 as it reads; ``modelpack.Checkpointer`` decides what goes in and where files live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from .. import __version__
from ..errors import FormatError, UsageError
from ..io import npz
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.paths import PathOrFile
from . import writer
from .archive import Archive
from .schema import (
    FORMAT_VERSION,
    CheckpointInfo,
    DataState,
    GeneratorState,
    LayerNode,
    Manifest,
    RandomState,
    TensorInfo,
    TrainerState,
    check_tensor_name,
    describe_errors,
)

__all__ = ["Checkpoint", "write_checkpoint", "read_checkpoint"]

PRODUCER = f"modelpack {__version__}"


@dataclass
class Checkpoint:
    """Everything a checkpoint file holds, as plain Python and numpy values."""

    step: int
    model: dict[str, np.ndarray] = field(default_factory=dict)
    architecture: LayerNode | None = None
    ties: dict[str, str] | None = None  # shared parameters, as a model archive records them
    trainer: TrainerState | None = None
    trainer_arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # parameter → slot → array
    random: RandomState = field(default_factory=RandomState)
    rng: dict[str, GeneratorState] = field(default_factory=dict)
    data: list[tuple[int, np.ndarray | None]] = field(default_factory=list)  # (position, order)
    state: dict[str, Any] = field(default_factory=dict)  # user values: arrays and JSON values


def write_checkpoint(
    path: PathOrFile, checkpoint: Checkpoint, *, metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``checkpoint`` as one archive, atomically (the old file, or the new one, never a mix)."""
    arrays: dict[str, np.ndarray] = dict(checkpoint.model)
    for param, slots in checkpoint.trainer_arrays.items():
        for slot, array in slots.items():
            arrays[f"trainer:{param}:{slot}"] = array
    for number, (_, order) in enumerate(checkpoint.data):
        if order is not None:
            arrays[f"data:{number}:order"] = order
    values: dict[str, Any] = {}
    for key, value in checkpoint.state.items():
        if not isinstance(key, str):
            raise UsageError(f"checkpoint state keys must be str, found {key!r}")
        if isinstance(value, (np.ndarray, np.generic)):
            arrays[f"state:{key}"] = np.asarray(value)
        else:
            values[key] = value
    for name, array in arrays.items():
        try:
            check_tensor_name(name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        npz.check_storable(name, array)
    index = {name: TensorInfo(dtype=a.dtype.name, shape=list(a.shape)) for name, a in arrays.items()}
    try:
        info = CheckpointInfo(
            step=checkpoint.step,
            trainer=checkpoint.trainer,
            random=checkpoint.random,
            rng=checkpoint.rng,
            data=[DataState(position=position) for position, _ in checkpoint.data],
            state=values,
        )
        manifest = Manifest(
            format="modelpack",
            format_version=FORMAT_VERSION,
            producer=PRODUCER,
            kind="checkpoint",
            architecture=checkpoint.architecture,
            ties=checkpoint.ties if checkpoint.architecture is not None else None,
            checkpoint=info,
            weights=index,
            metadata=dict(metadata or {}),
        )
    except ValidationError as exc:
        raise UsageError(f"cannot write the checkpoint: {describe_errors(exc)}") from None
    writer.write_archive(path, manifest, arrays)


def read_checkpoint(path: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    """Read a checkpoint, checking every tensor's SHA-256; any damage is a ``ModelpackError``."""
    with Archive(path, limits=limits, integrity="sha256") as archive:
        info = archive.manifest.checkpoint
        if info is None:
            raise FormatError(f"{archive.name} is not a checkpoint: its kind is {archive.kind!r}")
        arrays = archive.read_all()
        checkpoint = Checkpoint(
            step=info.step,
            architecture=archive.manifest.architecture,
            ties=archive.manifest.ties,
            trainer=info.trainer,
            random=info.random,
            rng=dict(info.rng),
            data=[(entry.position, None) for entry in info.data],
            state=dict(info.state),
        )
        for name, array in arrays.items():
            _place(checkpoint, name, array, archive.name)
    return checkpoint


def _place(checkpoint: Checkpoint, name: str, array: np.ndarray, source: str) -> None:
    """Put one tensor where its name says it belongs."""
    part, _, rest = name.partition(":")
    if not rest:
        checkpoint.model[name] = array
    elif part == "state":
        checkpoint.state[rest] = array
    elif part == "trainer" and ":" in rest:
        param, _, slot = rest.rpartition(":")
        checkpoint.trainer_arrays.setdefault(param, {})[slot] = array
    elif part == "data" and rest.endswith(":order") and rest[: -len(":order")].isdigit():
        index = int(rest[: -len(":order")])
        if index >= len(checkpoint.data):
            raise FormatError(f"{source}: tensor {name!r} names data loader {index}, but the checkpoint has "
                              f"{len(checkpoint.data)}")
        checkpoint.data[index] = (checkpoint.data[index][0], array)
    else:
        raise FormatError(f"{source}: checkpoint tensor {name!r} is not 'trainer:<parameter>:<slot>', "
                          "'state:<key>' or 'data:<index>:order'")
