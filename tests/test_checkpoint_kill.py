"""Exact resume: a training run killed with SIGKILL at random moments, restarted from its
latest checkpoint each time, ends with weights bitwise equal to an uninterrupted run.

The run (``checkpoint_child.py``) uses every source of randomness training has: seeded
initialisation and dropout masks, a shuffled DataLoader checkpointed mid-pass, a user
generator, Adam's moments and BatchNorm's running averages. Each kill aims at a random step
still to come, then waits a random part of a few steps' time, so kills land between steps,
inside a step, or inside a checkpoint's write (seen as the writer's temporary file).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from checkpoint_child import EVERY, train

import modelpack

CHILD = Path(__file__).with_name("checkpoint_child.py")


def _litter(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.name.endswith(".tmp"))


def _kill_and_resume(tmp_path: Path, *, kills: int, steps: int, reach: int, seed: int) -> dict[str, int]:
    """Run to ``steps``, killing the run ``kills`` times, each within ``reach`` steps of where it resumed."""
    reference = train(steps)
    assert_bitwise_equal(train(steps, str(tmp_path / "warm-up")), reference)  # checkpointing changes nothing
    start = time.perf_counter()
    train(steps, str(tmp_path / "timed"))
    step_seconds = (time.perf_counter() - start) / steps

    folder, out = tmp_path / "run", tmp_path / "final.mpk"
    rng = random.Random(seed)
    seen = {"kills": 0, "mid-write": 0, "resumed": 0, "runs": 0}
    while True:
        child = subprocess.Popen([sys.executable, str(CHILD), str(folder), str(steps), str(out)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stderr is not None
        ready = child.stdout.readline()
        assert ready.startswith(b"ready "), child.stderr.read().decode()
        resumed_at = int(ready.split()[1])
        seen["runs"] += 1
        seen["resumed"] += resumed_at > 0
        if seen["kills"] < kills and resumed_at < steps - 1:
            target = min(resumed_at + rng.randrange(reach), steps - 2)
            while target > resumed_at:
                line = child.stdout.readline()
                if line in (b"", f"step {target}\n".encode()):  # b"": it died; the checks below say why
                    break
            time.sleep(rng.uniform(0, 2 * EVERY * step_seconds))
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                child.stdout.close()
                child.stderr.close()
                seen["kills"] += 1
                seen["mid-write"] += _litter(folder) > 0
                continue
        assert child.wait(timeout=120) == 0, child.stderr.read().decode()
        assert child.stdout.read().split(b"\n")[-2] == b"done"
        child.stdout.close()
        child.stderr.close()
        break
    assert_bitwise_equal(modelpack.load(out), reference)
    assert _litter(folder) == 0  # a killed save's temporary file is removed by the next save of that step
    return seen


def assert_bitwise_equal(found: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(found) == list(expected)
    for name, array in expected.items():
        assert found[name].dtype == array.dtype and found[name].tobytes() == array.tobytes(), name


def test_killed_run_resumes_bit_exactly(tmp_path):
    seen = _kill_and_resume(tmp_path, kills=4, steps=90, reach=20, seed=0)
    print(f"\n{seen}")
    assert seen["kills"] == 4 and seen["resumed"] >= 2, seen  # the kills interrupted training


@pytest.mark.slow
def test_killed_run_resumes_bit_exactly_soak(tmp_path):
    seen = _kill_and_resume(tmp_path, kills=60, steps=600, reach=6, seed=1)
    print(f"\n{seen}")
    assert seen["kills"] == 60 and seen["resumed"] >= 30 and seen["mid-write"] >= 1, seen
