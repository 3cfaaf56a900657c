"""YOLOv2 head (and YOLOv3's with YOLOv4's grid-sensitivity offsets): decoding against hand-computed
boxes and scores, the softmax class loss, negative images, multi-anchor positives."""

import math

import pytest
import torch
import torch.nn.functional as F

from detkit.heads.yolov2 import YOLOv2Head
from detkit.heads.yolov3 import YOLOv3Head
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("p5", 4, 32)]
ANCHORS = [[10.0, 20.0], [30.0, 30.0]]


def constant_head(bias_per_anchor, **kwargs):
    """A head whose raw output is ``bias_per_anchor[a]`` at every cell (predictor weights zeroed)."""
    head = YOLOv2Head(feature_info=INFO, num_classes=2, anchors=ANCHORS, head_channels=4, **kwargs).eval()
    with torch.no_grad():
        head.predictors[0].weight.zero_()
        head.predictors[0].bias.copy_(torch.tensor(bias_per_anchor).flatten())
    return head


# tx, ty, tw, th, objectness, class 1, class 2 — for anchor 0 and anchor 1.
BIAS = [[0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0], [0.0, math.log(3), math.log(2), 0.0, 2.0, 1.0, -1.0]]


def test_decode_and_scores_by_hand():
    head = constant_head(BIAS)
    features = {"p5": torch.randn(1, 4, 2, 2)}
    boxes, scores = head.dense_predictions(features, torch.tensor([[64, 64]]))
    assert boxes.shape == (1, 8, 4) and scores.shape == (1, 8, 2)
    # Prior 5 = row 1, column 0, anchor 1: centre ((σ(0) + 0)·32, (σ(ln 3) + 1)·32) = (16, 56),
    # size (30·2, 30·1) = (60, 30) → (−14, 41, 46, 71), clipped to the 64 × 64 image.
    torch.testing.assert_close(boxes[0, 5], torch.tensor([0.0, 41.0, 46.0, 64.0]))
    # Prior 6 = row 1, column 1, anchor 0: centre (48, 48), size (10, 20).
    torch.testing.assert_close(boxes[0, 6], torch.tensor([43.0, 38.0, 53.0, 58.0]))
    # σ(2) · softmax(1, −1) and σ(−1) · softmax(0, 0).
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    soft = math.exp(1) / (math.exp(1) + math.exp(-1))
    torch.testing.assert_close(scores[0, 5], torch.tensor([sigmoid(2) * soft, sigmoid(2) * (1 - soft)]))
    torch.testing.assert_close(scores[0, 6], torch.tensor([sigmoid(-1) * 0.5, sigmoid(-1) * 0.5]))


def test_grid_sensitivity_offsets_by_hand():
    """YOLOv4: offset = s·σ(t) − (s − 1)/2; s = 2 maps σ(ln 3) = 0.75 to 1.0, a cell border."""
    head = YOLOv3Head(feature_info=INFO, num_classes=2, anchors=[ANCHORS], scale_xy=2.0).eval()
    raw = torch.zeros(1, 8, 7)
    raw[0, 5, :4] = torch.tensor([0.0, math.log(3), math.log(2), 0.0])
    _, boxes = head._decode(raw, [(2, 2)])
    # centre ((2·0.5 − 0.5 + 0)·32, (2·0.75 − 0.5 + 1)·32) = (16, 64), size (60, 30).
    torch.testing.assert_close(boxes[0, 5], torch.tensor([-14.0, 49.0, 46.0, 79.0]))
    with pytest.raises(ValueError, match="scale_xy"):
        YOLOv3Head(feature_info=INFO, num_classes=2, anchors=[ANCHORS], scale_xy=0.5)


def test_softmax_class_loss_and_negative_images():
    head = constant_head(BIAS).train()
    features = {"p5": torch.randn(2, 4, 2, 2)}
    targets = [
        # 28 × 28 fits anchor 1 (30 × 30) best; its centre (20, 50) is in row 1, column 0: prior 5.
        {"boxes": torch.tensor([[6.0, 36, 34, 64]]), "labels": torch.tensor([2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
    ]
    losses = head.loss(features, torch.tensor([[64, 64], [64, 64]]), targets)
    # Class 2 against logits (1, −1): −log softmax = log(1 + e²); halved by the batch of 2.
    torch.testing.assert_close(losses["loss_cls"], torch.tensor(math.log(1 + math.exp(2)) / 2))
    torch.testing.assert_close(losses["loss_obj"], torch.tensor(F.softplus(torch.tensor(-2.0)).item() / 2))
    empty = [targets[1], targets[1]]
    negative = head.loss(features, torch.tensor([[64, 64], [64, 64]]), empty)
    assert all(float(negative[k].detach()) == 0.0 for k in ("loss_box", "loss_obj", "loss_cls"))
    # 4 cells × (softplus(−1) + softplus(2)) per image, over 2 images, divided by 2.
    expected = 4 * (F.softplus(torch.tensor(-1.0)) + F.softplus(torch.tensor(2.0)))
    torch.testing.assert_close(negative["loss_noobj"], expected)


def test_sigmoid_classes_option_and_bad_arguments():
    head = constant_head(BIAS, class_activation="sigmoid")
    _, scores = head.dense_predictions({"p5": torch.randn(1, 4, 2, 2)}, torch.tensor([[64, 64]]))
    torch.testing.assert_close(
        scores[0, 5], torch.sigmoid(torch.tensor(2.0)) * torch.sigmoid(torch.tensor([1.0, -1.0]))
    )
    with pytest.raises(ValueError, match="one map"):
        YOLOv2Head(feature_info=[*INFO, FeatureInfo("p4", 4, 16)], num_classes=2)
    with pytest.raises(ValueError, match="class_activation"):
        YOLOv2Head(feature_info=INFO, num_classes=2, class_activation="relu")


@pytest.mark.parametrize("threshold, positives", [(None, 1), (0.5, 2), (0.7, 1)])
def test_several_anchors_per_object_above_iou_t(threshold, positives):
    """A 16 × 16 object fits the 16 × 16 anchor of stride 8 exactly and the 20 × 20 anchor of
    stride 16 with IoU 256/400 = 0.64: above iou_t 0.5 both priors are positives."""
    info = [FeatureInfo("p3", 4, 8), FeatureInfo("p4", 4, 16)]
    head = YOLOv3Head(feature_info=info, num_classes=1, anchors=[[[16.0, 16.0]], [[20.0, 20.0]]],
                      extra_positive_threshold=threshold, ignore_threshold=1.0)  # fmt: skip
    with torch.no_grad():
        for predictor in head.predictors:
            predictor.weight.zero_()
            predictor.bias.copy_(torch.tensor([0.0, 0, 0, 0, 1.5, 0]))
    features = {"p3": torch.randn(1, 4, 4, 4), "p4": torch.randn(1, 4, 2, 2)}
    target = [{"boxes": torch.tensor([[4.0, 4, 20, 20]]), "labels": torch.tensor([1])}]
    losses = head.loss(features, torch.tensor([[32, 32]]), target)
    torch.testing.assert_close(losses["loss_obj"], positives * F.softplus(torch.tensor(-1.5)))
    torch.testing.assert_close(losses["loss_noobj"], (20 - positives) * F.softplus(torch.tensor(1.5)))
