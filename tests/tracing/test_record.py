"""Recording forward into a graph (tracing.record): traced custom blocks round-trip exactly,
in this process and in a fresh one, keeping their parameter names; random DAGs of ops and layers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import MLP, WithConstant, ready, round_trip
from tracing_helpers import X, refused_export

import modelpack
from modelpack import nn
from modelpack.nn import functional as F

SEED_LOADER = textwrap.dedent("""
    import sys
    import numpy as np
    import modelpack
    net = modelpack.load(sys.argv[1])
    for batch in (1, 2, 64):
        x = np.load(f"{sys.argv[2]}/x{batch}.npy")
        np.save(f"{sys.argv[2]}/y{batch}.npy", net(x))
    print(type(net).__name__, sorted(net.collect_params()))
""")


def test_seed_mlp_loads_in_a_fresh_process_bitwise(tmp_path):
    net = MLP()
    net.initialize()
    X = np.random.uniform(size=(2, 20))
    net(X)
    modelpack.export(net, tmp_path / "mlp.mpk", example=X)
    rng = np.random.default_rng(1)
    for batch in (1, 2, 64):
        np.save(tmp_path / f"x{batch}.npy", rng.uniform(size=(batch, 20)))
    done = subprocess.run(
        [sys.executable, "-c", SEED_LOADER, str(tmp_path / "mlp.mpk"), str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    assert done.stdout.split()[0] == "GraphBlock"  # the class was never defined there
    assert "hidden.bias" in done.stdout
    for batch in (1, 2, 64):
        x = np.load(tmp_path / f"x{batch}.npy")
        assert np.load(tmp_path / f"y{batch}.npy").tobytes() == net(x).tobytes()


def test_loaded_graph_keeps_parameter_names_for_load_parameters(tmp_path):
    net = ready(MLP(), np.ones((1, 20)))
    loaded = round_trip(net, np.ones((3, 20)))
    assert list(loaded.collect_params()) == list(net.collect_params())
    net.save_parameters(tmp_path / "mlp.params")
    other = ready(MLP(), np.ones((1, 20)))
    other.initialize(nn.init.Constant(0.0), force_reinit=True)
    fresh = round_trip(other, np.ones((3, 20)))
    fresh.load_parameters(tmp_path / "mlp.params")
    x = np.random.default_rng(0).normal(size=(4, 20))
    assert fresh(x).tobytes() == net(x).tobytes()


class Residual(nn.Block):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(6, activation="tanh", in_units=6)
        self.norm = nn.LayerNorm()

    def forward(self, x):
        return self.norm(x + self.fc(x))


class TwoBranch(nn.Block):
    def __init__(self):
        super().__init__()
        self.left = nn.Dense(4)
        self.right = nn.Sequential()
        self.right.add(nn.Dense(3, activation="relu"), nn.Dense(2))
        self.head = nn.Dense(5)

    def forward(self, x):
        joined = np.concatenate([self.left(x), F.relu(self.right(x))], axis=1)
        return F.softmax(self.head(joined), axis=-1)


class TwoOutputs(nn.Block):
    def __init__(self):
        super().__init__()
        self.body = nn.Dense(8, activation="gelu")
        self.cls = nn.Dense(3)
        self.box = nn.Dense(4)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h), F.sigmoid(self.box(h))


class DictOutputs(TwoOutputs):
    def forward(self, x):
        h = self.body(x)
        return {"logits": F.log_softmax(self.cls(h)), "box": self.box(h)}


class Slicing(nn.Block):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(3, flatten=False)

    def forward(self, x):
        first = x[:, :4]
        rest = x[:, 4:][..., None]
        mixed = first.reshape(x.shape[0], 2, 2).transpose(0, 2, 1)
        pooled = np.mean(rest, axis=(1, 2)) + mixed.sum(axis=-1).max(axis=1)
        return self.fc(np.stack([pooled, -pooled], axis=1)).reshape(-1, 3)


CASES = {
    "residual": (Residual, (5, 6)),
    "two_branch": (TwoBranch, (4, 7)),
    "two_outputs": (TwoOutputs, (3, 5)),
    "dict_outputs": (DictOutputs, (3, 5)),
    "constant": (WithConstant, (2, 4)),
    "slicing": (Slicing, (3, 9)),
}


def _equal(a, b):
    if isinstance(a, dict):
        return list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return np.asarray(a).tobytes() == np.asarray(b).tobytes() and np.shape(a) == np.shape(b)


@pytest.mark.parametrize("name", sorted(CASES))
def test_traced_architectures_round_trip(name):
    cls, shape = CASES[name]
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape).astype(np.float32)
    net = ready(cls(), x)
    loaded = round_trip(net, x)
    assert list(loaded.collect_params()) == list(net.collect_params())
    for batch in (1, shape[0], 7):
        z = rng.normal(size=(batch, *shape[1:])).astype(np.float32)
        assert _equal(loaded(z), net(z)), batch


def test_custom_block_inside_sequential_keeps_sequential():
    net = nn.Sequential()
    net.add(nn.Dense(6, in_units=6), Residual(), nn.Dense(2))
    x = np.random.default_rng(0).normal(size=(3, 6))
    ready(net, x)
    loaded = round_trip(net, x)
    assert type(loaded) is nn.Sequential and type(loaded[1]) is nn.GraphBlock
    assert repr(loaded[0]) == repr(net[0])
    assert loaded(x).tobytes() == net(x).tobytes()


def test_sequential_inside_custom_block_and_nested_custom():
    class Outer(nn.Block):
        def __init__(self):
            super().__init__()
            self.stack = nn.Sequential()
            self.stack.add(nn.Dense(6), Residual())
            self.inner = Residual()

        def forward(self, x):
            return self.inner(self.stack(x)) * 2.0 - x[:, :6]

    x = np.random.default_rng(0).normal(size=(2, 8))
    net = ready(Outer(), x)
    loaded = round_trip(net, x)
    assert type(loaded.stack) is nn.Sequential and type(loaded.stack[1]) is nn.GraphBlock
    z = np.random.default_rng(1).normal(size=(5, 8))
    assert loaded(z).tobytes() == net(z).tobytes()
    assert list(loaded.collect_params()) == list(net.collect_params())


def test_block_called_twice_and_multiple_inputs():
    class Siamese(nn.Block):
        def __init__(self):
            super().__init__()
            self.encoder = Residual()

        def forward(self, a, b):
            return F.sum(np.abs(self.encoder(a) - self.encoder(b)), axis=1)

    a, b = np.random.default_rng(0).normal(size=(2, 4, 6))
    net = ready(Siamese(), a, b)
    loaded = round_trip(net, (a, b))
    assert loaded(a, b).tobytes() == net(a, b).tobytes()


def test_reexport_of_a_loaded_graph_needs_no_example():
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    net = ready(WithConstant(), x)
    loaded = round_trip(net, x)
    again = round_trip(loaded)
    assert again(x).tobytes() == net(x).tobytes()


def test_refuses_a_block_that_is_not_a_child():
    stranger = nn.Dense(3, in_units=5)
    stranger.initialize()
    refused_export(lambda self, x: stranger(x), X, r"cannot trace calling a Dense that is not a child of Bad")


def test_temporary_constants_are_never_confused():
    """Each temporary array is its own constant, even once freed (ids are not reused)."""

    class Shifts(nn.Block):
        def forward(self, x):
            for k in range(6):
                x = x + np.full(5, float(k), dtype=np.float32)  # freed after each step
            return x

    net = Shifts()
    loaded = round_trip(net, X.astype(np.float32))
    x = X.astype(np.float32)
    assert np.array_equal(loaded(x), net(x))  # without the fix export refuses: "differs from forward"


def test_a_value_autograd_computed_earlier_is_a_constant():
    """d2l's BatchNorm from scratch keeps its running mean as an attribute, computed while
    training: after training it is an autograd Variable, and the trace stores its value."""
    from modelpack import autograd

    class Centred(nn.Block):
        def __init__(self):
            super().__init__()
            self.mean = np.zeros(5, dtype=np.float32)

        def forward(self, x):
            if autograd.is_training():
                self.mean = 0.5 * self.mean + 0.5 * x.mean(axis=0)
            return x - self.mean

    net = Centred()
    with autograd.record():
        net(autograd.Variable(X.astype(np.float32)))
    assert type(net.mean).__name__ == "Variable"
    x = X.astype(np.float32)
    assert np.array_equal(round_trip(net, x)(x), net(x))


# -- property: random DAGs of ops and layers --------------------------------------------------

FEATURES = 4


UNARY = {
    "relu": F.relu, "sigmoid": F.sigmoid, "tanh": np.tanh, "softrelu": F.softrelu,
    "softsign": F.softsign, "gelu": F.gelu, "silu": F.silu, "neg": lambda v: -v,
    "abs": np.abs, "square": np.square, "exp": lambda v: np.exp(F.tanh(v)),
    "leaky": lambda v: F.leaky_relu(v, 0.2), "elu": lambda v: F.elu(v, 0.7),
    "softmax": lambda v: F.softmax(v, axis=1), "log_softmax": F.log_softmax,
    "scale": lambda v: v * 0.5 + 1.0, "rsub": lambda v: 2.0 - v,
    "sum_bcast": lambda v: v * np.sum(v, axis=1, keepdims=True),
    "mean_bcast": lambda v: v - v.mean(axis=1, keepdims=True),
    "max_bcast": lambda v: v / (1.0 + np.abs(F.max(v, axis=1, keepdims=True))),
    "reshape": lambda v: v.reshape(-1, 2, 2).transpose(0, 2, 1).reshape(-1, FEATURES),
    "flatten": lambda v: F.flatten(np.expand_dims(v, 1)),
    "slice": lambda v: np.concatenate([v[:, 2:], v[:, :2]], axis=1),
}


BINARY = {
    "add": lambda a, b: a + b, "sub": np.subtract, "mul": F.multiply,
    "max": np.maximum, "min": F.minimum, "div": lambda a, b: a / (1.0 + np.abs(b)),
    "stack_mean": lambda a, b: np.mean(np.stack([a, b], axis=1), axis=1),
    "concat_slice": lambda a, b: np.concatenate([a, b], axis=1)[:, ::2],
    "where": lambda a, b: np.where(a > b, a, b),
}


LAYERS = ("dense", "norm", "const_matmul", "const_add", "param")


step = st.one_of(
    st.tuples(st.just("unary"), st.sampled_from(sorted(UNARY)), st.integers(0, 99)),
    st.tuples(st.just("binary"), st.sampled_from(sorted(BINARY)), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("layer"), st.sampled_from(LAYERS), st.integers(0, 99)),
)


class RandomDag(nn.Block):
    """Interprets a drawn program; the same code runs eagerly and while tracing."""

    def __init__(self, program, two_outputs, seed):
        super().__init__()
        self.program = program
        self.two_outputs = two_outputs
        rng = np.random.default_rng(seed)
        self.matrix = rng.normal(size=(FEATURES, FEATURES)).astype(np.float32)
        self.offset = rng.normal(size=FEATURES).astype(np.float32)
        self.gain = nn.Parameter("gain", shape=(FEATURES,))
        for i, op in enumerate(program):
            if op[0] == "layer" and op[1] == "dense":
                setattr(self, f"dense{i}", nn.Dense(FEATURES, activation="tanh"))
            elif op[0] == "layer" and op[1] == "norm":
                setattr(self, f"norm{i}", nn.LayerNorm())

    def forward(self, x):
        values = [x]
        for i, op in enumerate(self.program):
            pick = lambda k: values[k % len(values)]  # noqa: E731
            if op[0] == "unary":
                values.append(UNARY[op[1]](pick(op[2])))
            elif op[0] == "binary":
                values.append(BINARY[op[1]](pick(op[2]), pick(op[3])))
            elif op[1] in ("dense", "norm"):
                values.append(getattr(self, f"{op[1]}{i}")(pick(op[2])))
            elif op[1] == "const_matmul":
                values.append(pick(op[2]) @ self.matrix)
            elif op[1] == "const_add":
                values.append(pick(op[2]) + self.offset)
            else:
                values.append(pick(op[2]) * self.gain.data())
        return (values[-1], values[-2]) if self.two_outputs and len(values) > 1 else values[-1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=8), st.booleans(), st.integers(0, 2**16), st.integers(1, 4))
def test_random_dags_round_trip(program, two_outputs, seed, batch):
    """Outputs allclose (rtol 1e-6, atol 1e-6; in practice bitwise) and parameters bitwise equal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, FEATURES)).astype(np.float32)
    net = RandomDag(program, two_outputs, seed)
    net.initialize(seed=seed)
    with np.errstate(all="ignore"):
        want = net(x)
        loaded = round_trip(net, x)
        for name, param in net.collect_params().items():
            assert loaded.collect_params()[name].data().tobytes() == param.data().tobytes()
        z = rng.normal(size=(batch + 3, FEATURES)).astype(np.float32)
        for inputs, expected in ((x, want), (z, net(z))):
            got = loaded(inputs)
            pairs = zip(expected, got, strict=True) if two_outputs and isinstance(expected, tuple) else [(expected, got)]
            for a, b in pairs:
                np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
