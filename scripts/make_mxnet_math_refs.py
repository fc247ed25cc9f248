"""Write ``tests/data/mxnet/math/``: hybridized Gluon 1.9.1 models calling the trigonometric,
hyperbolic and error functions (legacy ``F.tan`` … ``F.erf``, and numpy mode's ``F.np.tan`` …
``F.npx.erf``), exported with ``net.export``, with their input and the outputs MXNet computed,
so that ``modelpack.interop.mxnet.convert`` of those operators is checked against MXNet itself.

Run in the separate MXNet environment (see ``make_mxnet_refs.py``):

    /tmp/mxref/bin/python scripts/make_mxnet_math_refs.py

Each model ``<name>`` has ``<name>-symbol.json``, ``<name>-0000.params``, ``<name>-input.npy``
and ``<name>-output-<i>.npy``, one output per function. All values are seeded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mxnet as mx
import numpy as onp
from mxnet import gluon, nd, np, npx
from mxnet.gluon import nn
from mxnet_reference_files import start, write_manifest

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "mxnet" / "math"


class Legacy(gluon.HybridBlock):
    """A dense layer, then each function on values inside its domain (legacy operators)."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Dense(6)

    def hybrid_forward(self, F, x):  # noqa: N803 (Gluon's signature)
        y = self.dense(x)
        inside = F.tanh(y) * 0.9  # (−0.9, 0.9)
        return (F.tan(y * 0.5), F.arcsin(inside), F.arccos(inside), F.arctan(y), F.sinh(y), F.cosh(y),
                F.arcsinh(y), F.arccosh(F.abs(y) + 1.1), F.arctanh(inside), F.erf(y))


class NumpyMode(gluon.HybridBlock):
    """The same under ``npx.set_np()`` (d2l's mode): numpy-mode operator names."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Dense(6)

    def hybrid_forward(self, F, x):  # noqa: N803
        y = self.dense(x)
        fn = F.np
        inside = fn.tanh(y) * 0.9
        return (fn.tan(y * 0.5), fn.arcsin(inside), fn.arccos(inside), fn.arctan(y), fn.sinh(y), fn.cosh(y),
                fn.arcsinh(y), fn.arccosh(fn.abs(y) + 1.1), fn.arctanh(inside), F.npx.erf(y))


def export(name: str, net: gluon.HybridBlock, x: onp.ndarray, seed: int) -> None:
    """Initialise, hybridize, call once (shapes), randomise, export; save the input and outputs."""
    array = np.array if npx.is_np_array() else nd.array
    rng = onp.random.default_rng(seed)
    mx.random.seed(seed)
    net.initialize(mx.init.Normal(0.5))
    net.hybridize()
    net(array(x))
    for param in net.collect_params().values():
        param.set_data(array(rng.normal(0.0, 0.5, size=param.shape).astype("float32")))
    outputs = net(array(x))
    net.export(str(OUT / name))
    onp.save(OUT / f"{name}-input.npy", x)
    for i, out in enumerate(outputs):
        onp.save(OUT / f"{name}-output-{i}.npy", out.asnumpy())


def main() -> int:
    if not start(OUT):
        return 1
    x = onp.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    export("legacy-math", Legacy(), x, seed=2)
    npx.set_np()
    try:
        export("np-math", NumpyMode(), x, seed=3)
    finally:
        npx.reset_np()
    write_manifest(OUT)
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
