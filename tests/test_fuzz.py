"""Mutation fuzzing under hypothesis: bit flips, truncations, insertions, member swaps,
manifest edits. Only ModelpackError subclasses may escape load, inspect and verify; what
loads must match its manifest; no case may take over two seconds.

``scripts/fuzz.py`` runs the same cases by the ten thousand and prints a histogram.
"""

from __future__ import annotations

import random

import fuzzing
import pytest
from fuzzing import time_bound
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CASES = settings(max_examples=600, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("name", sorted(fuzzing.seeds()))
def test_seeds_load(name):
    assert fuzzing.run_case(fuzzing.seeds()[name]) == "loaded"


@CASES
@given(st.sampled_from(sorted(fuzzing.seeds())), st.randoms(use_true_random=False), st.integers(1, 3))
def test_mutated_archives_are_refused_or_loaded_faithfully(seed_name, rng: random.Random, count):
    data, applied = fuzzing.mutate(fuzzing.seeds()[seed_name], rng, count)
    with time_bound(2.0):
        fuzzing.run_case(data)


@pytest.mark.slow
@settings(max_examples=20_000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(sorted(fuzzing.seeds())), st.randoms(use_true_random=False), st.integers(1, 3))
def test_mutated_archives_soak(seed_name, rng: random.Random, count):
    data, _ = fuzzing.mutate(fuzzing.seeds()[seed_name], rng, count)
    with time_bound(2.0):
        fuzzing.run_case(data)
