"""Loading a script of ``bench/`` in a test, as it runs from the command line: its helper
modules importable by their plain names, itself a module dataclasses can look up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_script(monkeypatch: pytest.MonkeyPatch, script: str, *, needs: str) -> ModuleType:
    """``bench/<script>.py`` loaded as module ``bench_<script>``, the test skipped unless
    ``needs`` (the competitor the script measures against) imports first — before the
    script's own imports, so that a newcomer's install without it skips rather than fails.
    ``monkeypatch`` undoes the path and the module entry."""
    pytest.importorskip(needs)
    monkeypatch.syspath_prepend(str(BENCH))
    name = f"bench_{script}"
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module
