"""Mutation-fuzz the archive reader and print how the cases ended.

    python scripts/fuzz.py [--cases 10000] [--seed 0] [--max-seconds 2]

Each case mutates one of several valid archives (see tests/fuzzing.py) and runs load,
inspect and verify on it. Only ModelpackError subclasses may escape, what loads must match
its manifest, and no case may take longer than --max-seconds. Prints a histogram of
outcomes (the error class ``load`` raised, or "loaded"), by mutation too; exits 1 on any
failure, printing the seed archive, the mutations and the first failures.
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
            with fuzzing.time_bound(args.max_seconds):
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
    elapsed = time.perf_counter() - started

    print(f"{args.cases} cases (seed {args.seed}) in {elapsed:.1f} s; slowest case {slowest * 1000:.0f} ms")
    print("\noutcome of load                     cases")
    for outcome, count in outcomes.most_common():
        print(f"  {outcome:<34}{count:>6}  {'#' * max(1, round(50 * count / args.cases))}")
    print("\nby mutation (a case counts once per mutation it applied)")
    for name in sorted(by_mutation):
        counts = ", ".join(f"{outcome} {count}" for outcome, count in by_mutation[name].most_common())
        print(f"  {name:<20}{counts}")
    for failure in failures[:20]:
        print("FAILURE", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
