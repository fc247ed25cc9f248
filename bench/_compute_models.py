"""The workloads of ``bench/compute.py``, each built twice: in modelpack and in torch, the same
layers in the same order, so that copying parameters in order gives both the same weights.

Each builder takes a size (``"full"`` or ``"quick"``) and returns a ``Workload``.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import modelpack
from modelpack import nn, npx


@dataclass
class Workload:
    name: str
    shapes: str
    target: float  # the ratio target (modelpack ÷ torch), 0 where it sets none
    net: Any
    model: torch.nn.Module
    x: np.ndarray
    y: np.ndarray  # class labels, one per example (or per token)


def _size(size: str, full: Any, quick: Any) -> Any:
    return full if size == "full" else quick


def _labels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 10, size=shape).astype(np.int64)


# -- MLP and CNNs: Sequential stacks --------------------------------------------------------------


def mlp(size: str) -> Workload:
    batch, width = _size(size, (256, 1024), (16, 32))
    rng = np.random.default_rng(0)
    net = nn.Sequential()
    net.add(nn.Dense(width, activation="relu", in_units=784),
            nn.Dense(width, activation="relu", in_units=width), nn.Dense(10, in_units=width))
    model = torch.nn.Sequential(torch.nn.Linear(784, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                                torch.nn.ReLU(), torch.nn.Linear(width, 10))
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    shapes = f"{batch}×784 → {width} → {width} → 10"
    return Workload("MLP", shapes, 1.2, net, model, x, _labels(rng, (batch,)))


def cnn(size: str) -> Workload:
    """The issue's CNN: Conv 3→32 3×3, max pool, Conv 32→64 3×3, max pool, Dense 10."""
    batch, side = _size(size, (64, 32), (4, 12))
    rng = np.random.default_rng(1)
    net = nn.Sequential()
    net.add(nn.Conv2D(32, 3, padding=1, activation="relu", in_channels=3), nn.MaxPool2D(2),
            nn.Conv2D(64, 3, padding=1, activation="relu", in_channels=32), nn.MaxPool2D(2),
            nn.Dense(10, in_units=64 * (side // 4) ** 2))
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * (side // 4) ** 2, 10))
    x = rng.standard_normal((batch, 3, side, side)).astype(np.float32)
    return Workload("CNN", f"{batch}×3×{side}×{side} → conv 32, pool, conv 64, pool → 10", 2.0,
                    net, model, x, _labels(rng, (batch,)))


def lenet(size: str) -> Workload:
    """d2l's LeNet (chapter 7.6): sigmoid convolutions and average pooling on 28×28."""
    batch = _size(size, 64, 4)
    rng = np.random.default_rng(2)
    net = nn.Sequential()
    net.add(nn.Conv2D(6, 5, padding=2, activation="sigmoid", in_channels=1), nn.AvgPool2D(2, 2),
            nn.Conv2D(16, 5, activation="sigmoid", in_channels=6), nn.AvgPool2D(2, 2),
            nn.Dense(120, activation="sigmoid", in_units=400),
            nn.Dense(84, activation="sigmoid", in_units=120), nn.Dense(10, in_units=84))
    t = torch.nn
    model = t.Sequential(t.Conv2d(1, 6, 5, padding=2), t.Sigmoid(), t.AvgPool2d(2, 2),
                         t.Conv2d(6, 16, 5), t.Sigmoid(), t.AvgPool2d(2, 2), t.Flatten(),
                         t.Linear(400, 120), t.Sigmoid(), t.Linear(120, 84), t.Sigmoid(), t.Linear(84, 10))
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    return Workload("LeNet", f"{batch}×1×28×28, d2l 7.6", 2.0, net, model, x, _labels(rng, (batch,)))


# -- ResNet-18-style: d2l's Residual blocks ------------------------------------------------------


class Residual(nn.Block):
    """d2l's residual block (chapter 8.6): two 3×3 convolutions with BatchNorm, a 1×1 shortcut."""

    def __init__(self, channels: int, in_channels: int, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(channels, 3, padding=1, strides=strides, in_channels=in_channels)
        self.bn1 = nn.BatchNorm(in_channels=channels)
        self.conv2 = nn.Conv2D(channels, 3, padding=1, in_channels=channels)
        self.bn2 = nn.BatchNorm(in_channels=channels)
        self.conv3 = (nn.Conv2D(channels, 1, strides=strides, in_channels=in_channels)
                      if strides != 1 or channels != in_channels else None)

    def forward(self, x: Any) -> Any:
        y = npx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return npx.relu(y + (self.conv3(x) if self.conv3 is not None else x))


class TorchResidual(torch.nn.Module):
    def __init__(self, channels: int, in_channels: int, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(in_channels, channels, 3, padding=1, stride=strides)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(channels)
        self.conv3 = (torch.nn.Conv2d(in_channels, channels, 1, stride=strides)
                      if strides != 1 or channels != in_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.conv3(x) if self.conv3 is not None else x))


def resnet(size: str) -> Workload:
    """ResNet-18's layout (a stem, four stages of two residual blocks, global average pooling),
    narrowed to widths 16–128 for 32×32 inputs (CIFAR-style stem: 3×3, no max pool)."""
    batch, side, widths = _size(size, (32, 32, (16, 32, 64, 128)), (2, 8, (4, 8, 8, 8)))
    rng = np.random.default_rng(3)
    net = nn.Sequential()
    net.add(nn.Conv2D(widths[0], 3, padding=1, in_channels=3), nn.BatchNorm(in_channels=widths[0]),
            nn.Activation("relu"))
    t = torch.nn
    layers: list[torch.nn.Module] = [t.Conv2d(3, widths[0], 3, padding=1), t.BatchNorm2d(widths[0]), t.ReLU()]
    previous = widths[0]
    for stage, width in enumerate(widths):
        for block in range(2):
            strides = 2 if stage and not block else 1
            net.add(Residual(width, previous, strides))
            layers.append(TorchResidual(width, previous, strides))
            previous = width
    net.add(nn.GlobalAvgPool2D(), nn.Dense(10, in_units=previous))
    layers += [t.AdaptiveAvgPool2d(1), t.Flatten(), t.Linear(previous, 10)]
    x = rng.standard_normal((batch, 3, side, side)).astype(np.float32)
    shapes = f"{batch}×3×{side}×{side}, widths {'/'.join(map(str, widths))}, 8 residual blocks, BatchNorm"
    return Workload("ResNet-18-style", shapes, 2.0, net, t.Sequential(*layers), x, _labels(rng, (batch,)))


def resnet_loaded(size: str) -> Workload:
    """``resnet``'s net exported (its residual blocks traced) and loaded back: what a user who
    loads its archive runs, the blocks as graphs (their Conv → BatchNorm → ReLU chains in
    place at inference, ``nn.fusion``)."""
    work = resnet(size)
    work.net.initialize(init="xavier", seed=0)
    work.net(work.x)  # every deferred shape known
    buffer = io.BytesIO()
    modelpack.export(work.net, buffer, example=work.x)
    loaded = modelpack.load(io.BytesIO(buffer.getvalue()))
    return dataclasses.replace(work, name="ResNet-18-style, loaded", net=loaded)


# -- Transformer encoder block: d2l's chapter 11.7 ------------------------------------------------


class EncoderBlock(nn.Block):
    """d2l's Transformer encoder block without dropout: multi-head self-attention, add & norm,
    position-wise FFN, add & norm; then a per-token Dense 10 to train against."""

    def __init__(self, hidden: int, ffn: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.w_q = nn.Dense(hidden, use_bias=False, flatten=False, in_units=hidden)
        self.w_k = nn.Dense(hidden, use_bias=False, flatten=False, in_units=hidden)
        self.w_v = nn.Dense(hidden, use_bias=False, flatten=False, in_units=hidden)
        self.w_o = nn.Dense(hidden, use_bias=False, flatten=False, in_units=hidden)
        self.ln1 = nn.LayerNorm(in_channels=hidden)
        self.ffn1 = nn.Dense(ffn, activation="relu", flatten=False, in_units=hidden)
        self.ffn2 = nn.Dense(hidden, flatten=False, in_units=ffn)
        self.ln2 = nn.LayerNorm(in_channels=hidden)
        self.head = nn.Dense(10, flatten=False, in_units=hidden)

    def _split(self, x: Any) -> Any:
        x = x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(0, 2, 1, 3)
        return x.reshape(-1, x.shape[2], x.shape[3])

    def forward(self, x: Any) -> Any:
        q, k, v = self._split(self.w_q(x)), self._split(self.w_k(x)), self._split(self.w_v(x))
        scores = npx.batch_dot(q, k, transpose_b=True) / math.sqrt(q.shape[-1])
        attended = npx.batch_dot(npx.softmax(scores), v)
        attended = attended.reshape(-1, self.heads, *attended.shape[1:]).transpose(0, 2, 1, 3)
        y = self.ln1(x + self.w_o(attended.reshape(attended.shape[0], attended.shape[1], -1)))
        return self.head(self.ln2(y + self.ffn2(self.ffn1(y))))


class TorchEncoderBlock(torch.nn.Module):
    def __init__(self, hidden: int, ffn: int, heads: int) -> None:
        super().__init__()
        t = torch.nn
        self.heads = heads
        self.w_q, self.w_k = t.Linear(hidden, hidden, bias=False), t.Linear(hidden, hidden, bias=False)
        self.w_v, self.w_o = t.Linear(hidden, hidden, bias=False), t.Linear(hidden, hidden, bias=False)
        self.ln1 = t.LayerNorm(hidden)
        self.ffn1, self.ffn2 = t.Linear(hidden, ffn), t.Linear(ffn, hidden)
        self.ln2 = t.LayerNorm(hidden)
        self.head = t.Linear(hidden, 10)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)
        return x.reshape(-1, x.shape[2], x.shape[3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.w_q(x)), self._split(self.w_k(x)), self._split(self.w_v(x))
        scores = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(q.shape[-1])
        attended = torch.bmm(torch.softmax(scores, -1), v)
        attended = attended.reshape(-1, self.heads, attended.shape[1], attended.shape[2]).transpose(1, 2)
        y = self.ln1(x + self.w_o(attended.reshape(attended.shape[0], attended.shape[1], -1)))
        return self.head(self.ln2(y + self.ffn2(torch.relu(self.ffn1(y)))))


def transformer(size: str) -> Workload:
    batch, steps, hidden, ffn, heads = _size(size, (32, 64, 256, 512, 8), (2, 5, 16, 32, 4))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((batch, steps, hidden)).astype(np.float32)
    return Workload("Transformer encoder block", f"{batch}×{steps}×{hidden}, {heads} heads, FFN {ffn}",
                    0.0, EncoderBlock(hidden, ffn, heads), TorchEncoderBlock(hidden, ffn, heads), x,
                    _labels(rng, (batch, steps)))


# -- gluoncv-style blocks: depthwise and transposed convolutions ----------------------------------


def mobilenet(size: str) -> Workload:
    """A MobileNet-style block (gluoncv's small models): a strided stem, a depthwise 3×3 and a
    pointwise 1×1 convolution, each with BatchNorm and ReLU."""
    batch, side = _size(size, (32, 32), (4, 8))
    rng = np.random.default_rng(5)
    net = nn.Sequential()
    net.add(nn.Conv2D(32, 3, strides=2, padding=1, in_channels=3), nn.BatchNorm(in_channels=32),
            nn.Activation("relu"), nn.Conv2D(32, 3, padding=1, groups=32, in_channels=32),
            nn.BatchNorm(in_channels=32), nn.Activation("relu"), nn.Conv2D(64, 1, in_channels=32),
            nn.BatchNorm(in_channels=64), nn.Activation("relu"), nn.GlobalAvgPool2D(),
            nn.Dense(10, in_units=64))
    t = torch.nn
    model = t.Sequential(t.Conv2d(3, 32, 3, stride=2, padding=1), t.BatchNorm2d(32), t.ReLU(),
                         t.Conv2d(32, 32, 3, padding=1, groups=32), t.BatchNorm2d(32), t.ReLU(),
                         t.Conv2d(32, 64, 1), t.BatchNorm2d(64), t.ReLU(), t.AdaptiveAvgPool2d(1),
                         t.Flatten(), t.Linear(64, 10))
    x = rng.standard_normal((batch, 3, side, side)).astype(np.float32)
    return Workload("MobileNet-style (depthwise)", f"{batch}×3×{side}×{side}, depthwise 3×3 on 32 channels",
                    2.0, net, model, x, _labels(rng, (batch,)))


def decoder(size: str) -> Workload:
    """DCGAN-style upsampling: two transposed 4×4 stride-2 convolutions with BatchNorm."""
    batch, side = _size(size, (32, 8), (4, 2))
    rng = np.random.default_rng(6)
    net = nn.Sequential()
    net.add(nn.Conv2DTranspose(64, 4, strides=2, padding=1, in_channels=128), nn.BatchNorm(in_channels=64),
            nn.Activation("relu"), nn.Conv2DTranspose(32, 4, strides=2, padding=1, in_channels=64),
            nn.BatchNorm(in_channels=32), nn.Activation("relu"), nn.GlobalAvgPool2D(),
            nn.Dense(10, in_units=32))
    t = torch.nn
    model = t.Sequential(t.ConvTranspose2d(128, 64, 4, stride=2, padding=1), t.BatchNorm2d(64), t.ReLU(),
                         t.ConvTranspose2d(64, 32, 4, stride=2, padding=1), t.BatchNorm2d(32), t.ReLU(),
                         t.AdaptiveAvgPool2d(1), t.Flatten(), t.Linear(32, 10))
    x = rng.standard_normal((batch, 128, side, side)).astype(np.float32)
    return Workload("Decoder (transposed)", f"{batch}×128×{side}×{side} → 2 × ConvTranspose 4×4/2", 2.0,
                    net, model, x, _labels(rng, (batch,)))


WORKLOADS = (mlp, cnn, lenet, resnet, resnet_loaded, transformer, mobilenet, decoder)
