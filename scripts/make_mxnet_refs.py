"""Write the MXNet reference files in ``tests/data/mxnet/`` with real MXNet (never imported by tests).

modelpack reads MXNet's files without MXNet; these files, and the outputs MXNet computed on
them, are what its reader and converter are checked against. Run it in a separate virtual
environment (MXNet 1.9.1 needs numpy < 1.24, so it can never be a dependency of modelpack):

    python -m venv /tmp/mxref && /tmp/mxref/bin/pip install mxnet==1.9.1 "numpy<1.24"
    /tmp/mxref/bin/python scripts/make_mxnet_refs.py

Every file is rewritten from fixed seeds. Expected values are saved as ``.npy`` next to the
files: ``<file>.expected.npz`` holds what ``npx.load`` / ``nd.load`` returned (keys are the
dict keys, or ``0``, ``1``, ... for a list), ``<model>-input.npy`` and ``<model>-output.npy``
(``-output-<i>.npy`` for several heads) what a model computed in inference mode.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import mxnet as mx
import numpy as onp
from mxnet import gluon, nd, np, npx
from mxnet.gluon import nn
from mxnet_reference_files import start, write_manifest

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "mxnet"
BF16 = onp.dtype([("bfloat16", onp.uint16)])  # how MXNet's Python side spells bfloat16


def seed(value: int) -> None:
    mx.random.seed(value)
    onp.random.seed(value)


def expected(name: str, loaded: object) -> None:
    """Save what MXNet returned when loading ``name`` (bfloat16 as float32, exactly)."""
    items = loaded.items() if isinstance(loaded, dict) else enumerate(loaded)  # type: ignore[union-attr]
    arrays = {}
    for key, value in items:
        if value.dtype == BF16:
            value = value.astype("float32")
        arrays[str(key)] = value.asnumpy()
    kind = "dict" if isinstance(loaded, dict) else "list"
    onp.savez(OUT / f"{name}.expected.npz", __kind__=onp.array(kind), **arrays)


def with_np(fn):
    """Run ``fn`` in MXNet's numpy mode (what the chapter uses: ``npx.set_np()``)."""

    def run(*args, **kwargs):
        npx.set_np()
        try:
            return fn(*args, **kwargs)
        finally:
            npx.reset_np()

    return run


# -- plain array files ------------------------------------------------------------------------


@with_np
def chapter_arrays() -> None:
    """The chapter's own three files, exactly as it writes them."""
    x = np.arange(4)
    npx.save(str(OUT / "x-file"), x)
    expected("x-file", npx.load(str(OUT / "x-file")))
    y = np.zeros(4)
    npx.save(str(OUT / "x-files"), [x, y])
    expected("x-files", npx.load(str(OUT / "x-files")))
    mydict = {"x": x, "y": y}
    npx.save(str(OUT / "mydict"), mydict)
    expected("mydict", npx.load(str(OUT / "mydict")))


def dtype_values(dtype: str) -> onp.ndarray:
    """Small arrays exercising each dtype's edges (signs, extremes, specials)."""
    if dtype == "bool":
        return onp.array([[True, False, True], [False, False, True]])
    if dtype in ("float16", "float32", "float64"):
        info = onp.finfo(dtype)
        return onp.array([0.0, -0.0, 1.5, -2.25, info.max, info.tiny, info.tiny / 4, onp.inf, -onp.inf,
                          onp.nan], dtype=dtype)
    info = onp.iinfo(dtype)
    return onp.array([[info.min, -1 if info.min else 0, 0], [1, 7, info.max]], dtype=dtype)


@with_np
def numpy_mode_dtypes() -> None:
    """One dict with every dtype numpy-mode MXNet can write (0xF993FACA records)."""
    arrays = {dt: np.array(dtype_values(dt), dtype=dt) for dt in
              ("float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool")}
    arrays["bfloat16"] = nd.amp_cast(nd.array([1.5, -2.25, 3.0, 1e-3, -65504.0]), dtype=BF16).as_np_ndarray()
    npx.save(str(OUT / "dtypes-np"), arrays)
    expected("dtypes-np", npx.load(str(OUT / "dtypes-np")))
    npx.save(str(OUT / "scalar"), [np.array(3.5), np.array(7, dtype="int64")])
    expected("scalar", npx.load(str(OUT / "scalar")))
    npx.save(str(OUT / "empty"), [np.zeros((0, 3)), np.zeros((2, 0), dtype="int32"), np.zeros((0,))])
    expected("empty", npx.load(str(OUT / "empty")))
    seed(1)
    npx.save(str(OUT / "list-np"), [np.random.uniform(size=(3, 4)), np.arange(6).reshape(2, 3)])
    expected("list-np", npx.load(str(OUT / "list-np")))


def legacy_mode_arrays() -> None:
    """MXNet's pre-numpy NDArrays (0xF993FAC9 records), as ``mx.nd.save`` writes them."""
    seed(2)
    arrays = {dt: nd.array(dtype_values(dt), dtype=dt) for dt in
              ("float32", "float64", "float16", "uint8", "int32", "int8", "int64")}
    arrays["bfloat16"] = nd.amp_cast(nd.array([1.5, -2.25, 3.0, 1e-3, -65504.0]), dtype=BF16)
    arrays["matrix"] = nd.random.normal(shape=(2, 3, 4))
    nd.save(str(OUT / "dtypes-legacy"), arrays)
    expected("dtypes-legacy", nd.load(str(OUT / "dtypes-legacy")))
    nd.save(str(OUT / "list-legacy"), [nd.arange(5), nd.ones((2, 2), dtype="float64")])
    expected("list-legacy", nd.load(str(OUT / "list-legacy")))


def _list_file(records: list[bytes], names: list[bytes]) -> bytes:
    body = struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records)
    body += struct.pack("<Q", len(names))
    return body + b"".join(struct.pack("<Q", len(n)) + n for n in names)


def _v1_record(array: onp.ndarray, flag: int) -> bytes:
    """0xF993FAC8: no storage type; u32 ndim and i64 dims."""
    return (struct.pack("<II", 0xF993FAC8, array.ndim) + struct.pack(f"<{array.ndim}q", *array.shape)
            + struct.pack("<iii", 1, 0, flag) + array.tobytes())


def _v0_record(array: onp.ndarray, flag: int) -> bytes:
    """No magic at all: the record starts with u32 ndim, then u32 dims."""
    return (struct.pack("<I", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
            + struct.pack("<iii", 1, 0, flag) + array.tobytes())


def oldest_formats() -> None:
    """MXNet 1.9 reads, but no longer writes, the two oldest record layouts: build them by
    hand and keep what MXNet itself makes of them."""
    a = onp.arange(6, dtype="float32").reshape(2, 3) - 2.5
    b = onp.array([1, -2, 3], dtype="int32")
    s = onp.array(4.25, dtype="float64")
    (OUT / "v1-list").write_bytes(_list_file([_v1_record(a, 0), _v1_record(b, 4), _v1_record(s, 1)], []))
    expected("v1-list", nd.load(str(OUT / "v1-list")))
    (OUT / "v0-dict").write_bytes(_list_file([_v0_record(a, 0), _v0_record(b, 4)], [b"weight", b"bias"]))
    expected("v0-dict", nd.load(str(OUT / "v0-dict")))


def sparse_files() -> None:
    """Sparse storage: MXNet writes it, modelpack refuses it (hostile-file tests)."""
    dense = nd.array([[0, 1.5, 0], [2.5, 0, 0]])
    nd.save(str(OUT / "sparse-csr"), [dense.tostype("csr")])
    nd.save(str(OUT / "sparse-rsp"), {"w": dense.tostype("row_sparse")})


# -- models -----------------------------------------------------------------------------------


def randomize(net: gluon.Block, scale: float = 0.5) -> None:
    """Every parameter random (biases and BatchNorm statistics too; variances positive), so
    that a dropped or misplaced parameter changes the output."""
    for name, param in net.collect_params().items():
        shape = param.shape
        values = onp.random.normal(0.0, scale, size=shape)
        if name.endswith(("running_var", "moving_var")):
            values = onp.random.uniform(0.5, 2.0, size=shape)
        if name.endswith("gamma"):
            values = 1.0 + values
        param.set_data(np.array(values, dtype=param.dtype) if npx.is_np_array() else
                       nd.array(values, dtype=param.dtype))


def run_and_export(name: str, net: gluon.HybridBlock, *inputs: onp.ndarray) -> None:
    """Initialise, hybridize, call once (shapes), randomise, export; save inputs and outputs."""
    array = np.array if npx.is_np_array() else nd.array
    net.initialize(mx.init.Normal(0.5))
    net.hybridize()
    net(*[array(x) for x in inputs])  # infers the deferred shapes
    randomize(net)
    outputs = net(*[array(x) for x in inputs])
    net.export(str(OUT / name))
    for i, x in enumerate(inputs):
        onp.save(OUT / (f"{name}-input.npy" if len(inputs) == 1 else f"{name}-input-{i}.npy"), x)
    if isinstance(outputs, (list, tuple)):
        for i, out in enumerate(outputs):
            onp.save(OUT / f"{name}-output-{i}.npy", out.asnumpy())
    else:
        onp.save(OUT / f"{name}-output.npy", outputs.asnumpy())


@with_np
def chapter_mlp() -> None:
    """The chapter's MLP: save_parameters to mlp.params, and (its last exercise) an export."""

    class MLP(nn.Block):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = nn.Dense(256, activation="relu")
            self.output = nn.Dense(10)

        def forward(self, x):
            return self.output(self.hidden(x))

    class HybridMLP(nn.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = nn.Dense(256, activation="relu")
            self.output = nn.Dense(10)

        def hybrid_forward(self, F, x):
            return self.output(self.hidden(x))

    seed(3)
    net = MLP()
    net.initialize()
    X = np.random.uniform(size=(2, 20))
    net(X)
    randomize(net, 0.2)
    Y = net(X)
    net.save_parameters(str(OUT / "mlp.params"))
    onp.save(OUT / "mlp-input.npy", X.asnumpy())
    onp.save(OUT / "mlp-output.npy", Y.asnumpy())
    clone = HybridMLP()
    clone.load_parameters(str(OUT / "mlp.params"))
    clone.hybridize()
    assert onp.array_equal(clone(X).asnumpy(), Y.asnumpy())
    clone.export(str(OUT / "mlp"))


@with_np
def sequential_models() -> None:
    seed(4)
    mlp = nn.HybridSequential()
    mlp.add(nn.Dense(16, activation="tanh"), nn.Dense(8, activation="sigmoid", use_bias=False),
            nn.Dense(3, flatten=False))
    run_and_export("mlp3", mlp, onp.random.uniform(-1, 1, size=(4, 2, 5)).astype("float32"))

    seed(5)
    cnn = nn.HybridSequential()
    cnn.add(
        nn.Conv2D(6, kernel_size=3, padding=1),
        nn.BatchNorm(),
        nn.Activation("relu"),
        nn.MaxPool2D(pool_size=3, strides=2, padding=1, ceil_mode=True),  # pooling_convention full
        nn.Conv2D(8, kernel_size=(3, 2), strides=(1, 2), dilation=(2, 1), use_bias=False),
        nn.BatchNorm(scale=False, epsilon=1e-3),  # fix_gamma
        nn.Activation("softrelu"),
        nn.AvgPool2D(pool_size=2, ceil_mode=True),
        nn.Dropout(0.5),
        nn.Conv2D(8, kernel_size=1, groups=2),
        nn.BatchNorm(use_global_stats=True),
        nn.GlobalMaxPool2D(),
        nn.Flatten(),
        nn.Dense(5),
    )
    run_and_export("cnn", cnn, onp.random.normal(size=(2, 3, 13, 11)).astype("float32"))

    seed(6)
    pools = nn.HybridSequential()
    pools.add(
        nn.Conv2D(4, kernel_size=3, activation="relu"),
        nn.AvgPool2D(pool_size=3, strides=2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.AvgPool2D(pool_size=2, strides=1, padding=1),
        nn.MaxPool2D(pool_size=2),
        nn.GlobalAvgPool2D(),
        nn.Dense(3),
    )
    run_and_export("pools", pools, onp.random.normal(size=(2, 2, 12, 10)).astype("float32"))

    seed(7)
    emb = nn.HybridSequential()
    emb.add(nn.Embedding(30, 12), nn.LayerNorm(), nn.Dense(6, flatten=False), nn.LayerNorm(epsilon=1e-3),
            nn.Dense(4))
    tokens = onp.random.randint(0, 30, size=(3, 5)).astype("float32")
    run_and_export("embed", emb, tokens)

    seed(8)
    leaky = nn.HybridSequential()
    leaky.add(nn.Dense(12), nn.LeakyReLU(0.1), nn.Dense(12), nn.ELU(0.7), nn.Dense(12), nn.SELU(),
              nn.Dense(12), nn.GELU(), nn.Dense(12), nn.PReLU(), nn.Dense(12), nn.Swish(1.5),
              nn.Dense(12), nn.Activation("softsign"))
    run_and_export("leaky", leaky, onp.random.normal(size=(4, 7)).astype("float32"))


class Arith(nn.HybridBlock):
    """Element-wise and broadcast arithmetic between tensors and with scalars."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d1 = nn.Dense(6)
        self.d2 = nn.Dense(6)
        self.d3 = nn.Dense(1)

    def hybrid_forward(self, F, x):
        a, b, c = self.d1(x), self.d2(x), self.d3(x)
        if not npx.is_np_array():  # legacy operators
            y = F.elemwise_add(a, b) * 2 - 1
            y = F.broadcast_div(y, F.broadcast_add(c * c, F.ones_like(c)))
            z = F.broadcast_mul(y, c) + F.broadcast_sub(a, c) - F.broadcast_maximum(b, c)
            return (z / (F.abs(a) + 1), 2 - z, 1 / (z * z + 1), F.broadcast_minimum(z, c) ** 2,
                    F.exp(-F.square(z)))
        y = (a + b) * 2 - 1
        y = y / (c * c + 1)
        z = y * c + (a - c) - F.np.maximum(b, c)
        return z / (F.np.abs(a) + 1), 2 - z, 1 / (z * z + 1), F.np.minimum(z, c) ** 2, F.np.exp(-(z * z))


class Shapes(nn.HybridBlock):
    """reshape / transpose / concat / flatten, softmax and log_softmax."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d = nn.Dense(12)

    def hybrid_forward(self, F, x):
        h = self.d(x)  # (N, 12)
        if not npx.is_np_array():
            r = F.reshape(h, shape=(0, 3, -1))  # (N, 3, 4): MXNet's copy code 0
            t = F.transpose(r, axes=(0, 2, 1))  # (N, 4, 3)
            f = F.reshape(t, shape=(-3, -2))  # (N*4, 3)
            back = F.reshape(f, shape=(-1, 12))
            s = F.reshape(F.swapaxes(r, dim1=1, dim2=2), shape=(0, -4, 2, -1, -2))  # split axis 1
            cat = F.concat(back, h, F.flatten(s), dim=1)
            return F.softmax(cat, axis=-1), F.log_softmax(r, axis=1), F.softmax(t, temperature=2.0)
        r = F.npx.reshape(h, (-2, 3, -1))  # (N, 3, 4): numpy-extension copy code -2
        t = F.np.transpose(r, (0, 2, 1))
        f = F.npx.reshape(t, (-5, -4))  # merge two axes, keep the rest
        back = F.np.reshape(f, (-1, 12))
        cat = F.np.concatenate([back, h, F.npx.batch_flatten(F.np.swapaxes(r, 1, 2))], axis=1)
        return (F.npx.softmax(cat, axis=-1), F.npx.log_softmax(r, axis=1),
                F.npx.softmax(F.np.transpose(t), temperature=2.0), F.np.stack([h, back], axis=1))


@with_np
def graph_models() -> None:
    seed(9)
    run_and_export("arith", Arith(), onp.random.normal(size=(3, 5)).astype("float32"))
    seed(10)
    run_and_export("shapes", Shapes(), onp.random.normal(size=(2, 7)).astype("float32"))


def legacy_models() -> None:
    """Gluon without numpy mode: legacy operator names, 0xF993FAC9 parameter records."""
    seed(11)
    run_and_export("legacy-arith", Arith(), onp.random.normal(size=(3, 5)).astype("float32"))
    seed(12)
    run_and_export("legacy-shapes", Shapes(), onp.random.normal(size=(2, 7)).astype("float32"))
    seed(13)
    cnn = nn.HybridSequential()
    cnn.add(nn.Conv2D(4, 3, strides=2, padding=1, activation="relu"), nn.BatchNorm(momentum=0.8),
            nn.MaxPool2D(2), nn.Dropout(0.3), nn.Flatten(), nn.Dense(6, activation="tanh"), nn.Dense(2))
    run_and_export("legacy-cnn", cnn, onp.random.normal(size=(2, 3, 9, 9)).astype("float32"))


RESHAPE_CASES = [
    ("legacy", (2, 3, 4), (4, 0, 2)), ("legacy", (2, 3, 4), (2, 0, 0)), ("legacy", (2, 3, 4), (6, 1, -1)),
    ("legacy", (2, 3, 4), (3, -1, 8)), ("legacy", (2, 3, 4), (-1,)), ("legacy", (2, 3, 4), (-2,)),
    ("legacy", (2, 3, 4), (2, -2)), ("legacy", (2, 3, 4), (-2, 1, 1)), ("legacy", (2, 3, 4), (-3, 4)),
    ("legacy", (2, 3, 5, 6), (-3, -3)), ("legacy", (2, 3, 4), (0, -3)), ("legacy", (2, 3, 4), (-3, -2)),
    ("legacy", (2, 3, 4), (-4, 1, 2, -2)), ("legacy", (2, 3, 4), (2, -4, -1, 3, -2)),
    ("legacy", (6, 4), (-4, -1, 2, 0)), ("legacy", (5, 1, 7), (0, -1)),
    ("npx", (2, 3, 4), (-2, -2, -2)), ("npx", (2, 1, 4), (-2, -3, -2)), ("npx", (2, 3, 4), (-4,)),
    ("npx", (2, 3, 4), (-5, -4)), ("npx", (2, 3, 4), (-6, 1, 2, -4)), ("npx", (2, 3, 4), (2, -6, -1, 3, -4)),
    ("npx", (2, 3, 4), (-2, -1)), ("npx", (2, 3, 4), (-1, 4)), ("npx", (4, 6), (-6, 2, -1, -2)),
]


def reshape_cases() -> None:
    """MXNet's own answer for each reshape code pattern (the converter resolves the codes)."""
    answers = []
    for codes, shape, target in RESHAPE_CASES:
        if codes == "npx":
            npx.set_np()
            try:
                out = npx.reshape(np.zeros(shape), target).shape
            finally:
                npx.reset_np()
        else:
            out = nd.zeros(shape).reshape(target).shape
        answers.append({"codes": codes, "shape": list(shape), "target": list(target), "output": list(out)})
    (OUT / "reshape-cases.json").write_text(json.dumps(answers, indent=1) + "\n")


def catalogue_models() -> None:
    """Gluon 1.9's layers beyond the chapters' (issue 14) in Sequentials: ``save_parameters``
    (structured names, ``0.weight``) plus inputs and MXNet's outputs, in legacy mode (as
    Gluon 1.9's own layer code runs; ReflectionPad2D's pad is legacy-only)."""
    stacks = {
        "conv1d": (lambda: [nn.Conv1D(4, 3, strides=2, padding=1, groups=2),
                            nn.Conv1DTranspose(3, 3, strides=2, output_padding=1, dilation=2),
                            nn.InstanceNorm(scale=True), nn.PReLU(in_channels=3), nn.MaxPool1D(2),
                            nn.AvgPool1D(3, 1, 1, count_include_pad=False), nn.GlobalMaxPool1D()],
                   (2, 4, 9)),
        "conv2d": (lambda: [nn.ReflectionPad2D(1),
                            nn.Conv2DTranspose(4, 3, strides=2, padding=1, in_channels=2, output_padding=1,
                                               groups=2),
                            nn.GroupNorm(num_groups=2), nn.SELU(), nn.Swish(1.5), nn.GELU(),
                            nn.PReLU()],
                   (2, 2, 5, 5)),
        "conv3d": (lambda: [nn.Conv3D(4, (1, 2, 3), padding=(0, 1, 1)), nn.Conv3DTranspose(2, 2, strides=2),
                            nn.MaxPool3D((1, 2, 2)), nn.AvgPool3D(2, padding=1), nn.GlobalAvgPool3D()],
                   (1, 3, 4, 5, 6)),
    }
    for name, (layers, shape) in stacks.items():
        seed(14)
        net = nn.HybridSequential()
        net.add(*layers())
        net.initialize(mx.init.Normal(0.5))
        x = onp.random.normal(size=shape).astype("float32")
        net(nd.array(x))  # infers the deferred shapes
        randomize(net)
        net.save_parameters(str(OUT / f"catalogue-{name}.params"))
        onp.save(OUT / f"catalogue-{name}-input.npy", x)
        onp.save(OUT / f"catalogue-{name}-output.npy", net(nd.array(x)).asnumpy())


def main() -> int:
    if not start(OUT):  # (exports/ is make_mxnet_export_refs.py's and stays)
        return 1
    chapter_arrays()
    numpy_mode_dtypes()
    legacy_mode_arrays()
    oldest_formats()
    sparse_files()
    chapter_mlp()
    sequential_models()
    graph_models()
    legacy_models()
    reshape_cases()
    catalogue_models()
    total = sum(p.stat().st_size for p in OUT.iterdir())
    write_manifest(OUT)
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
