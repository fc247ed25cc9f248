"""Mutation fuzzing under hypothesis: bit flips, truncations, insertions, member swaps,
manifest edits, nested compression, grown tensors and graphs. Only ModelpackError subclasses
naming the file may escape load, inspect, verify and the loaded model's forward; what loads
must match its manifest and be backed by the file; no tensor verify finds damaged is served
on any read or retry; no case may take over two seconds (plus 1 s per 16 MiB of file).
Writer cases export odd configs: refused before writing, or loaded back the same.

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
    with time_bound(fuzzing.seconds_for(data)):
        fuzzing.run_case(data)


@settings(max_examples=150, deadline=None, database=None)
@given(st.randoms(use_true_random=False))
def test_exports_are_refused_untouched_or_loaded_back_the_same(rng: random.Random):
    with time_bound(5.0):
        fuzzing.run_writer_case(rng)


@pytest.mark.slow
@settings(max_examples=20_000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(sorted(fuzzing.seeds())), st.randoms(use_true_random=False), st.integers(1, 3))
def test_mutated_archives_soak(seed_name, rng: random.Random, count):
    data, _ = fuzzing.mutate(fuzzing.seeds()[seed_name], rng, count)
    with time_bound(fuzzing.seconds_for(data)):
        fuzzing.run_case(data)
