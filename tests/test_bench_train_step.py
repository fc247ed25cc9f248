"""``bench/train_step.py`` still runs: one timed round of each workload, after its own check
that modelpack's first step lands on torch's weights."""

from __future__ import annotations

from bench_scripts import bench_script


def test_train_step_bench_runs(monkeypatch):
    module = bench_script(monkeypatch, "train_step", needs="torch")
    for build in (module.mlp, module.cnn):
        ours, theirs = module.measure(build, repeats=1)
        assert ours > 0 and theirs > 0
