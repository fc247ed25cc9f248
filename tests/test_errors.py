"""The exception tree: errors that build their message from fields keep those fields."""

from __future__ import annotations

import numpy as np
import pytest

import modelpack
from modelpack import errors, nn
from modelpack.errors import DtypeMismatchError, ShapeMismatchError, UnknownOpError


def test_the_public_error_names_are_listed_once():
    assert set(errors.__all__) <= set(modelpack.__all__)
    public = {name for name, value in vars(errors).items()
              if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")}
    assert public == set(errors.__all__)


def test_a_parameter_mismatch_is_built_from_its_fields():
    error = ShapeMismatchError.of_parameter("0.weight", (4, 5), (8, 5), where="w.params", hint="; see X")
    assert str(error) == "w.params: parameter '0.weight' expected shape (4, 5), found (8, 5); see X"
    assert (error.parameter, error.expected, error.found) == ("0.weight", (4, 5), (8, 5))
    assert str(DtypeMismatchError.of_parameter("b", "float32", "int8")) == (
        "parameter 'b' expected dtype float32, found int8"
    )


def test_parameter_and_load_mismatches_use_the_builder():
    dense = nn.Dense(2, in_units=3)
    dense.initialize(seed=0)
    with pytest.raises(ShapeMismatchError) as caught:
        dense.weight.set_data(np.zeros((2, 4), np.float32))
    assert (caught.value.parameter, caught.value.expected, caught.value.found) == ("weight", (2, 3), (2, 4))
    with pytest.raises(DtypeMismatchError, match="pass cast_dtype=True") as caught:
        dense.set_parameters({"weight": np.zeros((2, 3)), "bias": np.zeros(2, np.float32)}, source="f.npz")
    assert str(caught.value).startswith("f.npz: parameter 'weight' expected dtype float32, found float64")


def test_an_unknown_op_keeps_what_was_asked_and_the_known_ops():
    error = UnknownOpError.not_an_op("numpy.sort on a Variable", "so it has no gradient", known=["add", "exp"])
    assert str(error) == "numpy.sort on a Variable: not in the op set, so it has no gradient (ops: add, exp)"
    assert error.what == "numpy.sort on a Variable" and error.known == ("add", "exp")
    as_called = UnknownOpError.not_an_op("x.sum", "so it has no gradient", detail="bad keyword", as_called=True)
    assert str(as_called) == "x.sum: not in the op set as called, so it has no gradient (bad keyword)"
