"""The activation budget's size rules: ``op_bytes`` must bound what every registered op
really allocates (checked against numpy on many shapes and dtypes), and a run's accounting
must give back what a block allocated once the block returns."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

from modelpack import Limits, nn
from modelpack.errors import LimitError
from modelpack.nn import activations, ops
from modelpack.nn.budget import ActivationBudget, limit_activations, op_bytes

DTYPES = [np.bool_, np.int8, np.int32, np.uint16, np.float16, np.float32, np.float64, np.complex64]


def _array(shape, dtype, rng):
    return (rng.normal(size=shape) * 3).astype(dtype)


def _cases(rng):
    """(op, inputs, attrs) for every registered op, over shapes and dtypes."""
    pairs = [((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((5,), ()), ((1,), (6, 1))]
    for op in ("add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "greater",
               "greater_equal", "less", "less_equal", "equal", "not_equal"):
        for (a, b), da, db in itertools.product(pairs, DTYPES[:6], DTYPES[3:]):
            yield op, [_array(a, da, rng), _array(b, db, rng)], {}
        yield op, [_array((4, 3), np.int8, rng), 2.5], {}
        yield op, [True, _array((4, 3), np.bool_, rng)], {}
        yield op, [_array((2, 2), np.float16, rng), 3], {}
    for a, b in [((2, 3), (3, 4)), ((3,), (3,)), ((5, 2, 3), (3, 4)), ((3,), (2, 3, 4)), ((2, 1, 2, 3), (4, 3, 2))]:
        for dtype in (np.int8, np.float32, np.bool_):
            yield "matmul", [_array(a, dtype, rng), _array(b, dtype, rng)], {}
    for op in ("negative", "abs", "exp", "log", "sqrt", "square", "sin", "cos", "relu", "sigmoid", "tanh",
               "softrelu", "softsign", "gelu", "silu", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh",
               "arcsinh", "arccosh", "arctanh", "rint", "erf"):
        for dtype in (np.int8, np.float16, np.float32, np.int64):
            yield op, [_array((3, 4), dtype, rng)], {}
    for op in ("leaky_relu", "elu"):
        yield op, [_array((3, 4), np.float32, rng)], {"alpha": 0.1}
    for op in ("softmax", "log_softmax"):
        yield op, [_array((3, 4), np.float16, rng)], {"axis": 0}
        yield op, [_array((3, 4), np.float32, rng), np.array([1, 2, 4])], \
            {"axis": -1, "temperature": None, "use_length": True, "dtype": "float64"}
    yield "where", [_array((3, 1), np.bool_, rng), _array((1, 5), np.int8, rng), 1.5], {}
    yield "where", [_array((4,), np.bool_, rng), _array((2, 4), np.float32, rng), _array((), np.float64, rng)], {}
    for op in ("concatenate", "stack"):
        yield op, [_array((2, 3), np.int8, rng), _array((2, 3), np.float32, rng), _array((2, 3), np.int8, rng)], {"axis": 1}
    yield "reshape", [_array((2, 6), np.float32, rng)], {"shape": [3, -1]}
    yield "transpose", [_array((2, 3, 4), np.float32, rng)], {"axes": [2, 0, 1]}
    yield "flatten", [_array((2, 3, 4), np.int8, rng).transpose()], {}
    yield "squeeze", [_array((2, 1, 3), np.float32, rng)], {"axis": 1}
    yield "expand_dims", [_array((2, 3), np.float32, rng)], {"axis": [0, 3]}
    for source, target in itertools.product(("bool", "int8", "float32"), ("complex128", "uint8", "float16")):
        yield "cast", [_array((3, 3), source, rng)], {"dtype": target}
    yield "getitem", [_array((4, 5), np.float32, rng)], {"index": [{"slice": [None, None, 2]}, {"newaxis": True}]}
    for op in ("sum", "mean", "max", "min", "prod", "argmax", "argmin"):
        for dtype in (np.bool_, np.int8, np.float16):
            attrs = {"axis": 0 if op.startswith("arg") else [0], "keepdims": True}
            yield op, [_array((3, 4), dtype, rng)], attrs
    for op in ("var", "std"):
        yield op, [_array((3, 4), np.int8, rng)], {"axis": [1], "keepdims": False, "ddof": 0}
    for op in ("floor_divide", "mod", "fmod", "logical_and", "logical_or", "logical_xor"):
        yield op, [_array((3, 1), np.int8, rng) + 5, _array((1, 4), np.float32, rng) + 7], {}
    for op in ("ceil", "floor", "expm1", "log1p", "reciprocal", "sign", "logical_not"):
        yield op, [_array((3, 4), np.int16, rng)], {}
    yield "clip", [_array((3, 4), np.int8, rng)], {"a_min": -1.5, "a_max": 2}
    yield "smooth_l1", [_array((3, 4), np.float16, rng)], {"scalar": 1.0}
    yield "cumsum", [_array((3, 4), np.bool_, rng)], {"axis": 1}
    yield "swapaxes", [_array((2, 3, 4), np.float32, rng)], {"axis1": 0, "axis2": 2}
    yield "split", [_array((6, 4), np.float32, rng)], {"sections": 3, "indices": None, "axis": 0}
    for dtype in ("int8", "float64", None):
        yield "zeros_like", [_array((3, 4), np.float32, rng)], {"dtype": dtype}
        yield "ones_like", [_array((3, 4), np.bool_, rng)], {"dtype": dtype}
        yield "full_like", [_array((3, 4), np.int8, rng)], {"dtype": dtype, "value": 2.5}
    yield "full", [], {"shape": [3, 70], "value": 1.5, "dtype": "float64"}
    yield "broadcast_to", [_array((3, 1), np.int8, rng)], {"shape": [5, 3, 40]}
    yield "arange", [], {"start": 2, "stop": 97.5, "step": 1.5, "dtype": "int64"}
    yield "repeat", [_array((3, 4), np.float32, rng)], {"repeats": 7, "axis": 1}
    yield "repeat", [_array((3, 4), np.float32, rng)], {"repeats": 3, "axis": None}
    yield "tile", [_array((3, 4), np.int8, rng)], {"reps": [2, 3, 5]}
    yield "one_hot", [np.array([[0, 3], [1, 2]])], {"depth": 50, "on_value": 1.0, "off_value": 0.0, "dtype": "float64"}
    table = _array((5, 6), np.float32, rng)
    yield "take", [table, np.array([[0, 4, 4], [1, 2, 3]])], {"axis": 0, "mode": "raise"}
    yield "take", [table, np.array([[0, 9, 29]])], {"axis": None, "mode": "raise"}
    yield "getitem", [table, np.array([0, 4, 4, 1] * 10)], {"index": [{"array": 0}, {"slice": [None, None, 2]}]}
    yield "getitem", [table, np.array([[0], [4]]), np.array([1, 2, 3])], {"index": [{"array": 0}, {"array": 1}]}
    yield "getitem", [table, table > 0], {"index": [{"array": 0}]}
    yield "getitem", [_array((2, 3, 4), np.float32, rng)], {"index": [{"newaxis": True}, {"ellipsis": True}, {"int": 1}]}
    yield "embedding", [np.array([[0, 4], [1, 1]]), table], {"input_dim": 5, "output_dim": 6}
    yield "fully_connected", [_array((4, 2, 3), np.float32, rng), _array((9, 6), np.float32, rng),
                              _array((9,), np.float32, rng)], {"num_hidden": 9, "no_bias": False, "flatten": True}
    yield "fully_connected", [_array((4, 2, 3), np.float32, rng), _array((9, 3), np.float32, rng)], \
        {"num_hidden": 9, "no_bias": True, "flatten": False}
    yield "dot", [_array((4, 3), np.float32, rng), _array((2, 3, 5), np.float32, rng)], {}
    yield "dot", [_array((4, 3), np.int8, rng), _array((3,), np.int8, rng)], {}
    yield "dot", [np.float32(2.0), _array((3, 5), np.float32, rng)], {}
    yield "batch_dot", [_array((2, 3, 4), np.float32, rng), _array((2, 5, 4), np.float32, rng)], \
        {"transpose_a": False, "transpose_b": True}
    for ret in ("indices", "value", "mask", "both"):
        yield "topk", [_array((3, 6), np.float16, rng)], {"axis": -1, "k": 4, "ret_typ": ret, "is_ascend": False,
                                                            "dtype": "float32"}
    yield "pick", [table, np.array([0, 5, 2, 1, 3])], {"axis": -1, "mode": "clip", "keepdims": False}
    for op in ("sequence_mask", "sequence_reverse", "sequence_last"):
        attrs = {"use_sequence_length": True, "axis": 0}
        if op == "sequence_mask":
            attrs["value"] = -1.0
        yield op, [_array((4, 3, 2), np.float32, rng), np.array([1, 4, 2])], attrs
    yield "layer_norm", [_array((3, 4), np.float32, rng), np.ones(4, np.float32), np.zeros(4, np.float32)], \
        {"axis": -1, "eps": 1e-5}
    yield "dropout", [_array((3, 4), np.float32, rng)], {"p": 0.5, "axes": []}
    yield "lrn", [_array((2, 5, 3), np.float32, rng)], {"size": 3, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}


def test_op_bytes_bounds_every_op():
    rng = np.random.default_rng(0)
    seen, refused = set(), 0
    for op, inputs, attrs in _cases(rng):
        try:
            with np.errstate(all="ignore"):
                result = ops.op_def(op).fn(*inputs, **attrs)
                result = result if isinstance(result, list) else np.asarray(result)
        except TypeError:  # numpy has no such loop (boolean subtract, ...): nothing allocated
            refused += 1
            continue
        seen.add(op)
        results = result if isinstance(result, list) else [result]
        allocated = sum(np.asarray(r).nbytes for r in results)
        assert op_bytes(op, inputs, attrs) >= allocated, (op, [np.shape(x) for x in inputs], attrs)
    assert seen == set(ops.known_ops()), "every registered op needs a case (and maybe a size rule)"
    assert refused < 20


def test_op_bytes_is_exact_where_it_matters():
    """The ops that grow arrays are sized exactly for float32 (the common case), not loosely."""
    rng = np.random.default_rng(1)
    col, row = _array((1000, 1), np.float32, rng), _array((1, 1000), np.float32, rng)
    assert op_bytes("add", [col, row], {}) == 4_000_000
    assert op_bytes("multiply", [col, 0.5], {}) == 4000
    assert op_bytes("matmul", [_array((8, 16, 32), np.float32, rng), _array((32, 64), np.float32, rng)], {}) == 8 * 16 * 64 * 4
    assert op_bytes("concatenate", [col, col, col], {"axis": 0}) == 12_000


def test_op_bytes_refuses_what_numpy_refuses():
    with pytest.raises(ValueError):
        op_bytes("add", [np.ones((2, 3)), np.ones((4,))], {})
    with pytest.raises(ValueError):
        op_bytes("matmul", [np.ones(()), np.ones((4,))], {})


def test_what_a_block_allocated_stops_counting_when_it_returns():
    """A Sequential of layers each just under the limit runs: only one layer's arrays at a time."""
    net = nn.Sequential()
    for _ in range(6):
        net.add(nn.Dense(64, in_units=64))
    net.initialize(seed=0)
    x = np.ones((1000, 64), np.float32)  # each Dense output: 256 000 bytes, twice with the bias
    limit_activations(net, ActivationBudget("six layers", Limits(max_activation_bytes=520_000)))
    assert net(x).shape == (1000, 64)
    limit_activations(net, ActivationBudget("six layers", Limits(max_activation_bytes=500_000)))
    with pytest.raises(LimitError, match=r"^six layers: block '0' \(Dense\): its output: the activations this "
                       r"forward call would hold after allocating 512000 bytes"):
        net(x)


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_uncharged_activations_work_in_little_memory(name):
    """What the budget leaves uncounted (element-wise layers) stays within a few copies of the
    input: gelu's float64 temporaries (18 copies at once) are taken in steps."""
    x = np.random.default_rng(2).normal(size=(1024, 1024)).astype(np.float32)
    tracemalloc.start()
    try:
        activations.ACTIVATIONS[name](x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * x.nbytes, f"{name}: {peak / x.nbytes:.1f} copies"


def test_gelu_in_steps_is_bitwise_the_one_step_formula():
    from modelpack.nn.activations import _SQRT_HALF, _erfc

    rng = np.random.default_rng(3)
    for dtype in (np.float16, np.float32, np.float64):
        x = (rng.normal(size=(3, 70_001)) * 5).astype(dtype)
        wide = x.astype(np.float64)
        expected = (0.5 * wide * _erfc(-wide * _SQRT_HALF)).astype(dtype)
        assert activations.gelu(x).tobytes() == expected.tobytes()
        assert activations.gelu(x.T).tobytes() == expected.T.tobytes()
