import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, nms

from detkit.heads.ssd import SSDHead
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("a", 8, 8), FeatureInfo("b", 8, 16)]
IMAGE = 32


def _head(**kwargs) -> SSDHead:
    torch.manual_seed(0)
    options = dict(
        aspect_ratios=[[2], [2, 3]], min_scale=0.25, max_scale=0.6, first_scale=None, num_classes=3
    )
    options.update(kwargs)
    return SSDHead(feature_info=INFO, **options)


def _features(num_images: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "a": torch.randn(num_images, 8, 4, 4, generator=generator),
        "b": torch.randn(num_images, 8, 2, 2, generator=generator),
    }


def _sizes(num_images: int) -> torch.Tensor:
    return torch.tensor([[IMAGE, IMAGE]] * num_images)


def _target(boxes, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def _encode(prior, gt):
    pw, ph = prior[2] - prior[0], prior[3] - prior[1]
    gw, gh = gt[2] - gt[0], gt[3] - gt[1]
    px, py, gx, gy = prior[0] + pw / 2, prior[1] + ph / 2, gt[0] + gw / 2, gt[1] + gh / 2
    return torch.stack(
        [10 * (gx - px) / pw, 10 * (gy - py) / ph, 5 * torch.log(gw / pw), 5 * torch.log(gh / ph)]
    )


def _reference_loss(logits, deltas, priors, targets, ratio=3, min_negatives=3):
    """SSD's loss image by image, straight from the paper's description."""
    cls_sum, box_sum, total_pos = 0.0, 0.0, 0
    for logit, delta, target in zip(logits, deltas, targets, strict=True):
        gt, gt_labels = target["boxes"], target["labels"]
        num_priors = priors.shape[0]
        assigned = torch.full((num_priors,), -1, dtype=torch.long)
        if gt.shape[0]:
            iou = box_iou(gt, priors)
            best_iou, best_gt = iou.max(dim=0)
            assigned[best_iou >= 0.5] = best_gt[best_iou >= 0.5]
            for g in reversed(range(gt.shape[0])):  # the first ground truth wins a shared best prior
                assigned[iou[g] == iou[g].max()] = g
        pos = assigned >= 0
        cls_target = torch.zeros(num_priors, dtype=torch.long)
        cls_target[pos] = gt_labels[assigned[pos]]
        ce = F.cross_entropy(logit, cls_target, reduction="none")
        num_neg = max(ratio * int(pos.sum()), min_negatives)
        cls_sum += ce[pos].sum() + ce[~pos].sort(descending=True).values[:num_neg].sum()
        for a in pos.nonzero().flatten().tolist():
            box_sum += F.smooth_l1_loss(
                delta[a], _encode(priors[a], gt[assigned[a]]), beta=1.0, reduction="sum"
            )
        total_pos += int(pos.sum())
    return cls_sum / max(total_pos, 1), box_sum / max(total_pos, 1)


def test_batched_loss_equals_a_per_image_reference():
    head = _head()
    targets = [
        _target([[2, 2, 14, 12], [10, 8, 30, 30]], [1, 3]),
        _target([], []),
        _target([[0, 0, 16, 16]], [2]),
    ]
    features = _features(3)
    losses = head.loss(features, _sizes(3), targets)
    logits, deltas = head(features)
    priors = head.priors(features, _sizes(3))
    assert priors.shape == (4 * 4 * 4 + 2 * 2 * 6, 4)
    ref_cls, ref_box = _reference_loss(logits, deltas, priors, targets)
    torch.testing.assert_close(losses["loss_cls"], ref_cls)
    torch.testing.assert_close(losses["loss_box"], ref_box)
    (losses["loss_cls"] + losses["loss_box"]).backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_images_without_objects_give_zero_box_loss_and_mine_negatives():
    head = _head(min_negatives=4)
    targets = [_target([], []), _target([], [])]
    features = _features(2)
    losses = head.loss(features, _sizes(2), targets)
    assert losses["loss_box"].item() == 0.0 and losses["loss_box"].requires_grad
    logits, _ = head(features)
    background = F.cross_entropy(
        logits.reshape(-1, 4),
        torch.zeros(logits.shape[0] * logits.shape[1], dtype=torch.long),
        reduction="none",
    )
    expected = background.view(2, -1).sort(dim=1, descending=True).values[:, :4].sum()  # normaliser 1
    torch.testing.assert_close(losses["loss_cls"], expected)
    losses["loss_cls"].backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


@torch.no_grad()
def _reference_predict(head, features, image_sizes):
    logits, deltas = head(features)
    priors = head.priors(features, image_sizes)
    results = []
    for logit, delta, (height, width) in zip(logits, deltas, image_sizes.tolist(), strict=True):
        scores = logit.softmax(-1)[:, 1:]
        pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
        cx = priors[:, 0] + pw / 2 + delta[:, 0] / 10 * pw
        cy = priors[:, 1] + ph / 2 + delta[:, 1] / 10 * ph
        w, h = pw * torch.exp(delta[:, 2] / 5), ph * torch.exp(delta[:, 3] / 5)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        flat = scores.flatten()
        top_scores, top = flat.topk(min(head.pre_nms_topk, flat.numel()))
        keep_score = top_scores > head.score_threshold
        top_scores, top = top_scores[keep_score], top[keep_score]
        prior_index, class_index = top // scores.shape[1], top % scores.shape[1]
        kept = []
        for c in class_index.unique().tolist():
            mask = class_index == c
            idx = nms(boxes[prior_index[mask]], top_scores[mask], head.nms_threshold)
            kept += [(float(top_scores[mask][i]), c + 1, boxes[prior_index[mask][i]]) for i in idx.tolist()]
        kept.sort(key=lambda item: -item[0])
        kept = kept[: head.max_detections]
        results.append(
            {
                "scores": torch.tensor([k[0] for k in kept]),
                "labels": torch.tensor([k[1] for k in kept], dtype=torch.long),
                "boxes": torch.stack([k[2] for k in kept]) if kept else torch.zeros(0, 4),
            }
        )
    return results


def test_batched_postprocess_equals_a_per_image_reference():
    head = _head(pre_nms_topk=60, max_detections=15, score_threshold=0.2, nms_threshold=0.5).eval()
    features = _features(3)
    sizes = torch.tensor([[32, 32], [32, 20], [24, 32]])  # smaller images padded into the batch
    detections = head.predict(features, sizes)
    reference = _reference_predict(head, features, sizes)
    assert len(detections) == 3
    for got, want in zip(detections, reference, strict=True):
        assert 0 < got["scores"].numel() <= 15
        torch.testing.assert_close(got["scores"], want["scores"])
        torch.testing.assert_close(got["labels"], want["labels"])
        torch.testing.assert_close(got["boxes"], want["boxes"])


def test_padded_batches_and_mismatched_levels_are_explained():
    head = _head()
    with pytest.raises(ValueError, match="size_divisor"):
        head.priors(_features(1), torch.tensor([[20, 20]]))  # a 4x4 stride-8 map is not a 20 px image
    with pytest.raises(ValueError, match="one list per source map"):
        SSDHead(feature_info=INFO, num_classes=2, aspect_ratios=[[2], [2], [2]])


def test_a_flat_ratio_list_applies_to_every_level():
    head = SSDHead(feature_info=INFO, num_classes=2, aspect_ratios=[2, 3], first_scale=None)
    assert head.default_boxes.num_boxes_per_location == [6, 6]
    assert head.classifiers[0].out_channels == 6 * 3 and head.regressors[1].out_channels == 6 * 4
    assert math.isclose(head.default_boxes.scales[0], 0.2)


def test_box_coder_uses_the_papers_variances_and_round_trips_on_default_boxes():
    head = _head()
    priors = head.priors(_features(1), _sizes(1))
    generator = torch.Generator().manual_seed(2)
    centre = (priors[:, :2] + priors[:, 2:]) / 2 + torch.randn(priors.shape[0], 2, generator=generator)
    size = (priors[:, 2:] - priors[:, :2]) * torch.exp(
        0.3 * torch.randn(priors.shape[0], 2, generator=generator)
    )
    gt = torch.cat((centre - size / 2, centre + size / 2), dim=1)
    deltas = head.coder.encode(priors, gt)
    prior_size = priors[:, 2:] - priors[:, :2]
    prior_centre = (priors[:, :2] + priors[:, 2:]) / 2
    # SSD's (Caffe) encoding: centre offset / (0.1 · prior size), log size ratio / 0.2.
    torch.testing.assert_close(deltas[:, :2], (centre - prior_centre) / (0.1 * prior_size))
    torch.testing.assert_close(deltas[:, 2:], torch.log(size / prior_size) / 0.2)
    torch.testing.assert_close(head.coder.decode(deltas, priors), gt, rtol=1e-5, atol=1e-4)


def test_shared_towers_run_before_the_prediction_convolutions_on_every_level():
    head = _head(num_convs=2).eval()
    features = _features(2)
    logits, deltas = head(features)
    # Recomputed by hand: the same two conv weights on both levels, each level's own BatchNorms.
    for level, name in enumerate(("a", "b")):
        x_cls, x_box = features[name], features[name]
        for layer in range(2):
            x_cls = head.cls_level_norms[level][layer](head.cls_tower[3 * layer](x_cls)).relu()
            x_box = head.box_level_norms[level][layer](head.box_tower[3 * layer](x_box)).relu()
        expected_logits = head.classifiers[level](x_cls).permute(0, 2, 3, 1).reshape(2, -1, 4)
        expected_deltas = head.regressors[level](x_box).permute(0, 2, 3, 1).reshape(2, -1, 4)
        start = 0 if level == 0 else 4 * 4 * 4
        torch.testing.assert_close(logits[:, start : start + expected_logits.shape[1]], expected_logits)
        torch.testing.assert_close(deltas[:, start : start + expected_deltas.shape[1]], expected_deltas)
    conv_weights = [m for m in head.cls_tower if isinstance(m, torch.nn.Conv2d)]
    assert len(conv_weights) == 2
    head.train()
    targets = [_target([[2, 2, 14, 12]], [1]), _target([[0, 0, 16, 16]], [2])]
    losses = head.loss(features, _sizes(2), targets)
    (losses["loss_cls"] + losses["loss_box"]).backward()
    assert conv_weights[0].weight.grad is not None and conv_weights[0].weight.grad.abs().sum() > 0
    # The paper's head (no tower) keeps its parameter names: checkpoints saved before still load.
    assert not any(".tower" in key or "level_norms" in key for key in _head().state_dict())


def test_towers_need_levels_of_one_width():
    uneven = [FeatureInfo("a", 8, 8), FeatureInfo("b", 16, 16)]
    SSDHead(feature_info=uneven, num_classes=2, aspect_ratios=[2])  # the paper's head: any widths
    with pytest.raises(ValueError, match="one width"):
        SSDHead(feature_info=uneven, num_classes=2, aspect_ratios=[2], num_convs=1)
    with pytest.raises(ValueError, match="unknown norm"):
        _head(num_convs=1, norm="ln")


def test_depthwise_towers_are_separable_and_predict_the_same_shapes():
    full, separable = _head(num_convs=2).eval(), _head(num_convs=2, tower_depthwise=True).eval()
    depthwise, pointwise = separable.cls_tower[0]
    assert depthwise.groups == depthwise.in_channels == 8 and depthwise.kernel_size == (3, 3)
    assert pointwise.kernel_size == (1, 1) and pointwise.out_channels == 8
    tower_params = lambda head: sum(p.numel() for p in head.cls_tower.parameters())  # noqa: E731
    assert tower_params(separable) == 2 * (8 * 9 + 8 * 8 + 8) and tower_params(full) == 2 * (8 * 8 * 9 + 8)
    features = _features(2)
    for got, want in zip(separable(features), full(features), strict=True):
        assert got.shape == want.shape and torch.isfinite(got).all()
