"""YOLOv3 head: the batched loss against a per-object loop, negative samples, and batched
prediction against a per-image reference."""

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, generalized_box_iou_loss, nms

from detkit.heads.yolov3 import YOLOv3Head
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("p3", 8, 8), FeatureInfo("p4", 8, 16)]
ANCHORS = [[[6.0, 8.0], [14.0, 10.0]], [[20.0, 30.0], [40.0, 36.0]]]


def make_head(**kwargs):
    torch.manual_seed(0)
    head = YOLOv3Head(feature_info=INFO, num_classes=3, anchors=ANCHORS, **kwargs)
    for predictor in head.predictors:
        torch.nn.init.normal_(predictor.weight, std=0.3)
    return head


def make_features(n=3):
    return {"p3": torch.randn(n, 8, 8, 8), "p4": torch.randn(n, 8, 4, 4)}


def make_targets():
    return [
        {
            "boxes": torch.tensor([[5.0, 5, 19, 15], [30, 20, 70, 56], [7, 6, 20, 16]]),
            "labels": torch.tensor([1, 3, 2]),
        },
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
        {"boxes": torch.tensor([[40.0, 40, 46, 48], [0, 0, 64, 64]]), "labels": torch.tensor([2, 1])},
    ]


def centred(wh):
    return torch.cat((-wh / 2, wh / 2), dim=-1)


def reference_loss(raw, targets, box_loss):
    """Per image and object; 64 × 64 canvas, strides 8 and 16, anchors ANCHORS."""
    strides, sizes, anchors = (8, 16), ((8, 8), (4, 4)), torch.tensor(ANCHORS).view(-1, 2)
    total = dict.fromkeys(("loss_box", "loss_obj", "loss_noobj", "loss_cls"), torch.tensor(0.0))
    for n, target in enumerate(targets):
        # Every prior's decoded box, looping over levels, rows, columns and anchors.
        pred_boxes, index = [], 0
        for level, (height, width) in enumerate(sizes):
            for row in range(height):
                for col in range(width):
                    for a in range(2):
                        tx, ty, tw, th = raw[n, index, :4].detach()
                        cx, cy = (tx.sigmoid() + col) * strides[level], (ty.sigmoid() + row) * strides[level]
                        w, h = anchors[level * 2 + a, 0] * tw.exp(), anchors[level * 2 + a, 1] * th.exp()
                        pred_boxes.append(torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
                        index += 1
        pred_boxes = torch.stack(pred_boxes)
        slots = {}
        for g, box in enumerate(target["boxes"]):
            wh = box[2:] - box[:2]
            fit = box_iou(centred(wh[None]), centred(anchors))[0]
            best = int(fit.argmax())
            level, a = divmod(best, 2)
            stride, width = strides[level], sizes[level][1]
            col, row = int((box[0] + box[2]) / 2 // stride), int((box[1] + box[3]) / 2 // stride)
            prior = (0 if level == 0 else 128) + (row * width + col) * 2 + a
            if prior not in slots or float(fit[best]) > slots[prior][0]:
                slots[prior] = (float(fit[best]), g, level, col, row, a)
        positive = torch.zeros(raw.shape[1], dtype=torch.bool)
        for prior, (_, g, level, col, row, a) in slots.items():
            positive[prior] = True
            box, label = target["boxes"][g], int(target["labels"][g])
            stride = strides[level]
            scale = 2 - float((box[2] - box[0]) * (box[3] - box[1])) / 64**2
            if box_loss == "mse":
                want = torch.stack((((box[0] + box[2]) / 2) / stride - col, ((box[1] + box[3]) / 2) / stride - row,
                                    torch.log((box[2] - box[0]) / anchors[level * 2 + a, 0]),
                                    torch.log((box[3] - box[1]) / anchors[level * 2 + a, 1])))
                got = torch.cat((raw[n, prior, :2].sigmoid(), raw[n, prior, 2:4]))
                total["loss_box"] = total["loss_box"] + scale * (got - want).square().sum()
            else:
                total["loss_box"] = total["loss_box"] + scale * generalized_box_iou_loss(pred_boxes[prior], box)
            total["loss_obj"] = total["loss_obj"] - F.logsigmoid(raw[n, prior, 4])
            one_hot = F.one_hot(torch.tensor(label - 1), 3).float()
            total["loss_cls"] = total["loss_cls"] + F.binary_cross_entropy_with_logits(
                raw[n, prior, 5:], one_hot, reduction="sum"
            )
        if len(target["boxes"]):
            ignore = (box_iou(pred_boxes, target["boxes"]).max(dim=1).values > 0.5) & ~positive
        else:
            ignore = torch.zeros_like(positive)
        negative = ~positive & ~ignore
        total["loss_noobj"] = total["loss_noobj"] - F.logsigmoid(-raw[n, negative, 4]).sum()
    return {k: v / len(targets) for k, v in total.items()}, positive


@pytest.mark.parametrize("box_loss", ["mse", "giou"])
def test_loss_matches_per_object_reference(box_loss):
    head = make_head(box_loss=box_loss)
    features = make_features()
    got = head.loss(features, torch.tensor([[64, 64]] * 3), make_targets())
    raw, sizes = head(features)
    assert sizes == [(8, 8), (4, 4)] and raw.shape == (3, 160, 8)
    want, _ = reference_loss(raw, make_targets(), box_loss)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-4)


def test_ignored_priors_leave_the_noobj_loss():
    head = make_head()
    features = make_features()
    full = head.loss(features, torch.tensor([[64, 64]] * 3), make_targets())["loss_noobj"].detach()
    head.ignore_threshold = 1.0  # nothing ignored
    none_ignored = head.loss(features, torch.tensor([[64, 64]] * 3), make_targets())["loss_noobj"].detach()
    assert none_ignored > full


def test_negative_samples_give_zero_object_losses_and_finite_gradients():
    head = make_head(box_loss="ciou")
    features = {k: v.requires_grad_() for k, v in make_features(2).items()}
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    losses = head.loss(features, torch.tensor([[64, 64]] * 2), empty)
    for key in ("loss_box", "loss_obj", "loss_cls"):
        assert float(losses[key].detach()) == 0.0
    assert float(losses["loss_noobj"].detach()) > 0
    sum(losses.values()).backward()
    assert all(torch.isfinite(f.grad).all() for f in features.values())


def test_objectness_prior_and_bad_options():
    head = YOLOv3Head(feature_info=INFO, num_classes=3, anchors=ANCHORS, object_prior=0.02)
    with torch.no_grad():
        raw, _ = head(make_features(1))
    # Predictor weights start at std 0.01, so objectness starts near the prior.
    assert abs(float(raw[..., 4].sigmoid().mean()) - 0.02) < 0.01
    with pytest.raises(ValueError, match="unknown box_loss"):
        YOLOv3Head(feature_info=INFO, num_classes=3, anchors=ANCHORS, box_loss="l2")
    with pytest.raises(ValueError, match="3 anchor groups for 2 feature levels"):
        YOLOv3Head(feature_info=INFO, num_classes=3)


def test_batched_predict_equals_per_image_reference():
    head = make_head().eval()
    for predictor in head.predictors:
        torch.nn.init.zeros_(predictor.bias)  # objectness near 0.5, so that some boxes pass 0.2
    head.score_threshold, head.nms_threshold, head.max_detections, head.pre_nms_topk = 0.2, 0.45, 7, 50
    features = make_features()
    image_sizes = torch.tensor([[64, 64], [50, 40], [64, 33]])
    got = head.predict(features, image_sizes)
    with torch.no_grad():
        raw, _ = head(features)
    anchors = torch.tensor(ANCHORS).view(-1, 2)
    for n, detections in enumerate(got):
        height, width = image_sizes[n].tolist()
        candidates, index = [], 0
        for level, (size, stride) in enumerate(((8, 8), (4, 16))):
            for row in range(size):
                for col in range(size):
                    for a in range(2):
                        tx, ty, tw, th, obj = raw[n, index, :5].tolist()
                        cx, cy = (1 / (1 + math.exp(-tx)) + col) * stride, (1 / (1 + math.exp(-ty)) + row) * stride
                        w, h = (
                            float(anchors[level * 2 + a, 0]) * math.exp(tw),
                            float(anchors[level * 2 + a, 1]) * math.exp(th),
                        )
                        box = [min(max(cx - w / 2, 0), width), min(max(cy - h / 2, 0), height),
                               min(max(cx + w / 2, 0), width), min(max(cy + h / 2, 0), height)]
                        for c in range(3):
                            candidates.append(
                                (float(raw[n, index, 4].sigmoid() * raw[n, index, 5 + c].sigmoid()), c + 1, box)
                            )
                        index += 1
        top = sorted(candidates, key=lambda r: -r[0])[:50]
        top = [r for r in top if r[0] > 0.2]
        kept = []
        for c in (1, 2, 3):
            mine = [r for r in top if r[1] == c]
            if mine:
                keep = nms(torch.tensor([r[2] for r in mine]), torch.tensor([r[0] for r in mine]), 0.45)
                kept += [mine[i] for i in keep.tolist()]
        kept = sorted(kept, key=lambda r: -r[0])[:7]
        assert len(kept) > 0
        torch.testing.assert_close(detections["scores"], torch.tensor([r[0] for r in kept]))
        torch.testing.assert_close(detections["labels"], torch.tensor([r[1] for r in kept]))
        torch.testing.assert_close(detections["boxes"], torch.tensor([r[2] for r in kept]), atol=1e-4, rtol=1e-5)
