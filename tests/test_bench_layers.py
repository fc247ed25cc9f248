"""``bench/layers.py`` still runs: every case at ``--quick`` sizes, one timed round, after its
own checks that both sides agree (the forward outputs, and the training pass's gradients)."""

from __future__ import annotations

import dataclasses

import pytest
from bench_scripts import bench_script


def _layers_module(monkeypatch):
    module = bench_script(monkeypatch, "layers", needs="torch")
    # One untimed call per turn: the checks are what this test is for, not the times.
    monkeypatch.setattr(module.compute, "SETTLE_SECONDS", 0.0)
    return module


def test_layers_bench_runs_every_case_quick(monkeypatch):
    module = _layers_module(monkeypatch)
    for case in module.CASES:
        result = module.measure(case, "quick", repeats=1)
        rows = module.rows_of(result)
        assert len(rows) == 2 and all(row.count("|") == 9 for row in rows), rows
        assert all(seconds > 0 for pair in (result["forward"], result["training"]) for seconds in pair)
    assert all("not judged (busy machine)" in row for row in module.rows_of(result, judged=False))
    assert all("not judged (--quick's tiny shapes)" in row
               for row in module.rows_of(result, judged=False, why=module.compute.QUICK))


def test_the_table_covers_the_issue_and_only_picks_by_key(monkeypatch):
    module = _layers_module(monkeypatch)
    keys = [case.key for case in module.CASES]
    assert len(set(keys)) == len(keys)
    for family in ("conv1d", "conv2d", "conv3d", "grouped", "depthwise", "conv2dtranspose", "conv1dtranspose",
                   "maxpool2d", "avgpool2d", "ceil", "globalavgpool2d", "globalmaxpool1d", "maxpool1d",
                   "maxpool3d", "avgpool3d", "batchnorm_2d", "batchnorm_1d"):
        assert any(family in key for key in keys), family
    assert [c.name for c in module.chosen("conv1d_k")] == ["Conv1D k3", "Conv1D k4", "Conv1D k5"]
    assert module.chosen("") == module.CASES


def test_a_torch_layer_that_computes_something_else_is_caught(monkeypatch):
    """The agreement checks can fail: a max pool timed against torch's average pool."""
    module = _layers_module(monkeypatch)  # (skips without torch, before torch is imported)
    import torch

    case = next(c for c in module.CASES if c.key == "maxpool2d_2_2")
    with pytest.raises(AssertionError, match="forward"):
        module.measure(dataclasses.replace(case, theirs=lambda: torch.nn.AvgPool2d(2)), "quick", repeats=1)
    # The forward agrees, the gradient does not: torch's input gradient scaled by its own layer.
    conv = next(c for c in module.CASES if c.key == "conv2d_3_3_64_64")

    class Halved(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = conv.theirs()

        def forward(self, x):
            return self.inner(x.detach() + 0.5 * (x - x.detach()))

    with pytest.raises(AssertionError, match="input's gradient"):
        module.measure(dataclasses.replace(conv, theirs=Halved), "quick", repeats=1)


def test_layers_bench_runs_on_onnxruntime_quick(monkeypatch):
    """``--backend onnxruntime``: each layer's forward on onnxruntime, checked against torch's."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
    module = _layers_module(monkeypatch)
    for case in module.CASES:
        result = module.measure(case, "quick", repeats=1, hybrid="onnxruntime")
        assert result["layer"]._runtime._sessions, case.name  # the forward ran there
