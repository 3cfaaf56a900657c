"""YOLOv1 head: the batched loss against a per-object loop written from the paper, negative
samples, and batched prediction against a per-image reference."""

import pytest
import torch
from torchvision.ops import box_iou, nms

from detkit.heads.yolov1 import YOLOv1Head
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("c5", 16, 32)]


def make_head(**kwargs):
    torch.manual_seed(0)
    head = YOLOv1Head(feature_info=INFO, num_classes=3, grid_size=4, hidden_channels=16, num_convs=1, **kwargs)
    # Larger predictor weights spread the boxes, so predictors disagree and some overlap the objects.
    torch.nn.init.normal_(head.predictor.weight, std=0.5)
    return head


def make_targets():
    # Image 0: the third box shares cell (col 2, row 3) with the larger second one, which is kept.
    return [
        {
            "boxes": torch.tensor([[10.0, 10, 60, 50], [70, 80, 120, 126], [80, 100, 100, 110]]),
            "labels": torch.tensor([1, 3, 2]),
        },
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
        {"boxes": torch.tensor([[0.0, 0, 128, 128]]), "labels": torch.tensor([2])},
    ]


def reference_loss(head, codes, conf_logits, class_logits, targets, paper):
    """Per image, per object, written from the paper's equation (3). 128 × 128 canvas, 4 × 4 grid."""
    cell = 32.0
    totals = dict.fromkeys(("loss_box", "loss_obj", "loss_noobj", "loss_cls"), torch.tensor(0.0))
    chosen = []
    for n, target in enumerate(targets):
        owners = {}
        for g, box in enumerate(target["boxes"]):
            cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
            index = min(int(cy // cell), 3) * 4 + min(int(cx // cell), 3)
            area = float((box[2] - box[0]) * (box[3] - box[1]))
            if index not in owners or area > owners[index][0]:
                owners[index] = (area, g)
        responsible = torch.zeros(16, 2, dtype=torch.bool)
        for index, (_, g) in owners.items():
            box, label = target["boxes"][g], int(target["labels"][g])
            col, row = index % 4, index // 4
            x, y, sw, sh = codes[n, index].unbind(-1)
            cx, cy, w, h = (x + col) * cell, (y + row) * cell, sw**2 * 128, sh**2 * 128
            preds = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=1)
            ious = box_iou(preds.detach(), box[None])[:, 0]
            b = int(ious.argmax())
            chosen.append(b)
            responsible[index, b] = True
            want = torch.stack(
                (((box[0] + box[2]) / 2) / cell - col, ((box[1] + box[3]) / 2) / cell - row,
                 ((box[2] - box[0]) / 128).sqrt(), ((box[3] - box[1]) / 128).sqrt())
            )
            probs = class_logits[n, index].softmax(-1)
            one_hot = torch.nn.functional.one_hot(torch.tensor(label - 1), 3).float()
            if paper:
                totals["loss_box"] = totals["loss_box"] + 5.0 * (codes[n, index, b] - want).square().sum()
                totals["loss_obj"] = totals["loss_obj"] + (conf_logits[n, index, b].sigmoid() - ious[b]).square()
                totals["loss_cls"] = totals["loss_cls"] + (probs - one_hot).square().sum()
            else:
                diff = (codes[n, index, b] - want).abs()
                beta = 1 / 9
                huber = torch.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta).sum()
                totals["loss_box"] = totals["loss_box"] + 5.0 * huber
                p = conf_logits[n, index, b].sigmoid()
                totals["loss_obj"] = totals["loss_obj"] - (ious[b] * p.log() + (1 - ious[b]) * (1 - p).log())
                totals["loss_cls"] = totals["loss_cls"] - probs.log()[label - 1]
        others = conf_logits[n][~responsible].sigmoid()
        noobj = others.square().sum() if paper else -(1 - others).log().sum()
        totals["loss_noobj"] = totals["loss_noobj"] + 0.5 * noobj
    return {k: v / len(targets) for k, v in totals.items()}, chosen


@pytest.mark.parametrize("loss", ["paper", "smooth_l1_ce"])
def test_loss_matches_per_object_reference(loss):
    head = make_head(loss=loss)
    features = {"c5": torch.randn(3, 16, 4, 4)}
    got = head.loss(features, torch.tensor([[128, 128]] * 3), make_targets())
    codes, conf_logits, class_logits, canvas = head(features)
    torch.testing.assert_close(canvas, torch.tensor([128.0, 128.0]))
    want, chosen = reference_loss(head, codes, conf_logits, class_logits, make_targets(), paper=loss == "paper")
    assert sorted(set(chosen)) == [0, 1]  # the case exercises both predictors
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5)
    assert float(got["loss_obj"].detach()) > 0 and float(got["loss_cls"].detach()) > 0


def test_negative_samples_give_zero_object_losses_and_finite_gradients():
    head = make_head()
    features = {"c5": torch.randn(2, 16, 4, 4, requires_grad=True)}
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    losses = head.loss(features, torch.tensor([[128, 128]] * 2), empty)
    for key in ("loss_box", "loss_obj", "loss_cls"):
        assert float(losses[key].detach()) == 0.0
    assert float(losses["loss_noobj"].detach()) > 0
    sum(losses.values()).backward()
    assert torch.isfinite(features["c5"].grad).all()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in head.parameters())


def test_any_grid_and_input_size_and_fc_predictor():
    head = YOLOv1Head(feature_info=INFO, num_classes=2, grid_size=(3, 5), hidden_channels=8, num_convs=0, fc_hidden=32)
    codes, conf, classes, canvas = head({"c5": torch.randn(2, 16, 2, 6)})
    assert codes.shape == (2, 15, 2, 4) and conf.shape == (2, 15, 2) and classes.shape == (2, 15, 2)
    torch.testing.assert_close(canvas, torch.tensor([192.0, 64.0]))
    with pytest.raises(ValueError, match="unknown loss"):
        YOLOv1Head(feature_info=INFO, num_classes=2, loss="focal")
    with pytest.raises(ValueError, match="in_feature 'c4'"):
        YOLOv1Head(feature_info=INFO, num_classes=2, in_feature="c4")


def test_batched_predict_equals_per_image_reference():
    head = make_head().eval()
    head.score_threshold, head.nms_threshold, head.max_detections = 0.05, 0.5, 10
    features = {"c5": torch.randn(3, 16, 4, 4)}
    image_sizes = torch.tensor([[128, 128], [100, 90], [128, 64]])
    got = head.predict(features, image_sizes)
    with torch.no_grad():
        codes, conf_logits, class_logits, _ = head(features)
    for n, detections in enumerate(got):
        rows = []
        for index in range(16):
            col, row = index % 4, index // 4
            for b in range(2):
                x, y, sw, sh = codes[n, index, b].tolist()
                cx, cy, w, h = (x + col) * 32, (y + row) * 32, sw**2 * 128, sh**2 * 128
                height, width = image_sizes[n].tolist()
                box = [min(max(cx - w / 2, 0), width), min(max(cy - h / 2, 0), height),
                       min(max(cx + w / 2, 0), width), min(max(cy + h / 2, 0), height)]
                for c in range(3):
                    score = float(conf_logits[n, index, b].sigmoid() * class_logits[n, index].softmax(-1)[c])
                    if score > 0.05:
                        rows.append((score, c + 1, box))
        kept = []
        for c in (1, 2, 3):
            mine = [r for r in rows if r[1] == c]
            if mine:
                keep = nms(torch.tensor([r[2] for r in mine]), torch.tensor([r[0] for r in mine]), 0.5)
                kept += [mine[i] for i in keep.tolist()]
        kept = sorted(kept, key=lambda r: -r[0])[:10]
        torch.testing.assert_close(detections["scores"], torch.tensor([r[0] for r in kept]))
        torch.testing.assert_close(detections["labels"], torch.tensor([r[1] for r in kept]))
        torch.testing.assert_close(
            detections["boxes"], torch.tensor([r[2] for r in kept]).view(-1, 4), atol=1e-4, rtol=1e-5
        )
