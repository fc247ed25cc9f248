"""The manifest's ``checkpoint`` section (``kind: checkpoint``, spec §10): training state.

Closed models like the rest of the manifest (``schema.py`` embeds ``CheckpointInfo``); the
checkpoint's arrays are tensors of the bundle, named with ``CHECKPOINT_PREFIXES``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "CHECKPOINT_PREFIXES",
    "CheckpointInfo",
    "TrainerState",
    "RandomState",
    "GeneratorState",
    "DataState",
]


class _Closed(BaseModel):
    # (defer_build as ``models.Closed``: the manifest holds these, and a load of a plain
    # archive builds no validator)
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


# Checkpoint tensors that are not the model's: optimiser slots, user arrays, data orders.
# No model tensor name has a ':' (parameters are dotted names, graph constants 'path#constK').
CHECKPOINT_PREFIXES = ("trainer:", "state:", "data:")
_HEX128 = r"^0x[0-9a-f]{1,32}$"


class GeneratorState(_Closed):
    """A numpy generator's exact state (PCG64 family); its 128-bit numbers as hex strings, so
    that every JSON reader keeps them exact."""

    bit_generator: Literal["PCG64", "PCG64DXSM"]
    state: str = Field(pattern=_HEX128)
    inc: str = Field(pattern=_HEX128)
    has_uint32: int = Field(ge=0, le=1)
    uinteger: int = Field(ge=0, lt=2**32)


class RandomState(_Closed):
    """``modelpack.random``: the seed (None if never seeded) and each stream used so far."""

    seed: Annotated[int, Field(ge=0)] | None = None
    streams: dict[str, GeneratorState] = Field(default_factory=dict)


class TrainerState(_Closed):
    """A ``gluon.Trainer``: optimiser name and options, and updates done per parameter; the
    optimiser's arrays are tensors ``trainer:<parameter>:<slot>``."""

    optimizer: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    options: dict[str, float | None]
    update_counts: dict[str, Annotated[int, Field(ge=0)]]


class DataState(_Closed):
    """A ``gluon.data.DataLoader``'s pass in progress: batches served so far; its order of
    examples is the tensor ``data:<index>:order``. Between passes (position 0) that tensor, if
    present, holds a rollover loader's carried examples, which the next pass starts with."""

    position: int = Field(ge=0)


class CheckpointInfo(_Closed):
    """What a checkpoint holds besides the model's tensors."""

    step: int = Field(ge=0, description="The training step the checkpoint was taken at.")
    trainer: TrainerState | None = None
    random: RandomState = Field(default_factory=RandomState)
    rng: dict[str, GeneratorState] = Field(
        default_factory=dict, description="Generators the user passed, by name ('0', '1', ... for a list)."
    )
    data: list[DataState] = Field(default_factory=list)
    state: dict[str, JsonValue] = Field(
        default_factory=dict, description="User values; user arrays are tensors 'state:<key>'."
    )
