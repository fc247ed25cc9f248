"""``npx.multibox_prior``, ``multibox_target``, ``multibox_detection`` and ``roi_pooling``
against MXNet 1.9.1 (tests/reference/mxnet_npx.*, scripts/make_mxnet_npx_refs.py).

Exact: anchors (the same float32 operations in the same order), class targets and masks,
detection class ids and scores (which anchors match, survive and in which order), ROI pooling
(a maximum of inputs). Allclose (rtol 1e-6, atol 1e-6): the encoded and decoded boxes, which
go through ``exp`` and ``log`` (glibc's correctly rounded float32 functions in MXNet, float64's
rounded to float32 here: equal on the machines tried, but a platform's libm may differ in the
last place).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest

import modelpack
from modelpack import autograd, gluon, np, npx
from modelpack.errors import TraceError, UsageError
from modelpack.gluon import nn
from modelpack.nn.devices import NDArray

REFERENCE = Path(__file__).resolve().parent / "reference"
DETECTION = ("multibox_prior", "multibox_target", "multibox_detection", "roi_pooling")
CASES = [c for c in json.loads((REFERENCE / "mxnet_npx.json").read_text())["cases"] if c["op"] in DETECTION]
ARRAYS = numpy.load(REFERENCE / "mxnet_npx.npz")


def inputs_of(case):
    return {name: ARRAYS[f"{case['name']}/in/{name}"] for name in case["inputs"]}


def expected_of(case):
    return [ARRAYS[f"{case['name']}/out/{i}"] for i in range(case["outputs"])]


def close(actual, expected, what):
    numpy.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("case", [c for c in CASES if "error" not in c], ids=lambda c: c["name"])
def test_results_are_mxnets(case):
    name, op = case["name"], case["op"]
    result = getattr(npx, op)(**inputs_of(case), **case["kwargs"])
    outs = result if isinstance(result, list) else [result]
    expected = expected_of(case)
    assert len(outs) == len(expected) and all(type(o) is NDArray for o in outs)
    for i, (out, ref) in enumerate(zip(outs, expected, strict=True)):
        assert out.shape == ref.shape and out.dtype == ref.dtype == numpy.float32, f"{name}/{i}"
    if op in ("multibox_prior", "roi_pooling"):
        numpy.testing.assert_array_equal(outs[0], expected[0], err_msg=name)
    elif op == "multibox_target":
        loc_target, loc_mask, cls_target = outs
        numpy.testing.assert_array_equal(cls_target, expected[2], err_msg=f"{name}: cls_target")
        numpy.testing.assert_array_equal(loc_mask, expected[1], err_msg=f"{name}: loc_mask")
        close(loc_target, expected[0], f"{name}: loc_target")
    else:
        numpy.testing.assert_array_equal(outs[0][..., :2], expected[0][..., :2], err_msg=f"{name}: ids, scores")
        close(outs[0][..., 2:], expected[0][..., 2:], f"{name}: boxes")


@pytest.mark.parametrize("case", [c for c in CASES if "error" in c], ids=lambda c: c["name"])
def test_what_mxnet_refuses_is_refused(case):
    with pytest.raises(UsageError, match=rf"^npx\.{case['op']}: "):
        getattr(npx, case["op"])(**inputs_of(case), **case["kwargs"])


def test_the_cases_cover_what_they_are_named_for():
    """Matching with and without the threshold pass, hard negatives left as ignore_label, NMS
    that suppresses, a cut by nms_topk, NMS off (anchor order), no detection at all."""
    cls = {c["name"]: expected_of(c) for c in CASES if "error" not in c}
    assert (cls["target_overlap_0.3"][2] > 0).sum() > (cls["target_defaults"][2] > 0).sum()
    assert (cls["target_mining"][2] == -1).sum() > 0 == (cls["target_defaults"][2][:2] == -1).sum()
    assert (cls["target_defaults"][2][2] == -1).all()  # no ground truth: all ignored
    valid = {name: int((out[0][..., 0] >= 0).sum()) for name, out in cls.items() if name.startswith("detect_")}
    assert valid["detect_nms_off"] > valid["detect_defaults"] > valid["detect_force_suppress"] > 0
    assert valid["detect_topk"] <= 2 * 10 and valid["detect_empty"] == 0
    off = cls["detect_nms_off"][0][0]
    assert not numpy.all(numpy.diff(off[off[:, 0] >= 0, 1]) <= 0)  # not sorted by score
    numpy.testing.assert_array_equal(cls["detect_background_id"][0], cls["detect_defaults"][0])


def test_d2l_rcnn_example():
    X = np.arange(16).reshape(1, 1, 4, 4)
    rois = np.array([[0, 0, 0, 20, 20], [0, 0, 10, 30, 30]])
    y = npx.roi_pooling(X, rois, pooled_size=(2, 2), spatial_scale=0.1)
    assert y.tolist() == [[[[5.0, 6.0], [9.0, 10.0]]], [[[9.0, 11.0], [13.0, 15.0]]]]


def test_multiscale_chapter_anchors():
    """d2l's display_anchors: np.zeros((1, 10, h, w)) feature maps; anchors[0] scaled by the image."""
    for size, s in ((4, 0.15), (2, 0.4), (1, 0.8)):
        anchors = npx.multibox_prior(np.zeros((1, 10, size, size)), sizes=[s], ratios=[1, 2, 0.5])
        assert anchors.shape == (1, size * size * 3, 4)
        scaled = anchors[0] * np.array((728, 561, 728, 561))
        assert scaled.shape == (size * size * 3, 4)
    first = npx.multibox_prior(np.zeros((1, 1, 1, 1)), sizes=[0.5], ratios=[1]).tolist()
    assert first == [[[0.25, 0.25, 0.75, 0.75]]]


def test_no_gradient_path_under_record():
    """On recorded values they compute, and give plain arrays: backward reaches the inputs
    through their other uses only."""
    anchors = npx.multibox_prior(np.zeros((1, 1, 2, 2)), sizes=[0.5], ratios=[1, 2])
    preds = np.array(numpy.random.default_rng(0).normal(size=(1, 3, anchors.shape[1])).astype(numpy.float32))
    preds.attach_grad()
    labels = np.array([[[0, 0.1, 0.1, 0.5, 0.6]]])
    with autograd.record():
        scaled = preds * 2
        targets = npx.multibox_target(anchors, labels, scaled)
        probs = npx.softmax(scaled, axis=1)
        detections = npx.multibox_detection(probs, np.zeros((1, 4 * anchors.shape[1])), anchors)
        pooled = npx.roi_pooling(scaled.reshape(1, 3, 2, 4), np.array([[0, 0, 0, 3, 1]]), pooled_size=(1, 1),
                                 spatial_scale=1.0)
        assert all(type(t) is NDArray for t in (*targets, detections, pooled))
        loss = (scaled * targets[2].reshape(1, 1, -1)).sum()
    loss.backward()
    numpy.testing.assert_array_equal(preds.grad, 2 * numpy.broadcast_to(targets[2].reshape(1, 1, -1), preds.shape))


def test_older_d2l_ssd_training_step_runs():
    """d2l's SSD as its MXNet edition wrote it before its own numpy functions: anchors from
    npx.multibox_prior inside forward, npx.multibox_target under record, npx.multibox_detection
    to predict."""

    def cls_predictor(num_anchors, num_classes):
        return nn.Conv2D(num_anchors * (num_classes + 1), kernel_size=3, padding=1)

    def bbox_predictor(num_anchors):
        return nn.Conv2D(num_anchors * 4, kernel_size=3, padding=1)

    def flatten_pred(pred):
        return npx.batch_flatten(pred.transpose(0, 2, 3, 1))

    class TinySSD(nn.Block):
        def __init__(self, num_classes):
            super().__init__()
            self.num_classes = num_classes
            self.body = nn.Sequential()
            self.body.add(nn.Conv2D(8, 3, padding=1), nn.Activation("relu"), nn.MaxPool2D(2))
            self.down = nn.Sequential()
            self.down.add(nn.Conv2D(8, 3, padding=1), nn.Activation("relu"), nn.MaxPool2D(2))
            self.cls = [cls_predictor(4, num_classes), cls_predictor(4, num_classes)]
            self.bbox = [bbox_predictor(4), bbox_predictor(4)]
            for i in range(2):
                self.register_child(self.cls[i], f"cls_{i}")
                self.register_child(self.bbox[i], f"bbox_{i}")

        def forward(self, X):
            anchors, cls_preds, bbox_preds = [], [], []
            for i, blk in enumerate((self.body, self.down)):
                X = blk(X)
                anchors.append(npx.multibox_prior(X, sizes=[0.2 + 0.3 * i, 0.3 + 0.3 * i], ratios=[1, 2, 0.5]))
                cls_preds.append(flatten_pred(self.cls[i](X)))
                bbox_preds.append(flatten_pred(self.bbox[i](X)))
            cls = np.concatenate(cls_preds, axis=1)
            return (np.concatenate(anchors, axis=1), cls.reshape(cls.shape[0], -1, self.num_classes + 1),
                    np.concatenate(bbox_preds, axis=1))

    modelpack.random.seed(0)
    net = TinySSD(num_classes=1)
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.2})
    rng = numpy.random.default_rng(1)
    X = np.array(rng.normal(size=(2, 3, 16, 16)).astype(numpy.float32))
    Y = np.array([[[0, 0.1, 0.2, 0.5, 0.6]], [[0, 0.4, 0.3, 0.9, 0.8]]])
    cls_loss, bbox_loss = gluon.loss.SoftmaxCrossEntropyLoss(), gluon.loss.L1Loss()
    for _ in range(2):
        with autograd.record():
            anchors, cls_preds, bbox_preds = net(X)
            bbox_labels, bbox_masks, cls_labels = npx.multibox_target(anchors, Y, cls_preds.transpose(0, 2, 1))
            loss = cls_loss(cls_preds, cls_labels) + bbox_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks)
        loss.backward()
        trainer.step(2)
    assert anchors.shape == (1, (8 * 8 + 4 * 4) * 4, 4) and cls_labels.shape == (2, anchors.shape[1])
    assert float(cls_labels.max()) == 1.0 and float(bbox_masks.sum()) > 0
    anchors, cls_preds, bbox_preds = net(X[:1])
    cls_probs = npx.softmax(cls_preds).transpose(0, 2, 1)
    output = npx.multibox_detection(cls_probs, bbox_preds, anchors)
    assert output.shape == (1, anchors.shape[1], 6)
    kept = output[0][output[0][:, 0] >= 0]
    assert len(kept) > 0 and numpy.all(numpy.diff(numpy.asarray(kept[:, 1])) <= 0)


class DetectingNet(nn.Block):
    def forward(self, x):
        return npx.multibox_prior(x, sizes=[0.5], ratios=[1])


def test_a_traced_forward_refuses_them(tmp_path):
    net = DetectingNet()
    x = numpy.zeros((1, 2, 3, 3), numpy.float32)
    assert net(x).shape == (1, 9, 4)
    with pytest.raises(TraceError, match=r"^cannot trace npx\.multibox_prior: it is not an op of the op table.*"
                                         r"call it outside the traced forward, on its values"):
        modelpack.export(net, tmp_path / "net.mpk", example=x)


@pytest.mark.parametrize("call, message", [
    (lambda: npx.multibox_prior(np.zeros((1, 1, 2, 2)), sizes=[0.5, -0.1]), r"sizes must be positive"),
    (lambda: npx.multibox_prior(np.zeros((1, 1, 2, 2)), ratios=[0]), r"ratios must be positive"),
    (lambda: npx.multibox_prior(np.zeros((1, 1, 2, 2)), sizes="0.5"), r"sizes must be a number or a sequence"),
    (lambda: npx.multibox_prior(np.zeros((1, 1, 0, 2))), r"data must be \(batch, channel, y, x\)"),
    (lambda: npx.multibox_prior(None), r"data is required"),
    (lambda: npx.multibox_target(np.zeros((1, 4, 4)), np.zeros((1, 1, 4)), np.zeros((1, 2, 4))),
     r"label must be \(batch, labels ≥ 1, width ≥ 5\)"),
    (lambda: npx.multibox_target(np.zeros((1, 4, 4)), np.zeros((1, 1, 5)), np.zeros((1, 2, 3))),
     r"cls_pred must be \(batch, classes, 4\)"),
    (lambda: npx.multibox_target(np.zeros((1, 4, 4)), np.zeros((1, 1, 5)), np.zeros((1, 2, 4)),
                                 negative_mining_ratio=3, negative_mining_thresh=0), r"negative_mining_thresh must be"),
    (lambda: npx.multibox_target(np.zeros((1, 4, 4)), np.zeros((2, 1, 5)), np.zeros((1, 2, 4)),
                                 negative_mining_ratio=3), r"its batch \(1\) must be label's \(2\)"),
    (lambda: npx.multibox_target(np.zeros((1, 4, 4)), np.zeros((1, 1, 5)), np.zeros((1, 2, 4)),
                                 overlap_threshold="high"), r"overlap_threshold must be a number"),
    (lambda: npx.multibox_detection(np.zeros((1, 2, 4)), np.zeros((2, 16)), np.zeros((1, 4, 4))),
     r"loc_pred must be \(1, 16\)"),
    (lambda: npx.multibox_detection(np.zeros((1, 2, 4)), np.zeros((1, 16)), np.zeros((1, 4, 4)), nms_topk=2.5),
     r"nms_topk must be an int"),
    (lambda: npx.multibox_detection(np.zeros((1, 2, 4)), np.zeros((1, 16)), np.zeros((1, 4, 4)), out=1),
     r"out= is not supported"),
    (lambda: npx.roi_pooling(np.zeros((1, 1, 4, 4)), np.zeros((1, 5)), pooled_size=(2, 2)),
     r"spatial_scale is required"),
    (lambda: npx.roi_pooling(np.zeros((1, 1, 4, 4)), np.zeros((1, 5)), spatial_scale=1.0),
     r"pooled_size is required"),
    (lambda: npx.roi_pooling(np.zeros((1, 4, 4)), np.zeros((1, 5)), pooled_size=(2, 2), spatial_scale=1.0),
     r"data must be 4-D"),
])
def test_bad_arguments_are_refused_by_name(call, message):
    with pytest.raises(UsageError, match=message):
        call()
