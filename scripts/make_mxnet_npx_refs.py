"""Write tests/reference/mxnet_npx.json and mxnet_npx.npz: what MXNet 1.9.1's ``npx``
operators outside the op table return (``convolution``, ``pooling``, ``multibox_prior``,
``multibox_target``, ``multibox_detection``, ``roi_pooling``), and for convolution and pooling
the gradients its autograd gives, for ``tests/test_npx_spatial.py`` and
``tests/test_npx_detection.py`` to compare with.

    python3.11 -m venv /tmp/mxref && /tmp/mxref/bin/pip install mxnet==1.9.1 "numpy<1.24"
    /tmp/mxref/bin/python scripts/make_mxnet_npx_refs.py

``mxnet_npx.json`` lists the cases: ``op``, the array ``inputs`` by argument name, the other
``kwargs`` as passed to MXNet, the number of ``outputs``, the ``grads`` taken (argument names,
with a seeded ``head_grad`` given to ``backward``), or ``error``: the first line of the error
MXNet raised (the call is refused there, and must be here). ``mxnet_npx.npz`` holds
``<case>/in/<argument>``, ``<case>/in/head_grad``, ``<case>/out/<i>`` and
``<case>/grad/<argument>``. Inputs are drawn from one seeded generator, so the files are the
same on every run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import autograd, np, npx

MXNET_VERSION = "1.9.1"
REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference"
RNG = onp.random.default_rng(20260514)

cases: list[dict[str, Any]] = []
arrays: dict[str, onp.ndarray] = {}


def normal(*shape: int, scale: float = 1.0) -> onp.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(onp.float32)


def error_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if "Check failed" in line or "Error" in line]
    return (lines[-1] if lines else str(exc).splitlines()[0]).strip()[:300]


def add(name: str, op: str, inputs: dict[str, onp.ndarray], kwargs: dict[str, Any], *,
        grads: tuple[str, ...] = ()) -> None:
    """Run ``npx.<op>`` in MXNet on ``inputs`` and ``kwargs``; store the case (its error, if MXNet
    refuses it)."""
    assert all(c["name"] != name for c in cases), name
    case: dict[str, Any] = {"name": name, "op": op, "inputs": list(inputs), "kwargs": kwargs}
    for key, value in inputs.items():
        arrays[f"{name}/in/{key}"] = value
    mx_inputs = {key: np.array(value, dtype=value.dtype) for key, value in inputs.items()}
    try:
        if grads:
            for key in grads:
                mx_inputs[key].attach_grad()
            with autograd.record():
                result = getattr(npx, op)(**mx_inputs, **kwargs)
            head = normal(*result.shape)
            arrays[f"{name}/in/head_grad"] = head
            result.backward(np.array(head))
            for key in grads:
                arrays[f"{name}/grad/{key}"] = mx_inputs[key].grad.asnumpy()
        else:
            result = getattr(npx, op)(**mx_inputs, **kwargs)
        outs = list(result) if isinstance(result, (list, tuple)) else [result]
        values = [out.asnumpy() for out in outs]  # (MXNet raises its checks here, when it computes)
    except mx.base.MXNetError as exc:
        for key in [k for k in arrays if k.startswith(f"{name}/")]:
            del arrays[key]
        for key, value in inputs.items():
            arrays[f"{name}/in/{key}"] = value
        case["error"] = error_line(exc)
        cases.append(case)
        return
    for i, value in enumerate(values):
        arrays[f"{name}/out/{i}"] = value
    case["outputs"] = len(values)
    case["grads"] = list(grads)
    cases.append(case)


def convolution_cases() -> None:
    def conv(name: str, x: tuple[int, ...], w: tuple[int, ...], bias: bool = True, **kwargs: Any) -> None:
        inputs = {"data": normal(*x), "weight": normal(*w, scale=0.5)}
        if bias:
            inputs["bias"] = normal(w[0])
        add(f"conv_{name}", "convolution", inputs, kwargs, grads=tuple(inputs))

    conv("lenet1", (4, 1, 28, 28), (20, 1, 3, 3), kernel=(3, 3), num_filter=20)  # d2l multiple-gpus
    conv("lenet2", (4, 20, 13, 13), (50, 20, 5, 5), kernel=(5, 5), num_filter=50)
    conv("stride_pad", (2, 3, 9, 10), (4, 3, 3, 3), kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=4)
    conv("dilate_rect", (2, 3, 11, 9), (5, 3, 3, 2), kernel=(3, 2), stride=(1, 2), pad=(2, 1), dilate=(2, 3),
         num_filter=5)
    conv("groups", (2, 4, 7, 7), (6, 2, 3, 3), kernel=(3, 3), pad=(1, 1), num_filter=6, num_group=2)
    conv("depthwise", (2, 6, 8, 8), (6, 1, 3, 3), kernel=(3, 3), pad=(1, 1), stride=(2, 2), num_filter=6,
         num_group=6)
    conv("no_bias", (2, 3, 6, 6), (4, 3, 2, 2), bias=False, kernel=(2, 2), num_filter=4, no_bias=True)
    conv("pointwise", (2, 8, 5, 5), (16, 8, 1, 1), kernel=(1, 1), num_filter=16)
    conv("wide", (4, 32, 10, 10), (32, 32, 3, 3), kernel=(3, 3), pad=(1, 1), num_filter=32)
    conv("layout", (2, 2, 6, 5), (3, 2, 3, 3), kernel=(3, 3), num_filter=3, layout="NCHW")
    conv("1d", (3, 4, 17), (6, 4, 3), kernel=(3,), stride=(2,), pad=(1,), dilate=(2,), num_filter=6)
    conv("1d_int_kernel", (2, 2, 9), (3, 2, 3), kernel=3, num_filter=3)
    conv("3d", (2, 2, 5, 6, 4), (3, 2, 2, 3, 2), kernel=(2, 3, 2), stride=(1, 2, 1), pad=(1, 0, 1),
         num_filter=3)
    conv("3d_groups", (1, 4, 4, 5, 5), (4, 2, 3, 3, 3), kernel=(3, 3, 3), pad=(1, 1, 1), num_filter=4,
         num_group=2)
    x, w, b = normal(1, 2, 5, 5), normal(4, 2, 3, 3), normal(4)
    add("conv_error_weight_shape", "convolution", {"data": x, "weight": w, "bias": b},
        {"kernel": (3, 3), "num_filter": 3})
    add("conv_error_stride_axes", "convolution", {"data": x, "weight": w, "bias": b},
        {"kernel": (3, 3), "num_filter": 4, "stride": 2})
    add("conv_error_kernel_axes", "convolution", {"data": x, "weight": w, "bias": b},
        {"kernel": 3, "num_filter": 4})
    add("conv_error_no_bias_given", "convolution", {"data": x, "weight": w},
        {"kernel": (3, 3), "num_filter": 4})
    add("conv_error_groups", "convolution", {"data": normal(1, 3, 5, 5), "weight": normal(4, 1, 3, 3),
                                              "bias": b}, {"kernel": (3, 3), "num_filter": 4, "num_group": 2})
    add("conv_error_too_small", "convolution", {"data": normal(1, 2, 2, 5), "weight": w, "bias": b},
        {"kernel": (3, 3), "num_filter": 4})


def pooling_cases() -> None:
    def pool(name: str, x: onp.ndarray, **kwargs: Any) -> None:
        add(f"pool_{name}", "pooling", {"data": x}, kwargs, grads=("data",))

    pool("d2l_avg", normal(4, 20, 26, 26), pool_type="avg", kernel=(2, 2), stride=(2, 2))  # multiple-gpus
    pool("max_stride1", normal(2, 3, 7, 8), kernel=(3, 3))
    pool("max_stem", normal(2, 4, 16, 16), kernel=(3, 3), stride=(2, 2), pad=(1, 1))
    pool("avg_pad", normal(2, 3, 9, 8), pool_type="avg", kernel=(3, 3), stride=(2, 2), pad=(1, 1))
    pool("avg_pad_exclude", normal(2, 3, 9, 8), pool_type="avg", kernel=(3, 3), stride=(2, 2), pad=(1, 1),
         count_include_pad=False)
    pool("avg_pad_include", normal(2, 3, 6, 7), pool_type="avg", kernel=(3, 2), stride=(1, 2), pad=(1, 1),
         count_include_pad=True)
    pool("max_full", normal(2, 3, 7, 7), kernel=(2, 2), stride=(2, 2), pooling_convention="full")
    pool("max_full_empty", normal(1, 2, 5, 5), kernel=(2, 2), stride=(3, 3), pad=(1, 1),
         pooling_convention="full")
    pool("max_valid_rect", normal(2, 2, 10, 9), kernel=(2, 3), stride=(3, 2), pad=(1, 0))
    pool("avg_full_sym", normal(1, 2, 7, 7), pool_type="avg", kernel=(3, 3), stride=(2, 2), pad=(1, 1),
         pooling_convention="full")
    pool("avg_full_asym", normal(1, 2, 6, 6), pool_type="avg", kernel=(2, 2), stride=(2, 2), pad=(1, 1),
         pooling_convention="full")
    pool("avg_full_empty", normal(1, 1, 5, 5), pool_type="avg", kernel=(2, 2), stride=(3, 3), pad=(1, 1),
         pooling_convention="full")
    pool("avg_full_exclude", normal(1, 2, 8, 7), pool_type="avg", kernel=(3, 3), stride=(2, 2), pad=(1, 1),
         pooling_convention="full", count_include_pad=False)
    pool("sum", normal(2, 3, 7, 9), pool_type="sum", kernel=(2, 3), stride=(1, 2))
    pool("sum_full_pad", normal(1, 2, 6, 5), pool_type="sum", kernel=(3, 3), stride=(2, 2), pad=(1, 1),
         pooling_convention="full")
    pool("global_max", normal(2, 3, 5, 6), kernel=(2, 2), global_pool=True)
    pool("global_avg", normal(2, 3, 5, 6), pool_type="avg", kernel=(3, 3), stride=(2, 2), global_pool=True)
    pool("global_sum", normal(2, 3, 4, 6), pool_type="sum", kernel=(2, 2), global_pool=True)
    pool("global_no_kernel", normal(2, 3, 4, 5), pool_type="avg", global_pool=True)
    pool("global_1d", normal(2, 3, 7), global_pool=True)
    pool("1d_max", normal(2, 3, 11), kernel=(3,), stride=(2,), pad=(1,))
    pool("1d_avg_full", normal(2, 3, 10), pool_type="avg", kernel=(3,), stride=(2,),
         pooling_convention="full")
    pool("1d_int_kernel", normal(2, 2, 9), kernel=2, stride=2)
    pool("3d_max", normal(1, 2, 5, 6, 7), kernel=(2, 2, 3), stride=(2, 1, 2), pad=(1, 0, 1))
    pool("3d_avg", normal(1, 2, 5, 6, 7), pool_type="avg", kernel=(3, 2, 3), stride=(2, 2, 2), pad=(1, 1, 1),
         count_include_pad=False)
    pool("max_ties", RNG.integers(0, 3, (2, 2, 6, 6)).astype(onp.float32), kernel=(3, 3), stride=(1, 1))
    pool("max_ties_strided", RNG.integers(0, 2, (2, 2, 7, 7)).astype(onp.float32), kernel=(3, 3),
         stride=(2, 2), pad=(1, 1))
    x = normal(1, 1, 5, 5)
    add("pool_error_pad", "pooling", {"data": x}, {"kernel": (2, 2), "pad": (2, 2)})
    add("pool_error_no_kernel", "pooling", {"data": x}, {})
    add("pool_error_kernel_axes", "pooling", {"data": x}, {"kernel": 2})
    add("pool_error_stride_axes", "pooling", {"data": x}, {"kernel": (2, 2), "stride": (2,)})
    add("pool_error_too_small", "pooling", {"data": normal(1, 1, 2, 5)}, {"kernel": (3, 3)})


def prior_cases() -> None:
    def prior(name: str, shape: tuple[int, ...], **kwargs: Any) -> None:
        add(f"prior_{name}", "multibox_prior", {"data": onp.zeros(shape, onp.float32)}, kwargs)

    for h, s in ((4, [0.15]), (2, [0.4]), (1, [0.8])):  # d2l multiscale-object-detection
        prior(f"d2l_{h}x{h}", (1, 10, h, h), sizes=s, ratios=[1, 2, 0.5])
    prior("anchor_chapter", (1, 3, 56, 73), sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
    ssd_sizes = ((32, [0.2, 0.272]), (16, [0.37, 0.447]), (8, [0.54, 0.619]), (4, [0.71, 0.79]),
                 (1, [0.88, 0.961]))
    for h, s in ssd_sizes:
        prior(f"ssd_{h}", (2, 3, h, h), sizes=s, ratios=[1, 2, 0.5])  # d2l ssd (only the shape is read)
    prior("clip", (1, 3, 5, 7), sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5], clip=True)
    prior("steps_offsets", (1, 1, 3, 4), sizes=[0.3, 0.6], ratios=[1, 3], steps=(0.1, 0.05),
          offsets=(0.2, 0.7))
    prior("steps_half_auto", (1, 1, 2, 3), sizes=[0.5], ratios=[1], steps=(0, 0.2))
    prior("steps_negative_auto", (1, 1, 2, 3), sizes=[0.5], ratios=[1], steps=(-0.1, -0.2))
    prior("rectangular", (1, 1, 3, 7), sizes=[0.5, 0.25], ratios=[1, 2])
    prior("scalars", (1, 1, 2, 3), sizes=0.5, ratios=2)
    prior("defaults", (1, 1, 3, 2))
    prior("many_ratios", (1, 1, 2, 2), sizes=[0.1, 0.2, 0.3], ratios=[0.5, 1, 2, 3, 1 / 3])
    prior("5d_data", (1, 1, 2, 3, 4), sizes=[0.5], ratios=[1, 2])
    prior("error_no_sizes", (1, 1, 2, 3), sizes=[], ratios=[1])
    prior("error_steps_length", (1, 1, 2, 3), sizes=[1], ratios=[1], steps=(0.1,))
    prior("error_offsets_range", (1, 1, 2, 3), sizes=[1], ratios=[1], offsets=(1.5, 0.5))
    prior("error_steps_signs", (1, 1, 2, 3), sizes=[1], ratios=[1], steps=(-0.1, 0.2))
    prior("error_3d_data", (3, 2, 3), sizes=[1], ratios=[1])


def random_labels(batch: int, width: int = 5) -> onp.ndarray:
    """Per example 3, 1, 0, 2, ... objects, padded with -1 rows to 4."""
    labels = -onp.ones((batch, 4, width), onp.float32)
    for b in range(batch):
        objects = (3, 1, 0, 2, 4)[b % 5]
        for i in range(objects):
            x0, y0 = RNG.uniform(0, 0.7, 2)
            w, h = RNG.uniform(0.1, 0.45, 2)
            labels[b, i, :5] = [RNG.integers(0, 3), x0, y0, min(x0 + w, 1), min(y0 + h, 1)]
            if width > 5:
                labels[b, i, 5:] = RNG.uniform(0, 1, width - 5)
    return labels


def target_cases() -> None:
    anchors = npx.multibox_prior(np.zeros((1, 1, 4, 4)), sizes=[0.3, 0.5], ratios=[1, 2, 0.5]).asnumpy()
    labels = random_labels(3)
    preds = normal(3, 3, anchors.shape[1])

    def target(name: str, a: onp.ndarray = anchors, lab: onp.ndarray = labels, p: onp.ndarray = preds,
               **kwargs: Any) -> None:
        add(f"target_{name}", "multibox_target", {"anchor": a, "label": lab, "cls_pred": p}, kwargs)

    target("defaults")
    target("overlap_0.3", overlap_threshold=0.3)
    target("overlap_0.7", overlap_threshold=0.7)
    target("overlap_off", overlap_threshold=0.0)
    target("mining", negative_mining_ratio=3.0, negative_mining_thresh=0.5)
    target("mining_overlap_off", overlap_threshold=0.0, negative_mining_ratio=1.5, negative_mining_thresh=0.3)
    target("mining_ties", p=onp.zeros_like(preds), negative_mining_ratio=2.0, negative_mining_thresh=0.5)
    target("mining_min_negatives", negative_mining_ratio=0.5, minimum_negative_samples=5)
    target("ignore_variances", ignore_label=-2.0, variances=(0.2, 0.3, 0.4, 0.5), overlap_threshold=0.4)
    target("wide_labels", lab=random_labels(5, width=6), p=normal(5, 4, anchors.shape[1]))
    twice = onp.concatenate([anchors, anchors], axis=1)  # every IoU tied with another anchor's
    target("tied_anchors", a=twice, p=normal(3, 3, twice.shape[1]))
    d2l_anchors = onp.array([[[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                              [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]]], onp.float32)
    d2l_labels = onp.array([[[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]]], onp.float32)
    target("d2l_anchor_chapter", a=d2l_anchors, lab=d2l_labels, p=onp.zeros((1, 3, 5), onp.float32))
    bad = labels.copy()
    bad[1, 1, 0] = -1
    bad[1, 1, 2] = 0.5
    target("error_padding_row", lab=bad)
    everywhere = onp.array([[[0, 0.0, 0.0, 1.0, 1.0]]], onp.float32)
    target("error_too_few_negatives", lab=everywhere, p=normal(1, 3, anchors.shape[1]),
           overlap_threshold=0.99, negative_mining_ratio=3.0, negative_mining_thresh=0.0001)
    target("error_variances", variances=(0.1, 0.1))
    target("error_anchor_batch", a=onp.concatenate([anchors, anchors]))


def detection_cases() -> None:
    anchors = npx.multibox_prior(np.zeros((1, 1, 4, 4)), sizes=[0.3, 0.5], ratios=[1, 2, 0.5]).asnumpy()
    count = anchors.shape[1]
    logits = normal(2, 4, count, scale=2.0)
    probs = (onp.exp(logits) / onp.exp(logits).sum(axis=1, keepdims=True)).astype(onp.float32)
    offsets = normal(2, 4 * count, scale=0.5)

    def detect(name: str, p: onp.ndarray = probs, o: onp.ndarray = offsets, a: onp.ndarray = anchors,
               **kwargs: Any) -> None:
        add(f"detect_{name}", "multibox_detection", {"cls_prob": p, "loc_pred": o, "anchor": a}, kwargs)

    detect("defaults")
    detect("nms_0.3", nms_threshold=0.3)
    detect("force_suppress", force_suppress=True, nms_threshold=0.4)
    detect("no_clip", clip=False)
    detect("threshold_0.3", threshold=0.3)
    detect("empty", threshold=1.1)
    detect("topk", nms_topk=10)
    detect("topk_force", nms_topk=25, force_suppress=True, threshold=0.1)
    detect("nms_off", nms_threshold=0.0)
    detect("nms_1", nms_threshold=1.0)
    detect("background_id", background_id=2)
    detect("variances", variances=(0.2, 0.2, 0.1, 0.3))
    detect("ties", p=onp.round(probs, 1).astype(onp.float32), nms_threshold=0.45)
    detect("one_class", p=onp.ones((2, 1, count), onp.float32))
    d2l_anchors = onp.array([[[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95], [0.15, 0.3, 0.62, 0.91],
                              [0.55, 0.2, 0.9, 0.88]]], onp.float32)
    d2l_probs = onp.array([[[0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]]], onp.float32)
    detect("d2l_anchor_chapter", p=d2l_probs, o=onp.zeros((1, 16), onp.float32), a=d2l_anchors,
           nms_threshold=0.5)
    detect("error_loc_shape", o=offsets[:, :-4])
    detect("error_anchor_count", a=anchors[:, :-1])
    detect("error_variances", variances=(0.1, 0.1, 0.2))


def roi_cases() -> None:
    d2l_x = onp.arange(16, dtype=onp.float32).reshape(1, 1, 4, 4)
    d2l_rois = onp.array([[0, 0, 0, 20, 20], [0, 0, 10, 30, 30]], onp.float32)

    def roi(name: str, x: onp.ndarray, rois: onp.ndarray, **kwargs: Any) -> None:
        add(f"roi_{name}", "roi_pooling", {"data": x, "rois": rois}, kwargs)

    roi("d2l_rcnn", d2l_x, d2l_rois, pooled_size=(2, 2), spatial_scale=0.1)
    roi("mxnet_doc", onp.arange(48, dtype=onp.float32).reshape(1, 1, 8, 6),
        onp.array([[0, 0, 0, 4, 4]], onp.float32), pooled_size=(2, 2), spatial_scale=0.7)
    x = normal(2, 3, 8, 9)
    rois = onp.array([
        [0, 0, 0, 17, 15], [1, 2, 4, 9, 11], [1, 5, 3, 5, 3],  # whole, inner, one point
        [0, 3, 3, 7, 9], [1, 1, 1, 2, 2],  # halves: 3·0.5 = 1.5 rounds to 2, 7·0.5 = 3.5 to 4
        [0, -3, -5, 4, 6], [1, 12, 10, 30, 40],  # past the edges
        [0, 10, 10, 2, 2],  # x2 < x1: one cell
        [-1, 0, 0, 8, 8], [2, 0, 0, 8, 8], [1.7, 0, 0, 6, 6], [-0.5, 1, 1, 6, 6],  # batch indices
        [0, 2.4, 2.6, 13.2, 9.9],
    ], onp.float32)
    for pooled in ((2, 2), (3, 2), (7, 7), (1, 4)):
        roi(f"random_{pooled[0]}x{pooled[1]}", x, rois, pooled_size=pooled, spatial_scale=0.5)
    roi("scale_1", x, onp.array([[0, 0, 0, 8, 7], [1, 2, 1, 5, 6]], onp.float32), pooled_size=(2, 3),
        spatial_scale=1.0)
    big_rois = (RNG.uniform(0, 200, (6, 5)) * [0, 1, 1, 1, 1]).astype(onp.float32)  # all on example 0
    roi("scale_16th", normal(1, 4, 10, 12), big_rois, pooled_size=(3, 3), spatial_scale=0.0625)
    roi("negative_values", -onp.abs(x), rois[:5], pooled_size=(2, 2), spatial_scale=0.5)
    roi("error_scale", d2l_x, d2l_rois, pooled_size=(2, 2), spatial_scale=1.5)
    roi("error_pooled_axes", d2l_x, d2l_rois, pooled_size=2, spatial_scale=0.1)
    roi("error_pooled_zero", d2l_x, d2l_rois, pooled_size=(0, 2), spatial_scale=0.1)
    roi("error_rois_width", d2l_x, d2l_rois[:, :4], pooled_size=(2, 2), spatial_scale=0.1)


def main() -> int:
    if mx.__version__ != MXNET_VERSION:
        print(f"expected mxnet {MXNET_VERSION}, found {mx.__version__}", file=sys.stderr)
        return 1
    npx.set_np()
    convolution_cases()
    pooling_cases()
    prior_cases()
    target_cases()
    detection_cases()
    roi_cases()
    REFERENCE.mkdir(parents=True, exist_ok=True)
    onp.savez_compressed(REFERENCE / "mxnet_npx.npz", **arrays)
    (REFERENCE / "mxnet_npx.json").write_text(json.dumps(
        {"mxnet": mx.__version__, "numpy": onp.__version__, "cases": cases}, indent=1) + "\n")
    print(f"{len(cases)} cases, {sum('error' in c for c in cases)} refused by MXNet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
