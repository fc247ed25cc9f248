"""The training run tests/test_checkpoint_kill.py kills: resumes from its folder, then trains on.

    python tests/checkpoint_child.py FOLDER STEPS OUT

Prints ``ready <step>`` once restored and ``step <n>`` after each step (so the killer can aim
at training, not start-up), checkpoints every ``EVERY`` steps, and at the end saves the final
parameters to OUT and prints ``done``. ``train`` without a folder is the reference run.

Everything random is in play: initialisation and dropout masks (``modelpack.random``), the
data order of a shuffled DataLoader saved mid-pass, a user generator adding input noise, Adam
with weight decay, and BatchNorm's running averages.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

import modelpack
from modelpack import autograd, gluon, nn

EVERY = 3


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(240, 12)).astype(np.float32)
    y = (x[:, :4].sum(axis=1) > 0).astype(np.int64) + (x[:, 4] > 0.5)
    return x, y


def train(
    steps: int,
    folder: str | None = None,
    on_ready: Callable[[int], None] = lambda step: None,
    on_step: Callable[[int], None] = lambda step: None,
) -> dict[str, np.ndarray]:
    """``steps`` steps of training (resumed from ``folder``'s newest checkpoint if any)."""
    modelpack.random.seed(7)
    net = nn.Sequential()
    net.add(nn.Dense(48, activation="relu"), nn.BatchNorm(), nn.Dropout(0.3), nn.Dense(3))
    net.initialize(init="xavier")
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01, "wd": 1e-4})
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(*data()), batch_size=32, shuffle=True)
    noise = np.random.default_rng(99)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    ckpt = modelpack.Checkpointer(folder, keep_last=2) if folder else None
    step = (ckpt.restore(net, trainer=trainer, rng=noise, data=loader) if ckpt else None) or 0
    epoch = ckpt.state.get("epoch", 0) if ckpt else 0
    on_ready(step)
    while step < steps:
        for x, y in loader:
            x = x + noise.normal(0, 0.05, size=x.shape).astype(np.float32)
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(len(x))
            step += 1
            if ckpt and step % EVERY == 0:
                ckpt.save(step, net, trainer=trainer, rng=noise, data=loader, state={"epoch": epoch})
            on_step(step)
            if step == steps:
                break
        else:
            epoch += 1
    return {name: param.data().copy() for name, param in net.collect_params().items()}


def main(folder: str, steps: int, out: str) -> None:
    final = train(steps, folder, on_ready=lambda step: print(f"ready {step}", flush=True),
                  on_step=lambda step: print(f"step {step}", flush=True))
    modelpack.save(out, final)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
