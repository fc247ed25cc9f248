"""Time modelpack's Conv2D forward against torch.nn.functional.conv2d on the same data.

A batch of 64×3×32×32 through 16 3×3 filters with padding 1, float32. Both run in this one
process, one after the other, each warmed up and then timed ``--repeats`` times; the medians
and their ratio are printed. Absolute times depend on the machine, so only the ratio is worth
comparing, and it is one run's measurement. torch keeps its default thread count.

    python bench/conv2d.py [--repeats 21]   # modelpack installed, or PYTHONPATH=.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import median_seconds

from modelpack import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="timed calls per side")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    layer = nn.Conv2D(16, 3, padding=1, in_channels=3)
    layer.initialize(seed=0)
    x_t = torch.from_numpy(x)
    weight_t, bias_t = torch.from_numpy(layer.weight.data()), torch.from_numpy(layer.bias.data())

    def torch_forward() -> torch.Tensor:
        with torch.no_grad():
            return torch.nn.functional.conv2d(x_t, weight_t, bias_t, padding=1)

    np.testing.assert_allclose(layer(x), torch_forward().numpy(), rtol=1e-5, atol=1e-6)
    ours = median_seconds(lambda: layer(x), args.repeats)
    theirs = median_seconds(torch_forward, args.repeats)
    print(f"Conv2D forward, x 64x3x32x32 float32, 16 filters 3x3, padding 1; "
          f"median of {args.repeats} repeats each, torch threads {torch.get_num_threads()}")
    print(f"  modelpack: {ours * 1e3:8.3f} ms")
    print(f"  torch:     {theirs * 1e3:8.3f} ms")
    print(f"  ratio ours/torch = {ours / theirs:.2f} (measured in this one run, same process)")


if __name__ == "__main__":
    main()
