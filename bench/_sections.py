"""BENCHMARKS.md is made of sections, one per script and setting: each run replaces its own."""

from __future__ import annotations

import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def proc_field(path: str, prefix: str) -> str:
    """The value of the first ``prefix: value`` line of a /proc file, or "unknown"."""
    return proc_fields(path, prefix)[0]


def proc_fields(path: str, *prefixes: str) -> list[str]:
    """``proc_field`` for each prefix, the file read once."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    return [next((line.split(":", 1)[1].strip() for line in lines if line.startswith(prefix)), "unknown")
            for prefix in prefixes]


# The vector units the CPU offers that BLAS, torch and numba pick kernels by: cpuinfo's flag, its name.
_UNITS = {"avx2": "AVX2", "avx512f": "AVX-512", "amx_tile": "AMX", "sha_ni": "SHA-NI"}


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name, family and model numbers, and vector units: every ratio to torch
    depends on them (AMD EPYC and Intel Xeon hosts of this machine kind gave torch's 7×7/2
    stem 10.8 and 6.2 ms, modelpack's 15.0 and 12.5). Intel hosts all name themselves "Intel(R)
    Xeon(R) Processor": only the numbers tell one host kind from another."""
    name, family, model, flag_list = proc_fields(cpuinfo, "model name", "cpu family", "model\t", "flags")
    flags = flag_list.split()
    units = "/".join(label for flag, label in _UNITS.items() if flag in flags)
    numbers = f", family {family} model {model}" if "unknown" not in (family, model) else ""
    return f"{name}{numbers}" + (f", {units}" if units else "")


def handoff_microseconds(rounds: int = 200, idle: float = 5e-4) -> float:
    """Median µs for a task to reach an idle pool thread and its result to come back: what
    each of modelpack's splits of a pass over threads pays (its workers idle between passes).
    On a VM whose idle vCPUs halt, waking one is most of it: 30–70 µs on one host of this
    machine kind, ~150 µs on another, where two threads sped a ResNet-18-style training step
    up not at all."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(int).result()  # (the thread started)
        times = []
        for _ in range(rounds):
            time.sleep(idle)
            start = time.perf_counter()
            pool.submit(int).result()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def write_section(heading: str, lines: list[str], report: Path = REPORT) -> None:
    """Replace the section whose heading line is exactly ``heading`` by ``lines`` (or append
    it). The whole line must match: one setting's heading can be the start of another's
    ("…, cpu time" and "…, cpu time, numba kernels")."""
    text = report.read_text(encoding="utf-8")
    section = re.compile("^" + re.escape(heading) + r"\n.*?(?=\n## |\Z)", flags=re.S | re.M)
    body = "\n".join(lines).rstrip("\n") + "\n"
    first = section.search(text)
    if first is None:
        new = text.rstrip("\n") + "\n\n" + body
    else:  # the first replaced; any later copy (left by an older writer) dropped
        new = text[: first.start()] + body + section.sub("", text[first.end() :])
    report.write_text(re.sub(r"\n{3,}", "\n\n", new).rstrip("\n") + "\n", encoding="utf-8")
    print(f"updated {report}")
