"""Results as Markdown tables: per workload, the targets of issues 6 and 15, and ``BENCHMARKS.md``."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _methods import Method
from _rss import RssResult
from _sections import cpu_model, handoff_microseconds, proc_field
from _workloads import Workload

__all__ = ["Row", "WorkloadResult", "render", "describe_machine", "write_benchmarks"]

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One method on one workload: its timings (seconds), or why it has none."""

    method: Method
    status: str | None = None  # None: ran and was checked; else "n/a (…)", "error: …", "skipped …"
    times: list[float] = field(default_factory=list)
    rss: RssResult | str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.status is None and self.times else None


@dataclass
class WorkloadResult:
    key: str
    workload: Workload
    repeats: int
    rows: dict[str, Row]
    rss_measured: bool = True

    def time(self, name: str) -> float | None:
        return self.rows[name].median

    def rss(self, name: str, *, untouched: bool = False) -> float | None:
        """Peak RSS increase as a multiple of the weights' size."""
        rss = self.rows[name].rss
        if not isinstance(rss, RssResult):
            return None
        value = rss.untouched if untouched else rss.peak
        return None if value is None else value / self.workload.nbytes


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.1f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.2f} ms"


def _x(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}×"


def _rss_cell(result: WorkloadResult, row: Row, *, untouched: bool = False) -> str:
    if not result.rss_measured or row.status is not None:
        return "—"
    if isinstance(row.rss, str):
        return row.rss[:60]
    approximate = isinstance(row.rss, RssResult) and not row.rss.exact  # the ru_maxrss fallback
    return ("≈ " if approximate else "") + _x(result.rss(row.method.name, untouched=untouched))


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def _spread(row: Row) -> str:
    """Median absolute deviation of the runs, as a share of their median: how noisy it was."""
    median = row.median
    if not median:
        return ""
    return f"{statistics.median(abs(t - median) for t in row.times) / median:.0%}"


def _kind_table(result: WorkloadResult, kind: str) -> str:
    rows = [row for row in result.rows.values() if row.method.kind == kind]
    mb = result.workload.nbytes / 1e6
    if kind == "lazy":
        ref = result.time("safetensors safe_open + 1 tensor")
        header = ["open + 1 small tensor", "median", "time ÷ safe_open", "MAD",
                  "RSS Δ after open", "RSS Δ all read"]
    elif kind == "check":
        ref = result.time("SHA-256 of the file, all cores")
        header = ["check the whole file", "median", "MB/s", "× SHA-256 of the file", "MAD", "peak RSS Δ"]
    else:
        ref = result.time("raw write" if kind == "save" else "raw readinto")
        header = [kind, "median", "MB/s", "× raw " + ("write" if kind == "save" else "readinto"),
                  "MAD", "peak RSS Δ"]
    cells = []
    for row in rows:
        median = row.median
        if median is None:
            cells.append([row.method.name, row.status or "no data"] + [""] * (len(header) - 2))
        elif kind == "lazy":
            cells.append([row.method.name, _duration(median), _x(_ratio(median, ref)), _spread(row),
                          _rss_cell(result, row, untouched=True), _rss_cell(result, row)])
        else:
            cells.append([row.method.name, _duration(median), f"{mb / median:.0f}", _x(_ratio(ref, median)),
                          _spread(row), _rss_cell(result, row)])
    return _table(header, cells)


@dataclass(frozen=True)
class Target:
    label: str
    goal: str
    value: Callable[[WorkloadResult], float | None]
    met: Callable[[float], bool]
    sizes: tuple[str, ...] = ("100MB", "1GB")  # where the issue sets the target
    issue: int = 15


def _thr(numerator: str, denominator: str) -> Callable[[WorkloadResult], float | None]:
    return lambda r: _ratio(r.time(denominator), r.time(numerator))  # throughput ratio = inverse times


def _time(numerator: str, denominator: str) -> Callable[[WorkloadResult], float | None]:
    return lambda r: _ratio(r.time(numerator), r.time(denominator))


EVERY_SIZE = ("1MB", "100MB", "1GB", "200t", "10kt")
DURABLE = "safetensors save_file, durable"
TARGETS = [
    Target("modelpack.open (tensors) + 1 tensor ÷ safe_open + 1 tensor, time", "≤ 2",
           _time("modelpack.open (tensors) + 1 tensor", "safetensors safe_open + 1 tensor"), lambda v: v <= 2,
           sizes=("1MB", "200t", "10kt")),
    Target("modelpack.open + 1 tensor ÷ safe_open + 1 tensor, time", "≤ 2",
           _time("modelpack.open + 1 tensor", "safetensors safe_open + 1 tensor"), lambda v: v <= 2,
           sizes=("1MB", "100MB", "1GB"), issue=6),
    Target("modelpack.load mmap + 1 tensor ÷ safe_open + 1 tensor, time", "≤ 2",
           _time("modelpack.load mmap + 1 tensor", "safetensors safe_open + 1 tensor"), lambda v: v <= 2,
           sizes=("1MB", "100MB", "1GB"), issue=6),
    Target("modelpack.load (tensors) ÷ safetensors load_file, throughput (1 MB)", "≥ 1.0",
           _thr("modelpack.load (tensors)", "safetensors load_file"), lambda v: v >= 1.0, sizes=("1MB",)),
    Target("modelpack.load (tensors) ÷ safetensors load_file, throughput", "≥ 1.2",
           _thr("modelpack.load (tensors)", "safetensors load_file"), lambda v: v >= 1.2),
    Target("modelpack.load (model) ÷ safetensors load_file, throughput (1 MB)", "≥ 1.0",
           _thr("modelpack.load (model)", "safetensors load_file"), lambda v: v >= 1.0, sizes=("1MB",)),
    Target("modelpack.load (model) ÷ safetensors load_file, throughput", "≥ 1.2",
           _thr("modelpack.load (model)", "safetensors load_file"), lambda v: v >= 1.2),
    Target("modelpack.load (tensors) ÷ np.load, throughput", "≥ 1.5",
           _thr("modelpack.load (tensors)", "np.load"), lambda v: v >= 1.5, sizes=EVERY_SIZE),
    Target("modelpack.load (model) ÷ np.load, throughput", "≥ 1.5",
           _thr("modelpack.load (model)", "np.load"), lambda v: v >= 1.5, sizes=("1MB", "100MB", "1GB")),
    Target("modelpack.export ÷ durable safetensors save_file, throughput", "≥ 0.8",
           _thr("modelpack.export", DURABLE), lambda v: v >= 0.8),
    Target("modelpack.save ÷ durable safetensors save_file, throughput", "≥ 0.8",
           _thr("modelpack.save", DURABLE), lambda v: v >= 0.8),
    Target("modelpack.verify ÷ SHA-256 of the file on all cores, throughput", "≥ 0.8",
           _thr("modelpack.verify", "SHA-256 of the file, all cores"), lambda v: v >= 0.8,
           sizes=("1MB", "100MB", "1GB", "10kt")),
    Target("modelpack.load (tensors) peak RSS Δ ÷ weights", "≤ 1.1",
           lambda r: r.rss("modelpack.load (tensors)"), lambda v: v <= 1.1),
    Target("modelpack.load mmap: RSS Δ after open ÷ weights", "≈ 0 (≤ 0.05)",
           lambda r: r.rss("modelpack.load mmap + 1 tensor", untouched=True), lambda v: v <= 0.05),
    Target("modelpack.open: RSS Δ after open ÷ weights", "≈ 0 (≤ 0.05)",
           lambda r: r.rss("modelpack.open + 1 tensor", untouched=True), lambda v: v <= 0.05),
    Target("modelpack.export ÷ np.savez, throughput", "≥ 2",
           _thr("modelpack.export", "np.savez"), lambda v: v >= 2, issue=6),
    Target("modelpack.export ÷ safetensors save_file (not durable), throughput", "≥ 0.5",
           _thr("modelpack.export", "safetensors save_file"), lambda v: v >= 0.5, issue=6),
    Target("modelpack.export peak RSS Δ ÷ weights", "≤ 0.2", lambda r: r.rss("modelpack.export"),
           lambda v: v <= 0.2, sizes=("1GB",), issue=6),
]


def targets_table(results: list[WorkloadResult]) -> str:
    """Each target ratio per workload, marked ✓/✗ where its issue sets it, and one verdict:
    met where every marked size meets it, else missed (and where), or not measured."""
    cells = []
    for target in TARGETS:
        line = [target.label, target.goal, f"#{target.issue}"]
        missed, checked = [], 0
        for result in results:
            if "RSS" in target.label and not result.rss_measured:
                line.append("—")
                continue
            value = target.value(result)
            marked = value is not None and result.key in target.sizes
            mark = "" if not marked else (" ✓" if target.met(value) else " ✗")  # type: ignore[arg-type]
            checked += marked
            if marked and not target.met(value):  # type: ignore[arg-type]
                missed.append(result.workload.label)
            line.append("n/a" if value is None else f"{value:.2f}{mark}")
        line.append("not measured" if not checked else f"missed ({', '.join(missed)})" if missed else "met")
        cells.append(line)
    header = ["ratio (medians, one run)", "target", "issue", *(r.workload.label for r in results), "verdict"]
    return _table(header, cells)


def render(results: list[WorkloadResult]) -> str:
    """Every table, as Markdown (also what the script prints)."""
    parts = []
    for result in results:
        w = result.workload
        parts.append(f"### {w.label}: {w.tensors} tensors, {w.nbytes / 1e6:.2f} MB of float32 "
                     f"(d = {w.d}), median of {result.repeats} rounds")
        for kind in ("save", "load", "lazy", "check"):
            parts.append(_kind_table(result, kind))
    parts.append("### Targets of issues 6 and 15 (✓/✗ only where the issue sets the target)")
    parts.append(targets_table(results))
    return "\n\n".join(parts)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _filesystem(directory: str) -> str:
    """Device and type of the filesystem holding ``directory`` (from /proc/mounts)."""
    target, best = os.path.realpath(directory), ("", "unknown", "unknown")
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                device, mount, kind = line.split()[:3]
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) > len(best[0]):
                    best = (mount, device, kind)
    except OSError:
        pass
    return f"{best[1]} ({best[2]}) mounted at {best[0] or '?'}"


def describe_machine(directory: str) -> dict[str, str]:
    """What the numbers were measured on."""
    import modelpack

    source = Path(modelpack.__file__).resolve().parent
    if source.parent == REPO:
        commit = _git("rev-parse", "--short", "HEAD") or "?"
        changed = _git("status", "--porcelain", "--", "modelpack")
        origin = f"at {commit}" + (" with uncommitted changes under modelpack/" if changed else "")
    else:
        origin = f"imported from {source}"
    memory = proc_field("/proc/meminfo", "MemTotal")
    ram = f"{int(memory.split()[0]) / 2**20:.1f} GiB" if memory != "unknown" else memory
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "a thread hand-off (median)": f"{handoff_microseconds():.0f} µs",
        "RAM": ram,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "numpy / torch / safetensors": " / ".join(_version(p) for p in ("numpy", "torch", "safetensors")),
        "modelpack": f"{modelpack.__version__} {origin}",
        # modelpack's optional accelerators (the `fast` extra): ISA-L's CRC-32, msgspec's decoder
        "isal / msgspec": " / ".join(_version(p) for p in ("isal", "msgspec")),
        "disk": f"temporary folder in {directory} on {_filesystem(directory)}",
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
    }


NOTES = """\
- **Compare ratios, not times.** Every ratio divides two medians measured in the same run on
  the same weights; absolute times and MB/s are there for context and change with the
  machine, its load and the page cache. MAD is the runs' median absolute deviation as a share
  of their median: a ratio of two methods is only as sure as their MADs allow.
- The page cache is warm for every load, so loads measure copying and parsing, not the disk.
  Writes land in the page cache; only an fsync reaches the disk.
- modelpack writes atomically and durably (temporary file, fsync, rename, fsync of the
  folder); of the others only "safetensors save_file, durable" does the same, and issue 15's
  export target compares with it. `raw write + fsync` shows what durability costs on this
  disk, which makes durable saves of 1 GB depend on the disk far more than on the writer.
- Memory is handed out the same way to every method: glibc's malloc maps every block of
  128 KiB or more freshly (by default it raises that threshold as blocks are freed, and a
  load then reuses pages the previous method freed and looks up to 2× faster, depending on
  the order of the methods). Before each timed save or load, twice the weights' size is
  touched and freed: on a VM, memory the host has taken back costs up to 10× more to touch
  again, at random (0.13–1.4 s per GB measured here).
- Loads leave every tensor in memory, writable (`np.load` reads each member of the `.npz`;
  `torch.load` uses `weights_only=True`). "open + 1 small tensor" opens the file and copies
  one bias from the middle of it; each result is checked bit for bit against the weights.
- Peak RSS is measured in a fresh process per method as `VmHWM` (reset through
  `/proc/self/clear_refs`) minus `VmRSS` just before the call, after imports, a warm-up call
  on a tiny file, and (for saves) building the input. `ru_maxrss` is not used: on Linux a
  child inherits its parent's peak through `exec`. "RSS Δ after open" is measured before any
  tensor is read; "all read" after reading every tensor and keeping them. It is not measured
  on 1 MB, where import and allocator noise dominate.
- `OPENBLAS_CORETYPE` may be set on this machine to steer OpenBLAS's CPU detection; it only
  affects BLAS kernels, not file I/O, and no method here calls BLAS.
"""


def write_benchmarks(path: Path, results: list[WorkloadResult], *, machine: dict[str, str], method: str,
                     command: str, elapsed: float, note: str | None = None) -> None:
    """Write the committed report: machine, method, tables, notes."""
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` in {elapsed:.0f} s; regenerate it the same way after changing",
        "the save or load paths. `python bench/run.py --quick` prints the same tables for 1 MB,",
        "200 and 10,000 tensors and 100 MB, without peak RSS.",
        "",
    ]
    if note:
        lines += [note, ""]
    lines += ["## Machine", ""] + [f"- {key}: {value}" for key, value in machine.items()]
    # the method is run.py's docstring: make its reST literals Markdown, its module names paths
    method = re.sub(r"``(_\w+\.py)``", r"`bench/\1`", method).replace("``", "`")
    lines += ["", "## Method", "", method, "", "## Results", "", render(results), "", "## Notes", "", NOTES]
    path.write_text("\n".join(lines).rstrip("\n") + "\n" + _sections_of_other_scripts(path))


def _sections_of_other_scripts(path: Path) -> str:
    """Sections another script owns (a heading naming it, e.g. ``bench/train_step.py``), which
    this rewrite keeps as they are."""
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8")
    found = re.findall(r"\n## [^\n]*\(`bench/(?!run\.py)[^`]+`\).*?(?=\n## |\Z)", text, flags=re.S)
    return "".join(found).rstrip("\n") + "\n" if found else ""
