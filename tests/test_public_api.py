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
