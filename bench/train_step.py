"""Time one training step (forward, loss, backward, SGD update) of modelpack against torch.

Two workloads, float32 on CPU, the same shapes, initial weights and batch on both sides:

- MLP: a batch of 128 × 784 through Dense 256 (relu), Dense 128 (relu), Dense 10;
- CNN: a batch of 32 × 1 × 28 × 28 through Conv2D 8 (3×3, pad 1, relu), MaxPool 2,
  Conv2D 16 (3×3, pad 1, relu), MaxPool 2, Flatten, Dense 10.

A step is ``autograd.record()`` → softmax cross-entropy → ``backward`` → ``Trainer.step``
(SGD, momentum 0.9) against ``zero_grad`` → ``cross_entropy`` → ``backward`` →
``optim.SGD.step``. Before timing, one step on each side from the same weights must give
the same weights (to float32 tolerance). Both run in this one process: after warm-ups,
``--repeats`` rounds each time one step of each side in turn (so drift in the machine's load
affects both alike); medians and their ratio are printed. Only the ratio is worth comparing.

Both sides run on one thread (numpy's BLAS through ``OPENBLAS_NUM_THREADS=1``, set before
numpy loads; ``torch.set_num_threads(1)``): with more, each library's idle worker threads
spin on the cores the other one needs, and on a busy 2-core machine torch's step took up to
10× longer than alone. ``--threads N`` measures N threads on both sides.

    python bench/train_step.py [--repeats 50] [--threads 1] [--write]   # --write updates BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

if __name__ == "__main__":  # as a script; an importing test leaves the environment alone
    from _threads import pin_blas_threads  # the script's own folder is on sys.path

    pin_blas_threads(default="1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from modelpack import __version__, autograd, gluon, nn  # noqa: E402

try:
    from _sections import cpu_model, write_section  # noqa: E402
except ImportError:  # imported from a test, as bench._sections's sibling
    from bench._sections import cpu_model, write_section  # noqa: E402

HEADING = "## Training step (`bench/train_step.py`)"


def median_seconds(runs: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall time of each ``run()``: three untimed warm-ups each, then ``repeats``
    rounds timing every run once, in turn."""
    for run in runs:
        for _ in range(3):
            run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, timed in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            timed.append(time.perf_counter() - start)
    return [statistics.median(timed) for timed in times]


Workload = tuple[nn.Sequential, torch.nn.Module, np.ndarray]


def mlp() -> Workload:
    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu", in_units=784), nn.Dense(128, activation="relu", in_units=256),
            nn.Dense(10, in_units=128))
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 10))
    x = np.random.default_rng(0).normal(size=(128, 784)).astype(np.float32)
    return net, model, x


def cnn() -> Workload:
    net = nn.Sequential()
    net.add(nn.Conv2D(8, 3, padding=1, activation="relu", in_channels=1), nn.MaxPool2D(2),
            nn.Conv2D(16, 3, padding=1, activation="relu", in_channels=8), nn.MaxPool2D(2), nn.Flatten(),
            nn.Dense(10, in_units=16 * 7 * 7))
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10))
    x = np.random.default_rng(0).normal(size=(32, 1, 28, 28)).astype(np.float32)
    return net, model, x


def measure(build: Callable[[], Workload], repeats: int) -> tuple[float, float]:
    """Median seconds per training step: (modelpack, torch)."""
    net, model, x = build()
    net.initialize(init="xavier", seed=0)
    layers = [m for m in model if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    with torch.no_grad():  # the same initial weights
        for ours, theirs in zip([b for b in net if b.params], layers, strict=True):
            theirs.weight.copy_(torch.from_numpy(ours.weight.data()))
            theirs.bias.copy_(torch.from_numpy(ours.bias.data()))
    y = np.arange(len(x)) % 10
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)

    def ours_step() -> None:
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(len(x))

    def torch_step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x_t), y_t).backward()
        optimizer.step()

    ours_step()
    torch_step()
    for ours, theirs in zip([b for b in net if b.params], layers, strict=True):
        np.testing.assert_allclose(ours.weight.data(), theirs.weight.detach().numpy(), rtol=1e-4, atol=1e-6)
    ours, theirs = median_seconds([ours_step, torch_step], repeats)
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed rounds per workload")
    parser.add_argument("--threads", type=int, default=1, help="threads for both sides (default 1)")
    parser.add_argument("--write", action="store_true", help="update this section of BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, shapes, build in (("MLP", "128×784 → 256 → 128 → 10", mlp),
                                ("CNN", "32×1×28×28 → conv 8, pool, conv 16, pool → 10", cnn)):
        ours, theirs = measure(build, args.repeats)
        rows.append(f"| {name} | {shapes} | {ours * 1e3:.2f} ms | {theirs * 1e3:.2f} ms | "
                    f"{ours / theirs:.2f}× |")
    lines = [
        HEADING,
        "",
        f"`python bench/train_step.py --write`: one SGD training step (forward, softmax cross-entropy, "
        f"backward, update), float32, median of {args.repeats} rounds timing one step of each side in turn, "
        f"after 3 warm-ups; one process, {args.threads} thread(s) on both sides (numpy's BLAS and torch); "
        f"torch {torch.__version__}, numpy {np.__version__}, modelpack {__version__}, "
        f"{os.cpu_count()} cores ({platform.machine()}, {cpu_model()}). Ratio = modelpack ÷ torch: above 1, "
        "modelpack is slower. Only the ratio is worth comparing, and it is one run's measurement.",
        "",
        "| workload | shapes | modelpack | torch | ratio |",
        "|---|---|---:|---:|---:|",
        *rows,
        "",
    ]
    print("\n".join(lines))
    if args.write:
        write_section(HEADING, lines)


if __name__ == "__main__":
    main()
