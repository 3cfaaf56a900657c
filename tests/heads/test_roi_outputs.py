"""The RoI heads' test-time decoding: per-image cap of (RoI, class) pairs, per-class NMS and
max detections, against a plain per-image loop over torchvision.ops.nms; the ragged and the
padded (export) paths select the same detections."""

import torch
from torchvision.ops import nms

from detkit.coders.delta_xywh import DeltaXYWHCoder
from detkit.heads.roi_outputs import padded_roi_detections, roi_candidates, roi_detections

CODER = DeltaXYWHCoder((10.0, 10.0, 5.0, 5.0))
SETTINGS = dict(coder=CODER, score_threshold=0.1, nms_threshold=0.5, max_detections=20)


def random_outputs(rois_per_image, num_classes, seed):
    g = torch.Generator().manual_seed(seed)
    total = sum(rois_per_image)
    xy = torch.rand(total, 2, generator=g) * 100
    roi_boxes = torch.cat((xy, xy + torch.rand(total, 2, generator=g) * 50 + 4), 1)
    roi_image = torch.cat([torch.full((n,), i) for i, n in enumerate(rois_per_image)])
    class_scores = torch.rand(total, num_classes, generator=g) ** 2
    box_deltas = torch.randn(total, num_classes, 4, generator=g) * 0.5
    image_sizes = torch.tensor([[120, 140]] * len(rois_per_image))
    return class_scores, box_deltas, roi_boxes, roi_image, image_sizes


def reference(class_scores, box_deltas, roi_boxes, roi_image, image_sizes, pre_nms_topk):
    """Per image: the candidates above the threshold, its best ``pre_nms_topk``, NMS per class, cap."""
    boxes, scores, keep = roi_candidates(
        class_scores,
        box_deltas,
        roi_boxes,
        image_sizes[roi_image],
        coder=CODER,
        score_threshold=SETTINGS["score_threshold"],
    )
    out = []
    for image in range(image_sizes.shape[0]):
        roi, cls = (keep & (roi_image == image)[:, None]).nonzero(as_tuple=True)
        s = scores[roi, cls]
        best = s.argsort(descending=True)[:pre_nms_topk]
        roi, cls, s = roi[best], cls[best], s[best]
        chosen = []
        for c in cls.unique().tolist():
            members = (cls == c).nonzero().squeeze(1)
            chosen += members[nms(boxes[roi[members], c], s[members], SETTINGS["nms_threshold"])].tolist()
        chosen = sorted(chosen, key=lambda i: -float(s[i]))[: SETTINGS["max_detections"]]
        out.append({"boxes": boxes[roi[chosen], cls[chosen]], "scores": s[chosen], "labels": cls[chosen] + 1})
    return out


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(g[key], w[key]), key


def test_roi_detections_match_the_per_image_loop_with_and_without_a_binding_cap():
    outputs = random_outputs([60, 0, 45], num_classes=4, seed=0)
    uncapped = roi_detections(*outputs, **SETTINGS, pre_nms_topk=10_000)
    assert_same(uncapped, reference(*outputs, pre_nms_topk=10_000))
    capped = roi_detections(*outputs, **SETTINGS, pre_nms_topk=15)
    assert_same(capped, reference(*outputs, pre_nms_topk=15))
    assert len(capped[0]["scores"]) < len(uncapped[0]["scores"])  # the cap of 15 did bind
    assert capped[1]["boxes"].shape == (0, 4)


def test_padded_roi_detections_select_the_same():
    class_scores, box_deltas, roi_boxes, _, image_sizes = random_outputs([50, 50], num_classes=3, seed=1)
    valid = torch.ones(2, 50, dtype=torch.bool)
    valid[1, 30:] = False  # padding proposals take no part
    for topk in (12, 10_000):
        padded = padded_roi_detections(
            class_scores, box_deltas, roi_boxes.view(2, 50, 4), valid, image_sizes, **SETTINGS, pre_nms_topk=topk
        )
        real = valid.reshape(-1)
        want = roi_detections(
            class_scores[real], box_deltas[real], roi_boxes[real], torch.tensor([0] * 50 + [1] * 30), image_sizes,
            **SETTINGS, pre_nms_topk=topk,
        )  # fmt: skip
        for image, w in enumerate(want):
            n = int(padded.counts[image])
            assert n == len(w["scores"])
            torch.testing.assert_close(padded.boxes[image, :n], w["boxes"])
            assert torch.equal(padded.scores[image, :n], w["scores"]) and torch.equal(
                padded.labels[image, :n], w["labels"]
            )
