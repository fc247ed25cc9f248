"""Write tests/reference/mxnet_lr_schedulers.json: what MXNet 1.9.1's ``lr_scheduler`` classes
return, and the learning rates its ``gluon.Trainer`` uses with one, for
``tests/test_lr_scheduler.py`` to compare with exactly.

    python3.11 -m venv /tmp/mxref && /tmp/mxref/bin/pip install mxnet==1.9.1 "numpy<1.24"
    /tmp/mxref/bin/python scripts/make_mxnet_lr_refs.py

``schedulers``: per case, the class, its arguments and its values for ``num_update`` 0..80,
called in increasing order on one fresh instance (MXNet's schedulers keep state, so the order
is part of the reference). ``trainers``: per case, a Trainer over a (3, 4) Dense layer run for
``steps`` steps from the stored weights and input; ``calls`` are the ``num_update`` values
MXNet called the scheduler with, ``learning_rates`` ``trainer.learning_rate`` after each step,
``weight`` the weight at the end. The arguments are stored with the values, so the test
builds exactly what was run here. JSON keeps every float64 exactly (``repr`` round-trips).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import autograd, gluon, lr_scheduler
from mxnet_reference_files import MXNET_VERSION

OUT = Path(__file__).resolve().parents[1] / "tests" / "reference" / "mxnet_lr_schedulers.json"
LAST_UPDATE = 80

SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    # d2l's chapter_optimization/lr-scheduler.md
    "factor_d2l": ("FactorScheduler", {"step": 1, "factor": 0.9, "stop_factor_lr": 1e-2, "base_lr": 2}),
    "multifactor_d2l": ("MultiFactorScheduler", {"step": [15, 30], "factor": 0.5, "base_lr": 0.5}),
    "cosine_d2l": ("CosineScheduler", {"max_update": 20, "base_lr": 0.3, "final_lr": 0.01}),
    "cosine_d2l_warmup": ("CosineScheduler", {"max_update": 20, "warmup_steps": 5, "base_lr": 0.3,
                                              "final_lr": 0.01}),
    # defaults, warmup modes, stop_factor_lr reached mid-run, steps inside the warmup
    "factor_defaults": ("FactorScheduler", {"step": 10}),
    "factor_step3_warmup": ("FactorScheduler", {"step": 3, "factor": 0.5, "base_lr": 0.8, "warmup_steps": 5,
                                                "warmup_begin_lr": 0.1}),
    "factor_warmup_constant": ("FactorScheduler", {"step": 4, "factor": 0.7, "stop_factor_lr": 0.05,
                                                   "base_lr": 1.0, "warmup_steps": 6, "warmup_begin_lr": 0.2,
                                                   "warmup_mode": "constant"}),
    "factor_stop_zero": ("FactorScheduler", {"step": 2, "factor": 0.3, "stop_factor_lr": 0.0,
                                             "base_lr": 0.1}),
    "multifactor_warmup": ("MultiFactorScheduler", {"step": [3, 7, 8, 20], "factor": 0.1, "base_lr": 0.3,
                                                    "warmup_steps": 4, "warmup_begin_lr": 0.01}),
    "poly_defaults": ("PolyScheduler", {"max_update": 30, "base_lr": 0.5}),
    "poly_warmup": ("PolyScheduler", {"max_update": 40, "base_lr": 0.2, "pwr": 3, "final_lr": 0.01,
                                      "warmup_steps": 10, "warmup_begin_lr": 0.05}),
    "poly_constant_warmup": ("PolyScheduler", {"max_update": 25, "base_lr": 1.0, "pwr": 1, "final_lr": 0.1,
                                               "warmup_steps": 5, "warmup_begin_lr": 0.3,
                                               "warmup_mode": "constant"}),
    "poly_sqrt": ("PolyScheduler", {"max_update": 17, "base_lr": 0.7, "pwr": 0.5, "final_lr": 0.001}),
    "cosine_defaults": ("CosineScheduler", {"max_update": 33}),
    "cosine_constant_warmup": ("CosineScheduler", {"max_update": 50, "base_lr": 0.05, "final_lr": 0.0005,
                                                   "warmup_steps": 7, "warmup_begin_lr": 0.001,
                                                   "warmup_mode": "constant"}),
}

# optimizer, its options (the scheduler is added), the scheduler, steps
TRAINERS: dict[str, tuple[str, dict[str, Any], tuple[str, dict[str, Any]], int]] = {
    "sgd_momentum_factor": ("sgd", {"momentum": 0.9},
                            ("FactorScheduler", {"step": 2, "factor": 0.5, "base_lr": 0.1}), 7),
    # learning_rate given with a scheduler: it replaces the scheduler's base_lr
    "sgd_learning_rate_overrides": ("sgd", {"learning_rate": 0.3},
                                    ("MultiFactorScheduler", {"step": [2, 4], "factor": 0.5,
                                                              "base_lr": 0.1}), 6),
    # Adam passes its default learning_rate (0.001) itself: it replaces base_lr too
    "adam_default_overrides": ("adam", {},
                               ("FactorScheduler", {"step": 1, "factor": 0.5, "base_lr": 0.1}), 4),
    "sgd_cosine_warmup": ("sgd", {"wd": 0.01},
                          ("CosineScheduler", {"max_update": 5, "base_lr": 0.2, "final_lr": 0.02,
                                               "warmup_steps": 2, "warmup_begin_lr": 0.05}), 7),
}


def scheduler_values(cls: str, kwargs: dict[str, Any]) -> list[float]:
    scheduler = getattr(lr_scheduler, cls)(**kwargs)
    return [float(scheduler(n)) for n in range(LAST_UPDATE + 1)]


class Recording:
    """The scheduler as MXNet's optimiser sees it, noting each ``num_update`` it is asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []

    @property
    def base_lr(self) -> float:
        return self.inner.base_lr

    @base_lr.setter
    def base_lr(self, value: float) -> None:
        self.inner.base_lr = value

    def __call__(self, num_update: int) -> float:
        self.calls.append(int(num_update))
        return self.inner(num_update)


def trainer_run(optimizer: str, options: dict[str, Any], scheduler: tuple[str, dict[str, Any]], steps: int,
                weight: onp.ndarray, x: onp.ndarray) -> dict[str, Any]:
    net = gluon.nn.Dense(3, in_units=4, use_bias=False)
    net.initialize()
    net.weight.set_data(mx.nd.array(weight))
    recording = Recording(getattr(lr_scheduler, scheduler[0])(**scheduler[1]))
    trainer = gluon.Trainer(net.collect_params(), optimizer, {**options, "lr_scheduler": recording})
    rates = []
    for _ in range(steps):
        with autograd.record():
            loss = (net(mx.nd.array(x)) * net(mx.nd.array(x))).sum()
        loss.backward()
        trainer.step(x.shape[0])
        rates.append(float(trainer.learning_rate))
    return {"optimizer": optimizer, "options": options,
            "scheduler": {"class": scheduler[0], "kwargs": scheduler[1]}, "steps": steps,
            "calls": recording.calls, "learning_rates": rates,
            "weight": net.weight.data().asnumpy().astype(float).tolist()}


def main() -> int:
    if mx.__version__ != MXNET_VERSION:
        print(f"expected mxnet {MXNET_VERSION}, found {mx.__version__}", file=sys.stderr)
        return 1
    rng = onp.random.default_rng(0)
    weight = rng.normal(size=(3, 4)).astype(onp.float32)
    x = rng.normal(size=(2, 4)).astype(onp.float32)
    out = {
        "mxnet": mx.__version__,
        "last_update": LAST_UPDATE,
        "schedulers": {case: {"class": cls, "kwargs": kwargs, "values": scheduler_values(cls, kwargs)}
                       for case, (cls, kwargs) in SCHEDULERS.items()},
        "weight": weight.astype(float).tolist(),
        "x": x.astype(float).tolist(),
        "trainers": {case: trainer_run(*spec, weight, x) for case, spec in TRAINERS.items()},
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} with MXNet {mx.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
