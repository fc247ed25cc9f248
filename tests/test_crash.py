"""Crash safety: a writer killed with SIGKILL at random moments never leaves a broken file.

A child process exports two known models over one path in a loop; the test kills it at a
random moment, then checks that the path holds exactly the old or the new model (byte for
byte, and it loads and verifies), that at most the dead writer's temporary file is left,
and that the next writer starts cleanly over that litter (and removes it).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_child import build
from models import export_bytes

import modelpack

CHILD = Path(__file__).with_name("crash_child.py")
UNITS = 1024  # two 1024x1024 float32 layers: an 8 MiB archive, tens of ms per export


def _litter(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".model.mpk.") and p.name.endswith(".tmp")]


def _kill_loop(tmp_path: Path, kills: int, seed: int) -> dict[str, int]:
    """Kill ``kills`` writers at random moments; returns what each kill left behind."""
    rng = random.Random(seed)
    old, new = export_bytes(build(1, UNITS)), export_bytes(build(2, UNITS))
    target = tmp_path / "model.mpk"
    target.write_bytes(old)
    start = time.perf_counter()
    modelpack.export(build(1, UNITS), tmp_path / "probe.mpk")
    export_seconds = time.perf_counter() - start
    seen = {"old": 0, "new": 0, "mid-write": 0}
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, str(CHILD), str(target), str(UNITS)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0, 4 * export_seconds))
        assert child.poll() is None, f"the writer failed on its own: {child.stderr.read().decode()}"  # type: ignore[union-attr]
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()  # type: ignore[union-attr]

        data = target.read_bytes()
        assert data in (old, new), "the target is neither the old nor the new archive"
        seen["old" if data == old else "new"] += 1
        assert modelpack.verify(target).ok
        modelpack.load(target)
        litter = _litter(tmp_path)
        assert len(litter) <= 1, f"litter accumulates: {litter}"
        seen["mid-write"] += len(litter)
    modelpack.export(build(2, UNITS), target)  # a later save over the litter succeeds and cleans it
    assert _litter(tmp_path) == []
    return seen


def test_killed_writer_leaves_old_or_new(tmp_path):
    seen = _kill_loop(tmp_path, kills=20, seed=0)
    print(f"\n20 kills: {seen}")
    # The kills must land inside writes, or the test would prove nothing.
    assert seen["mid-write"] >= 3, seen
    assert seen["old"] and seen["new"], seen


@pytest.mark.slow
def test_killed_writer_leaves_old_or_new_soak(tmp_path):
    seen = _kill_loop(tmp_path, kills=150, seed=1)
    assert seen["mid-write"] >= 30, seen
    print(f"\n150 kills: {seen}")
