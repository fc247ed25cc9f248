"""Write tests/reference/mxnet_optimizers.npz: MXNet 1.9.1's own optimiser updates, the
reference ``tests/test_gluon_trainer.py`` checks ``gluon.Trainer``'s update rules against.

    <python with mxnet==1.9.1 and numpy<1.24> scripts/mxnet_optimizer_reference.py

Six updates of a (5, 4) float32 weight with given gradients, per optimiser configuration,
through ``mx.optimizer.get_updater`` (what Gluon's Trainer calls). Only numpy arrays are
stored (``np.savez``, no pickle); the case names and options are listed in ``CASES``, which
the test repeats.
"""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np

CASES = {
    "sgd": ("sgd", {"learning_rate": 0.1}),
    "sgd_momentum_wd": ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01}),
    "sgd_clip_rescale": ("sgd", {"learning_rate": 0.1, "momentum": 0.5, "clip_gradient": 0.5,
                                 "rescale_grad": 0.5}),
    "nag": ("nag", {"learning_rate": 0.1, "momentum": 0.9}),
    "adam_wd": ("adam", {"learning_rate": 0.01, "wd": 0.01, "epsilon": 1e-12}),
    "adam_clip_rescale": ("adam", {"learning_rate": 0.01, "clip_gradient": 0.5, "rescale_grad": 2.0,
                                   "wd": 0.1, "epsilon": 1e-12}),
    "rmsprop_wd": ("rmsprop", {"learning_rate": 0.01, "gamma1": 0.9, "wd": 0.01}),
}


def main() -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(5, 4)).astype(np.float32)
    grads = rng.normal(size=(6, 5, 4)).astype(np.float32)
    out = {"weight": weight, "grads": grads}
    for case, (name, options) in CASES.items():
        updater = mx.optimizer.get_updater(mx.optimizer.create(name, **options))
        w = mx.nd.array(weight)
        for grad in grads:
            updater(0, mx.nd.array(grad), w)
        out[case] = w.asnumpy()
    target = Path(__file__).resolve().parents[1] / "tests" / "reference" / "mxnet_optimizers.npz"
    np.savez(target, **out)
    print(f"wrote {target} with MXNet {mx.__version__}")


if __name__ == "__main__":
    main()
