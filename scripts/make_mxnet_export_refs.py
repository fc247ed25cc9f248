"""Write ``tests/data/mxnet/exports/``: hybridized Gluon 1.9.1 models built from the newer
layers (1-D and 3-D convolutions and pooling, transposed convolutions, InstanceNorm,
GroupNorm, padding, and ``gluon.rnn``'s fused RNN/LSTM/GRU), exported with ``net.export``,
with their inputs and the outputs MXNet computed (inference mode), so that
``modelpack.interop.mxnet.convert`` is checked against MXNet itself without MXNet.

Run in the separate MXNet environment (see ``make_mxnet_refs.py``):

    /tmp/mxref/bin/python scripts/make_mxnet_export_refs.py

Each model ``<name>`` has ``<name>-symbol.json`` and ``<name>-0000.params``, inputs
``<name>-input-<i>.npy`` and outputs ``<name>-output-<i>.npy`` (a nested result flattened in
order: ``(out, [h, c])`` gives outputs 0, 1, 2). All values are seeded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mxnet as mx
import numpy as onp
from mxnet import gluon, nd, np, npx
from mxnet.gluon import nn, rnn
from mxnet_reference_files import start, write_manifest

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "mxnet" / "exports"


def randomize(net: gluon.Block, rng: onp.random.Generator) -> None:
    """Every parameter random (biases too; gammas near 1), so a misplaced one shows."""
    array = np.array if npx.is_np_array() else nd.array
    for name, param in net.collect_params().items():
        values = rng.normal(0.0, 0.5, size=param.shape)
        if name.endswith("gamma"):
            values = 1.0 + values
        param.set_data(array(values.astype("float32")))


def flat(result: object) -> list[onp.ndarray]:
    if isinstance(result, (list, tuple)):
        return [array for item in result for array in flat(item)]
    return [result.asnumpy()]  # type: ignore[attr-defined]


def export(name: str, net: gluon.HybridBlock, *inputs: onp.ndarray, seed: int) -> None:
    """Initialise, hybridize, call once (shapes), randomise, export; save inputs and outputs."""
    array = np.array if npx.is_np_array() else nd.array
    rng = onp.random.default_rng(seed)
    mx.random.seed(seed)
    net.initialize(mx.init.Normal(0.5))
    net.hybridize()
    net(*[array(x) for x in inputs])
    randomize(net, rng)
    outputs = flat(net(*[array(x) for x in inputs]))
    net.export(str(OUT / name))
    for i, x in enumerate(inputs):
        onp.save(OUT / f"{name}-input-{i}.npy", x)
    for i, out in enumerate(outputs):
        onp.save(OUT / f"{name}-output-{i}.npy", out)


def normal(seed: int, *shape: int) -> onp.ndarray:
    return onp.random.default_rng(seed).normal(size=shape).astype("float32")


class Pads(gluon.HybridBlock):
    """``F.pad`` in each mode on 5-D input (after a 1x1x1 convolution that fixes the rank)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3D(2, 1)

    def hybrid_forward(self, F, x):  # noqa: N803 (Gluon's signature)
        y = self.conv(x)
        widths = (0, 0, 0, 0, 1, 2, 0, 1, 2, 0)
        return (F.pad(y, mode="constant", pad_width=widths, constant_value=1.5),
                F.pad(y, mode="edge", pad_width=widths),
                F.pad(y, mode="reflect", pad_width=(0, 0, 0, 0, 1, 2, 2, 1, 2, 3)))


class LanguageModel(gluon.HybridBlock):
    """d2l's RNN language model shape: embedding → 2-layer LSTM (time-major) → dense."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(12, 6)
        self.lstm = rnn.LSTM(8, num_layers=2, dropout=0.3)
        self.dense = nn.Dense(12, flatten=False)

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.dense(self.lstm(self.embedding(x)))


class WithStates(gluon.HybridBlock):
    """A recurrent layer called with begin states; returns the output and the new states."""

    def __init__(self, layer: gluon.HybridBlock) -> None:
        super().__init__()
        self.layer = layer

    def hybrid_forward(self, F, x, *states):  # noqa: N803
        return self.layer(x, list(states))


def spatial_models() -> None:
    conv1d = nn.HybridSequential()
    conv1d.add(nn.Conv1D(4, 3, strides=2, padding=1, groups=2),
               nn.Conv1DTranspose(3, 3, strides=2, output_padding=1, dilation=2),
               nn.InstanceNorm(scale=True), nn.MaxPool1D(2), nn.AvgPool1D(3, 1, 1, count_include_pad=False),
               nn.AvgPool1D(2, ceil_mode=True), nn.GlobalMaxPool1D())
    export("conv1d", conv1d, normal(1, 2, 4, 19), seed=1)
    conv2d = nn.HybridSequential()
    conv2d.add(nn.ReflectionPad2D(1),
               nn.Conv2DTranspose(4, 3, strides=2, padding=1, output_padding=1, groups=2, in_channels=2),
               nn.GroupNorm(num_groups=2), nn.InstanceNorm(), nn.MaxPool2D(3, 2, 1, ceil_mode=True),
               nn.GlobalAvgPool2D())
    export("conv2d", conv2d, normal(2, 2, 2, 5, 6), seed=2)
    conv3d = nn.HybridSequential()
    conv3d.add(nn.Conv3D(4, (1, 2, 3), padding=(0, 1, 1), dilation=(1, 2, 1)),
               nn.Conv3DTranspose(2, 2, strides=2, use_bias=False), nn.GroupNorm(num_groups=2),
               nn.MaxPool3D((1, 2, 2)), nn.AvgPool3D(2, padding=1), nn.GlobalMaxPool3D())
    export("conv3d", conv3d, normal(3, 1, 3, 4, 5, 6), seed=3)
    export("pads", Pads(), normal(4, 2, 3, 4, 5, 6), seed=4)


def recurrent_models() -> None:
    tokens = onp.random.default_rng(5).integers(0, 12, size=(7, 3)).astype("float32")  # (time, batch)
    export("lstm-lm", LanguageModel(), tokens, seed=5)
    gru = WithStates(rnn.GRU(5, bidirectional=True, layout="NTC"))
    export("bigru", gru, normal(6, 3, 4, 6), normal(7, 2, 3, 5), seed=6)
    relu = WithStates(rnn.RNN(4, num_layers=2, activation="relu", bidirectional=True))
    export("rnn-relu", relu, normal(8, 5, 2, 3), normal(9, 4, 2, 4), seed=8)
    tanh = nn.HybridSequential()
    tanh.add(rnn.RNN(6, activation="tanh", layout="NTC"), nn.Dense(2))
    export("rnn-tanh", tanh, normal(10, 2, 5, 3), seed=10)
    lstm = WithStates(rnn.LSTM(4, num_layers=2, bidirectional=True))
    export("bilstm-states", lstm, normal(11, 5, 3, 2), normal(12, 4, 3, 4), normal(13, 4, 3, 4), seed=11)


def numpy_mode_models() -> None:
    """The same layers under ``npx.set_np()`` (d2l's mode): numpy-mode operator names."""
    npx.set_np()
    try:
        lstm = WithStates(rnn.LSTM(4, num_layers=1))
        export("np-lstm", lstm, normal(14, 5, 2, 3), normal(15, 1, 2, 4), normal(16, 1, 2, 4), seed=14)
        conv = nn.HybridSequential()
        conv.add(nn.Conv1D(3, 2), nn.AvgPool1D(2), nn.Conv1DTranspose(2, 2, strides=2))
        export("np-conv1d", conv, normal(17, 2, 4, 9), seed=17)
    finally:
        npx.reset_np()


def main() -> int:
    if not start(OUT):
        return 1
    spatial_models()
    recurrent_models()
    numpy_mode_models()
    write_manifest(OUT)
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
