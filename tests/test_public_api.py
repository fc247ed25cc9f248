"""The public API: every name in ``__all__`` resolves, and importing the package is cheap."""

from __future__ import annotations

import subprocess
import sys

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
