"""The writer that tests/test_crash.py kills: exports two known models over one path, forever.

    python tests/crash_child.py TARGET UNITS

Prints ``ready`` once both models are built and one export has run, so that the killer's random delay falls on
exports rather than on interpreter start-up.
"""

from __future__ import annotations

import io
import sys

from models import sequential_mlp  # this script's folder, tests/, is on sys.path

import modelpack
from modelpack import nn


def build(seed: int, units: int) -> nn.Sequential:
    """The same network (and bytes) in every process, for a given seed."""
    return sequential_mlp(units, units, inputs=units, seed=seed)


def main(target: str, units: int) -> None:
    models = [build(1, units), build(2, units)]
    # Warm up (lazy imports, schema building) in memory, so that the killer's random delay
    # falls on exports as fast as the parent's probe export, not on the first one's set-up.
    modelpack.export(models[0], io.BytesIO())
    print("ready", flush=True)
    while True:
        for net in models:
            modelpack.export(net, target)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
