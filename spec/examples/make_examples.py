"""Write the example archives of spec/examples/ for the current format version.

    python spec/examples/make_examples.py

Each model example is NAME-VERSION.mpk (e.g. mlp-1.1.mpk) with NAME.input.npy and
NAME.output.npy (the output of the loaded model on that input). Weights come from fixed
seeds, so the archives are reproducible. Archives of earlier versions are never rewritten:
they test that readers still read them (tests/test_spec_examples.py). The format 1.0
archives predate the version suffix and are called NAME.mpk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import modelpack
from modelpack import nn

HERE = Path(__file__).resolve().parent


def mlp() -> tuple[nn.Block, np.ndarray]:
    """The file I/O chapter's MLP as registered layers: Dense(256, relu) → Dense(10)."""
    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"), nn.Dense(10))
    net.initialize(seed=0)
    return net, np.random.default_rng(0).uniform(size=(2, 20)).astype(np.float32)


def cnn() -> tuple[nn.Block, np.ndarray]:
    """A small LeNet-like network touching conv, norm, pooling and nesting."""
    features = nn.Sequential()
    features.add(
        nn.Conv2D(4, kernel_size=3, padding=1, activation="relu"),
        nn.BatchNorm(),
        nn.MaxPool2D(pool_size=2),
        nn.Conv2D(8, kernel_size=3, strides=2, groups=2),
        nn.AvgPool2D(pool_size=2, ceil_mode=True),
    )
    net = nn.Sequential()
    net.add(features, nn.Flatten(), nn.Dense(16, activation="gelu"), nn.Dropout(0.5),
            nn.LayerNorm(), nn.Dense(3))
    net.initialize(seed=1)
    x = np.random.default_rng(1).normal(size=(2, 2, 12, 12)).astype(np.float32)
    net(x)
    rng = np.random.default_rng(2)
    bn = features[1]
    bn.running_mean.set_data(rng.normal(size=4).astype(np.float32))
    bn.running_var.set_data(rng.uniform(0.5, 2.0, size=4).astype(np.float32))
    return net, x


class Residual(nn.Block):
    """A custom block for the traced-graph example: residual, constant, slicing, softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Dense(8, activation="gelu", in_units=8)
        self.norm = nn.LayerNorm(in_channels=8)
        self.head = nn.Dense(3, in_units=12)
        self.shift = np.linspace(-1.0, 1.0, 8).astype(np.float32)  # a graph constant

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = self.norm(x + self.body(x - self.shift))
        both = np.concatenate([h, h[:, :4] * 0.5], axis=1)
        return nn.F.softmax(self.head(both), axis=-1)


def graph() -> tuple[nn.Block, np.ndarray]:
    """A traced custom Block (format §3.3): stored as a Graph layer over its children."""
    net = Residual()
    net.initialize(seed=4)
    x = np.random.default_rng(4).normal(size=(3, 8)).astype(np.float32)
    net(x)
    return net, x


def tied() -> tuple[nn.Block, np.ndarray]:
    """d2l's tied parameters (format §3.1, new in 1.3): the third Dense shares the second's."""
    shared = nn.Dense(8, activation="relu")
    net = nn.Sequential()
    net.add(nn.Dense(8, activation="relu"), shared, nn.Dense(8, activation="relu", params=shared.params),
            nn.Dense(10))
    x = np.random.default_rng(1).uniform(size=(2, 20)).astype(np.float32)
    net.initialize(seed=0)
    net(x)
    return net, x


def tensors() -> dict[str, np.ndarray]:
    """A tensor archive: the values tests/test_spec_examples.py expects."""
    return {
        "ids": np.arange(6, dtype=np.int64).reshape(2, 3),
        "mask": np.array([True, False, True]),
        "scale": np.array(0.5, dtype=np.float16),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "specials": np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324], dtype=np.float64),
    }


def checkpoint(target: Path) -> None:
    """A checkpoint (format §10, new in 1.2): a small MLP after 3 Adam steps, stopped mid-pass
    of a shuffled loader, with a user generator and user state (a value and an array)."""
    from modelpack import autograd, gluon

    modelpack.random.seed(0)
    net = nn.Sequential()
    net.add(nn.Dense(8, activation="relu", in_units=4), nn.Dropout(0.5), nn.Dense(3, in_units=8))
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(x, np.arange(10) % 3), batch_size=2, shuffle=True)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    batches = iter(loader)
    for _ in range(3):
        xb, yb = next(batches)
        with autograd.record():
            loss = loss_fn(net(xb), yb)
        loss.backward()
        trainer.step(len(xb))
    folder = target.parent / "checkpoint-run"
    written = modelpack.Checkpointer(folder).save(
        3, net, trainer=trainer, rng={"noise": rng}, data=loader,
        state={"epoch": 0, "history": [1.5, 1.25], "ema": np.arange(3, dtype=np.float32)},
        metadata={"example": "checkpoint"},
    )
    written.replace(target)
    folder.rmdir()


def main() -> None:
    from modelpack.format.schema import FORMAT_VERSION

    # An archive that exists is never rewritten: committed examples are the readers' test data.
    for name, make in (("mlp", mlp), ("cnn", cnn), ("graph", graph), ("tied", tied)):
        target = HERE / f"{name}-{FORMAT_VERSION}.mpk"
        if target.exists():
            continue
        net, x = make()
        y = net(x)
        example = x if name == "graph" else None
        modelpack.export(net, target, example=example, metadata={"example": name})
        # Inputs and outputs are shared by every version's archive of a name, and kept as first
        # written: another machine's BLAS may round the recomputed output differently.
        for kind, array in (("input", x), ("output", y)):
            if not (HERE / f"{name}.{kind}.npy").exists():
                np.save(HERE / f"{name}.{kind}.npy", array, allow_pickle=False)
        print(f"wrote {target.name}")
    target = HERE / f"tensors-{FORMAT_VERSION}.mpk"
    if not target.exists():
        modelpack.save(target, tensors(), metadata={"example": "tensors"})
        print(f"wrote {target.name}")
    target = HERE / f"checkpoint-{FORMAT_VERSION}.mpk"
    if not target.exists():
        checkpoint(target)
        print(f"wrote {target.name}")


if __name__ == "__main__":
    main()
