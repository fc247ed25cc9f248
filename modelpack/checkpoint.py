"""``modelpack.Checkpointer``: checkpoints of a training run that survive a power cut.

>>> modelpack.random.seed(0)                                           # doctest: +SKIP
>>> ckpt = modelpack.Checkpointer("runs/mlp", keep_last=3)             # doctest: +SKIP
>>> start = ckpt.restore(net, trainer=trainer, data=loader)            # doctest: +SKIP
>>> ckpt.save(step, net, trainer=trainer, data=loader, state={"epoch": epoch})  # doctest: +SKIP

A checkpoint is one archive of kind ``checkpoint`` (``format.checkpoint``) holding the
model, the trainer's optimiser state, the step, every stream of ``modelpack.random``
(initialisation, dropout, data shuffling), the generators passed as ``rng``, the pass in
progress of each loader passed as ``data``, and user state (arrays and JSON values).

Files are ``<folder>/ckpt-<step>.mpk``. Each save is atomic and durable (``atomic_writer``:
written beside, fsynced, renamed, folder fsynced), and only then are old checkpoints beyond
``keep_last`` removed, so the folder always holds a valid checkpoint, even if the process is
killed mid-save. ``restore`` loads the newest checkpoint that passes every check (SHA-256 of
each tensor included); a damaged newer one is skipped with a warning naming it, and renamed
to ``<name>.damaged`` so that it never shadows a good one again. A checkpoint that reads fine
but does not fit the model or trainer is an error, not damage: nothing is changed then.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import random
from .errors import CheckpointError, ModelpackError, UnsupportedBlockError, UsageError
from .format import architecture
from .format.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .format.schema import GeneratorState, RandomState
from .nn.block import Block
from .nn.ties import find_ties

if TYPE_CHECKING:
    from .gluon.data import DataLoader
    from .gluon.trainer import Trainer

__all__ = ["Checkpointer", "CheckpointWarning"]

_NAME = re.compile(r"^ckpt-([0-9]{1,20})\.mpk$")
_CONSTANT = re.compile(r"#const[0-9]+$")  # graph constants: part of the architecture, not restored

Generators = np.random.Generator | Sequence[np.random.Generator] | Mapping[str, np.random.Generator]


class CheckpointWarning(UserWarning):
    """A checkpoint file was skipped because it is damaged (the message names it and why)."""


class Checkpointer:
    """Save and restore the checkpoints of one run in ``folder``, keeping the newest ``keep_last``
    (``None`` keeps all)."""

    def __init__(self, folder: str | os.PathLike[str], *, keep_last: int | None = 3) -> None:
        positive = isinstance(keep_last, int) and not isinstance(keep_last, bool) and keep_last >= 1
        if keep_last is not None and not positive:
            raise UsageError(f"keep_last must be a positive int or None, got {keep_last!r}")
        self.folder = Path(folder)
        self.keep_last = keep_last
        self.folder.mkdir(parents=True, exist_ok=True)
        self._state: dict[str, Any] = {}

    @property
    def state(self) -> dict[str, Any]:
        """The user state of the last ``save`` or ``restore`` (empty before either)."""
        return self._state

    def checkpoints(self) -> list[Path]:
        """The checkpoint files in the folder, oldest step first."""
        matches = ((_NAME.match(entry.name), entry) for entry in self.folder.iterdir())
        found = [(int(match.group(1)), entry) for match, entry in matches if match]
        return [path for _, path in sorted(found)]

    def path_for(self, step: int) -> Path:
        """Where the checkpoint of ``step`` is written."""
        return self.folder / f"ckpt-{step:010d}.mpk"

    # -- save ----------------------------------------------------------------------------------
    def save(
        self,
        step: int,
        net: Block,
        *,
        trainer: Trainer | None = None,
        rng: Generators | None = None,
        data: DataLoader | Sequence[DataLoader] | None = None,
        state: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Path:
        """Write the checkpoint of ``step`` atomically and durably, then drop old ones."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise UsageError(f"step must be a non-negative int, got {step!r}")
        constants: dict[str, np.ndarray] = {}
        try:
            tree = architecture.describe(net, constants=constants)
        except UnsupportedBlockError:  # a custom Block: its parameters are saved, by name
            tree, constants = None, {}
        model = {name: param.array() for name, param in net.collect_params().items()}
        model.update(constants)
        trainer_state, trainer_arrays = trainer.export_state() if trainer is not None else (None, {})
        checkpoint = Checkpoint(
            step=int(step),
            model=model,
            architecture=tree,
            ties=find_ties(net) or None,
            trainer=trainer_state,
            trainer_arrays=trainer_arrays,
            random=RandomState.model_validate(random.get_state()),
            rng={name: GeneratorState(**random.generator_state(g, f"rng[{name}]"))
                 for name, g in _generators(rng).items()},
            data=[loader.export_state() for loader in _loaders(data)],
            state=dict(state or {}),
        )
        path = self.path_for(int(step))
        write_checkpoint(path, checkpoint, metadata=metadata)
        self._state = dict(state or {})
        self._rotate(keep=path)
        return path

    def _rotate(self, *, keep: Path) -> None:
        if self.keep_last is None:
            return
        existing = self.checkpoints()
        for old in existing[: max(0, len(existing) - self.keep_last)]:
            if old != keep:
                old.unlink(missing_ok=True)

    # -- restore -------------------------------------------------------------------------------
    def restore(
        self,
        net: Block,
        *,
        trainer: Trainer | None = None,
        rng: Generators | None = None,
        data: DataLoader | Sequence[DataLoader] | None = None,
    ) -> int | None:
        """Load the newest valid checkpoint into ``net`` (and trainer, generators, loaders,
        ``modelpack.random``); its step, or None when the folder has no valid checkpoint."""
        for path in reversed(self.checkpoints()):
            try:
                checkpoint = read_checkpoint(path)
            except ModelpackError as exc:
                self._quarantine(path, exc)
                continue
            self._apply(checkpoint, str(path), net, trainer, _generators(rng), _loaders(data))
            return checkpoint.step
        return None

    def _quarantine(self, path: Path, exc: Exception) -> None:
        aside = path.with_name(path.name + ".damaged")
        try:
            path.replace(aside)
            where = f"renamed to {aside.name}"
        except OSError as error:
            where = f"left in place ({error})"
        message = f"{path}: skipped a damaged checkpoint ({exc}); {where}"
        warnings.warn(message, CheckpointWarning, stacklevel=3)

    def _apply(
        self,
        checkpoint: Checkpoint,
        source: str,
        net: Block,
        trainer: Trainer | None,
        generators: dict[str, np.random.Generator],
        loaders: list[DataLoader],
    ) -> None:
        """Check that every part fits, then restore all of them (or raise, changing nothing)."""
        if trainer is not None:
            if checkpoint.trainer is None:
                raise CheckpointError(f"{source}: the checkpoint has no trainer state for the trainer given")
            trainer.check_state(checkpoint.trainer, checkpoint.trainer_arrays, source=source)
        if sorted(generators) != sorted(checkpoint.rng):
            raise CheckpointError(
                f"{source}: the checkpoint holds generators {sorted(checkpoint.rng)}, but restore was "
                f"given {sorted(generators)}"
            )
        for name, generator in generators.items():
            kind = generator.bit_generator.state.get("bit_generator")
            if kind != checkpoint.rng[name].bit_generator:
                raise CheckpointError(
                    f"{source}: generator {name!r} was saved as {checkpoint.rng[name].bit_generator}, the "
                    f"one given is {kind}"
                )
        if len(loaders) != len(checkpoint.data):
            raise CheckpointError(
                f"{source}: the checkpoint holds {len(checkpoint.data)} data loaders, restore was given "
                f"{len(loaders)}"
            )
        for loader, (position, order) in zip(loaders, checkpoint.data, strict=True):
            loader.check_state(position, order, source=source)
        params = {name: array for name, array in checkpoint.model.items() if not _CONSTANT.search(name)}
        net.set_parameters(params, source=source)  # checks all, then sets all
        if trainer is not None and checkpoint.trainer is not None:
            trainer.import_state(checkpoint.trainer, checkpoint.trainer_arrays, source=source)
        random.set_state(checkpoint.random.model_dump())
        for name, generator in generators.items():
            random.set_generator_state(generator, checkpoint.rng[name].model_dump(), f"rng[{name}]")
        for loader, (position, order) in zip(loaders, checkpoint.data, strict=True):
            loader.import_state(position, order, source=source)
        self._state = dict(checkpoint.state)


def _generators(rng: Generators | None) -> dict[str, np.random.Generator]:
    if rng is None:
        return {}
    if isinstance(rng, np.random.Generator):
        return {"0": rng}
    if isinstance(rng, Mapping):
        return {str(name): g for name, g in rng.items()}
    return {str(i): g for i, g in enumerate(rng)}


def _loaders(data: DataLoader | Sequence[DataLoader] | None) -> list[DataLoader]:
    if data is None:
        return []
    if isinstance(data, Sequence):
        return list(data)
    return [data]
