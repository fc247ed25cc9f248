"""One rule for what ``save`` and ``export(example=...)`` accept, alone or in a container."""

from __future__ import annotations

import numpy as np
import pytest
from models import mlp_ready

import modelpack
from modelpack.errors import UnsupportedDtypeError


class ArrayLike:
    """A foreign array type, as torch or jax tensors are to numpy: only ``__array__``."""

    def __init__(self, values):
        self.values = np.asarray(values)

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)


class Unconvertible:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad")


@pytest.mark.parametrize(
    "wrap", [lambda a: a, lambda a: [a], lambda a: {"a": a}], ids=["alone", "list", "dict"]
)
def test_array_likes_are_taken_alone_and_in_containers(tmp_path, wrap):
    modelpack.save(tmp_path / "t", wrap(ArrayLike([1.5, 2.5])))
    loaded = modelpack.load(tmp_path / "t")
    value = (
        loaded if isinstance(loaded, np.ndarray) else (loaded[0] if isinstance(loaded, list) else loaded["a"])
    )
    assert value.dtype == np.float64 and value.tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    ("data", "label"),
    [
        (Unconvertible(), "the array to save"),
        ([Unconvertible()], r"item \[0\]"),
        ({"a": Unconvertible()}, "tensor 'a'"),
    ],
)
def test_unconvertible_array_likes_are_refused_everywhere_with_the_reason(tmp_path, data, label):
    with pytest.raises(
        UnsupportedDtypeError,
        match=label + r": cannot convert Unconvertible to a numpy array: "
        r"Can't call numpy\(\) on Tensor that requires grad",
    ):
        modelpack.save(tmp_path / "t", data)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("data", ["text", None, [[1, 2], [3]]], ids=["str", "None", "nested_list"])
def test_non_arrays_are_refused(tmp_path, data):
    with pytest.raises(UnsupportedDtypeError, match=r"is a (str|NoneType|list); give a numpy array"):
        modelpack.save(tmp_path / "t", data if not isinstance(data, list) else [data[0], data[1]])


def test_a_list_of_numbers_is_a_list_of_zero_d_arrays(tmp_path):
    """Documented: a list is a list of tensors (as npx.save), so each number is a 0-d array."""
    modelpack.save(tmp_path / "l", [1, 2.5, True])
    loaded = modelpack.load(tmp_path / "l")
    assert [a.shape for a in loaded] == [(), (), ()]
    assert [a.dtype for a in loaded] == [np.dtype(int), np.float64, np.bool_]
    assert [a.item() for a in loaded] == [1, 2.5, True]


def test_export_example_takes_a_list_as_a_tuple(tmp_path):
    net = mlp_ready()
    x = np.random.default_rng(0).uniform(size=(3, 20))
    modelpack.export(net, tmp_path / "a.mpk", example=[x])
    modelpack.export(net, tmp_path / "b.mpk", example=(x,))
    assert (tmp_path / "a.mpk").read_bytes() == (tmp_path / "b.mpk").read_bytes()
    assert (modelpack.load(tmp_path / "a.mpk")(x) == net(x)).all()


def test_object_array_refused_at_save(tmp_path):
    with pytest.raises(UnsupportedDtypeError, match=r"item \[1\] has dtype object"):
        modelpack.save(tmp_path / "t", [np.zeros(2), np.array([{}], dtype=object)])
    with pytest.raises(UnsupportedDtypeError, match="tensor 's' has dtype <U"):
        modelpack.save(tmp_path / "t", {"s": np.array(["text"])})
    assert list(tmp_path.iterdir()) == []
