"""What does opening an archive on S3 and reading one tensor cost? Requests, ranges, bytes.

    python bench/remote.py [--size 1GB] [--tensor 64MB] [--quick]

Starts moto's S3 server on loopback behind a counting proxy (``tests/remote_servers.py``),
uploads a tensor archive of ``--size`` with ``modelpack.save("s3://…")``, then measures,
counted at the proxy (what crossed the wire, not what the client says it asked for):

- ``modelpack.inspect`` (the manifest only);
- ``modelpack.open`` + ``get_tensor`` of one tensor in the middle, with every byte range;
- the same through fsspec's default file object (``fs.open(url)``: s3fs's read-ahead cache
  with its 50 MiB blocks), which is what a reader that hands the URL to fsspec gets;
- a sharded copy (``max_shard_size``): open + one tensor touches the index and one shard.

``--quick`` (32 MB, 4 MB tensors) is the CI smoke run. Needs ``pip install -e '.[dev,remote]'``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import modelpack
from modelpack.format.shards import parse_size

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from remote_servers import Log, S3Proxy  # noqa: E402  (the tests' servers, shared)


def _summary(log: Log, label: str, archive_bytes: int, needed: int, seconds: float) -> str:
    gets = log.gets()
    ratio = f" = {log.sent / needed:.3f}× the {needed:,} bytes needed" if needed else ""
    return (f"{label}: {len(log.requests)} requests ({len(gets)} GET), {log.sent:,} bytes moved{ratio}, "
            f"{log.sent / archive_bytes:.4%} of the {archive_bytes:,}-byte archive, {seconds * 1000:.0f} ms")


def _ranges(log: Log) -> str:
    return "\n".join(f"    {r.method:4} {r.path.split('?')[0]:40} {r.range or '(whole)':28} {r.sent:>14,} B"
                     for r in log.requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GB", help="archive size (default 1GB)")
    parser.add_argument("--tensor", default="64MB", help="size of each tensor (default 64MB)")
    parser.add_argument("--quick", action="store_true", help="32MB in 4MB tensors: a smoke run")
    args = parser.parse_args(argv)
    total, each = (parse_size("32MB"), parse_size("4MB")) if args.quick else (
        parse_size(args.size), parse_size(args.tensor))
    count = max(1, total // each)
    side = int((each // 4) ** 0.5)
    tensors = {f"layer{i:03d}.weight": np.full((side, side), i, dtype=np.float32) for i in range(count)}
    middle = f"layer{count // 2:03d}.weight"

    import s3fs

    proxy = S3Proxy()
    try:
        options = proxy.options()
        s3fs.S3FileSystem(**options).mkdir("bench")
        url = "s3://bench/model.mpk"
        start = time.perf_counter()
        modelpack.save(url, tensors, storage_options=options)
        upload = time.perf_counter() - start
        fs = s3fs.S3FileSystem(**options)
        size = fs.size("bench/model.mpk")
        needed = tensors[middle].nbytes
        writes = [r.method for r in proxy.log.requests if r.method in ("PUT", "POST")]
        print(f"archive: {count} tensors of {needed:,} bytes, {size:,} bytes on S3 "
              f"(uploaded in {upload:.1f} s: {writes})")

        proxy.log.clear()
        start = time.perf_counter()
        modelpack.inspect(url, storage_options=options)
        print(_summary(proxy.log, "inspect", size, 0, time.perf_counter() - start))
        print(_ranges(proxy.log))

        proxy.log.clear()
        start = time.perf_counter()
        with modelpack.open(url, storage_options=options) as archive:
            opened = len(proxy.log.requests)
            array = archive.get_tensor(middle)
            trips = archive._handle.round_trips  # type: ignore[attr-defined]
        seconds = time.perf_counter() - start
        assert np.array_equal(array, tensors[middle])
        print(_summary(proxy.log, f"open + get_tensor({middle!r})", size, needed, seconds)
              + f"; {opened} requests to open, {trips} round trips after the HEAD")
        print(_ranges(proxy.log))

        proxy.log.clear()
        start = time.perf_counter()
        with fs.open("bench/model.mpk", "rb") as handle, modelpack.open(handle) as archive:
            array = archive.get_tensor(middle)
        print(_summary(proxy.log, "the same through fsspec's default file object", size, needed,
                       time.perf_counter() - start))

        sharded = "s3://bench/sharded/model.mpk"
        modelpack.save(sharded, tensors, storage_options=options, max_shard_size=max(each, total // 4))
        proxy.log.clear()
        start = time.perf_counter()
        with modelpack.open(sharded, storage_options=options) as archive:
            array = archive.get_tensor(middle)
            shards = len(archive.shards)  # type: ignore[union-attr]
        objects = sorted({r.path.split("?")[0] for r in proxy.log.requests})
        print(_summary(proxy.log, f"sharded ({shards} shards): open + get_tensor", size, needed,
                       time.perf_counter() - start) + f"; objects read: {objects}")
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
