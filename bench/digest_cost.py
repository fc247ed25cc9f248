"""What would another digest buy a durable save? Each candidate's speed, against the save itself.

    python bench/digest_cost.py [--size 1GB] [--repeats 3] [--dir DIR]

modelpack's writers record every tensor's SHA-256 (spec/FORMAT.md §7) and write the weights
while the digests are computed on the other cores, so on a machine with few cores a large
durable save is bound by hashing or by the disk, whichever is slower. Measured in one run, on
``bench/run.py``'s weights for ``--size``: each candidate digest over the weights in memory, on
one core and on all of them (SHA-256 and BLAKE2b from hashlib, one tensor per task as the writer
hashes; BLAKE3 when the ``blake3`` package is installed, with its own threads), CRC-32 and a
plain copy for scale; then ``modelpack.save``, a durable safetensors save (issue 15's
competitor: temporary file, fsync, rename, fsync of the folder) and a raw write + fsync, to a
file in ``--dir``, medians of ``--repeats``. The decision it supports is in spec/FORMAT.md §7.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from _methods import by_name
from _timing import median_seconds
from _workloads import WORKLOADS, build_arrays

from modelpack.io.checksums import crc32

SAVES = ("raw write + fsync", "safetensors save_file, durable", "modelpack.save")



def _digests(views: list[memoryview], pool: ThreadPoolExecutor) -> dict[str, Callable[[], object]]:
    """Each candidate over every tensor: on this thread, and spread over ``pool``."""
    def each(function: Callable[[memoryview], object]) -> Callable[[], object]:
        return lambda: [function(view) for view in views]

    def spread(function: Callable[[memoryview], object]) -> Callable[[], object]:
        return lambda: list(pool.map(function, views))

    found = {
        "SHA-256, one core": each(lambda v: hashlib.sha256(v).digest()),
        "SHA-256, all cores": spread(lambda v: hashlib.sha256(v).digest()),
        "BLAKE2b, one core": each(lambda v: hashlib.blake2b(v).digest()),
        "BLAKE2b, all cores": spread(lambda v: hashlib.blake2b(v).digest()),
    }
    try:
        import blake3
    except ImportError:
        pass
    else:
        found["BLAKE3, one core"] = each(lambda v: blake3.blake3(v).digest())
        found["BLAKE3, all cores"] = each(lambda v: blake3.blake3(v, max_threads=blake3.blake3.AUTO).digest())
    found["CRC-32 (modelpack's: ISA-L where installed)"] = each(crc32)
    found["CRC-32 (zlib)"] = each(zlib.crc32)
    scratch = memoryview(bytearray(max(view.nbytes for view in views)))  # reused: warm pages

    def copy(view: memoryview) -> None:
        scratch[: view.nbytes] = view

    found["memory copy (into one reused buffer)"] = each(copy)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="1GB", choices=["1MB", "100MB", "1GB"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the saves write")
    args = parser.parse_args()

    workload = WORKLOADS[args.size]
    arrays = build_arrays(workload, 0)
    views = [memoryview(array).cast("B") for array in arrays.values()]
    total = sum(view.nbytes for view in views)
    cores = os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=cores) as pool:
        hashing = {label: median_seconds(step, args.repeats) for label, step in _digests(views, pool).items()}
    folder = tempfile.mkdtemp(prefix="modelpack-digest-", dir=args.dir)
    try:
        saving = {}
        for name in SAVES:
            method, path = by_name(name), os.path.join(folder, "weights")
            saving[name] = median_seconds(functools.partial(method.run, arrays, path), args.repeats)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"{workload.label}: {total / 1e9:.2f} GB of float32 in {len(views)} tensors, {cores} cores, "
          f"numpy {np.__version__}, medians of {args.repeats}")
    print(f"{'over the weights in memory':46}{'ms':>9}{'GB/s':>8}")
    for label, seconds in hashing.items():
        print(f"{label:46}{seconds * 1e3:9.1f}{total / seconds / 1e9:8.2f}")
    durable = saving["safetensors save_file, durable"]
    print(f"\n{'durable saves to ' + args.dir:46}{'ms':>9}{'÷ durable safetensors, throughput':>36}")
    for label, seconds in saving.items():
        print(f"{label:46}{seconds * 1e3:9.1f}{durable / seconds:36.2f}")


if __name__ == "__main__":
    main()
