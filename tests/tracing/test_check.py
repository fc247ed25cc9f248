"""The check against forward (tracing.check): a graph that computes anything else than
``forward`` (here: forward reads hidden state) is refused at export."""

from __future__ import annotations

from tracing_helpers import X, refused_export


def test_refuses_a_trace_that_misses_hidden_state():
    counter = {"calls": 0}

    def forward(self, x):
        counter["calls"] += 1
        return self.fc(x) * float(counter["calls"])  # a Python value that changes per call

    refused_export(forward, X, r"differs from forward on the example", dynamic_batch=False)
    refused_export(forward, X, r"nodes\.1\.attrs\.value is \d+\.0 at the example's sizes but \d+\.0 when they grow")


def test_a_size_that_only_fits_the_traced_sizes_is_caught_by_the_final_check():
    # batch² fits a line through batch 2 and 3 (5·batch - 6), not batch 5: the check catches it
    refused_export(lambda self, x: self.fc(x + x.reshape(-1)[: x.shape[0] ** 2].sum()), X,
             r"differs from forward on a random input")
