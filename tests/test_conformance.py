"""The Python reader against spec/conformance/: every valid vector read exactly, every invalid
one refused with the error class and at the stage the index names (spec/FORMAT.md §9, §10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelpack
from modelpack import nn
from modelpack.errors import ModelpackError
from modelpack.io.npy import SUPPORTED_DTYPES
from modelpack.nn.ops import known_ops
from modelpack.nn.registry import known_layers

ROOT = Path(__file__).resolve().parents[1] / "spec" / "conformance"
INDEX = json.loads((ROOT / "index.json").read_text())
assert nn  # registers the layer types known_layers() lists

# Vectors whose verdict needs a reader change that spec/FORMAT.md now requires; each is
# expected to fail until that change lands, and fails the run if it starts passing.
PENDING: set[str] = set()
# FORMAT.md §3.5 is NumPy 2's promotion (NEP 50: Python scalars are weak), which is why
# pyproject.toml requires numpy>=2: numpy 1.x promotes Python scalars by value.


def _marks(vector: dict[str, Any]) -> Any:
    if vector["name"] in PENDING:
        return pytest.param(vector, id=vector["name"], marks=pytest.mark.xfail(strict=True, reason="reader change"))
    return pytest.param(vector, id=vector["name"])


def _limits(vector: dict[str, Any]) -> modelpack.Limits:
    return modelpack.Limits(**vector.get("limits", {}))


def _same(got: Any, want: np.ndarray, tolerance: dict[str, float] | None, where: str) -> None:
    got = np.asarray(got)
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape}, expected {want.shape}"
    if want.dtype.kind not in "fc":
        assert np.array_equal(got, want), where
        return
    rtol, atol = INDEX["tolerances"].get(want.dtype.name, INDEX["tolerances"]["float64"])
    if tolerance is not None:
        rtol, atol = tolerance["rtol"], tolerance["atol"]
    assert np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True), where
    assert np.array_equal(np.isinf(got), np.isinf(want)) and np.array_equal(got[np.isinf(got)], want[np.isinf(want)]), where


@pytest.mark.parametrize("vector", [_marks(v) for v in INDEX["valid"]])
def test_valid_vector(vector: dict[str, Any]) -> None:
    path = ROOT / vector["archive"]
    with modelpack.open(path, integrity="sha256") as opened:
        assert opened.kind == vector["kind"]
        assert opened.manifest.format_version == vector["format_version"]
        assert opened.metadata == vector["metadata"]
        assert opened.manifest.layout == vector.get("layout")
        assert list(opened.tensors) == [t["name"] for t in vector["tensors"]]
        for tensor in vector["tensors"]:
            got, want = opened.get_tensor(tensor["name"]), np.load(ROOT / tensor["file"])
            assert got.dtype == want.dtype and got.shape == want.shape, tensor["name"]
            assert got.tobytes() == want.tobytes(), tensor["name"]  # bit for bit, NaN payloads too
    report = modelpack.verify(path)
    assert report.ok, report.problems
    if vector["kind"] != "model":
        return
    net = modelpack.load(path, integrity="sha256")
    for number, run in enumerate(vector["runs"]):
        inputs = [np.load(ROOT / p) for p in run["inputs"]]
        if "error" in run:
            with pytest.raises(ModelpackError) as caught:
                net(*inputs)
            assert type(caught.value).__name__ == run["error"], f"run {number}: {caught.value!r}"
            continue
        result = net(*inputs)
        outputs = run["outputs"]
        if outputs["kind"] == "dict":
            assert isinstance(result, dict) and list(result) == outputs["keys"]
            values = list(result.values())
        elif outputs["kind"] == "single":
            values = [result]
        else:
            assert isinstance(result, tuple if outputs["kind"] == "tuple" else list)
            values = list(result)
        assert len(values) == len(outputs["values"])
        for value, file in zip(values, outputs["values"], strict=True):
            _same(value, np.load(ROOT / file), run.get("tolerance"), f"run {number}: {file}")


def _refusal(call: Any) -> ModelpackError | None:
    try:
        call()
    except ModelpackError as exc:
        return exc
    return None


@pytest.mark.parametrize("vector", [_marks(v) for v in INDEX["invalid"]])
def test_invalid_vector(vector: dict[str, Any]) -> None:
    path, limits, stage = ROOT / vector["archive"], _limits(vector), vector["stage"]
    inspected = _refusal(lambda: modelpack.inspect(path, limits=limits))
    loaded = _refusal(lambda: modelpack.load(path, limits=limits))
    checked = _refusal(lambda: modelpack.load(path, limits=limits, integrity="sha256"))
    expected = {
        "open": (True, True, True),
        "load": (False, True, True),
        "sha256": (False, False, True),
        "verify": (False, False, False),
    }[stage]
    for exc, refused, what in zip((inspected, loaded, checked), expected, ("inspect", "load", "load(sha256)"),
                                  strict=True):
        if not refused:
            assert exc is None, f"{what} refused a vector only a later stage refuses: {exc!r}"
            continue
        assert exc is not None, f"{what} accepted it"
        assert type(exc).__name__ == vector["error"], f"{what}: {exc!r}"
        assert str(path) in str(exc), f"{what}: the message does not name the file: {exc}"
    report = modelpack.verify(path, limits=limits)
    assert not report.ok


def _read_each_lazily(path: Path, integrity: str) -> None:
    with modelpack.open(path, integrity=integrity) as opened:
        for name in opened.tensors:
            opened.get_tensor(name)


@pytest.mark.parametrize("vector", [_marks(v) for v in INDEX["invalid"] if "lazy" in v])
def test_invalid_vector_read_lazily(vector: dict[str, Any]) -> None:
    """A lazy open (FORMAT.md §7.3) that reads each tensor by its recorded offset refuses too,
    with the index's ``lazy`` class, before returning a tensor the directory does not hold."""
    path = ROOT / vector["archive"]
    for integrity in ("crc32", "sha256"):
        with pytest.raises(ModelpackError) as caught:
            _read_each_lazily(path, integrity)
        assert type(caught.value).__name__ == vector["lazy"], (integrity, repr(caught.value))
        assert str(path) in str(caught.value)


def test_vectors_cover_every_layer_op_and_dtype() -> None:
    layers = {name for v in INDEX["valid"] for name in v.get("covers", {}).get("layers", [])}
    ops = {name for v in INDEX["valid"] for name in v.get("covers", {}).get("ops", [])}
    dtypes = {t["dtype"] for v in INDEX["valid"] for t in v["tensors"]}
    assert set(known_layers()) <= layers, set(known_layers()) - layers
    assert set(known_ops()) <= ops, set(known_ops()) - ops
    assert set(SUPPORTED_DTYPES) <= dtypes, set(SUPPORTED_DTYPES) - dtypes
    stages = {v["stage"] for v in INDEX["invalid"]}
    assert stages == set(INDEX["stages"])
    errors = {v["error"] for v in INDEX["invalid"]}
    assert errors == {"FormatError", "SchemaError", "UnknownLayerError", "UnknownOpError", "VersionError",
                      "IntegrityError", "LimitError", "DtypeMismatchError", "ShapeMismatchError",
                      "UnsupportedDtypeError"}


def test_every_file_is_in_the_index() -> None:
    """No orphan vector: each archive and expected file on disk is named by the index."""
    named = {v["archive"] for v in INDEX["invalid"]}
    for vector in INDEX["valid"]:
        named.add(vector["archive"])
        named.update(t["file"] for t in vector["tensors"])
        for run in vector["runs"]:
            named.update(run["inputs"])
            named.update(run.get("outputs", {}).get("values", []))
    on_disk = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.suffix in (".mpk", ".npy")}
    assert on_disk == named
