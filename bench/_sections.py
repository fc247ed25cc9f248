"""BENCHMARKS.md is made of sections, one per script and setting: each run replaces its own."""

from __future__ import annotations

import re
from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def proc_field(path: str, prefix: str) -> str:
    """The value of the first ``prefix: value`` line of a /proc file, or "unknown"."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def cpu_model() -> str:
    """The CPU's model name: every ratio to torch depends on it (AMD EPYC and Intel Xeon hosts
    of this machine kind gave torch's 7×7/2 stem 10.8 and 6.2 ms, modelpack's 15.0 and 12.5)."""
    return proc_field("/proc/cpuinfo", "model name")


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
