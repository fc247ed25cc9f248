"""``gluon.Trainer``: applies an optimiser to a set of parameters, with Gluon's API.

>>> trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 1e-3})  # doctest: +SKIP
>>> trainer.step(batch_size)                                                       # doctest: +SKIP

``step(batch_size)`` scales gradients by ``1/batch_size`` (a loss summed over the batch
becomes a mean) and updates every parameter whose ``grad_req`` is not ``"null"``. A parameter
whose gradient no ``backward`` refreshed since the last step is refused (stale), as in MXNet,
unless ``ignore_stale_grad=True`` skips it. A parameter's first update gives it a new array,
which later updates overwrite where the optimiser has ``update_into`` (SGD), as MXNet updates
in place: an array read with ``data()`` sees the later steps. The optimiser's state
saves to a checkpoint archive (``save_states``/``load_states``; never pickle).

With ``{"lr_scheduler": scheduler}`` the learning rate of each update is
``scheduler(num_update)``, ``num_update`` being MXNet's: the largest update count of any
parameter once this one's is counted. A scheduler is code and is never saved: a restored
trainer keeps its own, and the restored counts make it continue where the run stopped.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import AutogradError, CheckpointError, UsageError
from ..format.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from ..format.schema import TrainerState
from ..io.paths import PathOrFile, describe
from ..nn.parameter import Parameter, shapes_compatible
from .optimizer import Optimizer, create

__all__ = ["Trainer"]


class Trainer:
    """Updates ``params`` (a ``collect_params()`` dict, or a list of Parameters) with an optimiser
    named ``"sgd"``, ``"nag"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"adagrad"`` or ``"adadelta"`` and
    its options."""

    def __init__(
        self,
        params: Mapping[str, Parameter] | Sequence[Parameter],
        optimizer: str = "sgd",
        optimizer_params: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(params, Mapping):
            self._params = dict(params)
        else:
            self._params = {param.structured_name: param for param in params}
        for name, param in self._params.items():
            if not isinstance(param, Parameter):
                raise TypeError(f"Trainer params must be Parameters; {name!r} is {type(param).__name__}")
        options = dict(optimizer_params or {})
        self._optimizer: Optimizer = create(optimizer, options)
        self._scale = self._optimizer.options["rescale_grad"]
        self._states: dict[str, dict[str, np.ndarray]] = {}
        self._counts: dict[str, int] = {}
        self._num_update = 0  # max(self._counts.values()): what a scheduler is asked about
        # The weight arrays this trainer made (by its first update of each parameter): only
        # these are updated in place, as MXNet updates its parameters' arrays, never an array
        # the user set or a file's read-only one. Weak, so an array the parameter dropped
        # (``set_data``) is not kept alive, and its id never mistaken for a new array's.
        self._owned: dict[str, weakref.ref[np.ndarray]] = {}

    # -- Gluon's API ---------------------------------------------------------------------------
    @property
    def optimizer(self) -> Optimizer:
        return self._optimizer

    @property
    def learning_rate(self) -> float:
        """The current learning rate: the scheduler's at the updates done so far, if any."""
        return self._optimizer.rate_at(self._num_update)

    def set_learning_rate(self, lr: float) -> None:
        """Change the learning rate for the following steps (not with a scheduler: MXNet refuses too)."""
        if self._optimizer.lr_scheduler is not None:
            raise UsageError(
                f"this trainer's learning rate comes from its lr_scheduler {self._optimizer.lr_scheduler!r}; "
                "set_learning_rate works only for a trainer built without one"
            )
        self._optimizer.options["learning_rate"] = float(lr)

    def step(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """One update of every trained parameter from its gradient divided by ``batch_size``."""
        self.update(batch_size, ignore_stale_grad)

    def allreduce_grads(self) -> None:
        """Nothing to reduce: one process, one device (kept for Gluon scripts)."""

    def update(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """As ``step`` (Gluon separates the two for multi-device reduction)."""
        self._optimizer.options["rescale_grad"] = (1.0 if self._scale is None else self._scale) / batch_size
        trained = [(name, p) for name, p in self._params.items() if p.grad_req != "null"]
        stale = [name for name, p in trained if not p.grad_fresh]
        if stale and not ignore_stale_grad:
            raise AutogradError(
                f"the gradient of parameter {stale[0]!r} was not computed by backward since the last "
                f"step (stale: {stale}); if the model uses only some parameters on purpose, call "
                "step(..., ignore_stale_grad=True) to skip them"
            )
        scheduled = -1  # the num_update whose scheduled rate is in the options (one call each)
        for name, param in trained:
            if not param.grad_fresh:
                continue
            count = self._counts[name] = self._counts.get(name, 0) + 1
            self._num_update = max(self._num_update, count)
            if self._optimizer.lr_scheduler is not None and scheduled != self._num_update:
                rate = self._optimizer.rate_at(self._num_update)
                self._optimizer.options["learning_rate"] = rate
                scheduled = self._num_update
            optimizer = self._optimizer.scaled(param.lr_mult, param.wd_mult)
            weight = param.array()
            state = self._states.get(name)
            if state is None:
                slots = optimizer.slots_for()
                state = self._states[name] = {slot: np.zeros(weight.shape, weight.dtype) for slot in slots}
            owned = self._owned.get(name)
            if optimizer.in_place and owned is not None and owned() is weight:
                optimizer.update_into(weight, param.grad(), state, count)
            else:
                new = optimizer.update(weight, param.grad(), state, count)
                param.set_data(new)
                self._owned[name] = weakref.ref(new)
            param.grad_fresh = False

    # -- state -----------------------------------------------------------------------------------
    def save_states(self, path: PathOrFile) -> None:
        """Write the optimiser's state (options, update counts, arrays) to a checkpoint archive."""
        state, arrays = self.export_state()
        write_checkpoint(path, Checkpoint(step=max(self._counts.values(), default=0), trainer=state,
                                          trainer_arrays=arrays))

    def load_states(self, path: PathOrFile) -> None:
        """Read what ``save_states`` (or a ``Checkpointer``) wrote; refused if it does not fit."""
        checkpoint = read_checkpoint(path)
        if checkpoint.trainer is None:
            raise CheckpointError(f"{describe(path)} holds no trainer state")
        self.import_state(checkpoint.trainer, checkpoint.trainer_arrays, source=describe(path))

    def export_state(self) -> tuple[TrainerState, dict[str, dict[str, np.ndarray]]]:
        """The optimiser's options and counts, and its arrays by parameter and slot."""
        options = {k: v for k, v in self._optimizer.options.items() if k != "rescale_grad"}
        options["rescale_grad"] = self._scale
        state = TrainerState(
            optimizer=self._optimizer.name, options=options, update_counts=dict(self._counts)
        )
        return state, {name: dict(slots) for name, slots in self._states.items()}

    def import_state(
        self, state: TrainerState, arrays: Mapping[str, Mapping[str, np.ndarray]], *, source: str = "<state>"
    ) -> None:
        """Take over a saved state after checking all of it (nothing changes if a check fails)."""
        self.check_state(state, arrays, source=source)
        scheduler = self._optimizer.lr_scheduler  # code, never in a file: this trainer's stays
        self._optimizer = create(state.optimizer, dict(state.options))
        self._optimizer.lr_scheduler = scheduler
        self._scale = self._optimizer.options["rescale_grad"]
        self._counts = dict(state.update_counts)
        self._num_update = max(self._counts.values(), default=0)
        self._states = {
            # (C order: an in-place update writes through flat views)
            name: {slot: np.array(array, order="C") for slot, array in slots.items()}
            for name, slots in arrays.items()
        }

    def check_state(
        self, state: TrainerState, arrays: Mapping[str, Mapping[str, np.ndarray]], *, source: str = "<state>"
    ) -> None:
        """Refuse a saved state this trainer cannot take: another optimiser, other parameters,
        arrays of another shape or dtype."""
        if state.optimizer != self._optimizer.name:
            raise CheckpointError(
                f"{source}: the trainer state is for optimizer {state.optimizer!r}, this trainer uses "
                f"{self._optimizer.name!r}"
            )
        try:
            slots = set(create(state.optimizer, dict(state.options)).slots_for())  # also checks the options
        except UsageError as exc:  # (the file's options, not the caller's)
            raise CheckpointError(f"{source}: the trainer state's options are refused: {exc}") from None
        for name in [*state.update_counts, *arrays]:
            if name not in self._params:
                raise CheckpointError(
                    f"{source}: the trainer state has parameter {name!r}, which this trainer does not "
                    f"update (it has: {list(self._params)})"
                )
        for name, saved in arrays.items():
            param = self._params[name]
            if set(saved) != slots:
                raise CheckpointError(
                    f"{source}: parameter {name!r} has optimizer state {sorted(saved)}, but "
                    f"{state.optimizer} with these options keeps {sorted(slots)}"
                )
            for slot, array in saved.items():
                if not shapes_compatible(param.shape, array.shape) or array.dtype != param.dtype:
                    raise CheckpointError(
                        f"{source}: optimizer state {slot!r} of parameter {name!r} is {array.dtype.name} "
                        f"{array.shape}, the parameter is {param.dtype.name} {param.shape}"
                    )

    def __repr__(self) -> str:
        return f"Trainer({self._optimizer!r}, {len(self._params)} parameters)"
