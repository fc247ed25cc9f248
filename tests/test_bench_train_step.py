"""``bench/train_step.py`` still runs: one timed round of each workload, after its own check
that modelpack's first step lands on torch's weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "train_step.py"


def test_train_step_bench_runs():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("bench_train_step", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_train_step"] = module
    try:
        spec.loader.exec_module(module)
        for build in (module.mlp, module.cnn):
            ours, theirs = module.measure(build, repeats=1)
            assert ours > 0 and theirs > 0
    finally:
        del sys.modules["bench_train_step"]
