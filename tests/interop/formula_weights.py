"""Weights and inputs computed from a formula, the same in any numpy (integer arithmetic only):
``scripts/make_mxnet_model_refs.py`` gives them to MXNet's model zoo networks, and the tests
recompute them instead of committing hundreds of megabytes of parameters.

Scales keep activations of order 1 through deep networks: a weight has variance 1/fan-in
(``sqrt(3 / fan_in)`` times a value in [-1, 1)); BatchNorm's gamma and running variance lie
near 1, its beta and running mean near 0. Runs in the MXNet environment too (numpy < 1.24).
"""

from __future__ import annotations

import math

import numpy as np

_MODULUS = 65521  # a prime: the values cycle with a period no layer's shape lines up with


def uniform(shape: tuple[int, ...], key: int) -> np.ndarray:
    """Values in [-1, 1) for array number ``key``, exact (uint64 arithmetic), float32."""
    i = np.arange(math.prod(shape), dtype=np.uint64)
    raw = (i * np.uint64(2654435761) + np.uint64(97531 * key + 12345)) % np.uint64(_MODULUS)
    return (raw.astype(np.float64) / _MODULUS * 2.0 - 1.0).astype(np.float32).reshape(shape)


def parameter(name: str, shape: tuple[int, ...], key: int) -> np.ndarray:
    """A parameter's values by the role its name ends with (MXNet Gluon's names)."""
    u = uniform(shape, key)
    if name.endswith("running_var") or name.endswith("moving_var"):
        return (1.0 + 0.2 * u).astype(np.float32)
    if name.endswith("gamma"):
        return (1.0 + 0.1 * u).astype(np.float32)
    if name.endswith(("beta", "bias", "running_mean", "moving_mean")):
        return (0.1 * u).astype(np.float32)
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    return (u * np.float32(math.sqrt(3.0 / fan_in))).astype(np.float32)


def parameters(shapes: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Every parameter of a network, keyed as given, numbered in sorted name order."""
    return {name: parameter(name, tuple(shapes[name]), k) for k, name in enumerate(sorted(shapes))}
