"""Tables keyed by op name that live outside the op table (``nn/ops``) name exactly its ops.

The activation budget (``nn/budget.py``) sizes an op's result, and autograd (``autograd/``)
holds each op's VJP. They are kept beside the code that uses them rather than in the op
declaration: ``nn/ops`` sits below autograd and must not import it. This test is what ties
them to the op table, so a renamed, removed or new op cannot leave a stale or missing entry.
"""

from __future__ import annotations

import pytest

from modelpack.autograd import vjps
from modelpack.nn import budget, ops

OP_NAMES = frozenset(ops.OPS)


def test_every_op_has_exactly_one_vjp_and_no_vjp_is_stale():
    assert set(vjps.VJPS) == OP_NAMES


@pytest.mark.parametrize("table", ["CAPTURE", "OUTPUT_ONLY"])
def test_autograd_side_tables_name_only_ops(table):
    assert set(getattr(vjps, table)) <= OP_NAMES


@pytest.mark.parametrize("table", ["_BROADCASTING", "_GROWING", "_INDICES"])
def test_budget_tables_name_only_ops(table):
    # Ops in no table are bounded by their largest input; tests/nn/test_budget.py checks that
    # bound against numpy for every op, so only stale or misspelt names are left to catch here.
    assert set(getattr(budget, table)) <= OP_NAMES


def test_budget_tables_do_not_overlap():
    assert not budget._BROADCASTING & set(budget._GROWING)
