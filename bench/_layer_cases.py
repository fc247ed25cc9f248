"""The single layers ``bench/layers.py`` times: one record per case, each naming the chapter or
model its shape comes from, the modelpack layer and torch's equivalent (built with the same
parameters in the same order, so copying them in order gives both the same weights), and the
input's shape at full and at ``--quick`` size.

Shapes are d2l's and gluoncv's small models' where that fits the sweep's budget (≤ ~5 minutes
at 2 threads); where a batch was cut, ``note`` says from what.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from modelpack import nn

t = torch.nn


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # the d2l chapter or gluoncv model the shape comes from
    ours: Callable[[], Any]  # the modelpack layer (in_channels given: no deferred shapes)
    theirs: Callable[[], torch.nn.Module]
    shape: tuple[int, ...]  # the input's, full size
    quick: tuple[int, ...]  # the input's at --quick (same channels: the layers are the same)
    note: str = ""  # e.g. a batch cut from the source's
    input_grad: bool = True  # a network's first layer needs no gradient of its input

    @property
    def key(self) -> str:
        """The name as ``--only`` matches it: lower case, words joined by ``_``."""
        return "_".join("".join(c if c.isalnum() else " " for c in self.name.lower()).split())


def _conv1d_text(k: int) -> Case:
    return Case(f"Conv1D k{k}", "d2l 16.3 textCNN", lambda: nn.Conv1D(100, k, in_channels=200),
                lambda: t.Conv1d(200, 100, k), (16, 200, 500), (2, 200, 24), "batch 16 (d2l: 64)")


def _depthwise(name: str, source: str, k: int, stride: int, shape: tuple[int, int, int, int], quick_side: int
               ) -> Case:
    """A depthwise k×k convolution padded to keep the sizes (at stride 1) on ``shape``'s channels."""
    c, p = shape[1], k // 2
    return Case(name, source, lambda: nn.Conv2D(c, k, strides=stride, padding=p, groups=c, in_channels=c),
                lambda: t.Conv2d(c, c, k, stride=stride, padding=p, groups=c), shape,
                (1, c, quick_side, quick_side), f"batch {shape[0]}")


CASES: list[Case] = [
    # -- convolutions -----------------------------------------------------------------------------
    *(_conv1d_text(k) for k in (3, 4, 5)),
    Case("Conv2D 7×7/2 stem", "d2l 8.6 / gluoncv resnet18 stem",
         lambda: nn.Conv2D(64, 7, strides=2, padding=3, in_channels=3),
         lambda: t.Conv2d(3, 64, 7, stride=2, padding=3), (8, 3, 224, 224), (1, 3, 32, 32),
         "batch 8", input_grad=False),
    Case("Conv2D 3×3 64→64", "d2l 8.6 / gluoncv resnet18 stage 1",
         lambda: nn.Conv2D(64, 3, padding=1, in_channels=64),
         lambda: t.Conv2d(64, 64, 3, padding=1), (8, 64, 56, 56), (1, 64, 8, 8), "batch 8"),
    Case("Conv3D 3×3×3 3→32", "gluoncv c3d/i3d-style stem",
         lambda: nn.Conv3D(32, 3, padding=1, in_channels=3),
         lambda: t.Conv3d(3, 32, 3, padding=1), (4, 3, 8, 56, 56), (1, 3, 4, 8, 8), input_grad=False),
    Case("Conv3D 3×3×3 32→32", "gluoncv c3d-style middle layer",
         lambda: nn.Conv3D(32, 3, padding=1, in_channels=32),
         lambda: t.Conv3d(32, 32, 3, padding=1), (4, 32, 8, 28, 28), (1, 32, 4, 6, 6)),
    Case("Conv2D grouped 3×3 g32", "d2l 8.6 ResNeXt block",
         lambda: nn.Conv2D(128, 3, padding=1, groups=32, in_channels=128),
         lambda: t.Conv2d(128, 128, 3, padding=1, groups=32), (16, 128, 28, 28), (1, 128, 6, 6)),
    Case("Conv2D grouped 1×1 g4", "gluoncv shufflenet (g=4) bottleneck",
         lambda: nn.Conv2D(68, 1, groups=4, in_channels=272),
         lambda: t.Conv2d(272, 68, 1, groups=4), (16, 272, 28, 28), (1, 272, 6, 6)),
    _depthwise("depthwise 3×3/1", "gluoncv mobilenet1.0", 3, 1, (8, 128, 56, 56), 8),
    _depthwise("depthwise 3×3/2", "gluoncv mobilenet1.0", 3, 2, (8, 64, 112, 112), 8),
    # Later layers of the same models, and the strided, dilated and wide-kernel convolutions of
    # d2l's AlexNet and ResNeXt and gluoncv's MobileNet v3, DeepLab and 3-D ResNets.
    _depthwise("depthwise 3×3/1 on 14×14", "gluoncv mobilenet1.0 stage 5", 3, 1, (8, 512, 14, 14), 4),
    _depthwise("depthwise 3×3/1 on 7×7", "gluoncv mobilenet1.0 last stage", 3, 1, (8, 1024, 7, 7), 3),
    _depthwise("depthwise 5×5/1", "gluoncv mobilenetv3", 5, 1, (8, 240, 14, 14), 5),
    Case("Conv2D grouped 3×3/2 g32", "d2l 8.6 ResNeXt block, downsampling",
         lambda: nn.Conv2D(256, 3, strides=2, padding=1, groups=32, in_channels=256),
         lambda: t.Conv2d(256, 256, 3, stride=2, padding=1, groups=32), (8, 256, 28, 28), (1, 256, 6, 6)),
    Case("Conv2D 11×11/4", "d2l 8.1 AlexNet first layer",
         lambda: nn.Conv2D(96, 11, strides=4, padding=1, in_channels=3),
         lambda: t.Conv2d(3, 96, 11, stride=4, padding=1), (8, 3, 224, 224), (1, 3, 31, 31), "batch 8",
         input_grad=False),
    Case("Conv2D 3×3 dilated 2", "gluoncv deeplab/psp dilated resnet",
         lambda: nn.Conv2D(64, 3, padding=2, dilation=2, in_channels=64),
         lambda: t.Conv2d(64, 64, 3, padding=2, dilation=2), (8, 64, 28, 28), (1, 64, 8, 8)),
    Case("Conv3D 3×3×3/2 32→64", "gluoncv 3-D resnet downsampling",
         lambda: nn.Conv3D(64, 3, strides=2, padding=1, in_channels=32),
         lambda: t.Conv3d(32, 64, 3, stride=2, padding=1), (4, 32, 8, 28, 28), (1, 32, 4, 6, 6)),
    Case("Conv2D 4×4/2", "d2l 20.2 DCGAN discriminator",
         lambda: nn.Conv2D(128, 4, strides=2, padding=1, in_channels=64),
         lambda: t.Conv2d(64, 128, 4, stride=2, padding=1), (16, 64, 32, 32), (2, 64, 8, 8),
         "batch 16 (d2l: 256)"),
    Case("Conv2D 16×16/16 patches", "d2l 11.8 ViT patch embedding",
         lambda: nn.Conv2D(512, 16, strides=16, in_channels=3),
         lambda: t.Conv2d(3, 512, 16, stride=16), (32, 3, 96, 96), (2, 3, 32, 32),
         "batch 32 (d2l: 128)", input_grad=False),
    Case("Conv2DTranspose 64×64/32", "d2l 14.11 FCN upsampling",
         lambda: nn.Conv2DTranspose(21, 64, strides=32, padding=16, in_channels=21),
         lambda: t.ConvTranspose2d(21, 21, 64, stride=32, padding=16), (1, 21, 10, 15), (1, 21, 2, 2),
         "21 → 21 channels as d2l (its 1×1 conv makes them 21)"),
    Case("Conv2DTranspose 4×4/2", "d2l 20.2 DCGAN generator",
         lambda: nn.Conv2DTranspose(64, 4, strides=2, padding=1, in_channels=128),
         lambda: t.ConvTranspose2d(128, 64, 4, stride=2, padding=1), (16, 128, 16, 16), (2, 128, 4, 4),
         "batch 16 (d2l: 256)"),
    Case("Conv1DTranspose 4/2", "the DCGAN block in 1-D",
         lambda: nn.Conv1DTranspose(32, 4, strides=2, padding=1, in_channels=64),
         lambda: t.ConvTranspose1d(64, 32, 4, stride=2, padding=1), (16, 64, 256), (2, 64, 16)),
    # -- pooling ----------------------------------------------------------------------------------
    Case("MaxPool2D 3×3/2 pad 1", "d2l 8.6 / gluoncv resnet18 stem",
         lambda: nn.MaxPool2D(3, 2, 1), lambda: t.MaxPool2d(3, 2, 1), (8, 64, 112, 112), (1, 64, 8, 8),
         "batch 8"),
    Case("MaxPool2D 2×2", "d2l 8.2 VGG block",
         lambda: nn.MaxPool2D(2), lambda: t.MaxPool2d(2), (16, 128, 56, 56), (1, 128, 8, 8)),
    Case("MaxPool2D 3×3/2 ceil", "gluoncv googlenet/inception",
         lambda: nn.MaxPool2D(3, 2, ceil_mode=True), lambda: t.MaxPool2d(3, 2, ceil_mode=True),
         (8, 192, 56, 56), (1, 192, 8, 8), "batch 8"),
    Case("AvgPool2D 2×2", "d2l 8.7 DenseNet transition",
         lambda: nn.AvgPool2D(2), lambda: t.AvgPool2d(2), (16, 128, 56, 56), (1, 128, 8, 8)),
    Case("AvgPool2D 3×3/1 pad 1", "gluoncv inception pool branch",
         lambda: nn.AvgPool2D(3, 1, 1), lambda: t.AvgPool2d(3, 1, 1), (8, 192, 28, 28), (1, 192, 6, 6),
         "batch 8"),
    Case("GlobalAvgPool2D", "d2l 8.6 / gluoncv resnet18 head",
         lambda: nn.GlobalAvgPool2D(), lambda: t.AdaptiveAvgPool2d(1), (8, 512, 7, 7), (1, 512, 3, 3)),
    Case("GlobalMaxPool1D", "d2l 16.3 textCNN",
         lambda: nn.GlobalMaxPool1D(), lambda: t.AdaptiveMaxPool1d(1), (16, 100, 498), (2, 100, 20),
         "batch 16 (d2l: 64)"),
    Case("MaxPool1D 3/2", "1-D max pool on textCNN features",
         lambda: nn.MaxPool1D(3, 2), lambda: t.MaxPool1d(3, 2), (16, 100, 498), (2, 100, 20)),
    Case("MaxPool3D 1×3×3/1×2×2", "gluoncv i3d pool1",
         lambda: nn.MaxPool3D((1, 3, 3), (1, 2, 2), (0, 1, 1)),
         lambda: t.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)), (4, 64, 8, 56, 56), (1, 64, 2, 8, 8)),
    Case("AvgPool3D 2×2×2", "gluoncv c3d-style pool",
         lambda: nn.AvgPool3D(2), lambda: t.AvgPool3d(2), (4, 64, 8, 28, 28), (1, 64, 2, 6, 6)),
    # -- BatchNorm (the forward row at inference, the training row on batch statistics) -----------
    Case("BatchNorm 2D", "d2l 8.5 / gluoncv resnet18",
         lambda: nn.BatchNorm(in_channels=64), lambda: t.BatchNorm2d(64), (32, 64, 56, 56), (2, 64, 6, 6)),
    Case("BatchNorm 1D", "d2l 8.5 (over features)",
         lambda: nn.BatchNorm(in_channels=1024), lambda: t.BatchNorm1d(1024), (256, 1024), (8, 1024)),
]
