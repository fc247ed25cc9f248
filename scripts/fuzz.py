"""Mutation-fuzz the archive reader (and the writer) and print how the cases ended.

    python scripts/fuzz.py [--cases 10000] [--writer-cases 1000] [--seed 0] [--max-seconds 2]

Each case mutates one of several valid archives (see tests/fuzzing.py) and runs load,
inspect and verify on it, then what loads: its forward on small inputs under a memory cap,
and every tensor read twice in every read mode. Only ModelpackError subclasses naming the
file may escape, what loads must match its manifest, no tensor verify finds damaged may be
served, and no case may take longer than --max-seconds (plus 1 s per 16 MiB of file).
Each writer case exports a random network with odd configs (NaN, infinities, bad names)
over a good file: refused with the file intact, or loaded back the same. Prints a
histogram of outcomes (the error class ``load`` raised, or "loaded"), by mutation too;
exits 1 on any failure, printing the seed archive, the mutations and the first failures.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzzing  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--writer-cases", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)

    seeds = fuzzing.seeds()
    rng = random.Random(args.seed)
    outcomes: collections.Counter[str] = collections.Counter()
    by_mutation: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failures: list[str] = []
    slowest = 0.0
    started = time.perf_counter()
    for case in range(args.cases):
        seed_name = rng.choice(sorted(seeds))
        data, applied = fuzzing.mutate(seeds[seed_name], rng, rng.randint(1, 3))
        began = time.perf_counter()
        try:
            with fuzzing.time_bound(args.max_seconds + len(data) / 2**24):
                outcome = fuzzing.run_case(data)
        except fuzzing.Hang:
            outcome = "FAILED: timeout"
            failures.append(f"case {case}: {seed_name} + {applied}: over {args.max_seconds} s")
        except AssertionError as exc:
            outcome = "FAILED: " + type(exc).__name__
            failures.append(f"case {case}: {seed_name} + {applied}: {exc}")
        slowest = max(slowest, time.perf_counter() - began)
        outcomes[outcome] += 1
        for name in applied:
            by_mutation[name][outcome] += 1
    writer_outcomes: collections.Counter[str] = collections.Counter()
    for case in range(args.writer_cases):
        try:
            with fuzzing.time_bound(args.max_seconds):
                writer_outcomes[fuzzing.run_writer_case(rng)] += 1
        except (fuzzing.Hang, AssertionError) as exc:
            writer_outcomes["FAILED: " + type(exc).__name__] += 1
            failures.append(f"writer case {case}: {exc}")
    elapsed = time.perf_counter() - started

    print(f"{args.cases} cases and {args.writer_cases} writer cases (seed {args.seed}) in {elapsed:.1f} s; "
          f"slowest reader case {slowest * 1000:.0f} ms")
    print("\noutcome of load                     cases")
    for outcome, count in outcomes.most_common():
        print(f"  {outcome:<34}{count:>6}  {'#' * max(1, round(50 * count / args.cases))}")
    print("\nby mutation (a case counts once per mutation it applied)")
    for name in sorted(by_mutation):
        counts = ", ".join(f"{outcome} {count}" for outcome, count in by_mutation[name].most_common())
        print(f"  {name:<20}{counts}")
    print("\noutcome of writer cases")
    for outcome, count in writer_outcomes.most_common():
        print(f"  {outcome:<34}{count:>6}")
    for failure in failures[:20]:
        print("FAILURE", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
