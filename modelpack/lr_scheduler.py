"""MXNet's ``lr_scheduler``: the learning rate as a function of the number of updates so far.

>>> from modelpack import gluon, lr_scheduler
>>> scheduler = lr_scheduler.CosineScheduler(max_update=20, base_lr=0.3, final_lr=0.01)
>>> trainer = gluon.Trainer(net.collect_params(), "sgd", {"lr_scheduler": scheduler})  # doctest: +SKIP

``scheduler(num_update)`` gives MXNet 1.9.1's float64 value, bit for bit, for the calls a
Trainer makes (``num_update`` 1, 2, 3, ...) and for any increasing sequence of calls. Unlike
MXNet's schedulers, whose state advances as they are called (``FactorScheduler`` multiplies
its ``base_lr`` in place), each value here depends on ``num_update`` alone: a run resumed from
a checkpoint, where the Trainer's update counts are restored, continues exactly, and calling
a scheduler to plot it does not change what it later gives a Trainer. Any callable taking
``num_update`` is a scheduler too (d2l's ``SquareRootScheduler``).

Warm-up (every class): for ``num_update < warmup_steps`` the rate rises in equal steps from
``warmup_begin_lr`` towards ``base_lr`` (``'linear'``) or stays at ``warmup_begin_lr``
(``'constant'``). After it:

- ``FactorScheduler``: ``base_lr`` times ``factor`` once per ``step`` updates (the first time
  at ``num_update = step + 1``), never below ``stop_factor_lr``; counted from update 0, so
  decays due during the warm-up all happen when it ends
- ``MultiFactorScheduler``: ``base_lr`` times ``factor`` once for each ``step[i] < num_update``
- ``PolyScheduler``: ``final_lr + (base_lr - final_lr)·(1 - t/T)^pwr``, ``t`` the updates after
  the warm-up and ``T = max_update - warmup_steps``; ``final_lr`` after ``max_update``
- ``CosineScheduler``: ``final_lr + (base_lr - final_lr)·(1 + cos(π·t/T))/2``, the same ``t``
  and ``T``; ``final_lr`` after ``max_update``
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from .errors import UsageError

__all__ = ["LRScheduler", "FactorScheduler", "MultiFactorScheduler", "PolyScheduler", "CosineScheduler"]

WARMUP_MODES = ("linear", "constant")


def _number(name: str, value: Any) -> float:
    """A finite real argument as a float (bools are refused: ``True`` is no learning rate)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _whole(name: str, value: Any, *, least: int) -> int:
    """An integer argument of at least ``least`` (numpy integers allowed, bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise UsageError(f"{name} must be an int >= {least}, got {value!r}")
    return int(value)


def _num_update(value: Any) -> int:
    """The update count a scheduler is asked about: a whole number >= 0 (3.0 counts as 3)."""
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return _whole("num_update", value, least=0)


class LRScheduler:
    """The base of MXNet's schedulers: ``base_lr`` and the warm-up; a subclass defines
    ``__call__(num_update)`` and calls ``get_warmup_lr`` below ``warmup_steps``."""

    def __init__(self, base_lr: float = 0.01, warmup_steps: int = 0, warmup_begin_lr: float = 0,
                 warmup_mode: str = "linear") -> None:
        self.base_lr = _number("base_lr", base_lr)
        self.warmup_steps = _whole("warmup_steps", warmup_steps, least=0)
        self.warmup_begin_lr = _number("warmup_begin_lr", warmup_begin_lr)
        # The warm-up ends at the base_lr given here, even if an optimiser's learning_rate
        # later replaces base_lr (as in MXNet)
        self.warmup_final_lr = self.base_lr
        if self.warmup_begin_lr > self.warmup_final_lr:
            raise UsageError(
                f"warmup_begin_lr ({warmup_begin_lr}) must not exceed base_lr ({base_lr}): the warm-up "
                "rises from warmup_begin_lr to base_lr"
            )
        if warmup_mode not in WARMUP_MODES:
            modes = ", ".join(map(repr, WARMUP_MODES))
            raise UsageError(f"warmup_mode must be one of {modes}, got {warmup_mode!r}")
        self.warmup_mode = warmup_mode

    def get_warmup_lr(self, num_update: int) -> float:
        """The warm-up's rate at ``num_update`` (< ``warmup_steps``)."""
        n = _num_update(num_update)
        if n >= self.warmup_steps:
            raise UsageError(f"num_update {n} is past the warm-up ({self.warmup_steps} steps)")
        if self.warmup_mode == "constant":
            return self.warmup_begin_lr
        # MXNet's order of operations, for its bits: (final - begin)·n / steps, then + begin
        increase = (self.warmup_final_lr - self.warmup_begin_lr) * float(n) / float(self.warmup_steps)
        return self.warmup_begin_lr + increase

    def __call__(self, num_update: int) -> float:
        """The learning rate for the update that makes ``num_update`` updates so far."""
        raise NotImplementedError(f"{type(self).__name__} must define __call__(num_update)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_lr={self.base_lr}, warmup_steps={self.warmup_steps})"


def _factor(factor: Any) -> float:
    value = _number("factor", factor)
    if value > 1.0:
        raise UsageError(f"factor must be <= 1 so that the learning rate decreases, got {factor!r}")
    return value


class FactorScheduler(LRScheduler):
    """``base_lr`` multiplied by ``factor`` every ``step`` updates, down to ``stop_factor_lr``
    (d2l: ``FactorScheduler(step=1, factor=0.9, stop_factor_lr=1e-2, base_lr=2)``)."""

    def __init__(self, step: int, factor: float = 1, stop_factor_lr: float = 1e-8, base_lr: float = 0.01,
                 warmup_steps: int = 0, warmup_begin_lr: float = 0, warmup_mode: str = "linear") -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.step = _whole("step", step, least=1)
        self.factor = _factor(factor)
        self.stop_factor_lr = _number("stop_factor_lr", stop_factor_lr)
        # (settings, decays, rate) of the last call: the next larger num_update continues
        # from it. Only a cache: the rate is the same with or without it.
        self._last: tuple[tuple[float, float, float, int], int, float] | None = None

    def decays(self, num_update: int) -> int:
        """How many times MXNet has multiplied by ``factor`` at ``num_update``: it does so while
        ``num_update > count + step``, adding ``step`` to ``count`` (from 0) each time."""
        return max(0, (num_update - 1) // self.step)

    def __call__(self, num_update: int) -> float:
        n = _num_update(num_update)
        if n < self.warmup_steps:
            return self.get_warmup_lr(n)
        target = self.decays(n)
        settings = (self.base_lr, self.factor, self.stop_factor_lr, self.step)
        done, lr = 0, self.base_lr
        if self._last is not None and self._last[0] == settings and self._last[1] <= target:
            _, done, lr = self._last
        # One multiplication at a time, as MXNet (factor**k rounds differently); once the
        # rate stops changing (at stop_factor_lr, or 0) it never changes again.
        while done < target:
            following = lr * self.factor
            if following < self.stop_factor_lr:
                following = self.stop_factor_lr
            done += 1
            if following == lr:
                done = target
            lr = following
        self._last = (settings, done, lr)
        return lr

    def __repr__(self) -> str:
        return (f"FactorScheduler(step={self.step}, factor={self.factor}, "
                f"stop_factor_lr={self.stop_factor_lr}, base_lr={self.base_lr}, "
                f"warmup_steps={self.warmup_steps})")


class MultiFactorScheduler(LRScheduler):
    """``base_lr`` multiplied by ``factor`` after each update count in ``step``
    (d2l: ``MultiFactorScheduler(step=[15, 30], factor=0.5, base_lr=0.5)``)."""

    def __init__(self, step: Sequence[int], factor: float = 1, base_lr: float = 0.01, warmup_steps: int = 0,
                 warmup_begin_lr: float = 0, warmup_mode: str = "linear") -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if not isinstance(step, (list, tuple)) or not step:
            raise UsageError(f"step must be a non-empty list of update counts, got {step!r}")
        steps = [_whole(f"step[{i}]", s, least=1) for i, s in enumerate(step)]
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                raise UsageError(f"step must increase: step[{i}] = {steps[i]} follows {steps[i - 1]}")
        self.step = steps
        self.factor = _factor(factor)

    def __call__(self, num_update: int) -> float:
        n = _num_update(num_update)
        if n < self.warmup_steps:
            return self.get_warmup_lr(n)
        lr = self.base_lr
        for boundary in self.step:
            if n <= boundary:
                break
            lr *= self.factor
        return lr

    def __repr__(self) -> str:
        return f"MultiFactorScheduler(step={self.step}, factor={self.factor}, base_lr={self.base_lr})"


class _Decay(LRScheduler):
    """A decay from ``base_lr`` to ``final_lr`` over the updates from ``warmup_steps`` to
    ``max_update``, then ``final_lr``'s value (where MXNet's scheduler stays after being called
    at ``max_update``)."""

    def __init__(self, max_update: int, base_lr: float, final_lr: float, warmup_steps: int,
                 warmup_begin_lr: float, warmup_mode: str) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.max_update = _whole("max_update", max_update, least=1)
        if self.max_update <= self.warmup_steps:
            # MXNet divides by max_update - warmup_steps: zero, or a decay that never runs
            raise UsageError(
                f"max_update ({max_update}) must be greater than warmup_steps ({warmup_steps}): the decay "
                "runs from the end of the warm-up to max_update"
            )
        self.final_lr = _number("final_lr", final_lr)
        # The decay starts from the base_lr given here (MXNet's base_lr_orig): an optimiser's
        # learning_rate replacing base_lr does not change it, as in MXNet.
        self.base_lr_orig = self.base_lr
        self.max_steps = self.max_update - self.warmup_steps

    def __call__(self, num_update: int) -> float:
        n = _num_update(num_update)
        if n < self.warmup_steps:
            return self.get_warmup_lr(n)
        return self.decay(min(n, self.max_update) - self.warmup_steps)

    def decay(self, t: int) -> float:
        """The rate ``t`` updates after the warm-up (0 <= t <= max_steps)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(max_update={self.max_update}, base_lr={self.base_lr_orig}, "
                f"final_lr={self.final_lr}, warmup_steps={self.warmup_steps})")


class PolyScheduler(_Decay):
    """A polynomial decay of power ``pwr`` from ``base_lr`` to ``final_lr`` at ``max_update``."""

    def __init__(self, max_update: int, base_lr: float = 0.01, pwr: float = 2, final_lr: float = 0,
                 warmup_steps: int = 0, warmup_begin_lr: float = 0, warmup_mode: str = "linear") -> None:
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.power = _number("pwr", pwr)
        if self.power < 0:
            raise UsageError(f"pwr must be >= 0 (a decay, not a growth), got {pwr!r}")

    def decay(self, t: int) -> float:
        # MXNet's expression, in its order
        left = 1 - float(t) / float(self.max_steps)
        return self.final_lr + (self.base_lr_orig - self.final_lr) * pow(left, self.power)


class CosineScheduler(_Decay):
    """Half a cosine from ``base_lr`` down to ``final_lr`` at ``max_update``
    (d2l: ``CosineScheduler(max_update=20, base_lr=0.3, final_lr=0.01)``)."""

    def __init__(self, max_update: int, base_lr: float = 0.01, final_lr: float = 0, warmup_steps: int = 0,
                 warmup_begin_lr: float = 0, warmup_mode: str = "linear") -> None:
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)

    def decay(self, t: int) -> float:
        # MXNet's expression, in its order
        cosine = math.cos(math.pi * t / self.max_steps)
        return self.final_lr + (self.base_lr_orig - self.final_lr) * (1 + cosine) / 2
