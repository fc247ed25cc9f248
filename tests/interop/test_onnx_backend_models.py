"""ONNX's own test models, as the onnx package ships them (``onnx/backend/test/data``): other
tools' files, most of them exported by early PyTorch versions at opsets 6 to 9 (upgraded by
onnx's version converter on the way in), each with inputs and the outputs its maker computed.

Every model either converts and computes its stored outputs, or is refused naming what
modelpack lacks (``REFUSED``, by model: an operator, an attribute, a value it would have to
compute from data). The real architectures under ``light/`` (AlexNet, DenseNet-121,
Inception v1 and v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet) store their weights as
``ConstantOfShape`` nodes, constant fills: here they are given random weights as initializers
and compared with onnxruntime on the same input.

Tolerance: ``rtol=1e-3, atol=1e-5`` against the stored outputs (onnx's own backend tests use
``rtol=1e-3, atol=1e-7``; a few outputs are near zero), ``rtol=1e-3`` and ``atol`` 1e-4 of the
largest output against onnxruntime (float32 sums over thousands of terms in another order).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import modelpack
from modelpack.errors import UnsupportedBlockError

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
from onnx import numpy_helper  # noqa: E402

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
CASES = sorted(path.parent for kind in ("pytorch-converted", "pytorch-operator", "simple")
               for path in (DATA / kind).glob("*/model.onnx"))
LIGHT = sorted((DATA / "light").glob("light_*.onnx"))

# What modelpack has no equivalent for, by model (the rest must compute their outputs).
_SEQUENCES = r"operator 'S(equenceEmpty|equenceConstruct|plitToSequence)' has no modelpack equivalent"
REFUSED = {
    **{f"test_expand_shape_model{i}": r"\(Expand\): its target shape \('shape'\) is computed from values"
       for i in range(1, 5)},
    **{name: r"\(Gradient\): operator domain 'ai\.onnx\.preview\.training' is not ONNX's own"
       for name in ("test_gradient_of_add", "test_gradient_of_add_and_mul")},
    **{f"test_sequence_model{i}": _SEQUENCES for i in range(1, 9)},
    **{name: r"\(StringNormalizer\): operator 'StringNormalizer' has no modelpack equivalent" for name in (
        "test_strnorm_model_monday_casesensintive_lower", "test_strnorm_model_monday_casesensintive_nochangecase",
        "test_strnorm_model_monday_casesensintive_upper", "test_strnorm_model_monday_empty_output",
        "test_strnorm_model_monday_insensintive_upper_twodim", "test_strnorm_model_nostopwords_nochangecase")},
}


def _tensor(path: Path) -> np.ndarray:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def test_the_models_are_there():
    """The onnx package ships them: a test that found none would pass without checking one."""
    assert len(CASES) >= 100 and len(LIGHT) >= 9
    assert set(REFUSED) <= {case.name for case in CASES} | {path.stem for path in LIGHT}


@pytest.mark.parametrize("case", CASES, ids=[f"{case.parent.name}/{case.name}" for case in CASES])
def test_each_model_computes_its_stored_outputs_or_is_refused(case):
    if case.name in REFUSED:
        with pytest.raises(UnsupportedBlockError, match=REFUSED[case.name]):
            modelpack.convert(case / "model.onnx")
        return
    net = modelpack.convert(case / "model.onnx")
    for data in sorted(case.glob("test_data_set_*")):
        inputs = [_tensor(path) for path in sorted(data.glob("input_*.pb"))]
        expected = [_tensor(path) for path in sorted(data.glob("output_*.pb"))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # (a sqrt of a negative input: NaN both sides)
            got = net(*inputs)
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        assert len(got) == len(expected)
        for ours, theirs in zip(got, expected, strict=True):
            assert np.shape(ours) == theirs.shape
            np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-3, atol=1e-5, equal_nan=True)


def _with_random_weights(path: Path, folder: Path) -> Path:
    """The model with each ``ConstantOfShape`` weight replaced by a random initializer of its
    shape (scaled by its fan-in; BatchNorm's variances and scales positive)."""
    model = onnx.load(str(path))
    shapes = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    rng = np.random.default_rng(0)
    kept = []
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in shapes:
            kept.append(node)
            continue
        shape = tuple(int(n) for n in shapes[node.input[0]])
        name = node.output[0]
        if any(part in name for part in ("var", "riv", "_s_0", "scale")):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(max(1, int(np.prod(shape[1:]))))
        model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    model.ir_version = max(model.ir_version, 4)  # (initializers that are no graph inputs)
    onnx.save(model, str(folder / path.name))
    return folder / path.name


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if "vgg19" in p.name else p for p in LIGHT],
                         ids=[path.stem for path in LIGHT])
def test_real_architectures_compute_what_onnxruntime_does(tmp_path, path):
    model = _with_random_weights(path, tmp_path)
    if path.stem in REFUSED:
        with pytest.raises(UnsupportedBlockError, match=REFUSED[path.stem]):
            modelpack.convert(model)
        return
    graph = onnx.load(str(model)).graph
    weights = {tensor.name for tensor in graph.initializer}
    feeds = {}
    for value in graph.input:
        if value.name not in weights:
            shape = [dim.dim_value or 1 for dim in value.type.tensor_type.shape.dim]
            feeds[value.name] = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got = modelpack.convert(model)(*feeds.values())
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(np.asarray(got[0] if isinstance(got, (list, tuple)) else got), want,
                               rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(want).max())))
