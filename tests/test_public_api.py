"""The public API: every name in ``__all__`` resolves, and importing the package is cheap."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import modelpack


def test_every_public_name_resolves():
    assert sorted(modelpack.__all__) == sorted({"__version__", *modelpack._LAZY, *modelpack.errors.__all__})
    for name in modelpack.__all__:
        assert getattr(modelpack, name) is not None, name
    assert callable(modelpack.verify) and callable(modelpack.open)
    assert issubclass(modelpack.TraceError, modelpack.ModelpackError)


def test_import_loads_nothing_heavy():
    code = "import sys, modelpack; print(sorted(m for m in ('numpy', 'pydantic', 'yaml', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tensor_files_need_no_layer_library(tmp_path):
    # Saving, loading, opening, inspecting and verifying a file of tensors import neither the
    # layers nor tracing nor autograd (~130 ms of a fresh process's time to its first tensor),
    # nor PyYAML (the manifest is in the JSON form); a model then still exports and loads.
    path = tmp_path / "t.mpk"
    code = (
        "import sys, numpy as np, modelpack\n"
        f"p = {str(path)!r}\n"
        "modelpack.save(p, {'w': np.ones((2, 3), np.float32)})\n"
        "assert modelpack.load(p)['w'].shape == (2, 3)\n"
        "with modelpack.open(p) as f: f.get_tensor('w')\n"
        "modelpack.inspect(p); assert modelpack.verify(p).ok\n"
        "heavy = ('modelpack.nn', 'modelpack.tracing', 'modelpack.autograd', 'modelpack.gluon')\n"
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith(heavy)} | ({'yaml'} & set(sys.modules))))\n"
        "net = modelpack.nn.Dense(2, in_units=3); net.initialize()\n"
        "modelpack.export(net, p); print(type(modelpack.load(p)).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "Dense"]


def test_a_script_that_only_reads_imports_no_writer_and_builds_no_validator(tmp_path):
    # Loading, opening and inspecting import neither the writers nor verify nor the sharded
    # index (~30 ms of a fresh process's time to its first tensor); they come with first use.
    # Nor do they build Pydantic's validators for the manifest (``defer_build``: ~40 ms with
    # the plugin scan it starts): a plain manifest is checked without them.
    path = tmp_path / "t.mpk"
    modelpack.save(path, {"w": np.ones((2, 3), np.float32)})
    code = (
        "import sys, modelpack\n"
        f"p = {str(path)!r}\n"
        "assert modelpack.load(p)['w'].shape == (2, 3)\n"
        "with modelpack.open(p) as f: f.get_tensor('w')\n"
        "modelpack.inspect(p)\n"
        "writers = ('modelpack.format.writer', 'modelpack.format.verify', 'modelpack.format.shards',\n"
        "           'modelpack.io.npz_write', 'modelpack.io.writeback')\n"
        "print(sorted(m for m in writers if m in sys.modules))\n"
        "from modelpack.format.schema import Manifest\n"
        "print(Manifest.__pydantic_complete__)\n"
        "modelpack.save(p, {'w': modelpack.load(p)['w'] + 1}); print(modelpack.verify(p).ok)\n"
        "print(Manifest.__pydantic_complete__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:4] == ["[]", "False", "True", "True"]


def test_loading_a_model_imports_no_tracing(tmp_path):
    # Tracing records a custom forward at export; a load never needs it (~40 ms of a fresh
    # process's first model load).
    path = tmp_path / "net.mpk"
    net = modelpack.nn.Dense(2, in_units=3)
    net.initialize()
    modelpack.export(net, path)
    code = (
        "import sys, modelpack\n"
        f"net = modelpack.load({str(path)!r})\n"
        "print(type(net).__name__, any(m.startswith('modelpack.tracing') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "Dense False"
