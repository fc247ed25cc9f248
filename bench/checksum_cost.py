"""What does each integrity check cost on load? SHA-256 vs zip's CRC-32 vs no check at all.

    python bench/checksum_cost.py [--mb 100] [--repeat 7]

Measured in one run on the same ~100 MB of float32 weights (50 tensors), page cache warm,
medians of ``--repeat`` runs; every figure is also given as a ratio to a raw ``readinto`` of
the same file, so numbers from different machines compare. The decision it supports is in
spec/FORMAT.md §7: ``load`` checks CRC-32 by default, SHA-256 on request and in ``verify``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import tempfile
import zlib
from pathlib import Path

import numpy as np
from _timing import median_seconds

import modelpack


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=100, help="total size of the weights (default 100)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    count = 50
    per_tensor = args.mb * 2**20 // 4 // count
    rng = np.random.default_rng(0)
    arrays = {f"layer{i}.weight": rng.standard_normal(per_tensor, dtype=np.float32) for i in range(count)}
    total = sum(a.nbytes for a in arrays.values())

    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "weights.mpk"
        modelpack.save(archive, arrays)
        npz = Path(folder) / "weights.npz"
        np.savez(npz, **arrays)
        size = os.path.getsize(archive)
        buffer = bytearray(size)
        view = memoryview(buffer)

        def raw_read() -> None:
            with open(archive, "rb") as handle:
                handle.readinto(view)

        def raw_into_new_arrays() -> list[np.ndarray]:
            # What a full load cannot avoid: fresh memory (page faults) filled from the file.
            out = [np.empty(per_tensor, np.float32) for _ in range(count)]
            with open(archive, "rb") as handle:
                for array in out:
                    handle.readinto(array.data.cast("B"))
            return out

        def np_load() -> dict[str, np.ndarray]:
            with np.load(npz, allow_pickle=False) as bundle:
                return {name: bundle[name] for name in bundle.files}  # kept, as load keeps them

        raw_read()
        rows = [
            ("raw readinto (no check)", raw_read),
            ("raw readinto into 50 new arrays (no check)", raw_into_new_arrays),
            ("CRC-32 of the bytes (zlib)", lambda: zlib.crc32(view)),
            ("SHA-256 of the bytes (hashlib)", lambda: hashlib.sha256(view).digest()),
            ("np.load of the same npz (checks CRC-32)", np_load),
            ("modelpack.load (CRC-32, the default)", lambda: modelpack.load(archive)),
            ("modelpack.load(integrity='sha256')", lambda: modelpack.load(archive, integrity="sha256")),
            ("modelpack.verify (streams, CRC-32 + SHA-256)", lambda: modelpack.verify(archive)),
        ]
        results = [(label, median_seconds(step, args.repeat)) for label, step in rows]

    base = results[0][1]
    machine = platform.processor() or platform.machine()
    print(f"{total / 2**20:.0f} MiB of float32 in {count} tensors; {machine}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION}, numpy {np.__version__}; "
          f"median of {args.repeat}")
    print(f"{'':46}{'ms':>8}{'GB/s':>8}{'time / raw read':>17}")
    for label, seconds in results:
        print(f"{label:46}{seconds * 1000:8.1f}{total / seconds / 1e9:8.2f}{seconds / base:17.2f}")
    load_crc = dict(results)["modelpack.load (CRC-32, the default)"]
    load_sha = dict(results)["modelpack.load(integrity='sha256')"]
    print(f"\nSHA-256 on load costs {load_sha / load_crc:.2f}x the default load "
          f"(+{(load_sha - load_crc) * 1000:.0f} ms per {total / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
