"""Write tests/reference/mxnet_data_loader.json: what MXNet 1.9.1's ``gluon.data`` gives, for
``tests/test_gluon_data.py`` and ``tests/test_gluon_vision_datasets.py`` to compare with.

    python3.11 -m venv /tmp/mxref && /tmp/mxref/bin/pip install mxnet==1.9.1 "numpy<1.24"
    /tmp/mxref/bin/python scripts/make_mxnet_data_refs.py

Everything runs in numpy mode (``npx.set_np()``, as d2l does). A value is recorded by
``describe``: its container (``list``/``tuple``), or for an array its kind (``ndarray``: an
MXNet array, modelpack's ``NDArray``; ``numpy``: a plain numpy array), dtype, shape, values
(up to 64 of them, else the first 16 in C order as ``head``) and the float64 sum of all of
them; for a scalar its type and value.

- ``loaders``: per case, a ``DataLoader`` over ``ArrayDataset(list(range(n)))`` (so a batch's
  values are its example indices), unshuffled, run for ``len(passes)`` passes; per pass
  ``len(loader)`` before it and after its first batch, the batches, and where the loop was
  left (``stop``: after that many batches, else to its end); ``len_after`` at the end.
- ``batchify``: per case, the examples (a Python expression over ``onp``, numpy, and ``nd``,
  which makes an MXNet array of a numpy array with its dtype) served in one batch by a
  ``DataLoader`` over ``SimpleDataset(examples)``, and that batch.
- ``array_datasets``: per case, the fields of an ``ArrayDataset`` (an expression as above, a
  list of fields), some of its items, and the first batch of a ``DataLoader`` over it.
- ``vision``: MNIST, FashionMNIST, CIFAR10 and CIFAR100 over small generated files (the
  generators are ``tests/reference_cases.py``'s, which the test calls too): an item, a slice,
  the same with ``transform=`` and ``transform_first``, and a ``DataLoader``'s first batch.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import gluon, npx
from mxnet.gluon.data.vision import datasets as vision_datasets
from mxnet_reference_files import MXNET_VERSION

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reference_cases import vision_files  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "reference" / "mxnet_data_loader.json"

# (n, batch_size, last_batch, passes, {pass: batches after which the loop is left})
LOADERS: dict[str, tuple[int, int, str, int, dict[int, int]]] = {
    "rollover_10_4": (10, 4, "rollover", 4, {}),
    "rollover_10_3": (10, 3, "rollover", 5, {}),
    "rollover_7_3": (7, 3, "rollover", 4, {}),
    "rollover_12_4_exact": (12, 4, "rollover", 3, {}),
    "rollover_3_4_smaller_than_a_batch": (3, 4, "rollover", 4, {}),
    "rollover_1_3": (1, 3, "rollover", 4, {}),
    "rollover_11_5": (11, 5, "rollover", 5, {}),
    "rollover_9_2": (9, 2, "rollover", 3, {}),
    "rollover_13_5_left_midway": (13, 5, "rollover", 4, {1: 1}),
    "rollover_10_3_left_after_last_batch": (10, 3, "rollover", 3, {0: 3}),
    "keep_10_4": (10, 4, "keep", 2, {}),
    "discard_10_4": (10, 4, "discard", 2, {}),
}

BATCHIFY: dict[str, str] = {
    "python_ints": "[1, 2, 3]",
    "python_floats": "[1.5, 2.0, -0.25]",
    "python_bools": "[True, False]",
    "numpy_float32_scalars": "[onp.float32(1.5), onp.float32(2)]",
    "numpy_int32_scalars": "[onp.int32(1), onp.int32(2)]",
    "numpy_float64_arrays": "[onp.ones(2), onp.zeros(2)]",
    "numpy_uint8_arrays": "[onp.arange(4, dtype='uint8').reshape(2, 2), onp.ones((2, 2), 'uint8')]",
    "lists_of_ints": "[[1, 2], [3, 4], [5, 6]]",
    "mxnet_float32_arrays": "[nd(onp.ones(3, 'float32')), nd(onp.arange(3, dtype='float32'))]",
    "mxnet_0d_int32": "[nd(onp.array(3, 'int32')), nd(onp.array(4, 'int32'))]",
    "tuples_of_int_and_float": "[(1, 2.5), (3, 4.5)]",
    "tuples_of_arrays_and_int": "[(onp.ones(2, 'float32'), 0), (onp.zeros(2, 'float32'), 1)]",
    # d2l natural-language-inference-bert: ((tokens, segments, valid_len), label)
    "nested_tuples_nli_bert": (
        "[((nd(onp.arange(4, dtype='float32')), nd(onp.zeros(4, 'float32')), nd(onp.array(3.0, 'float32'))),"
        " nd(onp.array(1, 'int32'))),"
        " ((nd(onp.ones(4, 'float32')), nd(onp.ones(4, 'float32')), nd(onp.array(2.0, 'float32'))),"
        " nd(onp.array(0, 'int32')))]"
    ),
    "nested_tuples_three_deep": "[((1, (2.5, 3)), 4), ((5, (6.5, 7)), 8)]",
}

# fields, items to record, batch size of the loader
ARRAY_DATASETS: dict[str, tuple[str, list[int], int]] = {
    # d2l word2vec: centers (ints), contexts and negatives (lists of different lengths)
    "ragged_lists": ("[[1, 2, 3], [[4], [5, 6], [7, 8, 9]], [[1, 2], [3], [4, 5, 6, 7]]]", [0, 1, 2], 0),
    "mxnet_1d_and_2d": ("[nd(onp.arange(4, dtype='float32')), nd(onp.ones((4, 2), 'float32'))]", [1], 3),
    "numpy_fields": ("[onp.arange(5, dtype='int32'), onp.arange(10, dtype='float64').reshape(5, 2)]", [2], 2),
    "python_lists": ("[[1, 2, 3], [0.5, 1.5, 2.5]]", [1], 2),
    "mixed_int_float_list": ("[[1, 2.5, 3, 4]]", [0, 1], 2),
    "one_mxnet_2d_field": ("[nd(onp.arange(6, dtype='float32').reshape(3, 2))]", [2], 2),
    "one_python_list": ("[[7, 8, 9]]", [1], 2),
    "list_of_tuples": ("[[(1, 2.0), (3, 4.0), (5, 6.0)]]", [0], 2),
}


def describe(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [describe(item) for item in value]}
    if isinstance(value, (mx.np.ndarray, mx.nd.NDArray, onp.ndarray)):
        kind = "numpy" if isinstance(value, onp.ndarray) else "ndarray"
        array = value if isinstance(value, onp.ndarray) else value.asnumpy()
        return {"array": kind, "dtype": array.dtype.name, "shape": list(array.shape),
                "values": array.tolist() if array.size <= 64 else None,
                "head": None if array.size <= 64 else array.ravel()[:16].tolist(),
                "sum": float(array.astype(onp.float64).sum())}
    if isinstance(value, onp.generic):
        return {"scalar": f"numpy.{type(value).__name__}", "value": value.item()}
    return {"scalar": type(value).__name__, "value": value}


def nd(array: onp.ndarray) -> Any:
    return mx.np.array(array, dtype=array.dtype)


def build(expression: str) -> Any:
    return eval(expression, {"onp": onp, "nd": nd})  # noqa: S307 (this file's own expressions)


def loader_run(n: int, batch_size: int, last_batch: str, passes: int,
               stops: dict[int, int]) -> dict[str, Any]:
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(list(range(n))), batch_size=batch_size,
                                   last_batch=last_batch)
    runs = []
    for number in range(passes):
        before, during, batches = len(loader), None, []
        for batch in loader:
            batches.append(batch.asnumpy().tolist())
            if len(batches) == 1:
                during = len(loader)
            if stops.get(number) == len(batches):
                break
        runs.append({"len_before": before, "len_during": during, "batches": batches,
                     "stop": stops.get(number)})
    return {"n": n, "batch_size": batch_size, "last_batch": last_batch, "passes": runs,
            "len_after": len(loader)}


def batchify_case(expression: str) -> dict[str, Any]:
    examples = build(expression)
    batch = next(iter(gluon.data.DataLoader(gluon.data.SimpleDataset(examples), batch_size=len(examples))))
    return {"examples": expression, "batch": describe(batch)}


def array_dataset_case(fields: str, items: list[int], batch_size: int) -> dict[str, Any]:
    dataset = gluon.data.ArrayDataset(*build(fields))
    case = {"fields": fields, "items": {str(i): describe(dataset[i]) for i in items},
            "batch_size": batch_size, "batch": None}
    if batch_size:
        case["batch"] = describe(next(iter(gluon.data.DataLoader(dataset, batch_size=batch_size))))
    return case


def float_image(data: Any, label: Any) -> Any:
    return data.astype("float32") / 255, label


def vision_cases(root: Path) -> dict[str, Any]:
    # The files are generated, not MXNet's: read them as they are (no download, no SHA-1).
    vision_datasets.download = lambda url, path, sha1_hash: os.path.join(path, url.split("/")[-1])
    vision_datasets.check_sha1 = lambda filename, sha1_hash: True
    vision_files(root)
    makers = {
        "MNIST": lambda **kw: gluon.data.vision.MNIST(root=str(root / "mnist"), **kw),
        "FashionMNIST": lambda **kw: gluon.data.vision.FashionMNIST(root=str(root / "fashion-mnist"), **kw),
        "CIFAR10": lambda **kw: gluon.data.vision.CIFAR10(root=str(root / "cifar10"), **kw),
        "CIFAR100_fine": lambda **kw: gluon.data.vision.CIFAR100(root=str(root / "cifar100"), fine_label=True,
                                                                 **kw),
    }
    cases = {}
    for name, make in makers.items():
        for train in (True, False):
            plain, transformed = make(train=train), make(train=train, transform=float_image)
            firsts = plain.transform_first(lambda data: data.astype("float32"))
            cases[f"{name}_{'train' if train else 'test'}"] = {
                "len": len(plain),
                "item": describe(plain[2]),
                "slice": describe(plain[:4]),
                "transform_item": describe(transformed[1]),
                "transform_slice": describe(transformed[:4]),
                "transform_first_item": describe(firsts[2]),
                "loader_batch": describe(next(iter(gluon.data.DataLoader(plain, batch_size=3)))),
            }
    return cases


def main() -> int:
    if mx.__version__ != MXNET_VERSION:
        print(f"expected mxnet {MXNET_VERSION}, found {mx.__version__}", file=sys.stderr)
        return 1
    npx.set_np()
    with tempfile.TemporaryDirectory() as folder:
        vision = vision_cases(Path(folder))
    out = {
        "mxnet": mx.__version__,
        "numpy": onp.__version__,
        "loaders": {case: loader_run(*spec) for case, spec in LOADERS.items()},
        "batchify": {case: batchify_case(expression) for case, expression in BATCHIFY.items()},
        "array_datasets": {case: array_dataset_case(*spec) for case, spec in ARRAY_DATASETS.items()},
        "vision": vision,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} with MXNet {mx.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
