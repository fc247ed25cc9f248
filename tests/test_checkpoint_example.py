"""``examples/train_checkpoint.py`` runs in under 30 s, says what it did, and what it claims holds."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_checkpoint.py"


def test_example_runs_and_its_checks_hold(tmp_path):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(EXAMPLE), "--folder", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    resumed = re.search(r"resumed at step (\d+) from ckpt-0+(\d+)\.mpk", out)
    assert "power cut (SIGKILL)" in out and resumed and resumed[1] == resumed[2] and int(resumed[1]) >= 120
    assert "weights bitwise equal to an uninterrupted run: True" in out
    assert "frozen layers unchanged: True" in out
    assert seconds < 30, f"{seconds:.1f} s"
