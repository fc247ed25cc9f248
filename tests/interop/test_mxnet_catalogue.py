"""Gluon 1.9's catalogue layers load MXNet's own parameter files and compute what MXNet 1.9.1
computed (``scripts/make_mxnet_refs.py``, ``catalogue_models``): the check where torch is no
oracle (GroupNorm's per-group gamma, the transposed convolutions' weight layout, InstanceNorm
and PReLU's parameters). MXNet's kernels sum in other orders, and each stack chains several
layers, normalisations included: outputs agree within ``rtol=1e-5, atol=2e-6`` (the largest
difference measured is 4.8e-7, on outputs of magnitude ~1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from modelpack import nn

DATA = Path(__file__).resolve().parents[1] / "data" / "mxnet"

# The same stacks as the script builds in MXNet, written with modelpack.nn.
STACKS: dict[str, Callable[[], list[nn.Block]]] = {
    "conv1d": lambda: [nn.Conv1D(4, 3, strides=2, padding=1, groups=2),
                       nn.Conv1DTranspose(3, 3, strides=2, output_padding=1, dilation=2),
                       nn.InstanceNorm(scale=True), nn.PReLU(in_channels=3), nn.MaxPool1D(2),
                       nn.AvgPool1D(3, 1, 1, count_include_pad=False), nn.GlobalMaxPool1D()],
    "conv2d": lambda: [nn.ReflectionPad2D(1),
                       nn.Conv2DTranspose(4, 3, strides=2, padding=1, in_channels=2, output_padding=1, groups=2),
                       nn.GroupNorm(num_groups=2), nn.SELU(), nn.Swish(1.5), nn.GELU(), nn.PReLU()],
    "conv3d": lambda: [nn.Conv3D(4, (1, 2, 3), padding=(0, 1, 1)), nn.Conv3DTranspose(2, 2, strides=2),
                       nn.MaxPool3D((1, 2, 2)), nn.AvgPool3D(2, padding=1), nn.GlobalAvgPool3D()],
}


@pytest.mark.parametrize("name", sorted(STACKS))
def test_catalogue_stack_loads_mxnet_parameters_and_matches_its_output(name: str) -> None:
    net = nn.Sequential()
    net.add(*STACKS[name]())
    net.load_parameters(DATA / f"catalogue-{name}.params")  # deferred shapes filled from the file
    x = np.load(DATA / f"catalogue-{name}-input.npy")
    expected = np.load(DATA / f"catalogue-{name}-output.npy")
    got = net(x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-6)
