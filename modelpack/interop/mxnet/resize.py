"""MXNet's resampling operators, lowered to graph ops: ``_contrib_AdaptiveAvgPooling2D`` (the
squeeze-and-excitation blocks of GluonCV's SENet, SE-ResNet, ResNeSt, NASNet) and
``_contrib_BilinearResize2D`` (its segmentation heads: FCN, PSPNet, DeepLab; residual
attention).

Both are linear and separable over height and width: ``out = R_h @ x @ R_w.T`` with fixed
matrices for fixed input sizes, two ``matmul`` ops whose matrices are the graph's own
parameters. A global average (output size 1) is a ``mean`` at any input size; otherwise the
input's height and width must be fixed (``input_shapes``). Each entry adds to
``lowering.LOWERINGS``; ``lowering`` imports this module once, last.
"""

from __future__ import annotations

import math

import numpy as np

from .lowering import Node, lowers

__all__ = ["adaptive_average_matrix", "bilinear_matrix"]


def adaptive_average_matrix(source: int, target: int) -> np.ndarray:
    """Row ``i`` averages input ``floor(i * source / target)`` up to ``ceil((i + 1) * source /
    target)``, as MXNet's (and PyTorch's) adaptive average pooling bins them."""
    matrix = np.zeros((target, source), np.float32)
    for i in range(target):
        start, end = (i * source) // target, math.ceil((i + 1) * source / target)
        matrix[i, start:end] = np.float32(1.0) / np.float32(end - start)
    return matrix


def bilinear_matrix(source: int, target: int, align_corners: bool) -> np.ndarray:
    """Row ``o`` weighs the two inputs around ``o``'s source position, in float32 as MXNet's
    kernel computes them: ``o * (source - 1) / (target - 1)`` with ``align_corners``, else
    ``(o + 0.5) * source / target - 0.5`` clamped at 0."""
    one = np.float32(1.0)
    if align_corners:
        scale = np.float32(source - 1) / np.float32(target - 1) if target > 1 else np.float32(0.0)
    else:
        scale = np.float32(source) / np.float32(target)
    matrix = np.zeros((target, source), np.float32)
    for o in range(target):
        if align_corners:
            position = scale * np.float32(o)
        else:
            position = max((np.float32(o) + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0.0))
        low = int(position)
        high = low + (1 if low < source - 1 else 0)
        weight = np.float32(position - np.float32(low))
        matrix[o, low] += one - weight
        matrix[o, high] += weight
    return matrix


def _fixed_height_width(node: Node, x: str) -> tuple[int, int]:
    """``x``'s height and width, which must not follow an input size."""
    first, second, _ = node.builder.shapes(x)
    if len(first) != 4:
        raise node.refuse(f"a {len(first)}-D input (NCHW expected)")
    if first[2:] != second[2:]:
        raise node.refuse(
            "resampling an input whose height and width follow the model's input size (pass fixed "
            "input_shapes to convert it)"
        )
    return first[2], first[3]


def _resample(node: Node, x: str, rows: np.ndarray, columns: np.ndarray) -> str:
    """``rows @ x @ columns.T`` over the last two axes: width first, then height."""
    b = node.builder
    across = b.op("matmul", x, b.parameter(f"{node.name}_columns", np.ascontiguousarray(columns.T)))
    return b.op("matmul", b.parameter(f"{node.name}_rows", rows), across)


@lowers("_contrib_AdaptiveAvgPooling2D")
def _adaptive_average(node: Node) -> str:
    sizes = node.attrs.integers("output_size", (1,))
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise node.refuse(f"output_size={sizes}")
    height, width = (sizes[0], sizes[0]) if len(sizes) == 1 else sizes
    x = node.value(0)
    if (height, width) == (1, 1):
        return node.builder.op("mean", x, axis=[2, 3], keepdims=True)
    source_height, source_width = _fixed_height_width(node, x)
    return _resample(node, x, adaptive_average_matrix(source_height, height),
                     adaptive_average_matrix(source_width, width))


@lowers("_contrib_BilinearResize2D")
def _bilinear_resize(node: Node) -> str:
    """Modes ``size`` (``height``/``width``, or ``scale_height``/``scale_width``: the input's
    size times the scale, truncated) and ``like`` (the second input's height and width)."""
    x = node.value(0)
    source_height, source_width = _fixed_height_width(node, x)
    mode = node.attrs.text("mode", "size")
    if mode == "like":
        height, width = _fixed_height_width(node, node.value(1))
    elif mode == "size":
        scales = (node.attrs.optional_number("scale_height"), node.attrs.optional_number("scale_width"))
        sizes = (node.attrs.integer("height", 1), node.attrs.integer("width", 1))
        height, width = (
            size if scale is None else int(source * scale)
            for size, scale, source in zip(sizes, scales, (source_height, source_width), strict=True)
        )
    else:
        raise node.refuse(f"mode {mode!r}")
    if min(height, width) < 1:
        raise node.refuse(f"an output of {height}x{width}")
    align = node.attrs.flag("align_corners", True)
    return _resample(node, x, bilinear_matrix(source_height, height, align),
                     bilinear_matrix(source_width, width, align))
