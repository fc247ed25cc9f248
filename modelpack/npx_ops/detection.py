"""MXNet 1.9.1's detection operators, as its CPU code computes them: ``multibox_prior``,
``multibox_target``, ``multibox_detection`` (``src/operator/contrib/multibox_*.cc``) and
``roi_pooling`` (``src/operator/roi_pooling.cc``).

Each is computed in float32 with MXNet's own order of float32 operations (so anchors are
MXNet's to the bit, and the matching, sorting and suppression decide as MXNet's do), vectorised
over anchors; the few data-dependent loops (greedy matching, non-maximum suppression) are
loops over kept boxes, each a vector operation. Inputs of another dtype are cast to float32
(MXNet computes float64 in float64; d2l's arrays are float32).

No gradient: MXNet defines none for the multibox operators (their backward writes zeros), and
d2l calls ``roi_pooling`` forward only. Inside ``autograd.record()`` they compute on recorded
values (Variables, arrays with ``attach_grad()``) and return plain arrays, which carry no
gradient back to their inputs; inside a traced ``forward`` they are refused (``inputs``).

What MXNet 1.9.1 accepts and ignores, accepted and ignored here too: ``multibox_target``'s
``minimum_negative_samples`` and ``multibox_detection``'s ``background_id`` (its CPU code treats
class 0 as the background whatever the argument says). Refused with ``UsageError`` naming the
argument, as MXNet's checks refuse them: wrong shapes, ``steps``/``offsets``/``variances`` of
the wrong length, ``offsets`` outside [0, 1], steps of opposite signs, a padding label row that
is not all -1, too few negative candidates for hard-negative mining, a ``spatial_scale`` outside
[0, 1]; and, where MXNet would quietly give NaN or inverted boxes, sizes and ratios that are not
positive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError
from ..nn.devices import on_device
from .inputs import floats, no_out, number, refuse_tracing, sizes, value

__all__ = ["multibox_prior", "multibox_target", "multibox_detection", "roi_pooling"]

F32 = np.float32
_VARIANCES = (0.1, 0.1, 0.2, 0.2)
_OUTSIDE = "call it outside the traced forward, on its values"


def multibox_prior(
    data: Any = None,
    sizes: Any = (1.0,),
    ratios: Any = (1.0,),
    clip: bool = False,
    steps: Any = (-1.0, -1.0),
    offsets: Any = (0.5, 0.5),
    out: Any = None,
    name: str | None = None,
) -> Any:
    """Anchor boxes (1, h·w·(len(sizes) + len(ratios) − 1), 4) as (xmin, ymin, xmax, ymax) in
    fractions of the image, for a feature map ``data`` (batch, channels, h, w): at each position
    (rows outer), every size with the first ratio, then the first size with every other ratio.
    Only ``data``'s shape is read. ``steps`` (y, x) default to 1/h and 1/w (either one not
    positive means both default); ``offsets`` (y, x) place the centres in their cells.

    >>> npx.multibox_prior(fmap, sizes=[0.15], ratios=[1, 2, 0.5])  # doctest: +SKIP
    """
    op = "multibox_prior"
    refuse_tracing(op, (data,), _OUTSIDE)
    no_out(op, out)
    shape = value(op, "data", data).shape
    if len(shape) < 4 or shape[2] < 1 or shape[3] < 1:
        raise UsageError(f"npx.{op}: data must be (batch, channel, y, x) with y and x at least 1, "
                         f"got shape {shape}")
    height, width = shape[2], shape[3]
    size_list = _positive(op, "sizes", floats(op, "sizes", sizes))
    ratio_list = _positive(op, "ratios", floats(op, "ratios", ratios))
    step_y, step_x = floats(op, "steps", steps, length=2)
    offset_y, offset_x = floats(op, "offsets", offsets, length=2)
    if not all(0.0 <= o <= 1.0 for o in (offset_y, offset_x)):
        raise UsageError(f"npx.{op}: offsets must be in [0, 1], got {offsets!r}")
    if F32(step_y) * F32(step_x) < 0:
        raise UsageError(f"npx.{op}: steps {steps!r} must both be positive (or both default)")
    if step_y <= 0 or step_x <= 0:
        step_y, step_x = F32(1) / F32(height), F32(1) / F32(width)
    centre_y = (np.arange(height, dtype=F32) + F32(offset_y)) * F32(step_y)
    centre_x = (np.arange(width, dtype=F32) + F32(offset_x)) * F32(step_x)
    # Per anchor: every size at the first ratio, then the first size at the other ratios.
    anchor_sizes = np.array([*size_list, *[size_list[0]] * (len(ratio_list) - 1)], dtype=F32)
    roots = np.sqrt(np.array([*[ratio_list[0]] * len(size_list), *ratio_list[1:]], dtype=F32))
    half_w = anchor_sizes * F32(height) / F32(width) * roots / F32(2)
    half_h = anchor_sizes / roots / F32(2)
    boxes = np.empty((height, width, len(anchor_sizes), 4), F32)
    boxes[..., 0] = centre_x[None, :, None] - half_w
    boxes[..., 1] = centre_y[:, None, None] - half_h
    boxes[..., 2] = centre_x[None, :, None] + half_w
    boxes[..., 3] = centre_y[:, None, None] + half_h
    if clip:
        np.clip(boxes, F32(0), F32(1), out=boxes)
    return on_device(boxes.reshape(1, -1, 4))


def multibox_target(
    anchor: Any = None,
    label: Any = None,
    cls_pred: Any = None,
    overlap_threshold: float = 0.5,
    ignore_label: float = -1.0,
    negative_mining_ratio: float = -1.0,
    negative_mining_thresh: float = 0.5,
    minimum_negative_samples: int = 0,
    variances: Any = _VARIANCES,
    out: Any = None,
    name: str | None = None,
) -> list[Any]:
    """Training targets for ``anchor`` (1, n, 4) against ``label`` (batch, m, ≥5: class, xmin,
    ymin, xmax, ymax; rows from the first class -1 on are padding): ``[loc_target (batch, 4n),
    loc_mask (batch, 4n), cls_target (batch, n)]``.

    Each ground truth first takes the free anchor it overlaps most (greedily, the largest IoU
    of all first), then every other anchor whose best IoU exceeds ``overlap_threshold`` takes
    that ground truth. A matched anchor's class is its ground truth's + 1 and its offsets are
    encoded with ``variances``; the others are background (0), or with
    ``negative_mining_ratio`` > 0 only the ``ratio × positives`` of them whose background
    probability (softmax of ``cls_pred`` (batch, classes, n)) is lowest among those with IoU
    below ``negative_mining_thresh``, the rest ``ignore_label``. A batch without ground truth
    is all ``ignore_label``.
    """
    op = "multibox_target"
    refuse_tracing(op, (anchor, label, cls_pred), _OUTSIDE)
    no_out(op, out)
    anchors = value(op, "anchor", anchor, ndim=3).astype(F32)
    labels = value(op, "label", label, ndim=3).astype(F32)
    preds = value(op, "cls_pred", cls_pred, ndim=3).astype(F32)
    if anchors.shape[0] != 1 or anchors.shape[1] < 1 or anchors.shape[2] != 4:
        raise UsageError(f"npx.{op}: anchor must be (1, anchors, 4), shared by the batch, "
                         f"got shape {anchors.shape}")
    if labels.shape[1] < 1 or labels.shape[2] < 5:
        raise UsageError(f"npx.{op}: label must be (batch, labels ≥ 1, width ≥ 5), got shape {labels.shape}")
    if preds.shape[2] != anchors.shape[1]:
        raise UsageError(f"npx.{op}: cls_pred must be (batch, classes, {anchors.shape[1]}) for "
                         f"{anchors.shape[1]} anchors, got shape {preds.shape}")
    threshold = number(op, "overlap_threshold", overlap_threshold)
    ignore = number(op, "ignore_label", ignore_label)
    mining_ratio = number(op, "negative_mining_ratio", negative_mining_ratio)
    mining_thresh = number(op, "negative_mining_thresh", negative_mining_thresh)
    _int(op, "minimum_negative_samples", minimum_negative_samples)  # (MXNet's CPU code reads it nowhere)
    v = floats(op, "variances", variances, length=4)
    if mining_ratio > 0:
        if mining_thresh <= 0:
            raise UsageError(f"npx.{op}: negative_mining_thresh must be positive for negative mining, "
                             f"got {negative_mining_thresh!r}")
        if preds.shape[0] != labels.shape[0]:
            raise UsageError(f"npx.{op}: negative mining reads cls_pred for each example: its batch "
                             f"({preds.shape[0]}) must be label's ({labels.shape[0]})")
    batch, count = labels.shape[0], anchors.shape[1]
    loc_target = np.zeros((batch, count, 4), F32)
    loc_mask = np.zeros((batch, count, 4), F32)
    cls_target = np.full((batch, count), ignore, F32)
    boxes = anchors[0]
    for b in range(batch):
        truth = _valid_labels(op, labels[b], b)
        if len(truth) == 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # MXNet's infs and NaNs, silently
            mined = preds[b] if mining_ratio > 0 else None
            loc_target[b], loc_mask[b], cls_target[b] = _example_targets(
                op, boxes, truth, mined, threshold, mining_ratio, mining_thresh, v, ignore)
    return [on_device(loc_target.reshape(batch, -1)), on_device(loc_mask.reshape(batch, -1)),
            on_device(cls_target)]


def multibox_detection(
    cls_prob: Any = None,
    loc_pred: Any = None,
    anchor: Any = None,
    clip: bool = True,
    threshold: float = 0.01,
    background_id: int = 0,
    nms_threshold: float = 0.5,
    force_suppress: bool = False,
    variances: Any = _VARIANCES,
    nms_topk: int = -1,
    out: Any = None,
    name: str | None = None,
) -> Any:
    """Detections (batch, n, 6) of [class id, score, xmin, ymin, xmax, ymax] from class
    probabilities ``cls_prob`` (batch, classes, n; class 0 the background), offsets ``loc_pred``
    (batch, 4n) and ``anchor`` (·, n, 4).

    Each anchor takes its most probable class other than the background (id = class − 1),
    unless that probability is below ``threshold``; its box is decoded with ``variances`` (and
    clipped to [0, 1] with ``clip``). The detections come first, then rows of -1. Unless
    ``nms_threshold`` is outside (0, 1] (then they stay in anchor order), they are sorted by
    score (stably), cut to the ``nms_topk`` best if it is positive (the rest keep their row
    with id -1), and each suppresses (id -1) the lower-scored ones of its class (any class with
    ``force_suppress``) whose IoU with it is at least ``nms_threshold``. ``background_id`` is
    ignored, as MXNet 1.9.1 ignores it.

    >>> npx.multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=0.5)  # doctest: +SKIP
    """
    op = "multibox_detection"
    refuse_tracing(op, (cls_prob, loc_pred, anchor), _OUTSIDE)
    no_out(op, out)
    probs = value(op, "cls_prob", cls_prob, ndim=3).astype(F32)
    offsets = value(op, "loc_pred", loc_pred, ndim=2).astype(F32)
    anchors = value(op, "anchor", anchor, ndim=3).astype(F32)
    batch, classes, count = probs.shape
    if anchors.shape[1] != count or anchors.shape[1] < 1 or anchors.shape[2] != 4:
        raise UsageError(f"npx.{op}: anchor must be (1, {count}, 4) for cls_prob's {count} anchors, "
                         f"got shape {anchors.shape}")
    if offsets.shape != (batch, 4 * count):
        raise UsageError(f"npx.{op}: loc_pred must be ({batch}, {4 * count}): 4 offsets per anchor, "
                         f"got shape {offsets.shape}")
    score_threshold = number(op, "threshold", threshold)
    nms = number(op, "nms_threshold", nms_threshold)
    v = floats(op, "variances", variances, length=4)
    topk = _int(op, "nms_topk", nms_topk)
    _int(op, "background_id", background_id)  # (MXNet's CPU code reads it nowhere)
    result = np.full((batch, count, 6), -1, F32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # MXNet's infs and NaNs, silently
        _detect(result, probs, offsets, anchors[0], score_threshold, nms, v, topk, bool(clip),
                bool(force_suppress))
    return on_device(result)


def roi_pooling(
    data: Any = None,
    rois: Any = None,
    pooled_size: Any = None,
    spatial_scale: Any = None,
    out: Any = None,
    name: str | None = None,
) -> Any:
    """Max pooling of each region of interest into ``pooled_size`` (h, w) bins: ``data`` (n, c,
    h, w), ``rois`` (r, 5) rows of [batch index, x1, y1, x2, y2] in image coordinates, which
    ``spatial_scale`` maps to ``data``'s (rounded half away from zero; a region is at least one
    cell). Gives (r, c, *pooled_size); a bin with no cell, or a region with a batch index
    outside the batch, gives 0.

    >>> npx.roi_pooling(X, rois, pooled_size=(2, 2), spatial_scale=0.1)  # doctest: +SKIP
    """
    op = "roi_pooling"
    refuse_tracing(op, (data, rois), _OUTSIDE)
    no_out(op, out)
    x = value(op, "data", data, ndim=4).astype(F32)
    regions = value(op, "rois", rois, ndim=2).astype(F32)
    if regions.shape[1] != 5:
        raise UsageError(f"npx.{op}: rois must be (regions, 5): batch index, x1, y1, x2, y2; got shape "
                         f"{regions.shape}")
    if pooled_size is None:
        raise UsageError(f"npx.{op}: pooled_size is required")
    pooled = sizes(op, "pooled_size", pooled_size, minimum=1)
    if len(pooled) != 2:
        raise UsageError(f"npx.{op}: pooled_size must be (height, width), got {pooled_size!r}")
    if spatial_scale is None:
        raise UsageError(f"npx.{op}: spatial_scale is required")
    scale = number(op, "spatial_scale", spatial_scale)
    if not 0.0 <= scale <= 1.0:
        raise UsageError(f"npx.{op}: spatial_scale must be in [0, 1], got {spatial_scale!r}")
    n, channels, height, width = x.shape
    ph, pw = pooled
    result = np.zeros((len(regions), channels, ph, pw), F32)
    corners = _round_half_away(regions[:, 1:5] * F32(scale)).astype(np.int64)  # x1, y1, x2, y2
    index = np.trunc(np.clip(regions[:, 0], -1, n)).astype(np.int64)  # C++'s cast: toward zero
    lowest = np.finfo(F32).min
    for r, (start_w, start_h, end_w, end_h) in enumerate(corners):
        if not 0 <= index[r] < n:
            continue
        rows = _bins(max(end_h - start_h + 1, 1), ph, start_h, height)
        cols = _bins(max(end_w - start_w + 1, 1), pw, start_w, width)
        plane = x[index[r]]
        for i, (top, bottom) in enumerate(rows):
            if bottom <= top:
                continue
            band = plane[:, top:bottom].max(axis=1)  # (c, w)
            for j, (left, right) in enumerate(cols):
                if right > left:
                    result[r, :, i, j] = np.maximum(band[:, left:right].max(axis=1), lowest)
    return on_device(result)


# -- multibox_target --------------------------------------------------------------------------------


def _example_targets(op: str, anchors: np.ndarray, truth: np.ndarray, preds: np.ndarray | None,
                     threshold: float, mining_ratio: float, mining_thresh: float, v: tuple[float, ...],
                     ignore: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One example's (loc_target (n, 4), loc_mask (n, 4), cls_target (n,)) for its ground truth;
    ``preds`` (classes, n) is read by negative mining only."""
    count = len(anchors)
    loc_target, loc_mask = np.zeros((count, 4), F32), np.zeros((count, 4), F32)
    cls_target = np.full(count, ignore, F32)
    iou = _target_iou(anchors, truth[:, 1:5])
    flags, matched, best_iou = _match(iou, threshold)
    if preds is not None:
        _mine_negatives(op, iou, flags, matched, best_iou, preds, mining_ratio, mining_thresh)
    else:
        flags[flags != 1] = 0
    positive = flags == 1
    gt = truth[matched[positive]]
    cls_target[positive] = gt[:, 0] + F32(1)
    cls_target[flags == 0] = 0
    loc_mask[positive] = 1
    loc_target[positive] = _encode(anchors[positive], gt[:, 1:5], v)
    return loc_target, loc_mask, cls_target


def _valid_labels(op: str, rows: np.ndarray, example: int) -> np.ndarray:
    """The ground-truth rows before the first padding row (class -1), which must be all -1."""
    padding = np.flatnonzero(rows[:, 0] == -1)
    if len(padding) == 0:
        return rows
    first = padding[0]
    if not np.all(rows[first, 1:5] == -1):
        raise UsageError(f"npx.{op}: label row {first} of example {example} has class -1 (padding) but "
                         f"coordinates {rows[first, 1:5].tolist()}; a padding row must be all -1")
    return rows[:first]


def _target_iou(anchors: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU (anchors, ground truths) as MXNet's multibox_target computes it (0 for an empty union)."""
    al, at, ar, ab = (anchors[:, i, None] for i in range(4))
    gl, gt, gr, gb = (truth[None, :, i] for i in range(4))
    zero = F32(0)
    inter = (np.maximum(zero, np.minimum(ar, gr) - np.maximum(al, gl))
             * np.maximum(zero, np.minimum(ab, gb) - np.maximum(at, gt)))
    union = (ar - al) * (ab - at) + (gr - gl) * (gb - gt) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)


def _match(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each anchor's flag (1 matched, -1 not yet decided), ground truth and its IoU (-1 for both
    where none was looked up), as MXNet's greedy matching and threshold pass leave them."""
    count, truths = iou.shape
    flags = np.full(count, -1, np.int8)
    matched = np.full(count, -1, np.int64)
    best_iou = np.full(count, -1, F32)
    taken = np.zeros(truths, bool)
    for _ in range(truths):  # each round matches one ground truth to one anchor, or ends
        free = np.where((flags == 1)[:, None] | taken[None, :], -np.inf, iou)
        j, k = divmod(int(np.argmax(free)), truths)  # the first largest, in MXNet's scan order
        if not free[j, k] > F32(1e-6):
            break
        flags[j], matched[j], best_iou[j], taken[k] = 1, k, free[j, k], True
    if threshold > 0:
        _best_of_the_rest(iou, matched, best_iou, np.flatnonzero(flags != 1))
        flags[(flags != 1) & (best_iou > F32(threshold))] = 1
    return flags, matched, best_iou


def _best_of_the_rest(iou: np.ndarray, matched: np.ndarray, best_iou: np.ndarray,
                      anchors: np.ndarray) -> None:
    """``anchors``' best ground truth (the first of the largest IoU, if above -1)."""
    if len(anchors) == 0:
        return
    rows = iou[anchors]
    k = np.argmax(rows, axis=1)
    top = rows[np.arange(len(anchors)), k]
    found = top > F32(-1)
    matched[anchors[found]], best_iou[anchors[found]] = k[found], top[found]


def _mine_negatives(op: str, iou: np.ndarray, flags: np.ndarray, matched: np.ndarray, best_iou: np.ndarray,
                    preds: np.ndarray, ratio: float, thresh: float) -> None:
    """Hard-negative mining: flag 0 the ``ratio × positives`` unmatched anchors whose best IoU
    is below ``thresh`` and whose background probability is lowest (a stable sort)."""
    positives = int(np.count_nonzero(flags == 1))
    count = len(flags)
    wanted = min(int(F32(positives) * F32(ratio)), count - positives)
    if wanted <= 0:
        return
    not_looked_up = np.flatnonzero((flags != 1) & (best_iou < 0))  # (the threshold pass did not run)
    _best_of_the_rest(iou, matched, best_iou, not_looked_up)
    candidates = np.flatnonzero((flags == -1) & (best_iou < F32(thresh)))
    if len(candidates) < wanted:
        raise UsageError(f"npx.{op}: negative mining wants {wanted} negatives but only {len(candidates)} "
                         f"unmatched anchors have an IoU below negative_mining_thresh ({thresh}); "
                         "MXNet refuses this too")
    logits = preds[:, candidates]
    top = logits.max(axis=0)
    total = np.zeros(len(candidates), F32)
    for row in logits:  # one class at a time, as MXNet sums
        total += _expf(row - top)
    background = _expf(logits[0] - top) / total
    flags[candidates[np.argsort(background, kind="stable")[:wanted]]] = 0


def _encode(anchors: np.ndarray, truth: np.ndarray, v: tuple[float, ...]) -> np.ndarray:
    """MXNet's box encoding of ground truths against their anchors, in float32."""
    al, at, ar, ab = anchors.T
    gl, gt, gr, gb = truth.T
    half = F32(0.5)
    aw, ah, ax, ay = ar - al, ab - at, (al + ar) * half, (at + ab) * half
    gw, gh, gx, gy = gr - gl, gb - gt, (gl + gr) * half, (gt + gb) * half
    vx, vy, vw, vh = (F32(value) for value in v)
    return np.stack([(gx - ax) / aw / vx, (gy - ay) / ah / vy, _logf(gw / aw) / vw, _logf(gh / ah) / vh],
                    axis=-1)


# -- multibox_detection ------------------------------------------------------------------------------


def _detect(result: np.ndarray, probs: np.ndarray, offsets: np.ndarray, anchors: np.ndarray,
            score_threshold: float, nms: float, v: tuple[float, ...], topk: int, clip: bool,
            force_suppress: bool) -> None:
    """``multibox_detection``'s rows, written into ``result`` (batch, n, 6), all -1 before."""
    batch, count = result.shape[:2]
    boxes = _decode(anchors, offsets.reshape(batch, count, 4), v, clip)
    for b in range(batch):
        ids, scores = _classify(probs[b], score_threshold)
        kept = np.flatnonzero(ids >= 0)
        rows = np.concatenate([ids[kept, None], scores[kept, None], boxes[b, kept]], axis=1)
        valid = len(rows)
        result[b, :valid] = rows
        if valid < 1 or nms <= 0 or nms > 1:
            continue
        order = np.argsort(-rows[:, 1], kind="stable")
        keep = topk if 0 < topk < valid else valid
        result[b, keep:valid, 0] = -1  # cut by nms_topk: their unsorted rows, id -1
        result[b, :keep] = rows[order[:keep]]
        _suppress(result[b, :keep], nms, force_suppress)


def _classify(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Each anchor's class id (its most probable non-background class − 1, or -1) and score."""
    classes, count = probs.shape
    if classes < 2:
        return np.full(count, -1, F32), np.full(count, -1, F32)
    best = np.argmax(probs[1:], axis=0)  # the first of the largest, as MXNet's scan
    score = probs[1:][best, np.arange(count)]
    found = score > F32(-1)  # MXNet starts from a score of -1
    ids = np.where(found, best + 1, 0)
    score = np.where(found, score, F32(-1))
    ids = np.where((ids > 0) & (score < F32(threshold)), 0, ids)
    return (ids - 1).astype(F32), score.astype(F32)


def _decode(anchors: np.ndarray, offsets: np.ndarray, v: tuple[float, ...], clip: bool) -> np.ndarray:
    """MXNet's box decoding of (batch, n, 4) offsets against the anchors, in float32."""
    al, at, ar, ab = anchors.T
    aw, ah = ar - al, ab - at
    two = F32(2)
    ax, ay = (al + ar) / two, (at + ab) / two
    px, py, pw, ph = (offsets[..., i] for i in range(4))
    vx, vy, vw, vh = (F32(value) for value in v)
    ox, oy = px * vx * aw + ax, py * vy * ah + ay
    ow, oh = _expf(pw * vw) * aw / two, _expf(ph * vh) * ah / two
    boxes = np.stack([ox - ow, oy - oh, ox + ow, oy + oh], axis=-1)
    if clip:
        np.clip(boxes, F32(0), F32(1), out=boxes)
    return boxes


def _suppress(rows: np.ndarray, threshold: float, force: bool) -> None:
    """Greedy non-maximum suppression in place over rows sorted by score: each kept row sets
    the id of every later kept row of its class (any, with ``force``) to -1 where their IoU is
    at least ``threshold``."""
    ids, boxes = rows[:, 0], rows[:, 2:6]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    zero = F32(0)
    for i in range(len(rows) - 1):
        if ids[i] < 0:
            continue
        later = i + 1 + np.flatnonzero((ids[i + 1:] >= 0) & (force | (ids[i + 1:] == ids[i])))
        if len(later) == 0:
            continue
        a, b = boxes[i], boxes[later]
        w = np.maximum(zero, np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]))
        h = np.maximum(zero, np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]))
        inter = w * h
        union = areas[i] + areas[later] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        ids[later[iou >= F32(threshold)]] = -1


# -- roi_pooling, float32 functions, arguments ---------------------------------------------------------


def _expf(x: np.ndarray) -> np.ndarray:
    """C's ``expf``, correctly rounded as glibc's is (numpy's float32 ``exp`` is off by one unit
    in the last place for some inputs): the float64 ``exp`` rounded to float32."""
    return np.exp(x.astype(np.float64)).astype(F32)


def _logf(x: np.ndarray) -> np.ndarray:
    """C's ``logf``, correctly rounded, as ``_expf``."""
    return np.log(x.astype(np.float64)).astype(F32)


def _round_half_away(values: np.ndarray) -> np.ndarray:
    """C's ``round``: to the nearest integer, halves away from zero (numpy's rounds to even)."""
    whole = np.trunc(values)
    return whole + np.where(np.abs(values - whole) >= F32(0.5), np.sign(values), 0)


def _bins(extent: int, bins: int, start: int, size: int) -> list[tuple[int, int]]:
    """Each bin's [begin, end) along an axis: floor(i·extent/bins) to ceil((i+1)·extent/bins)
    (in float32, as MXNet), offset by ``start`` and clamped to [0, size]."""
    step = F32(extent) / F32(bins)
    edges = np.arange(bins + 1, dtype=F32) * step
    begin = np.floor(edges[:-1]).astype(np.int64) + start
    end = np.ceil(edges[1:]).astype(np.int64) + start
    return list(zip(np.clip(begin, 0, size).tolist(), np.clip(end, 0, size).tolist(), strict=True))


def _positive(op: str, name: str, values: tuple[float, ...]) -> tuple[float, ...]:
    if not values:
        raise UsageError(f"npx.{op}: {name} must not be empty")
    if not all(v > 0 for v in values):
        raise UsageError(f"npx.{op}: {name} must be positive, got {list(values)}")
    return values


def _int(op: str, name: str, given: Any) -> int:
    if not isinstance(given, (int, np.integer)) or isinstance(given, (bool, np.bool_)):
        raise UsageError(f"npx.{op}: {name} must be an int, got {given!r}")
    return int(given)
