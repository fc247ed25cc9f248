"""Train with checkpoints, survive a power cut, then reuse the trained layers (~10 s).

    python examples/train_checkpoint.py [--folder runs/example]

1. Trains an MLP on a synthetic 3-class problem in a child process that checkpoints every
   20 steps, and cuts its power (SIGKILL) in the middle of training.
2. Resumes from the newest checkpoint and finishes; checks that the weights are bit for bit
   those of a run that was never interrupted (data order and dropout masks included).
3. Builds a new network from the first two layers of the trained one, freezes them, and
   fine-tunes a new head on a 5-class problem over the same inputs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import modelpack
from modelpack import autograd, gluon, nn

STEPS, EVERY, CUT_AT = 300, 20, 130


def problem(classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: ``classes`` centres in 20 dimensions, 1200 noisy points."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.35, size=(classes, 20))
    labels = rng.integers(0, classes, size=1200)
    points = centres[labels] + rng.normal(size=(1200, 20))
    return points.astype(np.float32), labels


def train(folder: Path | None, report=print) -> nn.Sequential:
    """``STEPS`` steps of Adam, resuming from ``folder``'s newest checkpoint if there is one."""
    modelpack.random.seed(0)  # initialisation, dropout masks and data order all follow from it
    net = nn.Sequential()
    net.add(nn.Dense(64, activation="relu"), nn.Dense(64, activation="relu"), nn.Dropout(0.2), nn.Dense(3))
    net.initialize(init="xavier")
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 3e-3})
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(*problem(3, seed=1)), batch_size=64, shuffle=True)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    ckpt = modelpack.Checkpointer(folder, keep_last=3) if folder else None
    step = (ckpt.restore(net, trainer=trainer, data=loader) if ckpt else None) or 0
    if step:
        report(f"  resumed at step {step} from {ckpt.checkpoints()[-1].name} (epoch {ckpt.state['epoch']})")
    while step < STEPS:
        for x, y in loader:
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(len(x))
            step += 1
            if ckpt and step % EVERY == 0:
                ckpt.save(step, net, trainer=trainer, data=loader, state={"epoch": step * 64 // 1200})
                report(f"  step {step:3d}  loss {loss.value.mean():.4f}  checkpoint saved")
            if step == STEPS:
                break
    return net


def accuracy(net: nn.Block, x: np.ndarray, y: np.ndarray) -> float:
    return float((net(x).argmax(axis=1) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, help="checkpoint folder (default: a temporary one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the run whose power is cut
        train(args.folder, report=lambda line: print(line, flush=True))
        return
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="modelpack-example-"))
    folder = args.folder or scratch / "run"
    shutil.rmtree(folder, ignore_errors=True)

    print(f"1. training in a child process, checkpoints every {EVERY} steps in {folder}")
    child = subprocess.Popen([sys.executable, __file__, "--child", "--folder", str(folder)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        print(line, end="")
        if line.strip().startswith(f"step {CUT_AT - CUT_AT % EVERY:3d}"):
            time.sleep(0.005)  # somewhere in the next steps
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait()
    print(f"   power cut (SIGKILL) a moment after step {CUT_AT - CUT_AT % EVERY}; on disk: "
          f"{', '.join(p.name for p in sorted(folder.iterdir()))}")

    print("2. resuming from the newest valid checkpoint")
    resumed = train(folder)
    uninterrupted = train(None, report=lambda line: None)
    pairs = zip(resumed.collect_params().values(), uninterrupted.collect_params().values(), strict=True)
    same = all(a.data().tobytes() == b.data().tobytes() for a, b in pairs)
    x, y = problem(3, seed=1)
    print(f"   finished {STEPS} steps: accuracy {accuracy(resumed, x, y):.3f}; weights bitwise equal to an "
          f"uninterrupted run: {same}")

    print("3. reusing the first two layers of the trained network for a new 5-class task")
    base = modelpack.load(modelpack.Checkpointer(folder).checkpoints()[-1])  # a checkpoint loads as its model
    new = base[:2]  # the two trained Dense layers, as a new Sequential
    new.add(nn.Dense(5))
    new.initialize(init="xavier")  # only the new head: loaded layers keep their weights
    for param in new[:2].collect_params().values():
        param.grad_req = "null"  # frozen
    frozen = [p.data().copy() for p in new[:2].collect_params().values()]
    x5, y5 = problem(5, seed=2)
    trainer = gluon.Trainer(new.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(x5, y5), batch_size=64, shuffle=True)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    before = None
    for _ in range(5):
        for xb, yb in loader:
            with autograd.record():
                loss = loss_fn(new(xb), yb)
            loss.backward()
            trainer.step(len(xb))
            before = before if before is not None else accuracy(new, x5, y5)
    unchanged = all(np.array_equal(a, p.data()) for a, p in zip(frozen, new[:2].collect_params().values(),
                                                                strict=True))
    print(f"   fine-tuned the new head for 5 epochs: accuracy {before:.3f} after one step -> "
          f"{accuracy(new, x5, y5):.3f}; frozen layers unchanged: {unchanged}")
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"done in {time.perf_counter() - start:.1f} s")
    if not (same and unchanged):
        sys.exit(1)


if __name__ == "__main__":
    main()
