"""``bench/digest_cost.py`` still runs: every candidate digest and every durable save timed, on
the smallest size, the saves' files in a folder of the test's and removed after."""

from __future__ import annotations

import re
import sys

from bench_scripts import bench_script


def test_digest_cost_bench_runs(monkeypatch, tmp_path, capsys):
    module = bench_script(monkeypatch, "digest_cost", needs="safetensors")
    monkeypatch.setattr(sys, "argv", ["digest_cost.py", "--size", "1MB", "--repeats", "1", "--dir", str(tmp_path)])
    module.main()
    printed = capsys.readouterr().out
    for label in ("SHA-256, one core", "SHA-256, all cores", "BLAKE2b, all cores", *module.SAVES):
        assert re.search(rf"^{re.escape(label)} +\d+\.\d", printed, re.M), label
    assert re.search(r"^safetensors save_file, durable +\d+\.\d +1\.00$", printed, re.M)
    assert list(tmp_path.iterdir()) == []  # (the saves' folder removed)
