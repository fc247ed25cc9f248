"""The one timing loop of the small bench scripts (``digest_cost``, ``checksum_cost``, ``conv2d``):
a median of wall times after an untimed warm-up. (``run.py`` and ``compute.py`` time their
rounds their own way: interleaved sides, settling time, CPU clocks.)"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls, after one untimed warm-up (page
    cache, allocator, imports)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
