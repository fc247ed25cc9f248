"""``convert`` and ``diff``, and ``inspect``/``verify`` on MXNet's files, run as a user runs them:
a subprocess, its exit code (0 ok, 1 problems found, 2 user error), stdout, ``--json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from models import mlp_ready
from test_cli import cli, user_error

import modelpack

DATA = Path(__file__).resolve().parents[1] / "data" / "mxnet"


def _json(run) -> dict:
    assert "Traceback" not in run.stderr
    return json.loads(run.stdout)


# -- convert ------------------------------------------------------------------------------------


def test_convert_gluon_export(tmp_path):
    out = tmp_path / "cnn.mpk"
    run = cli("convert", DATA / "cnn-symbol.json", DATA / "cnn-0000.params", "-o", out)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"wrote {out}: a Sequential model, 14 layers, 629 parameters"
    net = modelpack.load(out)
    np.testing.assert_allclose(net(np.load(DATA / "cnn-input.npy")), np.load(DATA / "cnn-output.npy"),
                               rtol=1e-5, atol=1e-5)
    assert modelpack.inspect(out).metadata["converted_from"] == "cnn-symbol.json, cnn-0000.params"


def test_convert_json_and_any_order(tmp_path):
    out = tmp_path / "shapes.mpk"
    run = cli("convert", DATA / "shapes-0000.params", DATA / "shapes-symbol.json", "-o", out, "--json")
    assert run.returncode == 0
    assert _json(run) == {"output": str(out), "sources": [str(DATA / "shapes-0000.params"),
                                                          str(DATA / "shapes-symbol.json")],
                          "kind": "model", "type": "GraphBlock", "layers": 2, "tensors": 2, "parameters": 96}


def test_convert_arrays_to_a_tensor_archive(tmp_path):
    run = cli("convert", DATA / "mydict", "-o", tmp_path / "mydict.mpk", "--json")
    assert run.returncode == 0 and _json(run)["kind"] == "tensors" and _json(run)["tensors"] == 2
    loaded = modelpack.load(tmp_path / "mydict.mpk")
    assert list(loaded) == ["x", "y"] and np.array_equal(loaded["x"], np.arange(4, dtype=np.float32))


def _checkpoint(torch, path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], int]:
    """A training script's torch.save, and what its tensor archive should hold: the arrays by
    dotted path, the numbers and text as metadata, and how many values are neither."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 7, "best_acc": np.float64(0.91),
                "arch": "mlp", "mean": mean}, path)
    state, group = opt.state_dict()["state"], opt.state_dict()["param_groups"][0]
    arrays = {**{f"model.{name}": t.numpy() for name, t in net.state_dict().items()},
              **{f"optimizer.state.{i}.momentum_buffer": s["momentum_buffer"].numpy() for i, s in state.items()},
              "mean": mean}
    values = {"epoch": "7", "best_acc": "0.91", "arch": "mlp",
              **{f"optimizer.param_groups.0.{key}": str(v) for key, v in group.items() if v is not None and key != "params"},
              **{f"optimizer.param_groups.0.params.{i}": str(p) for i, p in enumerate(group["params"])}}
    return arrays, values, sum(v is None for v in group.values())


def test_convert_a_torch_checkpoint_to_a_tensor_archive(tmp_path):
    """No --architecture: every tensor and numpy array by its path, numbers and text in the metadata."""
    torch = pytest.importorskip("torch", reason="torch is not installed: real torch.save files cannot be made")
    source, out = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.mpk"
    arrays, values, skipped = _checkpoint(torch, source)
    run = cli("convert", source, "-o", out)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (f"wrote {out}: {len(arrays)} tensors, {len(values)} values in its metadata, "
                                  f"{skipped} values skipped (neither arrays, numbers nor text)")
    loaded = modelpack.load(out)
    assert list(loaded) == list(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        assert loaded[name].tobytes() == array.tobytes(), name
    assert modelpack.inspect(out).metadata == {**values, "converted_from": "checkpoint.pt",
                                               "converter": "modelpack convert (PyTorch)"}
    run = cli("convert", source, "-o", tmp_path / "again.mpk", "--json")
    assert run.returncode == 0 and _json(run) == {
        "output": str(tmp_path / "again.mpk"), "sources": [str(source)], "kind": "tensors",
        "tensors": len(arrays), "values": len(values), "skipped": skipped}


def test_convert_a_lone_torch_tensor_and_names_that_collide(tmp_path):
    """A lone tensor loads back as itself; a value named as the converter's own metadata is skipped."""
    torch = pytest.importorskip("torch", reason="torch is not installed: real torch.save files cannot be made")
    torch.save(torch.arange(5), tmp_path / "t.pt")
    assert cli("convert", tmp_path / "t.pt", "-o", tmp_path / "t.mpk").returncode == 0
    assert modelpack.load(tmp_path / "t.mpk").tolist() == [0, 1, 2, 3, 4]
    torch.save({"w": torch.ones(1), "converter": "train.py"}, tmp_path / "own.pt")  # the archive's own key wins
    run = cli("convert", tmp_path / "own.pt", "-o", tmp_path / "own.mpk", "--json")
    assert _json(run)["values"] == 0 and _json(run)["skipped"] == 1
    assert modelpack.inspect(tmp_path / "own.mpk").metadata["converter"] == "modelpack convert (PyTorch)"
    torch.save({"a.b": torch.ones(1), "a": {"b": torch.zeros(1)}}, tmp_path / "c.pt")
    user_error(cli("convert", tmp_path / "c.pt", "-o", tmp_path / "c.mpk"),
               "c.pt: two values are both named 'a.b' once nested names are joined")
    assert not (tmp_path / "c.mpk").exists()


def test_convert_a_safetensors_file_to_a_tensor_archive(tmp_path):
    """No --architecture: its tensors by name, its metadata strings beside the converter's own (which win)."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    source, out = tmp_path / "w.safetensors", tmp_path / "w.mpk"
    arrays = {"b": np.arange(3, dtype=np.int64), "a": np.ones((2, 2), np.float16)}
    safetensors_numpy.save_file(arrays, str(source), metadata={"format": "pt", "converter": "hf"})
    run = cli("convert", source, "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    assert _json(run) == {"output": str(out), "sources": [str(source)], "kind": "tensors", "tensors": 2,
                          "values": 1}
    loaded = modelpack.load(out)
    assert sorted(loaded) == ["a", "b"]
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].tobytes() == array.tobytes(), name
    assert modelpack.inspect(out).metadata == {"format": "pt", "converted_from": "w.safetensors",
                                               "converter": "modelpack convert (safetensors)"}
    run = cli("convert", source, "-o", tmp_path / "again.mpk")
    assert run.stdout.strip() == f"wrote {tmp_path / 'again.mpk'}: 2 tensors, 1 values in its metadata"


def test_convert_a_torch_safetensors_file_into_an_architecture(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed: real safetensors files cannot be made")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    safetensors_torch.save_file(module.state_dict(), str(tmp_path / "mlp.safetensors"))
    net = modelpack.nn.Sequential()
    net.add(modelpack.nn.Dense(4, in_units=3), modelpack.nn.Activation("relu"), modelpack.nn.Dense(2, in_units=4))
    net.initialize()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    modelpack.export(net, tmp_path / "arch.mpk", example=x)
    run = cli("convert", tmp_path / "mlp.safetensors", "--architecture", tmp_path / "arch.mpk",
              "-o", tmp_path / "mlp.mpk")
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(modelpack.load(tmp_path / "mlp.mpk")(x), module(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    assert modelpack.inspect(tmp_path / "mlp.mpk").metadata["converter"] == "modelpack convert (safetensors)"
    user_error(cli("convert", tmp_path / "mlp.safetensors", tmp_path / "mlp.safetensors", "--architecture",
                   tmp_path / "arch.mpk", "-o", tmp_path / "two.mpk"),
               "convert takes one safetensors file and an architecture")


def test_convert_parameters_into_an_architecture(tmp_path):
    x = np.load(DATA / "mlp-input.npy")
    modelpack.export(mlp_ready(), tmp_path / "arch.mpk", example=x)
    run = cli("convert", DATA / "mlp.params", "--architecture", tmp_path / "arch.mpk", "-o", tmp_path / "mlp.mpk")
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(modelpack.load(tmp_path / "mlp.mpk")(x), np.load(DATA / "mlp-output.npy"),
                               rtol=1e-5, atol=1e-5)


def test_convert_input_shape(tmp_path):
    run = cli("convert", DATA / "leaky-symbol.json", DATA / "leaky-0000.params", "-o", tmp_path / "l.mpk",
              "--input-shape", "data=N,7")
    assert run.returncode == 0, run.stderr
    graph = modelpack.inspect(tmp_path / "l.mpk").architecture.config["graph"]
    assert graph["inputs"][0]["shape"] == ["batch", 7]


@pytest.mark.parametrize("args, fragment", [
    (("convert", DATA / "cnn-symbol.json", "-o", "x.mpk"), "convert takes one MXNet parameter file and either"),
    (("convert", DATA / "nosuch-symbol.json", DATA / "cnn-0000.params", "-o", "x.mpk"), "nosuch-symbol.json: no such file"),
    (("convert", DATA / "cnn-symbol.json", DATA / "cnn-0000.params", "-o", "x.mpk", "--input-shape", "data"),
     "--input-shape 'data': expected NAME=DIMS"),
    (("convert", DATA / "cnn-symbol.json", DATA / "cnn-0000.params", "-o", "x.mpk", "--input-shape", "data=N,x"),
     "'x' is not a size"),
    (("convert", DATA / "cnn-symbol.json", DATA / "mlp-0000.params", "-o", "x.mpk"),
     "its weight (input 1) is not in the parameter file"),
    (("convert", DATA / "sparse-csr", "-o", "x.mpk"), "array 0 uses csr storage"),
    (("convert", DATA / "mydict", "-o", "x.mpk", "--ignore-extra"),
     "--ignore-extra applies to weights loaded into an architecture (give --architecture)"),
])
def test_convert_user_errors(tmp_path, args, fragment):
    user_error(cli(*args, cwd=tmp_path), fragment)
    assert not (tmp_path / "x.mpk").exists()


def test_convert_needs_an_output():
    run = cli("convert", DATA / "mydict")
    assert run.returncode == 2 and "-o/--output" in run.stderr and "Traceback" not in run.stderr


# -- inspect and verify on MXNet files ------------------------------------------------------------


def test_inspect_ndarray_file():
    run = cli("inspect", DATA / "mlp.params")
    assert run.returncode == 0
    assert "MXNet NDArray file, 4 named arrays" in run.stdout and "hidden.weight" in run.stdout
    assert "4 arrays, 31.0 KiB" in run.stdout
    document = _json(cli("inspect", DATA / "dtypes-legacy", "--json"))
    assert document["kind"] == "mxnet-ndarray" and document["named"] is True
    assert {"name": "bfloat16", "dtype": "bfloat16", "shape": [5], "bytes": 10, "layout": "legacy"} in document["arrays"]


def test_inspect_symbol():
    run = cli("inspect", DATA / "legacy-shapes-symbol.json")
    assert run.returncode == 0 and "MXNet symbol" in run.stdout and "SwapAxis" in run.stdout
    document = _json(cli("inspect", DATA / "cnn-symbol.json", "--json"))
    assert document["operators"]["Convolution"] == 3 and document["unsupported"] == []
    assert document["variables"][0] == "data"


def test_verify_mxnet_files(tmp_path):
    run = cli("verify", DATA / "mydict")
    assert run.returncode == 0 and run.stdout.startswith(f"{DATA / 'mydict'}: OK, 2 tensors verified")
    report = _json(cli("verify", DATA / "mlp.params", "--json"))
    assert report["ok"] is True and list(report["tensors"]) == ["hidden.weight", "hidden.bias", "output.weight",
                                                                "output.bias"]
    cut = tmp_path / "cut.params"
    cut.write_bytes((DATA / "mlp.params").read_bytes()[:-3])
    run = cli("verify", cut, "--json")
    assert run.returncode == 1 and "name 3 needs 11 bytes" in _json(run)["problems"][0]
    bad = tmp_path / "bad-symbol.json"
    document = json.loads((DATA / "mlp-symbol.json").read_text())
    document["nodes"][3]["op"] = "ROIPooling"
    bad.write_text(json.dumps(document))
    run = cli("verify", bad)
    assert run.returncode == 1 and "operators modelpack cannot convert: ROIPooling" in run.stdout


# -- diff ---------------------------------------------------------------------------------------


@pytest.fixture
def two_mlps(tmp_path):
    a, b = mlp_ready(seed=0), mlp_ready(seed=0)
    b.output.bias.set_data(b.output.bias.data() + np.float32(0.5))
    modelpack.export(a, tmp_path / "a.mpk", example=np.zeros((1, 20)))
    modelpack.export(b, tmp_path / "b.mpk", example=np.zeros((1, 20)))
    return tmp_path / "a.mpk", tmp_path / "b.mpk"


def test_diff_identical_exit_0(two_mlps):
    a, _ = two_mlps
    run = cli("diff", a, a)
    assert run.returncode == 0 and run.stdout.strip().endswith("identical")
    assert "architecture: identical" in run.stdout and "tensors: 4 identical, 0 differ" in run.stdout


def test_diff_values_exit_1_and_json(two_mlps):
    a, b = two_mlps
    run = cli("diff", a, b)
    assert run.returncode == 1 and "output.bias: max |A - B| = 0.5" in run.stdout
    report = _json(cli("diff", a, b, "--json"))
    assert report["identical"] is False and report["architecture"] == []
    assert report["tensors"]["different"] == [{"name": "output.bias", "max_abs_difference": 0.5}]
    assert report["tensors"]["identical"] == 3
    assert cli("diff", a, b, "--atol", "0.5").returncode == 0


def test_diff_architecture_shapes_and_names(tmp_path):
    small, big = tmp_path / "small.mpk", tmp_path / "big.mpk"
    modelpack.export(mlp_ready(hidden=8), small, example=np.zeros((1, 20)))
    modelpack.export(mlp_ready(hidden=16), big, example=np.zeros((1, 20)))
    report = _json(cli("diff", small, big, "--json"))
    assert {"path": "hidden", "change": "config", "key": "units", "a": 8, "b": 16} in report["architecture"]
    changed = {c["name"]: c for c in report["tensors"]["changed"]}
    assert changed["hidden.weight"]["a"] == {"dtype": "float32", "shape": [8, 20]}
    assert changed["hidden.weight"]["b"] == {"dtype": "float32", "shape": [16, 20]}
    run = cli("diff", small, DATA / "mydict")
    assert run.returncode == 1 and "only in A: hidden.weight" in run.stdout and "only in B: x" in run.stdout
    assert "architecture: not compared (one side has none)" in run.stdout


def test_diff_converted_model_against_mxnet_parameters(tmp_path):
    """Gluon's flat, prefixed names meet the converted model's structured ones."""
    assert cli("convert", DATA / "cnn-symbol.json", DATA / "cnn-0000.params", "-o", tmp_path / "c.mpk").returncode == 0
    report = _json(cli("diff", tmp_path / "c.mpk", DATA / "cnn-0000.params", "--json"))
    assert report["identical"] is True and report["tensors"]["identical"] == 19


def test_diff_npz_and_nan(tmp_path):
    np.savez(tmp_path / "a.npz", w=np.array([1.0, np.nan, 3.0]), b=np.array([True, False]))
    np.savez(tmp_path / "b.npz", w=np.array([1.0, np.nan, 3.5]), b=np.array([True, False]))
    report = _json(cli("diff", tmp_path / "a.npz", tmp_path / "b.npz", "--json"))
    assert report["tensors"]["different"] == [{"name": "w", "max_abs_difference": 0.5}]
    assert report["tensors"]["identical"] == 1


@pytest.mark.parametrize("args, fragment", [
    (("diff", "nosuch.mpk", DATA / "mydict"), "nosuch.mpk: no such file"),
    (("diff", DATA / "mlp-symbol.json", DATA / "mlp.params"), "give the symbol's -0000.params file"),
    (("diff", DATA / "mydict", DATA / "mydict", "--atol", "-1"), "--atol must be at least 0"),
    (("diff", DATA / "sparse-rsp", DATA / "mydict"), "array 0 uses row_sparse storage"),
])
def test_diff_user_errors(tmp_path, args, fragment):
    user_error(cli(*args, cwd=tmp_path), fragment)
