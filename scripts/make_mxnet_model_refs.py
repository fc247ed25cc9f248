"""Write ``tests/data/mxnet-models/``: networks written by others, exported by real MXNet 1.9.1,
and what MXNet computed with them, for the converter's tests (never imported by tests).
Run in the MXNet environment (see ``make_mxnet_refs.py``):

    /tmp/mxref/bin/python scripts/make_mxnet_model_refs.py

- ``zoo-<name>``: MXNet's own model zoo (``gluon.model_zoo.vision``) and GluonCV's (see
  ``GLUONCV``), built with ``pretrained=False``, exported as ``-symbol.json.gz``. Their
  weights would be hundreds of megabytes, so they come from ``tests/interop/formula_weights.py``
  (exact in any numpy): the script gives them to MXNet, ``<name>.json`` lists their names and
  shapes and the input's shape, and the tests recompute them. ``-output.npy`` is MXNet's
  inference output.
- ``legacy-ops``, ``np-ops``: one block each calling the operators the converter lowers to
  graph ops (slicing, splitting, gathering, comparisons, clip, norms, ...), in legacy and in
  numpy mode; ``resampling``: adaptive average pooling and bilinear resizing; ``module-ops``:
  a Module-API symbol with ``SoftmaxOutput`` heads. Exported with their (small) parameter
  files; ``-input-<i>.npy`` and ``-output-<i>.npy`` as usual.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import mxnet as mx
import numpy as onp
from mxnet import gluon, nd, np, npx
from mxnet.gluon import nn
from mxnet.gluon.model_zoo import vision
from mxnet_reference_files import start, write_manifest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "interop"))
from formula_weights import parameters, uniform  # noqa: E402

OUT = ROOT / "tests" / "data" / "mxnet-models"

# name -> input side (models that end in a fixed-size pooling need ImageNet's sizes)
ZOO = {
    "mobilenet0.25": 64, "mobilenetv2_0.25": 64, "squeezenet1.1": 224, "resnet18_v1": 64,
    "resnet18_v2": 64, "densenet121": 224, "resnet50_v1": 64, "resnet50_v2": 64, "inceptionv3": 299,
    "squeezenet1.0": 224,
}
# GluonCV's (installed beside MXNet: pip install --no-deps gluoncv==0.10.5.post0 yacs tqdm
# portalocker requests "scipy<1.11"): name -> (input side, whether conversion needs the input's
# height and width fixed: a reshape or a resampling that depends on them)
GLUONCV = {
    "cifar_resnet20_v1": (32, False), "mobilenetv3_small": (64, False), "se_resnet18_v1": (64, False),
    "resnest14": (64, True), "hrnet_w18_small_v1_c": (224, False), "residualattentionnet56": (224, True),
    "xception": (299, False), "nasnet_4_1056": (224, True),
}
INPUT_KEY = 1_000_000  # formula_weights.uniform's key for the input


def zoo_model(name: str, side: int, fixed: bool = False) -> None:
    if name in GLUONCV:
        from gluoncv import model_zoo

        net = model_zoo.get_model(name, pretrained=False)
    else:
        net = vision.get_model(name, pretrained=False)
    net.initialize()
    net.hybridize()
    shape = (2, 3, side, side)
    x = nd.array(uniform(shape, INPUT_KEY))
    net(x)  # infers the deferred shapes
    net.export(str(OUT / f"zoo-{name}"))
    params_file = OUT / f"zoo-{name}-0000.params"
    exported = nd.load(str(params_file))
    params_file.unlink()
    shapes = {key: list(value.shape) for key, value in exported.items()}
    values = parameters(shapes)
    by_name = net.collect_params()
    for key, value in values.items():
        by_name[key.split(":", 1)[1]].set_data(nd.array(value))
    out = net(x)
    out = (out[0] if isinstance(out, (list, tuple)) else out).asnumpy()  # (NASNet's auxiliary head)
    onp.save(OUT / f"zoo-{name}-output.npy", out)
    spec = {"input": list(shape), "fixed_input": fixed, "parameters": shapes}
    if name in GLUONCV:
        import gluoncv

        spec["gluoncv"] = gluoncv.__version__
    (OUT / f"zoo-{name}.json").write_text(json.dumps(spec) + "\n")
    symbol = OUT / f"zoo-{name}-symbol.json"
    (OUT / f"zoo-{name}-symbol.json.gz").write_bytes(gzip.compress(symbol.read_bytes(), mtime=0))
    symbol.unlink()
    print(f"zoo-{name}: output std {out.std():.3g}, max |.| {abs(out).max():.3g}")


class LegacyOps(nn.HybridBlock):
    """The legacy operators the converter lowers to graph ops, each output one of them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d = nn.Dense(24)
        self.c = nn.Conv2D(4, 3, padding=1)

    def hybrid_forward(self, F, x, img):
        h = self.d(x)  # (N, 24)
        parts = F.SliceChannel(h, num_outputs=3, axis=1)
        cube = F.reshape(h, (0, 4, 6))
        first = F.slice_axis(h, axis=1, begin=0, end=1)
        c = F.slice_axis(h, axis=1, begin=2, end=-3)
        unary = (F.rsqrt(F.abs(h) + 1) + F.reciprocal(h * h + 1) + F.sign(h) + F.floor(h) + F.ceil(h)
                 + F.round(h * 2) + F.trunc(h * 3) + F.fix(h) + F.expm1(-F.abs(h)) + F.log1p(F.abs(h))
                 + F.sigmoid(h) + F.softsign(h) + F.relu(h))
        compare = (F.broadcast_greater(h, first) + (h >= 0.1) + (h < -0.2) + (h <= 0.3) + (h == 0.5)
                   + (h != 0.5) + F.broadcast_lesser_equal(h, first))
        return (F.clip(h, -0.5, 0.8), F.hard_sigmoid(h, alpha=0.3, beta=0.4), c,
                F.slice(h, begin=(None, 1), end=(None, 20), step=(None, 3)),
                F.slice(cube, begin=(1, None, 5), end=(None, 2, 0), step=(-1, None, -2)),
                parts[0] * parts[2] + parts[1],
                F.split(cube, num_outputs=2, axis=2)[1],
                F.SliceChannel(F.slice_axis(cube, axis=1, begin=0, end=2), num_outputs=2, axis=1,
                               squeeze_axis=True)[0],
                F.L2Normalization(cube, mode="channel", eps=1e-6), F.L2Normalization(h, mode="instance"),
                F.L2Normalization(self.c(img), mode="spatial"),
                unary, compare,
                F.SoftmaxActivation(h), F.SoftmaxActivation(cube, mode="channel"),
                F.UpSampling(self.c(img), scale=2, sample_type="nearest", num_args=1),
                F.tile(c, reps=(1, 2)), F.repeat(c, repeats=2, axis=1), F.repeat(c, repeats=2),
                F.broadcast_to(first, shape=(0, 5)), F.broadcast_like(first, c),
                F.argmax(h, axis=1), F.argmin(h, axis=1, keepdims=True), F.argmax(h),
                F.one_hot(F.argmax(h, axis=1), depth=24, on_value=2.0, off_value=-1.0),
                F.take(h, F.argmax(h, axis=1), axis=1),
                F.take(h, F.argmax(h, axis=1) + 20, axis=1, mode="wrap"),
                F.where(h > 0, h, -h * 0.5), F.where(F.reshape(first, (-1,)), h, -h),
                F.dot(h, F.transpose(h)), F.dot(h, h, transpose_b=True),
                F.batch_dot(cube, cube, transpose_b=True),
                F.norm(h, axis=1, keepdims=True), F.norm(h, ord=1, axis=1), F.norm(h),
                F.prod(F.slice_axis(h, axis=1, begin=0, end=3), axis=1))


class Resampling(nn.HybridBlock):
    """Adaptive average pooling and bilinear resizing, as GluonCV's SE blocks and segmentation
    heads call them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.c = nn.Conv2D(4, 1)

    def hybrid_forward(self, F, x):
        h = self.c(x)  # (N, 4, 10, 9)
        pool, resize = F.contrib.AdaptiveAvgPooling2D, F.contrib.BilinearResize2D
        return (pool(h, output_size=1), pool(h, output_size=(3, 2)), pool(h, output_size=7),
                pool(h, output_size=(10, 9)), resize(h, height=17, width=5),
                resize(h, height=4, width=12, align_corners=False), resize(h, height=1, width=1),
                resize(h, scale_height=1.5, scale_width=0.5), resize(h, scale_height=2.0, scale_width=3.0,
                                                                     align_corners=False),
                resize(h, F.slice_axis(h, axis=2, begin=0, end=6), mode="like"))


class NumpyOps(nn.HybridBlock):
    """The numpy-mode spellings of the same operators."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d = nn.Dense(24)

    def hybrid_forward(self, F, x):
        h = self.d(x)
        parts = F.np.split(h, 3, axis=1)
        cuts = F.np.split(h, [5, 20], axis=1)
        am = F.np.argmax(h, axis=1)
        unary = (F.np.reciprocal(h * h + 1) + F.np.sign(h) + F.np.floor(h) + F.np.ceil(h) + F.np.trunc(h)
                 + F.np.fix(h) + F.np.expm1(-F.np.abs(h)) + F.np.log1p(F.np.abs(h)))
        compare = (h > 0) * 1.0 + (h >= 0.1) + (h < -0.2) + (h <= 0.3) + (h == h) + (h != 0.5)
        return (F.np.clip(h, -0.5, 0.8), parts[0] * parts[2] + parts[1], cuts[0], cuts[2], unary, compare,
                am, F.np.argmin(h, axis=0), F.np.argmax(h), F.npx.one_hot(am, depth=24),
                F.np.take(h, am, axis=1), F.np.where(h > 0, h, -h * 0.5), F.np.where(h > 0, h, 0.5),
                F.np.where(h > 0, 1.5, h), F.np.tile(h, (1, 2)), F.np.repeat(h, 2, axis=1),
                F.np.broadcast_to(F.np.expand_dims(F.np.sum(h, axis=1), 1), (3, 5)),
                F.np.prod(h[:, :3], axis=1), h[:, 2:-3], h[1:, ::3])


def op_models() -> None:
    mx.random.seed(21)
    onp.random.seed(21)
    legacy = LegacyOps()
    legacy.initialize(mx.init.Normal(0.5))
    legacy.hybridize()
    inputs = [onp.random.normal(size=(3, 7)).astype("float32"),
              onp.random.normal(size=(3, 2, 5, 5)).astype("float32")]
    export("legacy-ops", legacy, [nd.array(a) for a in inputs], inputs)
    resampling = Resampling()
    resampling.initialize(mx.init.Normal(0.5))
    resampling.hybridize()
    x = onp.random.normal(size=(2, 3, 10, 9)).astype("float32")
    export("resampling", resampling, [nd.array(x)], [x])
    npx.set_np()
    try:
        numpy_ops = NumpyOps()
        numpy_ops.initialize(mx.init.Normal(0.5))
        numpy_ops.hybridize()
        x = onp.random.normal(size=(3, 7)).astype("float32")  # batch 3: broadcast_to's shape fixes it
        export("np-ops", numpy_ops, [np.array(x)], [x])
    finally:
        npx.reset_np()


def export(name: str, net: gluon.HybridBlock, arrays: list, inputs: list) -> None:
    outputs = net(*arrays)
    net.export(str(OUT / name))
    for i, x in enumerate(inputs):
        onp.save(OUT / f"{name}-input-{i}.npy", x)
    for i, out in enumerate(outputs):
        onp.save(OUT / f"{name}-output-{i}.npy", out.asnumpy())


def module_model() -> None:
    """A Module-API symbol (``mx.sym``) with ``SoftmaxOutput`` heads and their label inputs,
    saved as ``Module.save_checkpoint`` does (``arg:`` parameters)."""
    rng = onp.random.default_rng(22)
    data = mx.sym.var("data")
    fc = mx.sym.FullyConnected(data, num_hidden=6, name="fc1")
    cube = mx.sym.reshape(fc, shape=(0, 1, 2, 3))
    conv = mx.sym.Convolution(cube, num_filter=3, kernel=(1, 1), name="conv")
    group = mx.sym.Group([
        mx.sym.SoftmaxOutput(fc, name="softmax"),
        mx.sym.SoftmaxOutput(conv, multi_output=True, name="seg", grad_scale=2.0, normalization="valid"),
        mx.sym.SoftmaxOutput(conv, preserve_shape=True, name="kept"),
        mx.sym.SoftmaxOutput(conv, name="rows", use_ignore=True, ignore_label=2),
        mx.sym.SoftmaxActivation(conv), mx.sym.norm(fc), mx.sym.norm(fc, ord=1, keepdims=True),
        mx.sym.argmax(fc), mx.sym.argmax(fc, keepdims=True),
        mx.sym.broadcast_like(mx.sym.sum(fc, axis=1, keepdims=True), fc),
    ])
    x = rng.normal(size=(4, 5)).astype("float32")
    args = {"fc1_weight": rng.normal(size=(6, 5)), "fc1_bias": rng.normal(size=(6,)),
            "conv_weight": rng.normal(size=(3, 1, 1, 1)), "conv_bias": rng.normal(size=(3,))}
    bound = {key: mx.nd.array(value.astype("float32")) for key, value in args.items()}
    bound["data"] = mx.nd.array(x)
    arg_shapes = dict(zip(group.list_arguments(), group.infer_shape(data=x.shape)[0], strict=True))
    for label in ("softmax_label", "seg_label", "kept_label", "rows_label"):
        bound[label] = mx.nd.zeros(arg_shapes[label])
    outputs = group.bind(mx.cpu(), bound).forward(is_train=False)
    group.save(str(OUT / "module-ops-symbol.json"))
    mx.nd.save(str(OUT / "module-ops-0000.params"), {f"arg:{k}": bound[k] for k in args})
    onp.save(OUT / "module-ops-input-0.npy", x)
    for i, out in enumerate(outputs):
        onp.save(OUT / f"module-ops-output-{i}.npy", out.asnumpy())


def main() -> int:
    if not start(OUT):
        return 1
    op_models()
    module_model()
    for name, side in ZOO.items():
        zoo_model(name, side)
    for name, (side, fixed) in GLUONCV.items():
        zoo_model(name, side, fixed)
    write_manifest(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
