"""What the MXNet reference scripts (``scripts/make_mxnet_*_refs.py``) and the tests that read
their output share, declared once: the generated dataset files, the metric functions and
operator names a case names. Plain Python and numpy only: it runs in MXNet's environment too
(numpy < 1.24), where the scripts put this folder on ``sys.path``.
"""

from __future__ import annotations

import gzip
import operator
import struct
from pathlib import Path
from typing import Any

import numpy as np

# -- gluon.data.vision: small generated files (make_mxnet_data_refs.py, test_gluon_vision_datasets.py)

CIFAR10_FILES = [(f"data_batch_{i}.bin", 2) for i in range(1, 6)] + [("test_batch.bin", 3)]
CIFAR100_FILES = [("train.bin", 6), ("test.bin", 3)]


def mnist_files(folder: Path, seed: int) -> None:
    """Both splits' idx files: 12 training, 5 test 28x28 images."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", 12), ("t10k", 5)):
        offset = seed + (prefix == "t10k") * 5
        images = ((np.arange(n * 28 * 28) * 7 + offset) % 251).astype(np.uint8)
        labels = ((np.arange(n) * 3 + offset) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">4B3I", 0, 0, 8, 3, n, 28, 28) + images.tobytes()))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">4BI", 0, 0, 8, 1, n) + labels.tobytes()))


def cifar_files(folder: Path, names: list[tuple[str, int]], label_bytes: int) -> None:
    """CIFAR binary batches of ``count`` records each; label column ``c`` is below 10 ** (c + 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, (name, count) in enumerate(names):
        rows = ((np.arange(count * (label_bytes + 3072)) * 13 + number) % 251).astype(np.uint8)
        rows = rows.reshape(count, label_bytes + 3072)
        for column in range(label_bytes):
            rows[:, column] = (np.arange(count) * (column + 3) + number) % (10 ** (column + 1))
        (folder / name).write_bytes(rows.tobytes())


def vision_files(root: Path) -> None:
    """``root``'s mnist, fashion-mnist, cifar10 and cifar100 folders, as the references read them."""
    mnist_files(root / "mnist", 1)
    mnist_files(root / "fashion-mnist", 2)
    cifar_files(root / "cifar10", CIFAR10_FILES, 1)
    cifar_files(root / "cifar100", CIFAR100_FILES, 2)


# -- metrics and legacy operators (make_mxnet_metric_refs.py, test_metric.py, test_ndarray.py) ----

def mean_abs(label: np.ndarray, pred: np.ndarray) -> float:
    return float(np.abs(label.ravel() - pred.ravel()).mean())


def sum_count(label: np.ndarray, pred: np.ndarray) -> tuple[float, int]:
    return float(np.abs(label.ravel() - pred.ravel()).sum()), label.size


# A CustomMetric case's ``feval`` by name.
FEVALS = {"mean_abs": mean_abs, "sum_count": sum_count}


def make_metric(metric: Any, spec: dict[str, Any]) -> Any:
    """The metric a case describes, from ``metric`` (MXNet's module or modelpack's)."""
    kwargs = dict(spec["kwargs"])
    if "feval" in kwargs:
        kwargs["feval"] = FEVALS[kwargs["feval"]]
    if spec["class"] == "create":
        return metric.create(**kwargs)
    return getattr(metric, spec["class"])(**kwargs)


# An operator case's ``op:<name>`` call by name.
OPS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "mod": operator.mod, "pow": operator.pow, "eq": operator.eq, "ne": operator.ne, "gt": operator.gt,
    "ge": operator.ge, "lt": operator.lt, "le": operator.le, "neg": operator.neg, "abs": abs,
}
