"""Peak resident memory of one save or load, each in a fresh child process.

Why not ``ru_maxrss``: on Linux a child's ``getrusage(RUSAGE_SELF).ru_maxrss`` starts at its
parent's peak (``exec`` carries the old address space's high-water mark into the process's
``maxrss``), so a child launched by a parent that has held a 1 GB workload would report
≥ 1 GB for anything. The child's own address space has a clean high-water mark, ``VmHWM`` in
``/proc/self/status``, and writing ``5`` to ``/proc/self/clear_refs`` resets it to the
current RSS. So a child: imports, runs the method once on a tiny warm-up workload (lazy
imports and first-call set-up are not charged), builds its input (for saves), takes
``VmRSS`` as the baseline and resets ``VmHWM``, runs the method once, and reports
``VmHWM − baseline``. Elsewhere it falls back to ``ru_maxrss`` (approximate).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _alloc import fix_mmap_threshold, trim_heap
from _methods import Method, by_name
from _workloads import WARMUP, WORKLOADS, Workload, build_arrays, build_net, build_torch

__all__ = ["RssResult", "measure", "child_main"]

RUN_SCRIPT = Path(__file__).with_name("run.py")


@dataclass(frozen=True)
class RssResult:
    """Peak RSS increase in bytes; ``untouched`` only for lazy methods (after open, before reads)."""

    peak: int
    untouched: int | None = None
    exact: bool = True  # False when measured with the ru_maxrss fallback


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class _Meter:
    """Baseline at construction; ``increase()`` is the peak RSS above it since then, in bytes."""

    def __init__(self) -> None:
        gc.collect()
        trim_heap()
        rss = _status_kb("VmRSS")
        self.exact = rss is not None and _reset_peak()
        if self.exact:
            assert rss is not None
            self.base = rss * 1024
        else:  # ru_maxrss is kB on Linux, bytes on macOS
            scale = 1 if sys.platform == "darwin" else 1024
            self.scale = scale
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def increase(self) -> int:
        if self.exact:
            peak = _status_kb("VmHWM")
            assert peak is not None
            return peak * 1024 - self.base
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * self.scale - self.base


def _save_input(method: Method, workload: Workload, seed: int) -> object:
    arrays = build_arrays(workload, seed)
    if method.needs == "net":
        return build_net(workload, arrays)
    return build_torch(arrays) if method.needs == "torch" else arrays


def _measure_save(method: Method, workload_key: str, seed: int, path: str) -> RssResult:
    warmup_path = path + ".warm-up" + Path(path).suffix
    method.run(_save_input(method, WARMUP, seed), warmup_path)
    os.unlink(warmup_path)
    inputs = _save_input(method, WORKLOADS[workload_key], seed)
    meter = _Meter()
    method.run(inputs, path)
    result = RssResult(meter.increase(), exact=meter.exact)
    os.unlink(path)
    return result


def _measure_load(method: Method, workload_key: str, path: str, warmup_path: str) -> RssResult:
    workload = WORKLOADS[workload_key]
    if method.kind == "load":
        method.run(warmup_path, WARMUP)
        meter = _Meter()
        result = method.run(path, workload)  # noqa: F841  (kept alive until the peak is read)
        return RssResult(meter.increase(), exact=meter.exact)
    with method.open(warmup_path) as handle:
        method.get(handle, WARMUP.small_tensor)
    del handle
    meter = _Meter()
    with method.open(path) as handle:
        untouched = meter.increase()
        # Read every tensor and keep it: for memory maps, summing faults every page in.
        kept = [method.get(handle, name) for name in workload.shapes()]
        for array in kept:
            float(np.asarray(array).sum())
        return RssResult(meter.increase(), untouched=untouched, exact=meter.exact)


def child_main(args: list[str]) -> None:
    """``run.py --child METHOD WORKLOAD SEED FILE WARMUP_FILE``: print one RssResult as JSON."""
    name, workload_key, seed, path, warmup_path = args
    fix_mmap_threshold()  # as in the parent (see _alloc.py)
    method = by_name(name)
    if method.kind == "save":
        result = _measure_save(method, workload_key, int(seed), path)
    else:
        result = _measure_load(method, workload_key, path, warmup_path)
    print(json.dumps({"peak": result.peak, "untouched": result.untouched, "exact": result.exact}))


def measure(method: Method, workload_key: str, seed: int, path: str, warmup_path: str) -> RssResult | str:
    """Run ``method`` on ``path`` in a fresh process; the RssResult, or the error's last line."""
    if method.kind == "save":  # the child writes its own file beside the parent's
        folder = os.path.dirname(path)
        handle, path = tempfile.mkstemp(prefix="rss-", suffix=Path(path).suffix, dir=folder)
        os.close(handle)
        os.unlink(path)
    command = [sys.executable, str(RUN_SCRIPT), "--child", method.name, workload_key, str(seed), path,
               warmup_path]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return f"error: {lines[-1]}"
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return RssResult(data["peak"], data["untouched"], data["exact"])
