"""Composites (``nn.ops.composites``): numpy functions written over the op set. ``np.linalg.norm``
on a recorded value equals numpy's on the plain value (float64: rtol 1e-12; float32: 1e-6),
its gradient equals central differences (float64, rtol 1e-6), and a traced ``forward`` that
calls it exports and loads as the ops it is made of."""

from __future__ import annotations

import io

import numpy as np
import pytest

import modelpack
from modelpack import autograd, nn
from modelpack.errors import TraceError, UsageError

# (ord, axis) pairs numpy accepts for a 3x4 matrix, each norm the composite writes.
NORMS = [
    (None, None), (None, 0), (None, (0, 1)), (2, 1), (1, 0), (1, -1), (3, 1), (0.5, 0), (-2, 1),
    (np.inf, 1), (-np.inf, 0), (0, 1), ("fro", None), ("fro", (1, 0)), (1, None), (-1, (0, 1)),
    (np.inf, None), (-np.inf, (1, 0)),
]


def _norm(x, ord, axis, keepdims):  # noqa: A002
    return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(("ord", "axis"), NORMS)
def test_norm_of_a_variable_equals_numpys(ord, axis, keepdims):  # noqa: A002
    value = np.random.default_rng(3).normal(size=(3, 4))
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        x = autograd.Variable(value.astype(dtype))
        with autograd.record():
            got = _norm(x, ord, axis, keepdims)
        want = _norm(value.astype(dtype), ord, axis, keepdims)
        assert isinstance(got, autograd.Variable)
        assert got.shape == np.shape(want) and got.dtype == want.dtype
        np.testing.assert_allclose(got.value, want, rtol=rtol)


def test_norm_of_integers_is_in_float64_as_numpys():
    x = autograd.Variable(np.array([3, 4]))
    with autograd.record():
        got = np.linalg.norm(x)
    assert got.dtype == np.float64 and got.value == 5.0


@pytest.mark.parametrize(("ord", "axis"), [n for n in NORMS if n[0] != 0])
def test_norm_gradient_equals_central_differences(ord, axis):  # noqa: A002
    value = np.random.default_rng(4).normal(size=(3, 4))
    weights = np.random.default_rng(5).normal(size=np.shape(_norm(value, ord, axis, False)))
    assert_gradient_is_central_differences(lambda v: _norm(v, ord, axis, False), value, weights)


def assert_gradient_is_central_differences(function, value, weights):
    """The gradient of Σ weights · function(x) at ``value`` (float64) equals central
    differences of step 1e-6, rtol 1e-6."""
    x = autograd.Variable(value)
    with autograd.record():
        total = (function(x) * weights).sum()
    total.backward()
    step, numeric = 1e-6, np.zeros_like(value)
    for index in np.ndindex(value.shape):
        up, down = value.copy(), value.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = ((function(up) - function(down)) * weights).sum() / (2 * step)
    np.testing.assert_allclose(x.grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    ("ord", "axis", "shape", "match"),
    [
        (2, (0, 1), (3, 4), r"^np\.linalg\.norm: the matrix norm ord=2 needs singular values, which no op computes; use ord='fro', 1, -1, inf or -inf, or compute it on x\.detach\(\)$"),
        ("nuc", None, (3, 4), r"the matrix norm ord='nuc' needs singular values"),
        ("fro", 0, (3, 4), r"^np\.linalg\.norm: ord='fro' is a matrix norm; a vector norm takes a number$"),
        (1, None, (2, 3, 4), r"^np\.linalg\.norm with ord=1 and no axis needs a 1-D or 2-D array, got 3-D$"),
        (None, 2, (3, 4), r"^np\.linalg\.norm: axis 2 is out of bounds for a 2-D array$"),
        (None, (0, 0), (3, 4), r"^np\.linalg\.norm: axis \(0, 0\) must name one axis or two different axes$"),
        (None, (0, 1, 2), (2, 3, 4), r"must name one axis or two different axes$"),
        (None, 0.5, (3, 4), r"^np\.linalg\.norm: an axis must be an int, got 0\.5$"),
    ],
)
def test_norms_without_an_op_form_are_refused(ord, axis, shape, match):  # noqa: A002
    x = autograd.Variable(np.ones(shape))
    with autograd.record(), pytest.raises(UsageError, match=match):
        np.linalg.norm(x, ord=ord, axis=axis)


class RowNormalized(nn.Block):
    """A custom forward that scales rows to unit length (as cosine-similarity heads do)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Dense(4)

    def forward(self, x):
        y = self.fc(x)
        return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_a_traced_forward_with_a_norm_exports_as_ops_and_loads():
    net = RowNormalized()
    net.initialize()
    x = np.random.default_rng(6).normal(size=(5, 3)).astype(np.float32)
    want = net(x)
    buffer = io.BytesIO()
    modelpack.export(net, buffer, example=x)
    loaded = modelpack.load(io.BytesIO(buffer.getvalue()))
    np.testing.assert_allclose(loaded(x), want, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(loaded(x), axis=1), 1.0, rtol=1e-6)


# -- the rearrangements, rounding, tests of values and sorting ---------------------------------

# name -> what a forward does to its Dense layer's output (5 x 6 on the example, 9 x 6 grown).
TRACED = {
    "flip": lambda y: np.flip(y, 1), "flip every axis": np.flip, "flipud": np.flipud, "fliplr": np.fliplr,
    "roll": lambda y: np.roll(y, 2, axis=1), "roll back past the length": lambda y: np.roll(y, -7, axis=-1),
    "roll flattened": lambda y: np.roll(y, 3), "roll two axes": lambda y: np.roll(y, (1, 2), axis=(0, 1)),
    "pad": lambda y: np.pad(y, ((0, 0), (2, 3))),
    "pad with constants": lambda y: np.pad(y, ((1, 2), (2, 1)), constant_values=((1.5, -2), (3, 4))),
    "pad edge": lambda y: np.pad(y, 2, mode="edge"),
    "pad reflect": lambda y: np.pad(y, ((0, 0), (3, 5)), mode="reflect"),
    "pad symmetric": lambda y: np.pad(y, ((1, 1), (4, 6)), mode="symmetric"),
    "pad wrap": lambda y: np.pad(y, ((0, 0), (6, 2)), mode="wrap"),
    "round": lambda y: np.round(y * 10), "round to 2 decimals": lambda y: np.round(y, 2),
    "round to hundreds": lambda y: np.round(y * 1000, -2), "around": lambda y: np.around(y * 7, 1),
    "fix": lambda y: np.fix(y * 10), "trunc": lambda y: np.trunc(y * 10),
    "isnan": lambda y: np.isnan(np.log(y)), "isinf": lambda y: np.isinf(1 / (y - y[:, :1])),
    "isfinite": lambda y: np.isfinite(np.log(y) / (y - y[:1])),
    "sort": lambda y: np.sort(y, axis=1), "argsort": lambda y: np.argsort(y, axis=-1),
    "ravel": np.ravel, "moveaxis": lambda y: np.moveaxis(y.reshape(-1, 2, 3), 0, -1),
    "diff": lambda y: np.diff(y, axis=1), "diff along the batch": lambda y: np.diff(y, 2, axis=0),
    "tril": lambda y: np.tril(y.reshape(-1, 2, 3)), "triu": lambda y: np.triu(y.reshape(-1, 3, 2), 1),
    "outer": lambda y: np.outer(y[0], y[1]), "nan_to_num": lambda y: np.nan_to_num(np.log(y) / (y - y[:1])),
    "nansum": lambda y: np.nansum(np.log(y), axis=1), "nanmean": lambda y: np.nanmean(np.log(y), axis=1),
    "ptp": lambda y: np.ptp(y, axis=1), "average": lambda y: np.average(y, axis=1, weights=np.arange(1.0, 7.0)),
    "methods": lambda y: y.round(1).ravel() + y.argsort(axis=1).ravel(),
    "more methods": lambda y: y.copy().conj().real * y.itemsize + y.any(axis=1, keepdims=True) + (y > 0).all(),
    "take by a list": lambda y: y.take([0, 2, 2], axis=1),
    "array_split": lambda y: np.concatenate(np.array_split(y, 4, axis=1)[::-1], axis=1) + np.array_split(y, [2], 1)[1].sum(),
    "masks": lambda y: ((y > 0) & (y < 1)) | ~(y == 0) ^ (y > 2) & True,
    "any": lambda y: np.any(y > 0.5, axis=1), "all": lambda y: np.all(y > -1, axis=1, keepdims=True),
    "count_nonzero": lambda y: np.count_nonzero(y > 0, axis=1),
    "isclose": lambda y: np.isclose(np.log(y), np.log(y) + 1e-7, equal_nan=True),
    "fmax": lambda y: np.fmax(np.log(y), -y), "fmin": lambda y: np.fmin(np.log(y), y[:, ::-1]),
    "hstack": lambda y: np.hstack([y, 2 * y]), "vstack": lambda y: np.vstack([y[0], y]),
    "column_stack": lambda y: np.column_stack([y[:, 0], y]), "dstack": lambda y: np.dstack([y, y]),
    "atleast_3d": lambda y: np.atleast_3d(y) + np.atleast_2d(y[0])[..., None],
    "diagonal": lambda y: np.diagonal(y.reshape(-1, 2, 3), 0, 1, 2) + np.trace(y.reshape(-1, 3, 2), axis1=1, axis2=2)[:, None],
    "median": lambda y: np.median(y, axis=1), "median of an even axis": lambda y: np.median(y[:, :4], axis=-1),
    "median with NaN": lambda y: np.median(np.log(y), axis=1, keepdims=True),
    "exp2": np.exp2, "radians": np.radians, "fabs": np.fabs, "heaviside": lambda y: np.heaviside(np.round(y), 0.5),
}
# ... and those whose sums or elementwise functions are not numpy's own: float32 rounding.
TRACED_CLOSE = {
    "tensordot": lambda y: np.tensordot(y, np.arange(24.0, dtype=np.float32).reshape(6, 4), 1),
    "inner": lambda y: np.inner(y, y[:2]), "logaddexp": lambda y: np.logaddexp(y, y[:, ::-1]),
    "logaddexp2": lambda y: np.logaddexp2(y, 2 * y), "hypot": lambda y: np.hypot(y, y[:, ::-1] * 1e20),
    "degrees": np.degrees, "float_power": lambda y: np.float_power(np.abs(y), 1.5),
}


class Applied(nn.Block):
    """A custom forward: a Dense layer, then a numpy function the op set has no op for."""

    def __init__(self, function) -> None:
        super().__init__()
        self.fc = nn.Dense(6)
        self.function = function

    def forward(self, x):
        return self.function(self.fc(x))


@pytest.mark.parametrize("name", [*TRACED, *TRACED_CLOSE])
def test_a_traced_forward_calling_it_exports_and_loads_with_numpys_values(name):
    """Exported (the trace checked on a grown batch) and loaded, the graph gives numpy's values
    bit for bit (``TRACED_CLOSE``: within float32 rounding, rtol 1e-6), NaN where numpy's has
    NaN, in numpy's dtype, on the example and on 9 rows."""
    net = Applied(TRACED.get(name) or TRACED_CLOSE[name])
    net.initialize(seed=1)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    buffer = io.BytesIO()
    with np.errstate(all="ignore"):
        modelpack.export(net, buffer, example=x)
        loaded = modelpack.load(io.BytesIO(buffer.getvalue()))
        for batch in (x, rng.normal(size=(9, 3)).astype(np.float32)):
            want, got = net(batch), loaded(batch)
            assert got.dtype == want.dtype and got.shape == want.shape
            if name in TRACED:
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


VALUES = np.array([[-2.5, -1.5, -0.5, -0.0, 0.0, 0.5], [1.5, 2.5, 0.125, -7.77, 1e30, -1e-30],
                   [np.nan, np.inf, -np.inf, 3.0, -3.0, 65504.0]])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(("function", "args"), [
    (np.round, ()), (np.round, (1,)), (np.round, (-1,)), (np.around, (3,)), (np.fix, ()), (np.trunc, ()),
    (np.isnan, ()), (np.isinf, ()), (np.isfinite, ()),
])
def test_rounding_and_tests_of_values_on_a_variable_equal_numpys(function, args, dtype):
    """Halves to even, signed zeros, NaN, infinities and each dtype's largest finite value:
    numpy's bits and dtype."""
    with np.errstate(all="ignore"):  # (1e30 is inf in float16)
        value = VALUES.astype(dtype)
        want = function(value, *args)
        with autograd.record():
            got = function(autograd.Variable(value), *args)
    got = got.value if isinstance(got, autograd.Variable) else got
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_])
@pytest.mark.parametrize("function", [np.round, np.fix, np.trunc, np.isnan, np.isinf, np.isfinite])
def test_integers_round_to_themselves_and_are_finite(function, dtype):
    """In the dtype this numpy gives (numpy 2.0's trunc of int32 is float64, later ones' int32)."""
    value = np.array([[3, 0, 7]]).astype(dtype)
    with autograd.record():
        got = function(autograd.Variable(value))
    got = got.value if isinstance(got, autograd.Variable) else got
    want = function(value)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("function", "kwargs"), [
    (np.flip, {"axis": 0}), (np.flip, {}), (np.roll, {"shift": -2, "axis": 1}), (np.roll, {"shift": 5}),
    (np.pad, {"pad_width": ((1, 2), (0, 3)), "mode": "reflect"}), (np.pad, {"pad_width": 1, "mode": "edge"}),
    (np.pad, {"pad_width": ((2, 0), (1, 1)), "constant_values": 9.0}), (np.pad, {"pad_width": 2, "mode": "wrap"}),
    (np.sort, {"axis": 0}), (np.sort, {"axis": None}), (np.round, {"decimals": 1}),
])
def test_the_gradient_through_it_equals_central_differences(function, kwargs):
    """float64, rtol 1e-6: each value's gradient reaches the input it came from (rounding:
    zero almost everywhere, as its ops' VJPs give)."""
    value = np.random.default_rng(8).normal(size=(4, 5))
    weights = np.random.default_rng(9).normal(size=np.shape(function(value, **kwargs)))
    assert_gradient_is_central_differences(lambda v: function(v, **kwargs), value, weights)


@pytest.mark.parametrize(("call", "match"), [
    (lambda x: np.pad(x, 1, mode="mean"), r"^np\.pad: mode 'mean' is not traced; use one of constant, edge, reflect, symmetric, wrap$"),
    (lambda x: np.pad(x, 1, mode="edge", constant_values=2), r"^np\.pad: mode 'edge' takes no constant_values$"),
    (lambda x: np.pad(x, 1, mode="reflect", reflect_type="odd"), r"^np\.pad: reflect_type='odd' is not traced"),
    (lambda x: np.pad(x, ((0, 0), (5, 0)), mode="reflect"),
     r"^np\.pad: mode 'reflect' pads axis 1 \(length 5\) by 5; tracing pads by at most 4 \(one reflection\)$"),
    (lambda x: np.pad(x, ((0, 0), (0, 6)), mode="wrap"), r"pads axis 1 \(length 5\) by 6; tracing pads by at most 5 \(one wrap\)$"),
    (lambda x: np.pad(x, ((0, 0), (-1, 0))), r"^np\.pad: pad_width must not be negative"),
    (lambda x: np.pad(x, ((1, 2, 3),)), r"^np\.pad: pad_width .* does not give a \(before, after\) pair per axis$"),
    (lambda x: np.pad(x, 1.5), r"^np\.pad: pad_width must be integers"),
    (lambda x: np.roll(x, (1, 2, 3), axis=(0, 1)), r"^np\.roll: shift \(1, 2, 3\) and axis \(0, 1\) must have the same length$"),
    (lambda x: np.flip(x, 2), r"^np\.flip: axis 2 is out of bounds for a 2-D array$"),
    (lambda x: np.sort(x, axis=0, order="f"), r"^np\.sort: order= \(structured arrays\) is not traced$"),
    (lambda x: np.round(x, 1, out=np.empty((4, 5))), r"^np\.round\(\.\.\., out=\.\.\.\): in-place changes cannot be recorded$"),
])
def test_what_it_cannot_express_is_refused(call, match):
    x = autograd.Variable(np.ones((4, 5)))
    with autograd.record(), pytest.raises(UsageError, match=match):
        call(x)


def test_integers_to_negative_decimals_are_refused():
    with autograd.record(), pytest.raises(UsageError, match=r"^np\.round of integers to negative decimals"):
        np.round(autograd.Variable(np.arange(3)), -1)


def test_a_sort_along_the_batch_is_refused_at_export():
    """topk's k is the axis's length: along a dynamic axis the export's check refuses it."""
    net = Applied(lambda y: np.sort(y, axis=0))
    net.initialize(seed=1)
    with pytest.raises(TraceError, match=r"nodes\.\d+\.attrs\.k is 5 at the example's sizes but"):
        modelpack.export(net, io.BytesIO(), example=np.ones((5, 3), np.float32))


@pytest.mark.parametrize("name", ["flip", "roll two axes", "pad reflect", "pad with constants", "round to 2 decimals",
                                  "trunc", "isinf", "sort", "argsort"])
def test_its_ops_export_to_onnx_and_run_in_onnxruntime(name, tmp_path):
    """The ops a composite records are ONNX's too: onnxruntime gives the loaded graph's values."""
    ort = pytest.importorskip("onnxruntime")
    from modelpack.interop.onnx import to_onnx

    net = Applied(TRACED[name])
    net.initialize(seed=1)
    x = np.random.default_rng(7).normal(size=(5, 3)).astype(np.float32)
    with np.errstate(all="ignore"):
        want = net(x)
        buffer = io.BytesIO()
        modelpack.export(net, buffer, example=x)
        to_onnx(modelpack.load(io.BytesIO(buffer.getvalue())), tmp_path / "net.onnx", example=x)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_array_equal(got, want)


# -- einsum ------------------------------------------------------------------------------------

EINSUMS = [
    ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]), ("ij,jk->ik", [(3, 4), (4, 2)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]), ("i,j->ij", [(3,), (4,)]), ("bij->bji", [(2, 3, 4)]),
    ("ij->", [(3, 4)]), ("bij,bj->bi", [(2, 3, 4), (2, 4)]), ("abc,cd->dba", [(2, 3, 4), (4, 2)]),
    ("ij,ij->i", [(3, 4), (3, 4)]), ("bik,kj->bj", [(2, 3, 4), (4, 2)]),
    ("bnd,de,bme->bnm", [(2, 3, 4), (4, 5), (2, 2, 5)]), ("ij,jk,kl,lm->im", [(2, 3), (3, 4), (4, 5), (5, 2)]),
    ("bi,bj,bk->bijk", [(2, 2), (2, 3), (2, 2)]), ("i,ij,j->", [(3,), (3, 4), (4,)]),
    ("...ij,jk->...ik", [(2, 3, 4), (4, 2)]), ("ij,jk", [(3, 4), (4, 2)]), ("ba,Ab", [(2, 3), (4, 2)]),
    ("i...,i...", [(2, 3), (2, 1)]), ("ij", [(3, 4)]), ("ji", [(3, 4)]), ("ij,kl->ijkl", [(2, 3), (4, 1)]),
    ("...,...", [(2, 3), (3,)]), ("bi,bi->b", [(1, 3), (4, 3)]), (" b i , b j -> b ", [(2, 3), (2, 4)]),
]


@pytest.mark.parametrize(("equation", "shapes"), EINSUMS)
def test_einsum_of_variables_equals_numpys(equation, shapes):
    """Explicit and implicit outputs (numpy's order: capitals first), '...' broadcast from the
    right, sums of indices only one operand has, chains: float64 within 1e-12 (BLAS's sums)."""
    rng = np.random.default_rng(len(equation))
    values = [rng.normal(size=shape) for shape in shapes]
    with autograd.record():
        got = np.einsum(equation, *map(autograd.Variable, values))
    want = np.einsum(equation, *values)
    got = got.value if isinstance(got, autograd.Variable) else got
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("equation", "shapes"), [EINSUMS[i] for i in (2, 6, 10, 14, 17)])
def test_einsums_gradient_equals_central_differences(equation, shapes):
    rng = np.random.default_rng(11)
    values = [rng.normal(size=shape) for shape in shapes]
    weights = rng.normal(size=np.shape(np.einsum(equation, *values)))
    xs = [autograd.Variable(v) for v in values]
    with autograd.record():
        total = (np.einsum(equation, *xs) * weights).sum()
    total.backward()
    step = 1e-6
    for k, value in enumerate(values):
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            up, down = [v.copy() for v in values], [v.copy() for v in values]
            up[k][index] += step
            down[k][index] -= step
            numeric[index] = ((np.einsum(equation, *up) - np.einsum(equation, *down)) * weights).sum() / (2 * step)
        np.testing.assert_allclose(xs[k].grad, numeric, rtol=1e-6, atol=1e-8)


class Attention(nn.Block):
    """Multi-head attention written with einsum, heads split by a reshape of x.shape's sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.query, self.key = nn.Dense(8, flatten=False), nn.Dense(8, flatten=False)

    def forward(self, x):
        batch, steps, _ = np.shape(x)
        q = self.query(x).reshape(batch, steps, 2, 4)
        k = self.key(x).reshape(batch, steps, 2, 4)
        scores = np.einsum("bqhd,bkhd->bhqk", q, k)
        return np.einsum("bhqk,bkhd->bqhd", scores, k) + np.einsum("...d,d", q, np.ones(4, np.float32))[..., None]


def test_a_traced_forward_with_einsum_exports_and_loads():
    """The graph's matmuls give forward's values (numpy's own einsum loops) to float32
    rounding, on the example and on a batch of another size."""
    net = Attention()
    net.initialize(seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 6)).astype(np.float32)
    buffer = io.BytesIO()
    modelpack.export(net, buffer, example=x)
    loaded = modelpack.load(io.BytesIO(buffer.getvalue()))
    for batch in (x, rng.normal(size=(7, 5, 6)).astype(np.float32)):
        np.testing.assert_allclose(loaded(batch), net(batch), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("call", "match"), [
    (lambda x: np.einsum("ii->i", x), r"^np\.einsum: equation 'ii->i': an index twice in one operand \(a diagonal\) has no op$"),
    (lambda x: np.einsum(x, [0, 1], [1, 0]), r"^np\.einsum: give the equation as a string \(the sublist form is not traced\)$"),
    (lambda x: np.einsum("ij->ji", x, out=np.empty((3, 3))), r"^np\.einsum: out= and dtype= are not traced$"),
    (lambda x: np.einsum("ij,jk->ik", x, np.ones((1, 2))), r"^np\.einsum: 'ij,jk->ik': index sizes 3 and 1 do not match$"),
    (lambda x: np.einsum("ijk->i", x), r"^np\.einsum: equation 'ijk->i': operand 'ijk' has 3 indices for 2 axes$"),
    (lambda x: np.einsum("ij,jk->ik", x), r"^np\.einsum: equation 'ij,jk->ik' names 2 operands, given 1$"),
    (lambda x: np.einsum("ij->ik", x), r"^np\.einsum: equation 'ij->ik': each output index must be an operand's, once$"),
    (lambda x: np.einsum("...j->j", x), r"^np\.einsum: equation '\.\.\.j->j': the output omits '\.\.\.'"),
    (lambda x: np.einsum("i2->i", x), r"^np\.einsum: equation 'i2->i' may hold letters, ',', '->' and '\.\.\.' only$"),
])
def test_einsum_forms_without_an_op_form_are_refused(call, match):
    x = autograd.Variable(np.ones((3, 3)))
    with autograd.record(), pytest.raises(UsageError, match=match):
        call(x)


# -- values on recorded variables: (name, function, inputs, exact) -------------------------------

_R = np.random.default_rng(12)
_A, _B, _C = _R.normal(size=(3, 4)), _R.normal(size=(4, 5)), _R.normal(size=(2, 3, 4))
_SPECIAL = np.array([[np.nan, 1.0, -np.inf, np.inf], [0.0, -0.0, 2.5, np.nan], [1e300, -1e300, 3, -4]])
VALUED = [
    ("moveaxis", lambda a: np.moveaxis(a, [0, 1], [-1, 0]), [_C], True),
    ("diff twice", lambda a: np.diff(a, 2, axis=0), [_C], True), ("diff of booleans", lambda a: np.diff(a > 0), [_A], True),
    ("tril", lambda a: np.tril(a, -1), [_B], True), ("triu", lambda a: np.triu(a, 1), [_C], True),
    ("tensordot", lambda a, b: np.tensordot(a, b, axes=([1, 2], [0, 1])), [_C, _R.normal(size=(3, 4, 2))], False),
    ("inner", np.inner, [_A, _R.normal(size=(2, 4))], False), ("outer", np.outer, [_A, _B], True),
    ("nan_to_num", np.nan_to_num, [_SPECIAL], True),
    ("nan_to_num to given values", lambda a: np.nan_to_num(a, nan=-1, posinf=9, neginf=-9), [_SPECIAL], True),
    ("nansum", lambda a: np.nansum(a, axis=1), [_SPECIAL], True), ("nanmean", lambda a: np.nanmean(a, axis=0), [_SPECIAL], True),
    ("ptp", lambda a: np.ptp(a, axis=1, keepdims=True), [_A], True),
    ("average", np.average, [_A], True), ("average along an axis", lambda a, w: np.average(a, axis=1, weights=w),
                                          [_A, np.arange(1.0, 5.0)], True),
    ("average, weights like a, returned", lambda a, w: np.average(a, weights=w, returned=True), [_A, np.abs(_A)], True),
    ("average returned", lambda a: np.average(a, axis=1, returned=True), [_A], True),
    ("logaddexp", np.logaddexp, [_SPECIAL, _SPECIAL.T.reshape(3, 4)], False),
    ("logaddexp2", np.logaddexp2, [_A, _A[::-1]], False), ("exp2", np.exp2, [_A * 10], True),
    ("hypot", np.hypot, [_SPECIAL, _A], False), ("deg2rad", np.deg2rad, [_A], True), ("rad2deg", np.rad2deg, [_A], False),
    ("fabs", np.fabs, [_A], True), ("methods", lambda a: a.round(2).ravel(), [_C], True),
    ("fmax", np.fmax, [_SPECIAL, _SPECIAL.T.reshape(3, 4)], True), ("fmin", np.fmin, [_SPECIAL, _A], True),
    ("stacks", lambda a, b: np.hstack([a[0], b[1]]) + np.vstack([a, b])[1:4].ravel()[:8], [_A, _A], True),
    ("dstack", lambda a, b: np.dstack([a, b]), [_A, 2 * _A], True),
    ("median", lambda a: np.median(a, axis=0, keepdims=True), [np.vstack([_A, _A[:1] + 1])], True),
    ("diagonal", lambda a: np.diagonal(a, 1, 2, 0), [_C], True), ("trace", lambda a: np.trace(a, -1, 1, 2), [_C], True),
    ("diagonals past the edge", lambda a: np.diagonal(a, 7), [_A], True),
    ("diag of a vector", lambda a: np.diag(a[0], 2), [_A], True), ("diag below", lambda a: np.diag(a[1], -1), [_A], True),
    ("diag of a matrix", lambda a: np.diag(a, -1), [_A], True),
    ("the diagonal and trace methods", lambda a: a.diagonal(1) + a.trace(), [_A], True),
    ("median of all", np.median, [_C], True), ("median of all, kept", lambda a: np.median(a, keepdims=True), [_C], True), ("median with NaN", lambda a: np.median(a, axis=1), [_SPECIAL], True), ("float_power", np.float_power, [np.abs(_A), _A], False),
    ("heaviside", np.heaviside, [_SPECIAL, _A], True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "function", "inputs", "exact"), VALUED, ids=[case[0] for case in VALUED])
def test_on_variables_it_gives_numpys_values(name, function, inputs, exact, dtype):
    """numpy's dtype, and its values bit for bit (NaN, infinities and signed zeros included)
    or, where numpy's loops call other functions than the ops (libm's exp, log1p, hypot),
    within rounding: rtol 1e-6 for float32, 1e-14 for float64."""
    with np.errstate(all="ignore"):
        values = [x.astype(dtype) for x in inputs]
        want = function(*values)
        with autograd.record():
            got = function(*map(autograd.Variable, values))
    pairs = zip(got, want, strict=True) if isinstance(want, tuple) else [(got, want)]
    for ours, theirs in pairs:
        ours = ours.value if isinstance(ours, autograd.Variable) else ours
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        if exact:
            np.testing.assert_array_equal(ours, theirs)
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)


@pytest.mark.parametrize(("call", "match"), [
    (lambda x: np.ravel(x, order="F"), r"^np\.ravel: order='F' is not traced; the values come in row-major order$"),
    (lambda x: np.moveaxis(x, [0, 1], [0]), r"^np\.moveaxis: source and destination must name as many axes, each once$"),
    (lambda x: np.diff(x, prepend=0), r"^np\.diff: prepend are not traced; concatenate first$"),
    (lambda x: np.diff(x, -1), r"^np\.diff: order n=-1 must not be negative$"),
    (lambda x: np.tril(x[0]), r"^np\.tril: the array must be at least 2-D$"),
    (lambda x: np.tensordot(x, x, axes=3), r"^np\.tensordot: cannot contract 3 axes of 2-D and 2-D arrays$"),
    (lambda x: np.tensordot(x, x, axes=([0, 0], [0, 1])), r"^np\.tensordot: axes .* must pair each axis once$"),
    (lambda x: np.nansum(x, dtype=np.float32), r"^np\.nansum: dtype= and out= are not traced$"),
    (lambda x: np.average(x, axis=(0, 1), weights=np.ones(4)),
     r"^np\.average: weights of another shape than a's must be 1-D, along one axis$"),
    (lambda x: np.average(x, axis=1, weights=np.ones(3)), r"^np\.average: the weights' length differs from the axis's$"),
    (lambda x: np.array_split(x, 0), r"^np\.array_split: the number of sections must be larger than 0, got 0$"),
])
def test_what_these_cannot_express_is_refused(call, match):
    x = autograd.Variable(np.ones((4, 5)))
    with autograd.record(), pytest.raises(UsageError, match=match):
        call(x)


@pytest.mark.parametrize(("call", "match"), [
    (lambda x: x.astype(np.int64) & 1, r"^& of int64 values: only masks \(booleans\) have an op"),
    (lambda x: 3 | (x > 0), r"^\| of int values: only masks"),
    (lambda x: ~x.astype(np.int32), r"^~ of int32 values: only masks"),
])
def test_bitwise_operators_of_integers_are_refused(call, match):
    """``&``, ``|``, ``^`` and ``~`` of masks are the logical ops; integers' bits have none."""
    x = autograd.Variable(np.ones((2, 3)))
    with autograd.record(), pytest.raises(UsageError, match=match):
        call(x)


@pytest.mark.parametrize(("call", "match"), [
    (lambda x: np.round(x, 1.5), r"^np\.round: decimals must be an integer, got 1\.5$"),
    (lambda x: np.roll(x, 0.5, axis=0), r"^np\.roll: shift must be an integer, got 0\.5$"),
    (lambda x: np.diff(x, 1.0), r"^np\.diff: n must be an integer, got 1\.0$"),
    (lambda x: np.triu(x, "1"), r"^np\.triu: k must be an integer, got '1'$"),
    (lambda x: np.diagonal(x, 0.5), r"^np\.diagonal: offset must be an integer, got 0\.5$"),
    (lambda x: np.tensordot(x, x, 1.0), r"^np\.tensordot: axes must be an integer, got 1\.0$"),
])
def test_counts_and_offsets_that_are_not_integers_are_refused(call, match):
    """A UsageError naming the argument, not Python's TypeError."""
    x = autograd.Variable(np.ones((4, 4)))
    with autograd.record(), pytest.raises(UsageError, match=match):
        call(x)


def test_a_ragged_list_given_to_an_op_while_tracing_is_refused():
    net = Applied(lambda y: y.take([[0, 1], [2]], axis=1))
    net.initialize(seed=1)
    with pytest.raises(TraceError, match=r"cannot trace take: the list \[\[0, 1\], \[2\]\] is not an array"):
        modelpack.export(net, io.BytesIO(), example=np.ones((5, 3), np.float32))
