"""``nn.ops.einsum_plan``: equations as letters (numpy's forms), and the plans both the numpy
composite and ONNX's Einsum import carry out (their values are tested there)."""

from __future__ import annotations

import pytest

from modelpack.nn.ops import einsum_plan


def test_the_implicit_output_is_the_letters_seen_once_capitals_first():
    assert einsum_plan.parse("ba,Ab", [2, 2]) == (["ba", "Ab"], "Aa")
    assert einsum_plan.parse("ij,jk", [2, 2]) == (["ij", "jk"], "ik")


def test_an_ellipsis_is_letters_of_its_own_right_aligned():
    (first, second), output = einsum_plan.parse("...ij,j...->...i", [4, 2])
    assert first[2:] == "ij" and second[0] == "j"
    assert first[1] == second[1] and output == first[:2] + "i"  # the last ellipsis axis is shared


def test_a_pair_sums_what_nothing_else_reads_then_multiplies():
    plan = einsum_plan.pair("bijx", "bkjy", "bki")
    assert plan.sums == ((3,), (3,)) and (plan.a, plan.b) == ("bij", "bkj")
    assert (plan.batch, plan.contracted, plan.free_a, plan.free_b) == ("b", "j", "i", "k")
    assert plan.laid == "bik" and plan.final == [0, 2, 1]


def test_a_chain_keeps_what_a_later_operand_or_the_output_reads():
    assert einsum_plan.chain(["bnd", "de", "bme"], "bnm") == [("bnd", "de", "bne"), ("bne", "bme", "bnm")]


@pytest.mark.parametrize(("equation", "ranks", "match"), [
    ("i.j->ij", [2], r"a '\.' outside '\.\.\.' in operand 'i\.j'"),
    ("ij->i.", [2], r"a '\.' outside '\.\.\.' in the output"),
    ("ij->i->j", [2], r"may hold letters, ',', '->' and '\.\.\.' only"),
    ("i...j", [1], r"operand 'i\.\.\.j' has 2 indices for 1 axes"),
    ("ij,jk", [2], r"names 2 operands, given 1"),
])
def test_malformed_equations_are_refused(equation, ranks, match):
    with pytest.raises(ValueError, match=match):
        einsum_plan.parse(equation, ranks)
