import math

import pytest
import torch
from torchvision.ops import box_iou, nms

from detkit.heads.retina import RetinaNetHead, paper_anchor_sizes
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("p3", 8, 8), FeatureInfo("p4", 8, 16)]
IMAGE = 32
SIZES = [[8.0, 12.0], [16.0, 24.0]]


def _head(**kwargs) -> RetinaNetHead:
    torch.manual_seed(0)
    options = dict(anchor_sizes=SIZES, aspect_ratios=[1.0], num_convs=1, num_classes=3)
    options.update(kwargs)
    return RetinaNetHead(feature_info=INFO, **options)


def _features(num_images: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "p3": torch.randn(num_images, 8, 4, 4, generator=generator),
        "p4": torch.randn(num_images, 8, 2, 2, generator=generator),
    }


def _sizes(num_images: int) -> torch.Tensor:
    return torch.tensor([[IMAGE, IMAGE]] * num_images)


def _target(boxes, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def _anchors() -> torch.Tensor:
    """The anchors written out: per level, cells in (y, x) order, then the sizes (ratio 1: squares)."""
    out = []
    for stride, sizes, cells in ((8, SIZES[0], 4), (16, SIZES[1], 2)):
        for y in range(cells):
            for x in range(cells):
                cx, cy = (x + 0.5) * stride, (y + 0.5) * stride
                out += [[cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2] for s in sizes]
    return torch.tensor(out)


def _reference_loss(logits, deltas, anchors, targets, alpha=0.25, gamma=2.0, beta=0.1, low_quality=True):
    """RetinaNet's loss image by image, from the paper's description and the focal-loss formula."""
    cls_sum, box_sum, total_pos = 0.0, 0.0, 0
    for logit, delta, target in zip(logits, deltas, targets, strict=True):
        gt, gt_labels = target["boxes"], target["labels"]
        for a in range(anchors.shape[0]):
            iou = box_iou(gt, anchors[a : a + 1])[:, 0] if gt.shape[0] else torch.zeros(0)
            best = float(iou.max()) if gt.shape[0] else 0.0
            # Low-quality rule: an object's best-overlapping anchor is positive whatever its IoU.
            claims = [
                g
                for g in range(gt.shape[0])
                if low_quality and float(iou[g]) > 0 and float(iou[g]) == float(box_iou(gt[g : g + 1], anchors).max())
            ]
            if best >= 0.5 or claims:
                g = claims[0] if claims else int(iou.argmax())
                label = int(gt_labels[g])
                total_pos += 1
                pw, ph = anchors[a, 2] - anchors[a, 0], anchors[a, 3] - anchors[a, 1]
                gw, gh = gt[g, 2] - gt[g, 0], gt[g, 3] - gt[g, 1]
                code = torch.stack([
                    (gt[g, 0] + gw / 2 - anchors[a, 0] - pw / 2) / pw,
                    (gt[g, 1] + gh / 2 - anchors[a, 1] - ph / 2) / ph,
                    torch.log(gw / pw),
                    torch.log(gh / ph),
                ])
                for d in (delta[a] - code).abs().tolist():
                    box_sum += 0.5 * d * d / beta if d < beta else d - 0.5 * beta
            elif best >= 0.4:
                continue  # ignored: no loss at all
            else:
                label = 0
            for c in range(logit.shape[1]):
                p = 1 / (1 + math.exp(-float(logit[a, c])))
                positive = label == c + 1
                p_t = p if positive else 1 - p
                cls_sum += -(alpha if positive else 1 - alpha) * (1 - p_t) ** gamma * math.log(p_t)
    normalizer = max(total_pos, 1)
    return cls_sum / normalizer, box_sum / normalizer


def test_anchor_order_and_count_match_the_outputs():
    head = _head()
    features = _features(1)
    torch.testing.assert_close(head.anchors(features), _anchors())
    logits, deltas = head(features)
    assert logits.shape == (1, 40, 3) and deltas.shape == (1, 40, 4)
    # The paper's 9 anchors: 3 octave scales x 3 ratios, 32 px on p3 up to 812.7 px on p7.
    paper = RetinaNetHead(feature_info=[FeatureInfo(f"p{k}", 8, 2**k) for k in range(3, 8)], num_classes=2, num_convs=0)
    assert paper.num_anchors == 9
    assert paper_anchor_sizes([8])[0] == pytest.approx([32.0, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)])
    assert paper_anchor_sizes([128])[0][2] == pytest.approx(812.75, abs=0.01)


def test_prior_probability_initialisation():
    head = _head(prior_probability=0.01)
    assert torch.allclose(head.cls_predictor.bias.sigmoid(), torch.full((2 * 3,), 0.01))
    # The subnets' weights start small, so every anchor's probability is about π.
    logits, _ = head(_features(2))
    assert abs(float(logits.detach().sigmoid().mean()) - 0.01) < 0.003


def test_loss_matches_a_per_anchor_reference():
    head = _head()
    features = _features(2)
    targets = [_target([[2.0, 3, 13, 12], [14, 14, 30, 31]], [1, 3]), _target([[9.0, 1, 20, 10]], [2])]
    losses = head.loss(features, _sizes(2), targets)
    logits, deltas = head(features)
    cls, box = _reference_loss(logits.detach(), deltas.detach(), _anchors(), targets)
    assert set(losses) == {"loss_cls", "loss_box"}
    assert math.isclose(float(losses["loss_cls"]), cls, rel_tol=1e-5)
    assert math.isclose(float(losses["loss_box"]), box, rel_tol=1e-5)


def test_anchors_between_the_thresholds_are_ignored():
    head = _head(allow_low_quality=False)
    # Best overlaps 0.453 (two anchors in [0.4, 0.5)): no positive, two ignored, the rest negative.
    target = _target([[4.0, 0, 14, 9]], [1])
    iou = box_iou(target["boxes"], _anchors())[0]
    assert float(iou.max()) < 0.5 and int(((iou >= 0.4) & (iou < 0.5)).sum()) == 2
    features = _features(1)
    loss = float(head.loss(features, _sizes(1), [target])["loss_cls"])
    logits, deltas = head(features)
    cls, box = _reference_loss(logits.detach(), deltas.detach(), _anchors(), [target], low_quality=False)
    assert math.isclose(loss, cls, rel_tol=1e-5) and box == 0.0
    # Counting the ignored anchors as negatives (a box overlapping nothing) would give more.
    far = [_target([[100.0, 100, 101, 101]], [1])]
    as_negatives, _ = _reference_loss(logits.detach(), deltas.detach(), _anchors(), far, low_quality=False)
    assert as_negatives > loss * (1 + 1e-4)


def test_negative_images_give_zero_box_loss_and_a_finite_gradient():
    head = _head()
    features = _features(2)
    empty = [_target([], []), _target([], [])]
    losses = head.loss(features, _sizes(2), empty)
    assert float(losses["loss_box"]) == 0.0 and float(losses["loss_cls"]) > 0
    logits, deltas = head(features)
    cls, _ = _reference_loss(logits.detach(), deltas.detach(), _anchors(), empty)
    assert math.isclose(float(losses["loss_cls"]), cls, rel_tol=1e-5)  # every anchor negative, divided by 1
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def test_giou_box_loss_option():
    head = _head(box_loss="giou")
    losses = head.loss(_features(1), _sizes(1), [_target([[2.0, 3, 13, 12]], [1])])
    assert torch.isfinite(losses["loss_box"]) and float(losses["loss_box"]) > 0


def test_predict_matches_a_reference_selection():
    head = _head(score_threshold=0.3, nms_threshold=0.5, max_detections=5)
    with torch.no_grad():
        head.cls_predictor.bias.normal_(0, 2.0, generator=torch.Generator().manual_seed(3))
    features = _features(2)
    detections = head.predict(features, _sizes(2))
    logits, deltas = head(features)
    boxes = head.coder.decode(deltas, _anchors()).clamp(0, IMAGE)
    for i, detection in enumerate(detections):
        scores = logits[i].sigmoid()
        keep_all = []
        for c in range(3):
            above = (scores[:, c] > 0.3).nonzero()[:, 0]
            kept = above[nms(boxes[i, above], scores[above, c], 0.5)]
            keep_all += [(float(scores[k, c]), c + 1) for k in kept]
        expected = sorted(keep_all, reverse=True)[:5]
        assert detection["labels"].tolist() == [label for _, label in expected]
        assert detection["scores"].tolist() == pytest.approx([score for score, _ in expected])


def test_clear_errors():
    with pytest.raises(ValueError, match="one width"):
        RetinaNetHead(feature_info=[FeatureInfo("c3", 8, 8), FeatureInfo("c4", 16, 16)], num_classes=2)
    with pytest.raises(ValueError, match="one list per level"):
        _head(anchor_sizes=[[8.0, 12.0]])
    with pytest.raises(ValueError, match="unknown box_loss"):
        _head(box_loss="l2")
    with pytest.raises(ValueError, match="prior_probability"):
        _head(prior_probability=1.0)


def test_batch_norm_is_kept_per_level_while_the_convolutions_are_shared():
    head = _head(norm="bn", num_convs=2).train()
    features = _features(2)
    head(features)
    # Every level's BatchNorm saw only its own level: its first running mean is the momentum (0.1)
    # times the batch mean of the shared first convolution's output on that level.
    for level, name in enumerate(("p3", "p4")):
        conv_out = head.cls_subnet[0](features[name]).detach()
        expected = 0.1 * conv_out.mean(dim=(0, 2, 3))
        assert torch.allclose(head.cls_level_norms[level][0].running_mean, expected, atol=1e-6)
    assert not torch.allclose(head.cls_level_norms[0][0].running_mean, head.cls_level_norms[1][0].running_mean)
    # The norm slots of the shared subnets stay empty and no BatchNorm is shared across levels.
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in head.cls_subnet)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in head.modules()) == 2 * 2 * 2  # subnets x levels x convs
    head.eval()
    logits, deltas = head(features)
    assert logits.shape == (2, (16 + 4) * 2, 3)  # 4x4 + 2x2 cells, 2 sizes x 1 ratio each
    assert torch.isfinite(logits).all() and torch.isfinite(deltas).all()
