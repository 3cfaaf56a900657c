"""The batched postprocessing must equal a plain per-image, per-class reference."""

import pytest
import torch
from torchvision.ops import nms

from detkit.ops.nms import postprocess_dense, postprocess_dense_padded, postprocess_flat, postprocess_padded


def reference(boxes, scores, score_threshold, pre_nms_topk, iou_threshold, max_detections):
    """Simple per-image loop: top-k over (prior, class), threshold, per-class NMS, cap."""
    out = []
    for b, s in zip(boxes, scores, strict=True):
        num_classes = s.shape[1]
        flat = s.reshape(-1)
        k = min(pre_nms_topk, flat.numel())
        top, idx = flat.topk(k)
        prior, cls = idx // num_classes, idx % num_classes
        keep = top > score_threshold
        top, prior, cls = top[keep], prior[keep], cls[keep]
        cand = b[prior, cls] if b.dim() == 3 else b[prior]
        kept_boxes, kept_scores, kept_labels = [], [], []
        for c in range(num_classes):
            m = cls == c
            k_idx = nms(cand[m], top[m], iou_threshold)
            kept_boxes.append(cand[m][k_idx])
            kept_scores.append(top[m][k_idx])
            kept_labels.append(torch.full((len(k_idx),), c + 1))
        sc = torch.cat(kept_scores)
        order = sc.argsort(descending=True)[:max_detections]
        out.append(
            {"boxes": torch.cat(kept_boxes)[order], "scores": sc[order], "labels": torch.cat(kept_labels)[order]}
        )
    return out


def make(num_images, num_priors, num_classes, class_specific, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_images, num_priors, 2, generator=g) * 80
    wh = torch.rand(num_images, num_priors, 2, generator=g) * 40 + 5
    boxes = torch.cat((xy, xy + wh), -1)
    if class_specific:
        boxes = boxes[:, :, None, :] + torch.rand(num_images, num_priors, num_classes, 4, generator=g) * 3
    scores = torch.rand(num_images, num_priors, num_classes, generator=g)
    return boxes, scores


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        # Same set of detections; order can differ only between exactly equal scores.
        torch.testing.assert_close(g["scores"], w["scores"])
        key_g = sorted(zip(g["scores"].tolist(), g["labels"].tolist(), g["boxes"].sum(1).tolist(), strict=True))
        key_w = sorted(zip(w["scores"].tolist(), w["labels"].tolist(), w["boxes"].sum(1).tolist(), strict=True))
        assert key_g == key_w


def test_postprocess_matches_reference_shared_boxes():
    boxes, scores = make(3, 200, 4, class_specific=False)
    args = dict(score_threshold=0.3, pre_nms_topk=300, iou_threshold=0.5, max_detections=25)
    assert_same(postprocess_dense(boxes, scores, **args), reference(boxes, scores, *args.values()))


def test_postprocess_matches_reference_class_specific_boxes():
    boxes, scores = make(2, 120, 3, class_specific=True, seed=1)
    args = dict(score_threshold=0.2, pre_nms_topk=100, iou_threshold=0.4, max_detections=10)
    assert_same(postprocess_dense(boxes, scores, **args), reference(boxes, scores, *args.values()))


def test_postprocess_empty_image_and_all_below_threshold():
    boxes, scores = make(2, 10, 2, class_specific=False)
    scores[1] = 0.01
    out = postprocess_dense(boxes, scores, score_threshold=0.5, pre_nms_topk=50, iou_threshold=0.5, max_detections=5)
    assert out[1]["boxes"].shape == (0, 4)
    assert len(out[0]["scores"]) <= 5


def unpad(padded):
    """PaddedDetections → the list of Detections it stands for."""
    return [
        {"boxes": b[:n], "scores": s[:n], "labels": lab[:n]}
        for b, s, lab, n in zip(*padded, strict=True)
    ]


def test_padded_postprocess_matches_reference_and_pads_with_zeros():
    boxes, scores = make(3, 200, 4, class_specific=False, seed=2)
    scores[2] = 0.01  # an image with nothing above the threshold
    args = dict(score_threshold=0.3, pre_nms_topk=300, iou_threshold=0.5, max_detections=25)
    padded = postprocess_dense_padded(boxes, scores, **args)
    assert padded.boxes.shape == (3, 25, 4) and padded.scores.shape == padded.labels.shape == (3, 25)
    assert padded.labels.dtype == padded.counts.dtype == torch.long
    assert_same(unpad(padded), reference(boxes, scores, *args.values()))
    assert padded.counts.tolist()[2] == 0 and padded.counts[0] == 25  # the cap binds on image 0
    rows = torch.arange(25)[None, :] >= padded.counts[:, None]
    assert not padded.boxes[rows].any() and not padded.scores[rows].any() and not padded.labels[rows].any()


def test_padded_postprocess_class_specific_boxes_and_no_candidate_at_all():
    boxes, scores = make(2, 120, 3, class_specific=True, seed=3)
    args = dict(score_threshold=0.2, pre_nms_topk=100, iou_threshold=0.4, max_detections=10)
    assert_same(unpad(postprocess_dense_padded(boxes, scores, **args)), reference(boxes, scores, *args.values()))
    nothing = postprocess_dense_padded(boxes, scores * 0, **args)
    assert nothing.counts.tolist() == [0, 0] and not nothing.boxes.any()


def test_padded_postprocess_class_agnostic_equals_flat():
    boxes, scores = make(2, 80, 1, class_specific=False, seed=4)
    valid = scores[..., 0] > 0.2
    labels = torch.randint(1, 4, valid.shape, generator=torch.Generator().manual_seed(0))
    for agnostic in (True, False):
        padded = postprocess_padded(
            boxes, scores[..., 0], labels, valid, iou_threshold=0.3, max_detections=15, class_agnostic=agnostic
        )
        image_index = torch.arange(2)[:, None].expand_as(valid)
        flat = postprocess_flat(
            boxes[valid], scores[..., 0][valid], labels[valid], image_index[valid],
            num_images=2, iou_threshold=0.3, max_detections=15, class_agnostic=agnostic,
        )  # fmt: skip
        assert_same(unpad(padded), flat)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
def test_padded_postprocess_traces_with_a_dynamic_batch():
    args = dict(score_threshold=0.3, pre_nms_topk=50, iou_threshold=0.5, max_detections=8)

    def run(boxes, scores):
        return tuple(postprocess_dense_padded(boxes, scores, **args))

    traced = torch.jit.trace(run, make(2, 60, 3, class_specific=False), check_trace=False)
    boxes, scores = make(5, 60, 3, class_specific=False, seed=5)
    for got, want in zip(traced(boxes, scores), run(boxes, scores), strict=True):
        assert torch.equal(got, want)
