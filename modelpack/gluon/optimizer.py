"""The optimisers ``gluon.Trainer`` names: one small class per update rule, MXNet 1.9's numerics.

Each takes its options by MXNet's names (``learning_rate``, ``wd``, ``momentum``, ``beta1``,
``clip_gradient``, ...), holds per-parameter state arrays named by ``slots``, and updates a
weight from its gradient in the weight's dtype. ``g`` below is ``rescale_grad · grad``
clipped to ``±clip_gradient``:

- ``sgd``: ``mom = momentum·mom - lr·(g + wd·w); w += mom`` (no state without momentum)
- ``nag``: ``mom = momentum·mom - lr·(g + wd·w); w += momentum·mom - lr·(g + wd·w)`` (MXNet's
  in-place kernel re-reads the *updated* weight for the decay term of ``mom``; we do not)
- ``adam``: ``m, v`` moving averages of ``g + wd·w`` and its square, bias-corrected to
  ``m̂ = m/(1-β1ᵗ)``, ``v̂ = v/(1-β2ᵗ)``; ``w -= lr·m̂/(√v̂ + ε)``. This is the Adam paper's
  Algorithm 1 and PyTorch's update; MXNet adds ε to √v instead of √v̂ (the same up to ε)
- ``adamw``: Adam on ``g`` with decoupled decay: ``w -= lr·m̂/(√v̂ + ε) + lr·wd·w``
- ``rmsprop``: ``n = (1-γ1)·(g + wd·w)² + γ1·n; w -= lr·(g + wd·w) / √(n + ε)``
- ``adagrad``: ``h += g²; w -= lr·(g / √(h + eps) + wd·w)`` (MXNet 1.9 names its ε ``eps``)
- ``adadelta``: ``a = ρ·a + (1-ρ)·g²; d = √(δ + ε) / √(a + ε) · g; δ = ρ·δ + (1-ρ)·d²;
  w -= d + wd·w`` (no learning rate: MXNet 1.9's AdaDelta ignores it, as Zeiler's does)

``lr_scheduler`` (a ``modelpack.lr_scheduler`` class or any callable of ``num_update``) makes
the learning rate of each update ``lr_scheduler(num_update)``, which the Trainer sets before the
update. As in MXNet 1.9, a ``learning_rate`` given with it replaces the scheduler's
``base_lr``, and so does the one Adam, AdamW and RMSProp pass when none is given (0.001).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ..errors import UsageError

__all__ = ["Optimizer", "OPTIMIZERS", "create"]

State = dict[str, np.ndarray]

# Values per block of an in-place update: its temporaries (256 KB of float32) stay in cache.
# SGD with momentum on a 1024×1024 float32 weight: 1.75 ms a new array per operation, each
# run from memory, against 0.78 ms in blocks of 2^16 (2^14: 0.95, 2^15: 0.78, 2^17: 0.83;
# one process, alternating, the other core busy).
_BLOCK = 1 << 16


class Optimizer:
    """Options (``learning_rate``, ``wd``, ``rescale_grad``, ``clip_gradient`` and the rule's own)
    and one update rule; ``update`` returns the new weight and fills in the new state."""

    name: ClassVar[str]
    slots: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, float | None]] = {}
    _common: ClassVar[dict[str, float | None]] = {"wd": 0.0, "rescale_grad": 1.0, "clip_gradient": None}
    # The options that are decay rates raised to the update count, whose bias correction
    # divides by 1 - rateᵗ: each must lie in [0, 1)
    rates: ClassVar[tuple[str, ...]] = ()
    # Whether ``update_into`` exists: the update written over the weight and state arrays
    in_place: ClassVar[bool] = False
    # Whether MXNet 1.9's class passes its default learning_rate to the base class itself
    # (Adam, RMSProp), so that it replaces a scheduler's base_lr even when the user gives none
    passes_default_lr: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        scheduler = options.pop("lr_scheduler", None)
        known = {**self._common, **self.defaults}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise UsageError(
                f"optimizer {self.name!r} has no option {unknown[0]!r}; "
                f"its options are {', '.join(sorted(known))}"
            )
        self.options: dict[str, float | None] = {}
        for key, default in known.items():
            value = options.get(key, default)
            self.options[key] = None if value is None else self._checked(key, value)
        self.lr_scheduler: Callable[[int], float] | None = None
        if scheduler is not None:
            self._take_scheduler(scheduler, options)

    def _checked(self, key: str, value: Any) -> float:
        """An option as a float: finite (an infinite or NaN one would make every weight NaN, or
        the update raise), and a decay rate in [0, 1) (the bias correction divides by 1 - rateᵗ)."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"optimizer {self.name!r}: option {key}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise UsageError(f"optimizer {self.name!r}: option {key}={number} must be a finite number")
        if key in self.rates and not 0 <= number < 1:
            raise UsageError(f"optimizer {self.name!r}: option {key}={number} is a decay rate, in [0, 1)")
        return number

    def _take_scheduler(self, scheduler: Any, options: dict[str, Any]) -> None:
        """Keep ``scheduler``, and give it ``learning_rate`` as its ``base_lr`` where MXNet does."""
        if not callable(scheduler):
            raise UsageError(
                f"lr_scheduler must be callable (num_update -> learning rate), got {scheduler!r}"
            )
        self.lr_scheduler = scheduler
        if "learning_rate" in options:
            given, explicit = options["learning_rate"], True
        else:
            given, explicit = (self.defaults["learning_rate"] if self.passes_default_lr else None), False
        if given is None:
            return
        if not hasattr(scheduler, "base_lr"):
            if explicit:  # (MXNet fails on the missing attribute)
                raise UsageError(
                    f"learning_rate={given} cannot be given to lr_scheduler {scheduler!r}, which has no "
                    "base_lr; leave learning_rate out: the scheduler gives the rate"
                )
            return
        if scheduler.base_lr != given:
            warnings.warn(
                f"learning_rate={given} of optimizer {self.name!r} replaces the lr_scheduler's base_lr="
                f"{scheduler.base_lr}, as in MXNet"
                + ("" if explicit else f" ({self.name}'s default, passed even when none is given)"),
                UserWarning,
                stacklevel=5,  # the line that built the Trainer
            )
            scheduler.base_lr = float(given)

    def rate_at(self, num_update: int) -> float:
        """The learning rate of the update that makes ``num_update`` updates: the scheduler's,
        or the ``learning_rate`` option."""
        if self.lr_scheduler is None:
            return self.learning_rate
        value = self.lr_scheduler(num_update)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UsageError(
                f"lr_scheduler({num_update}) returned {value!r}; a scheduler returns the learning rate, "
                "a number"
            ) from None

    @property
    def learning_rate(self) -> float:
        return self.number("learning_rate")

    def number(self, key: str) -> float:
        """A numeric option (an unset ``clip_gradient`` reads as 0)."""
        value = self.options[key]
        return 0.0 if value is None else value

    def scaled(self, lr_mult: float, wd_mult: float) -> Optimizer:
        """This optimiser for a parameter with Gluon's ``lr_mult``/``wd_mult`` (d2l's
        ``collect_params('.*bias').setattr('wd_mult', 0)``): itself when both are 1."""
        if lr_mult == 1 and wd_mult == 1:
            return self
        scaled = copy.copy(self)
        scaled.options = {**self.options, "learning_rate": self.learning_rate * lr_mult,
                          "wd": self.number("wd") * wd_mult}
        return scaled

    def slots_for(self) -> tuple[str, ...]:
        """The state arrays this configuration keeps (SGD keeps none without momentum)."""
        return self.slots

    def gradient(self, grad: np.ndarray) -> np.ndarray:
        """``rescale_grad · grad``, clipped to ``±clip_gradient`` when set."""
        g = grad * grad.dtype.type(self.number("rescale_grad"))
        clip = self.options["clip_gradient"]
        return g if clip is None else np.clip(g, -clip, clip)

    def update(self, weight: np.ndarray, grad: np.ndarray, state: State, count: int) -> np.ndarray:
        """The new weight after this parameter's ``count``-th update (counts start at 1)."""
        raise NotImplementedError

    def update_into(self, weight: np.ndarray, grad: np.ndarray, state: State, count: int) -> None:
        """``update`` written over ``weight`` (C-contiguous) and the state: the same bits
        without a new array per operation (only where ``in_place``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.options.items())})"


class SGD(Optimizer):
    name = "sgd"
    slots = ("momentum",)
    defaults = {"learning_rate": 0.01, "momentum": 0.0}
    in_place = True

    def slots_for(self) -> tuple[str, ...]:
        return self.slots if self.options["momentum"] else ()

    def update(self, weight: np.ndarray, grad: np.ndarray, state: State, count: int) -> np.ndarray:
        new = np.array(weight, order="C")
        state.update({slot: np.ascontiguousarray(array) for slot, array in state.items()})
        self.update_into(new, grad, state, count)
        return new

    def update_into(self, weight: np.ndarray, grad: np.ndarray, state: State, count: int) -> None:
        _check_writable_flat(weight, state)
        lr, wd, momentum = self.learning_rate, self.number("wd"), self.number("momentum")
        scale, clip = grad.dtype.type(self.number("rescale_grad")), self.options["clip_gradient"]
        mom = state["momentum"].reshape(-1) if momentum else None
        w, g = weight.reshape(-1), grad.reshape(-1)
        step = np.empty(min(w.size, _BLOCK), w.dtype)
        decay = np.empty_like(step) if wd else None
        # Each operation of ``update``'s formula, in its order (so the same bits), on a block
        # small enough that its temporaries stay in cache.
        for start in range(0, w.size, _BLOCK):
            b = slice(start, start + _BLOCK)
            t = step[: g[b].size]
            np.multiply(g[b], scale, out=t)
            if clip is not None:
                np.clip(t, -clip, clip, out=t)
            if decay is not None:
                np.add(t, np.multiply(w[b], wd, out=decay[: t.size]), out=t)
            np.multiply(t, lr, out=t)
            if mom is None:
                np.subtract(w[b], t, out=w[b])
            else:
                np.multiply(mom[b], momentum, out=mom[b])
                np.subtract(mom[b], t, out=mom[b])
                np.add(w[b], mom[b], out=w[b])


def _check_writable_flat(weight: np.ndarray, state: State) -> None:
    """An in-place update writes through flat views: a non-contiguous array would give a copy,
    and the update would be lost."""
    for name, array in {"weight": weight, **state}.items():
        if not (array.flags.c_contiguous and array.flags.writeable):
            raise UsageError(f"an in-place update needs a C-contiguous, writable {name} array")


class NAG(Optimizer):
    name = "nag"
    slots = ("momentum",)
    defaults = {"learning_rate": 0.01, "momentum": 0.0}

    def update(self, weight: np.ndarray, grad: np.ndarray, state: State, count: int) -> np.ndarray:
        lr, wd, momentum = self.learning_rate, self.number("wd"), self.number("momentum")
        step = self.gradient(grad)
        if wd:
            step = step + wd * weight
        state["momentum"] = momentum * state["momentum"] - lr * step
        return weight + momentum * state["momentum"] - lr * step


class Adam(Optimizer):
    name = "adam"
    slots = ("mean", "var")
    defaults = {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    rates = ("beta1", "beta2")
    decoupled = False
    passes_default_lr = True

    def update(self, weight: np.ndarray, grad: np.ndarray, state: State, count: int) -> np.ndarray:
        lr, wd = self.learning_rate, self.number("wd")
        beta1, beta2 = self.number("beta1"), self.number("beta2")
        step = grad * grad.dtype.type(self.number("rescale_grad"))
        if wd and not self.decoupled:
            step = step + wd * weight  # MXNet's Adam clips after adding the decay
        clip = self.options["clip_gradient"]
        if clip is not None:
            step = np.clip(step, -clip, clip)
        state["mean"] = beta1 * state["mean"] + (1 - beta1) * step
        state["var"] = beta2 * state["var"] + (1 - beta2) * np.square(step)
        # ε is added to the bias-corrected √v̂, as in the Adam paper's Algorithm 1 and PyTorch;
        # MXNet adds it to √v (its lr·√(1-β2ᵗ)/(1-β1ᵗ) form), a larger ε in the first steps.
        denominator = np.sqrt(state["var"]) / math.sqrt(1 - beta2**count) + self.number("epsilon")
        new = weight - (lr / (1 - beta1**count)) * (state["mean"] / denominator)
        return new - (lr * wd) * weight if wd and self.decoupled else new


class AdamW(Adam):
    name = "adamw"
    defaults = {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    decoupled = True


class RMSProp(Optimizer):
    name = "rmsprop"
    slots = ("n",)
    defaults = {"learning_rate": 0.001, "gamma1": 0.9, "epsilon": 1e-8}
    passes_default_lr = True

    def update(self, weight: np.ndarray, grad: np.ndarray, state: State, count: int) -> np.ndarray:
        lr, wd = self.learning_rate, self.number("wd")
        gamma1, eps = self.number("gamma1"), self.number("epsilon")
        step = self.gradient(grad)
        if wd:
            step = step + wd * weight
        state["n"] = (1 - gamma1) * np.square(step) + gamma1 * state["n"]
        return weight - lr * step / np.sqrt(state["n"] + eps)


class AdaGrad(Optimizer):
    name = "adagrad"
    slots = ("history",)
    defaults = {"learning_rate": 0.01, "eps": 1e-7}

    def update(self, weight: np.ndarray, grad: np.ndarray, state: State, count: int) -> np.ndarray:
        g = self.gradient(grad)
        state["history"] = state["history"] + np.square(g)
        div = g / np.sqrt(state["history"] + self.number("eps"))
        return weight - self.learning_rate * (div + self.number("wd") * weight)


class AdaDelta(Optimizer):
    name = "adadelta"
    slots = ("acc_g", "acc_delta")
    # learning_rate is kept for Trainer.learning_rate; the rule does not use it (MXNet 1.9's)
    defaults = {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-5}

    def update(self, weight: np.ndarray, grad: np.ndarray, state: State, count: int) -> np.ndarray:
        rho, eps = self.number("rho"), self.number("epsilon")
        g = self.gradient(grad)
        state["acc_g"] = rho * state["acc_g"] + (1 - rho) * g * g
        delta = np.sqrt(state["acc_delta"] + eps) / np.sqrt(state["acc_g"] + eps) * g
        state["acc_delta"] = rho * state["acc_delta"] + (1 - rho) * delta * delta
        return weight - (delta + self.number("wd") * weight)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, NAG, Adam, AdamW, RMSProp, AdaGrad, AdaDelta)
}


def create(name: str, options: dict[str, Any]) -> Optimizer:
    """The optimiser called ``name`` with ``options``; unknown names list the known ones."""
    cls = OPTIMIZERS.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise UsageError(f"unknown optimizer {name!r}; known optimizers: {', '.join(OPTIMIZERS)}")
    return cls(**options)
