"""Save and load speed and memory of modelpack against raw I/O, numpy, safetensors, torch and pickle.

Method. Each workload is an MLP of float32 ``Dense`` layers built from a seed (see
``_workloads.py``): 1 MB (6 tensors), 100 MB (50) and 1 GB (100); and, for costs that grow
with the tensor count, 200 and 10,000 small tensors (tensor archives only). Every competitor
(``_methods.py``) is measured in the same run, on the same weights, writing to a temporary
folder in ``--dir`` (removed at the end):

- memory: glibc's malloc maps every block of 128 KiB or more freshly (``_alloc.py``), so no
  method reuses pages another freed and each load pays for its memory, as in a new process.
  Before each timed save or load, twice the weights' size is touched and freed, so the VM's
  host has backed the pages the call will get (first touches otherwise cost up to 10× more,
  at random).
- saves: one untimed call of each (it also writes the file the loads read), then
  ``--repeats`` rounds that time every method once, in turn, so drift affects all alike.
  Before each timed write the old file is removed and ``os.sync()`` flushes dirty pages,
  so no write pays for an earlier one's writeback.
- loads, after an ``os.sync()``: every file is read once, untimed, so the page cache is warm;
  each method runs once untimed and its tensors are checked bit for bit against the
  workload; then ``--repeats`` rounds as above. A load must leave every tensor in memory,
  writable.
- open + 1 tensor: open the file and read one small tensor (a bias from the middle), checked
  likewise, timed 10 times per round (it takes about a millisecond).
- durable saves: "safetensors save_file, durable" is what a careful user does for a crash-safe
  save (a temporary file, fsync, rename, fsync of the folder), as modelpack's writers do.
- checks of the whole file: ``modelpack.verify`` against the file's bytes hashed with the
  format's digest (SHA-256) on all cores, each core reading and hashing its own share.
- peak RSS: each method once more, alone in a fresh process (see ``_rss.py``), reported as
  a multiple of the weights' size; for the lazy methods, also right after opening.

Figures are medians. Throughput is the weights' bytes (not the file's) per second. What is
worth comparing is the ratio of two methods measured in the same run (each method's
throughput ÷ the raw baseline, and the ratios issue 6 sets targets on); absolute times are
printed for context only.

    python bench/run.py --quick               # 1 MB, 200 and 10,000 tensors, 100 MB; 3 repeats, no RSS
    python bench/run.py --write               # all sizes, 5 repeats; rewrites BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _alloc import fix_mmap_threshold, prefault, trim_heap
from _methods import FILES, METHODS, Method
from _report import Row, WorkloadResult, describe_machine, render, write_benchmarks
from _rss import child_main, measure
from _workloads import WARMUP, WORKLOADS, Workload, build_arrays, build_net, build_torch

REPO = Path(__file__).resolve().parent.parent
PREFAULT_FACTOR = 2  # memory warmed before a timed save or load, × the weights (see _alloc.py)
LAZY_FACTOR = 10  # open + 1 tensor takes ~1 ms: time it more often for a stable median
RSS_MIN_BYTES = 10**7  # below this, allocator and import noise swamp the figure
SEED = 0
QUICK = ["1MB", "200t", "10kt", "100MB"]
QUICK_SKIPS = ("torch", "pickle")  # no target compares with them
QUICK_LAZY_FACTOR = 3


@dataclass
class Inputs:
    """What the saves take: the arrays, the same weights in a model, and as torch tensors."""

    arrays: dict[str, np.ndarray]
    workload: Workload
    _cache: dict[str, object] = field(default_factory=dict)

    def get(self, needs: str) -> object:
        if needs == "arrays":
            return self.arrays
        if needs not in self._cache:
            self._cache[needs] = (build_net(self.workload, self.arrays) if needs == "net"
                                  else build_torch(self.arrays))
        return self._cache[needs]


def _timed(call: Callable[..., object], *args: object, warm_bytes: int = 0) -> float:
    """Seconds taken by ``call(*args)``; the result is freed after the clock stops.

    ``warm_bytes`` of memory are touched and freed first (see ``_alloc.prefault``).
    """
    gc.collect()
    trim_heap()
    prefault(warm_bytes)
    start = time.perf_counter()
    result = call(*args)
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def _mismatch(expected: Mapping[str, np.ndarray], found: Mapping[str, object]) -> str | None:
    if set(found) != set(expected):
        return f"wrong data: tensor names {sorted(found)[:4]}…"
    for name, want in expected.items():
        got = np.asarray(found[name])
        if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
            return f"wrong data: tensor {name!r} differs"
    return None


def _error(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"error: {type(exc).__name__}: {first}"[:160]


def _paths(folder: str) -> dict[str, str]:
    return {key: os.path.join(folder, "weights" + suffix) for key, suffix in FILES.items()}


def _warm_read(path: str) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 24):
            pass


def _open_one(method: Method, path: str, name: str) -> np.ndarray:
    with method.open(path) as handle:
        return np.array(method.get(handle, name))  # a copy: the values in hand, file closed


def _save_round(row: Row, inputs: Inputs, path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    os.sync()  # no write pays for the writeback of an earlier one
    warm = PREFAULT_FACTOR * inputs.workload.nbytes
    row.times.append(_timed(row.method.run, inputs.get(row.method.needs), path, warm_bytes=warm))


def _read_round(row: Row, workload: Workload, path: str, lazy_factor: int = LAZY_FACTOR) -> None:
    if row.method.kind == "load":
        warm = PREFAULT_FACTOR * workload.nbytes
        row.times.append(_timed(row.method.run, path, workload, warm_bytes=warm))
    elif row.method.kind == "check":
        row.times.append(_timed(row.method.run, path, workload))
    else:
        for _ in range(lazy_factor):
            row.times.append(_timed(_open_one, row.method, path, workload.small_tensor))


def _check(row: Row, inputs: Inputs, path: str) -> str | None:
    """Run a load or lazy method once, untimed; why its result is wrong, or None."""
    method, workload = row.method, inputs.workload
    if method.kind == "check":
        method.run(path, workload)  # raises if the file does not check
        return None
    if method.kind == "load":
        loaded = dict(method.arrays(method.run(path, workload)))
        if not all(np.asarray(array).flags.writeable for array in loaded.values()):
            return "wrong kind of load: returns read-only arrays"
        return _mismatch(inputs.arrays, loaded)
    small = workload.small_tensor
    return _mismatch({small: inputs.arrays[small]}, {small: _open_one(method, path, small)})


def time_workload(workload: Workload, folder: str, repeats: int, *, quick: bool = False) -> dict[str, Row]:
    """Time every method on ``workload`` in ``folder``; the files stay there for the RSS pass.

    A method that raises is reported in its row (``status``) and left out of the timings.
    """
    inputs = Inputs(build_arrays(workload, SEED), workload)
    paths = _paths(folder)
    rows = {m.name: Row(m, status=m.unavailable(workload)) for m in METHODS}
    if quick:  # the competitors no target names are left out, and lazy calls timed less often
        for row in rows.values():
            if row.status is None and row.method.name.startswith(QUICK_SKIPS):
                row.status = "n/a (left out by --quick)"
    saves = [row for row in rows.values() if row.method.kind == "save"]
    reads = [row for row in rows.values() if row.method.kind != "save"]
    for row in saves:  # untimed first call: warms up, and writes the files the loads read
        if row.status is None:
            row.status = _attempt(_save_untimed, row.method, inputs, paths[row.method.file])
    for _ in range(repeats):  # rounds: each method once per round, so drift hits all alike
        for row in saves:
            if row.status is None:
                row.status = _attempt(_save_round, row, inputs, paths[row.method.file])
    os.sync()  # the loads do not share the machine with writeback
    for key in FILES:
        if os.path.exists(paths[key]):
            _warm_read(paths[key])
    for row in reads:
        if row.status is None:
            written = os.path.exists(paths[row.method.file])
            row.status = (_attempt(_check, row, inputs, paths[row.method.file]) if written
                          else "skipped (its file was not written)")
    for _ in range(repeats):
        for row in reads:
            if row.status is None:
                row.status = _attempt(_read_round, row, workload, paths[row.method.file],
                                      QUICK_LAZY_FACTOR if quick else LAZY_FACTOR)
    return rows


def _save_untimed(method: Method, inputs: Inputs, path: str) -> None:
    method.run(inputs.get(method.needs), path)


def _attempt(call: Callable[..., object], *args: object) -> str | None:
    """What went wrong in ``call(*args)``: the exception, or the string it returned; else None."""
    try:
        result = call(*args)
    except Exception as exc:  # noqa: BLE001  (a broken method is reported, not fatal)
        return _error(exc)
    return result if isinstance(result, str) else None


def rss_workload(key: str, rows: dict[str, Row], folder: str, warmup_folder: str, jobs: int) -> None:
    """Fill in ``row.rss`` for every method that ran, each in its own child process."""
    paths, warmups = _paths(folder), _paths(warmup_folder)
    todo = [row for row in rows.values() if row.status is None and row.method.kind != "check"]

    def one(row: Row) -> None:
        row.rss = measure(row.method, key, SEED, paths[row.method.file], warmups[row.method.file])

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # a child's peak RSS is its own
        list(pool.map(one, todo))


def write_warmups(folder: str, *, quick: bool = False) -> None:
    """The tiny files every RSS child loads once before its baseline. With ``quick``, not those of
    the methods it leaves out: torch.save would import torch, whose objects make every timed
    call's ``gc.collect`` ~40 ms slower (--quick took 69 s, not under a minute)."""
    inputs = Inputs(build_arrays(WARMUP, SEED), WARMUP)
    paths = _paths(folder)
    for method in METHODS:
        if quick and method.name.startswith(QUICK_SKIPS):
            continue
        if method.kind == "save" and method.unavailable() is None and not os.path.exists(paths[method.file]):
            _attempt(_save_untimed, method, inputs, paths[method.file])  # errors: see the timings


def run(repeats: dict[str, int], directory: str, *, rss: bool = True,
        progress: bool = True, quick: bool = False) -> list[WorkloadResult]:
    """Time (and unless ``rss`` is False, measure memory of) every method on each size.

    ``repeats`` maps each workload key to run (in order) to its number of timed rounds.
    """
    sizes = list(repeats)
    # one file per format at a time (each size's folder is removed when done), plus the children's
    need = max(WORKLOADS[key].nbytes for key in sizes) * (len(FILES) + 3)
    free = shutil.disk_usage(directory).free
    if free < need:
        sys.exit(f"{directory}: {free / 1e9:.1f} GB free, the benchmark needs about {need / 1e9:.1f} GB")
    root = tempfile.mkdtemp(prefix="modelpack-bench-", dir=directory)
    results = []
    try:
        warmup_folder = os.path.join(root, "warm-up")
        os.mkdir(warmup_folder)
        write_warmups(warmup_folder, quick=quick)
        for key in sizes:
            workload, folder = WORKLOADS[key], os.path.join(root, key)
            os.mkdir(folder)
            start = time.perf_counter()
            if progress:
                print(f"[{workload.label}] timing, {repeats[key]} repeats …", file=sys.stderr, flush=True)
            rows = time_workload(workload, folder, repeats[key], quick=quick)
            measured = rss and workload.nbytes >= RSS_MIN_BYTES and not workload.tensors_only
            if measured:
                if progress:
                    print(f"[{workload.label}] peak RSS, one process per method …", file=sys.stderr,
                          flush=True)
                rss_workload(key, rows, folder, warmup_folder, jobs=min(2, os.cpu_count() or 1))
            results.append(WorkloadResult(key, workload, repeats[key], rows, rss_measured=measured))
            shutil.rmtree(folder)
            if progress:
                print(f"[{workload.label}] done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring); 1 if any method failed, else 0."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{', '.join(QUICK)} only, 3 repeats, no peak RSS: under a minute")
    parser.add_argument("--sizes", help=f"comma-separated, from {', '.join(WORKLOADS)}")
    parser.add_argument("--repeats", type=int, help="timed rounds (default 5, 3 with --quick)")
    parser.add_argument("--large-repeats", type=int, help="timed rounds for 1 GB (default: --repeats)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the temporary folder goes")
    parser.add_argument("--dynamic-malloc", action="store_true",
                        help="keep glibc's dynamic mmap threshold for the timings (order-dependent)")
    parser.add_argument("--note", help="a paragraph to put at the top of the written report")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS child processes")
    parser.add_argument("--write", nargs="?", const=str(REPO / "BENCHMARKS.md"), metavar="PATH",
                        help="also write the report (default path: BENCHMARKS.md)")
    args = parser.parse_args(argv)
    if not args.dynamic_malloc:
        fix_mmap_threshold()
    sizes = args.sizes.split(",") if args.sizes else (QUICK if args.quick else list(WORKLOADS))
    unknown = [key for key in sizes if key not in WORKLOADS]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; known: {', '.join(WORKLOADS)}")
    repeats = args.repeats or (3 if args.quick else 5)
    started = time.perf_counter()
    counts = {key: args.large_repeats if key == "1GB" and args.large_repeats else repeats for key in sizes}
    results = run(counts, args.dir, rss=not (args.no_rss or args.quick), quick=args.quick)
    elapsed = time.perf_counter() - started
    machine = describe_machine(args.dir)
    print(render(results))
    print(f"\nwall time {elapsed:.0f} s", file=sys.stderr)
    if args.write:
        command = " ".join(["python bench/run.py", *(a for a in argv if a != args.note and a != "--note")])
        method = (__doc__ or "").split("Method.", 1)[-1].split("    python bench/run.py")[0].strip()
        write_benchmarks(Path(args.write), results, machine=machine, method=method, command=command,
                         elapsed=elapsed, note=args.note)
        print(f"wrote {args.write}", file=sys.stderr)
    failed = [row for r in results for row in r.rows.values()
              if row.status and not row.status.startswith("n/a")]
    for row in failed:
        print(f"{row.method.name}: {row.status}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
