"""The benchmark's workloads: MLPs of float32 ``Dense`` layers, built the same way from a seed.

Each workload is a chain of ``Dense`` layers whose widths alternate ``d → 4d → d → …`` (the
shape of a transformer's MLP blocks), so the tensors are a realistic mix: one large weight
matrix and one small bias per layer. The tensor names are the ones ``modelpack.export``
gives a ``Sequential`` (``0.weight``, ``0.bias``, ``1.weight``, …), so the tensor archive and
the model archive hold the same names and bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Workload", "WORKLOADS", "WARMUP", "build_arrays", "build_net", "build_torch"]


@dataclass(frozen=True)
class Workload:
    """``layers`` Dense layers of hidden width ``d``; two tensors (weight, bias) per layer."""

    label: str
    layers: int
    d: int
    # Many small tensors measure per-tensor costs: only tensor archives are timed there (a
    # model of 5,000 layers would measure building layers, not reading files).
    tensors_only: bool = False

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name → shape, in file order."""
        shapes: dict[str, tuple[int, ...]] = {}
        for i in range(self.layers):
            in_units, units = (self.d, 4 * self.d) if i % 2 == 0 else (4 * self.d, self.d)
            shapes[f"{i}.weight"] = (units, in_units)
            shapes[f"{i}.bias"] = (units,)
        return shapes

    @property
    def nbytes(self) -> int:
        """Bytes of float32 weights (the payload every throughput figure is divided by)."""
        return 4 * sum(math.prod(shape) for shape in self.shapes().values())

    @property
    def tensors(self) -> int:
        return 2 * self.layers

    @property
    def small_tensor(self) -> str:
        """The tensor read by the "open + 1 tensor" methods: a bias from the middle of the file."""
        return f"{self.layers // 2}.bias"


def _width(target_bytes: int, layers: int) -> int:
    """Hidden width ``d`` (a multiple of 16) so that ``layers`` weights of 4·d² floats ≈ target."""
    return max(16, round(math.sqrt(target_bytes / (16 * layers)) / 16) * 16)


WORKLOADS: dict[str, Workload] = {
    "1MB": Workload("1 MB", 3, _width(2**20, 3)),  # 6 tensors, d=144: 1.0 MB
    "100MB": Workload("100 MB", 25, _width(100 * 2**20, 25)),  # 50 tensors, d=512: 105 MB
    "1GB": Workload("1 GB", 50, _width(2**30, 50)),  # 100 tensors, d=1152: 1.06 GB
    "200t": Workload("200 tensors", 100, 16, tensors_only=True),  # 200 small tensors: 0.21 MB
    "10kt": Workload("10,000 tensors", 5000, 16, tensors_only=True),  # 10,000 small tensors: 10.6 MB
}

# Run once, untimed, by every RSS child before its baseline, so lazy imports and first-call
# set-up are not charged to the measured call; small enough not to move the allocator's
# mmap threshold for the real tensors.
WARMUP = Workload("warm-up", 2, 16)


def build_arrays(workload: Workload, seed: int) -> dict[str, np.ndarray]:
    """Deterministic weights: uniform on [-0.07, 0.07) (Gluon's default), biases small too."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in workload.shapes().items():
        array = rng.random(shape, dtype=np.float32)  # float32 directly: no float64 temporary
        array -= 0.5
        array *= 0.14
        arrays[name] = array
    return arrays


def build_net(workload: Workload, arrays: dict[str, np.ndarray]) -> Any:
    """A ``modelpack.nn.Sequential`` of ``Dense`` layers holding ``arrays`` (shared, not copied).

    Each layer is initialized and given its array before the next is built, so the
    initializer's throw-away draws never exceed one tensor at a time.
    """
    from modelpack import nn

    net = nn.Sequential()
    for i in range(workload.layers):
        units, in_units = arrays[f"{i}.weight"].shape
        layer = nn.Dense(units, in_units=in_units)
        layer.initialize()
        layer.weight.set_data(arrays[f"{i}.weight"])
        layer.bias.set_data(arrays[f"{i}.bias"])
        net.add(layer)
    return net


def build_torch(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The same weights as torch tensors sharing the numpy memory (``torch.from_numpy``)."""
    import torch

    return {name: torch.from_numpy(array) for name, array in arrays.items()}
