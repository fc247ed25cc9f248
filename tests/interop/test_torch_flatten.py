"""``flatten``: what a torch file holds, by dotted path (the names ``modelpack convert`` gives a
checkpoint's tensors and values); deep, shared and cyclic structures a pickle can make."""

from __future__ import annotations

import numpy as np
import pytest

from modelpack.errors import FormatError
from modelpack.interop.torch import flatten
from modelpack.interop.torch.state_dict import MAX_PATH


def test_nested_dicts_lists_and_tuples_are_named_by_their_keys_and_indices():
    weight, buffer, mean = np.ones((2, 3), np.float32), np.zeros(3), np.arange(3.0)
    loaded = {"model": {"0.weight": weight},
              "optimizer": {"state": {0: {"momentum_buffer": buffer}},
                            "param_groups": [{"lr": 0.1, "params": [0, 1], "foreach": None}]},
              "epoch": 7, "acc": np.float64(0.5), "arch": "mlp", "stats": (mean, b"raw")}
    flat = flatten(loaded)
    assert list(flat.arrays) == ["model.0.weight", "optimizer.state.0.momentum_buffer", "stats.0"]
    assert flat.arrays["model.0.weight"] is weight and flat.arrays["stats.0"] is mean
    assert flat.values == {"optimizer.param_groups.0.lr": 0.1, "optimizer.param_groups.0.params.0": 0,
                           "optimizer.param_groups.0.params.1": 1, "epoch": 7, "acc": 0.5, "arch": "mlp"}
    assert flat.skipped == 2  # None and bytes


def test_a_flat_state_dict_keeps_its_own_names_and_a_lone_value_is_0():
    state = {"0.weight": np.ones(2), "1.running_mean": np.zeros(2)}
    assert flatten(state).arrays == state
    assert list(flatten(np.ones(2)).arrays) == ["0"] and flatten(7).values == {"0": 7}


def _nested(depth: int) -> list:
    nested: list = [np.ones(1)]
    for _ in range(depth - 1):
        nested = [nested]
    return nested


def test_a_path_as_long_as_a_tensor_name_may_be_and_no_longer():
    """Each level costs its path: paths are bounded, so a deep file costs no square of its depth."""
    assert list(flatten(_nested(MAX_PATH // 2)).arrays) == [".".join(["0"] * (MAX_PATH // 2))]  # 1023 characters
    with pytest.raises(FormatError, match=rf"^ck\.pt: a value's path 0\.0\.0.*\.\.\. is over {MAX_PATH} characters$"):
        flatten(_nested(1_000_000), where="ck.pt")


def test_shared_and_cyclic_containers_are_walked_once():
    shared = {"w": np.ones(1)}
    cycle: list = [np.zeros(1)]
    cycle.append(cycle)
    flat = flatten({"a": shared, "b": shared, "c": cycle})
    assert list(flat.arrays) == ["a.w", "c.0"] and flat.skipped == 2


def test_two_values_that_come_to_one_name_are_refused():
    with pytest.raises(FormatError, match=r"^ck\.pt: two values are both named 'a\.b' once nested names are joined$"):
        flatten({"a.b": np.ones(1), "a": {"b": 3}}, where="ck.pt")
