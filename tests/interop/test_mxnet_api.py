"""MXNet's files through modelpack's public verbs: ``load``, ``npx``, ``convert``, and
``Block.load_parameters`` with the same options and messages as for ``.npz`` files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from models import MLP
from mxnet_writer import save

import modelpack
from modelpack import nn, npx
from modelpack.errors import (
    DtypeMismatchError,
    ExtraParameterError,
    FileKindError,
    FormatError,
    MissingParameterError,
    ShapeMismatchError,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "mxnet"
X = np.load(DATA / "mlp-input.npy")
Y = np.load(DATA / "mlp-output.npy")
TOL = {"rtol": 1e-5, "atol": 1e-5}  # float32, as in test_mxnet_convert


def test_load_returns_what_npx_load_returns():
    x = np.arange(4, dtype=np.float32)
    [x_file] = modelpack.load(DATA / "x-file")
    assert np.array_equal(x_file, x) and x_file.dtype == np.float32
    x2, y2 = modelpack.load(DATA / "x-files")
    assert np.array_equal(x2, x) and np.array_equal(y2, np.zeros(4))
    mydict = modelpack.load(DATA / "mydict")
    assert list(mydict) == ["x", "y"] and np.array_equal(mydict["x"], x)
    with open(DATA / "mydict", "rb") as handle:  # a file object too
        assert list(modelpack.load(handle)) == ["x", "y"]


def test_npx_is_the_public_verbs(tmp_path):
    assert npx.load is modelpack.load and npx.save is modelpack.save
    x = np.arange(4, dtype=np.float32)
    npx.save(tmp_path / "x-files", [x, np.zeros(4)])
    x2, y2 = npx.load(tmp_path / "x-files")
    assert np.array_equal(x2, x)
    assert list(npx.load(DATA / "mydict")) == ["x", "y"]


def test_convert_is_public():
    net = modelpack.convert(DATA / "mlp-symbol.json", DATA / "mlp-0000.params")
    np.testing.assert_allclose(net(X), Y, **TOL)


def test_translator_is_imported_only_for_mxnet_files():
    """The core never imports interop; MXNet itself is never imported at all."""
    code = ("import sys, modelpack; modelpack.load(sys.argv[1]); "
            "print(any(m.startswith('modelpack.interop') for m in sys.modules), 'mxnet' in sys.modules)")
    example = Path(__file__).resolve().parents[2] / "spec" / "examples" / "mlp.mpk"
    for path, interop in ((example, "False"), (DATA / "mlp.params", "True")):
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        assert out.stdout.split() == [interop, "False"]


# -- Block.load_parameters ----------------------------------------------------------------------


def test_chapter_mlp_loads_mxnet_save_parameters():
    net = MLP()
    net.load_parameters(DATA / "mlp.params")  # deferred shapes filled from the file
    np.testing.assert_allclose(net(X), Y, **TOL)


def test_exported_parameters_with_prefixes_and_flat_names():
    net = modelpack.convert(DATA / "cnn-symbol.json", DATA / "cnn-0000.params")
    net.initialize(force_reinit=True, seed=5)
    net.load_parameters(DATA / "cnn-0000.params")  # arg:conv0_weight -> conv0.weight
    np.testing.assert_allclose(net(np.load(DATA / "cnn-input.npy")), np.load(DATA / "cnn-output.npy"), **TOL)


def _params(tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "p.params"
    path.write_bytes(save(arrays))
    return path


def _ready() -> MLP:
    net = MLP()
    net.load_parameters(DATA / "mlp.params")
    return net


def test_same_options_and_messages_as_npz(tmp_path):
    """Each refusal is the one an .npz with the same arrays gets, message for message."""
    good = modelpack.load(DATA / "mlp.params")
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "output.bias"}, MissingParameterError, "allow_missing"),
        "extra": ({**good, "stray": np.zeros(2, np.float32)}, ExtraParameterError, "ignore_extra"),
        "dtype": ({**good, "output.bias": good["output.bias"].astype(np.float64)}, DtypeMismatchError, "cast_dtype"),
    }
    for what, (arrays, error, option) in cases.items():
        mx_path = _params(tmp_path, arrays)
        npz_path = tmp_path / f"{what}.npz"
        np.savez(npz_path, **arrays)
        messages = []
        for path in (mx_path, npz_path):
            net = _ready()
            before = {k: p.data().copy() for k, p in net.collect_params().items()}
            with pytest.raises(error) as caught:
                net.load_parameters(path)
            messages.append(str(caught.value).replace(str(path), "<file>"))
            assert all(np.array_equal(p.data(), before[k]) for k, p in net.collect_params().items())  # untouched
            net.load_parameters(path, **{option: True})
        assert messages[0] == messages[1], what
    wrong = {**good, "output.weight": np.zeros((10, 5), np.float32)}
    with pytest.raises(ShapeMismatchError, match=r"p.params: parameter 'output.weight' expected shape \(10, 256\)"):
        _ready().load_parameters(_params(tmp_path, wrong))


def test_unnamed_arrays_are_not_parameters():
    with pytest.raises(FormatError, match="x-files holds 2 unnamed arrays; a parameter file names each one"):
        MLP().load_parameters(DATA / "x-files")


def test_damaged_mxnet_file_keeps_its_own_error(tmp_path):
    path = tmp_path / "cut.params"
    path.write_bytes((DATA / "mlp.params").read_bytes()[:100])
    with pytest.raises(FormatError, match=r"cut.params: array 0: the data \(float32, shape \(256, 20\)\) needs 20480 bytes") as caught:
        MLP().load_parameters(path)
    assert type(caught.value) is FormatError
    with pytest.raises(FormatError, match="cut.params: array 0: the data"):
        modelpack.load(path)


def test_other_readers_name_mxnet_files():
    with pytest.raises(FileKindError, match=r"mlp.params is an MXNet NDArray file .* read it with modelpack.load\(path\), or net.load_parameters\(path\)"):
        modelpack.inspect(DATA / "mlp.params")


def test_graph_converted_model_loads_its_own_parameters(tmp_path):
    net = modelpack.convert(DATA / "shapes-symbol.json", DATA / "shapes-0000.params")
    assert isinstance(net, nn.GraphBlock)
    x = np.load(DATA / "shapes-input.npy")
    want = net(x)
    net.initialize(force_reinit=True, seed=2)
    net.load_parameters(DATA / "shapes-0000.params")
    for a, b in zip(net(x), want, strict=True):
        assert np.array_equal(a, b)
