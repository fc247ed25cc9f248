"""``bench/compute.py`` still runs: every workload at ``--quick`` sizes, one timed round, after
its own checks that both sides agree (forward outputs, and the weights after one step)."""

from __future__ import annotations

import os
import threading

import pytest
from bench_scripts import bench_script


def _compute_module(monkeypatch):
    return bench_script(monkeypatch, "compute", needs="torch")


def test_each_side_is_timed_in_calls_in_a_row(monkeypatch):
    """A round gives each side untimed calls until ``SETTLE_SECONDS`` have passed (at least
    one), then ``CALLS_PER_TURN`` timed ones in a row: the other side's idle threads stop
    spinning before a timed call."""
    module = _compute_module(monkeypatch)
    ticks, log = iter(range(10_000)), []
    monkeypatch.setattr(module, "clock", lambda: next(ticks))
    # Each reading of the settle clock a third of SETTLE_SECONDS on: three untimed calls a turn.
    monkeypatch.setattr(module, "SETTLE_SECONDS", 3)
    readings = iter(range(10_000))
    monkeypatch.setattr(module, "settle_clock", lambda: next(readings))
    sides = [lambda: log.append("a"), lambda: log.append("b")]
    module.median_seconds(sides, repeats=2, warmups=1)
    turn = 3 + module.CALLS_PER_TURN
    assert "".join(log) == "ab" + ("a" * turn + "b" * turn) * 2
    # A call longer than SETTLE_SECONDS is the only untimed one.
    readings = iter(range(0, 10_000, 4))
    log.clear()
    module.median_seconds(sides, repeats=1, warmups=0)
    assert "".join(log) == "a" * (1 + module.CALLS_PER_TURN) + "b" * (1 + module.CALLS_PER_TURN)


def test_compute_bench_runs_every_workload_quick(monkeypatch):
    module = _compute_module(monkeypatch)
    names = []
    for build in module.WORKLOADS:
        result = module.measure(build, "quick", repeats=1)
        rows = module.rows_of(result)
        assert len(rows) == 2 and all(row.count("|") == 8 for row in rows)
        assert all(seconds > 0 for pair in (result["forward"], result["step"]) for seconds in pair)
        names.append(result["work"].name)
    assert names == ["MLP", "CNN", "LeNet", "ResNet-18-style", "ResNet-18-style, loaded", "Transformer encoder block",
                     "MobileNet-style (depthwise)", "Decoder (transposed)"]
    # On a busy machine a wall-time run judges no target: its times measure the contention.
    assert all("not judged (busy machine)" in row for row in module.rows_of(result, judged=False))
    # Nor does --quick: at its tiny shapes a call's fixed cost, not the kernels, sets the times.
    assert all("not judged (--quick's tiny shapes)" in row
               for row in module.rows_of(result, judged=False, why=module.QUICK))
    assert module.judgement(True, False) == (False, module.QUICK) == module.judgement(True, True)
    assert module.judgement(False, True) == (False, module.BUSY) and module.judgement(False, False)[0]
    monkeypatch.setattr(module.os, "cpu_count", lambda: 2)
    assert module.busy(1.2, 2, "wall") and not module.busy(0.4, 2, "wall") and not module.busy(9.0, 1, "cpu")


def test_cores_in_use_counts_a_busy_core(monkeypatch):
    """A thread spinning while the reading waits shows as (at least) half a busy core; the
    reading is what ``busy`` judges a wall-time run by."""
    module = _compute_module(monkeypatch)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])
    spinner.start()
    try:
        in_use = module.cores_in_use(0.5)
    finally:
        stop.set()
        spinner.join()
    assert 0.5 <= in_use <= (os.cpu_count() or 1) + 0.01



def test_compute_bench_runs_on_onnxruntime_quick(monkeypatch):
    """``--backend onnxruntime``: each net's forward on onnxruntime, checked against torch's as
    the numpy one is (a workload whose forward differed would fail here)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
    module = _compute_module(monkeypatch)
    for build in module.WORKLOADS:
        result = module.measure(build, "quick", repeats=1, hybrid="onnxruntime")
        assert result["work"].net._runtime._sessions, result["work"].name  # the forward ran there
    assert module.setting_heading("numpy", "onnxruntime") == ", onnxruntime inference"
    assert "net.hybridize(backend='onnxruntime')" in module.backend_note("onnxruntime", "net", "steps")
