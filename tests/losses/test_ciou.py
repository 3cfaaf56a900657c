"""CIoU loss (YOLOv4's box loss) against its formula (Zheng et al., 2020), written out here:
1 − IoU + ρ²/c² + α·v, v = 4/π²·(atan(w_gt/h_gt) − atan(w/h))², α = v / (1 − IoU + v)."""

import math

import torch

from detkit.losses.iou import iou_loss


def ciou_by_formula(box, gt):
    (x1, y1, x2, y2), (g1, h1, g2, h2) = box, gt
    inter = max(0.0, min(x2, g2) - max(x1, g1)) * max(0.0, min(y2, h2) - max(y1, h1))
    union = (x2 - x1) * (y2 - y1) + (g2 - g1) * (h2 - h1) - inter
    iou = inter / union
    centre_distance = ((x1 + x2) / 2 - (g1 + g2) / 2) ** 2 + ((y1 + y2) / 2 - (h1 + h2) / 2) ** 2
    diagonal = (max(x2, g2) - min(x1, g1)) ** 2 + (max(y2, h2) - min(y1, h1)) ** 2
    v = 4 / math.pi**2 * (math.atan((g2 - g1) / (h2 - h1)) - math.atan((x2 - x1) / (y2 - y1))) ** 2
    alpha = v / (1 - iou + v)
    return 1 - iou + centre_distance / diagonal + alpha * v


def test_hand_computed_pair():
    # Boxes 0..4 × 0..2 and 1..3 × 0..2: IoU 4/8 = 0.5, centres 0 apart in y and 0 in x (both at
    # (2, 1)) so ρ = 0; v = 4/π²·(atan(2/2) − atan(4/2))².
    loss = iou_loss(torch.tensor([[0.0, 0, 4, 2]]), torch.tensor([[1.0, 0, 3, 2]]), kind="ciou")
    v = 4 / math.pi**2 * (math.atan(1.0) - math.atan(2.0)) ** 2
    torch.testing.assert_close(loss, torch.tensor([0.5 + v * v / (0.5 + v)]))


def test_random_pairs_against_the_formula():
    torch.manual_seed(0)
    corners = torch.rand(50, 2) * 50
    boxes = torch.cat((corners, corners + 5 + torch.rand(50, 2) * 30), dim=1)
    shift = torch.randn(50, 4) * 6
    gt = boxes + shift
    gt[:, 2:] = torch.maximum(gt[:, 2:], gt[:, :2] + 2)
    got = iou_loss(boxes, gt, kind="ciou")
    expected = torch.tensor([ciou_by_formula(b.tolist(), g.tolist()) for b, g in zip(boxes, gt, strict=True)])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # Identical boxes cost nothing.
    torch.testing.assert_close(iou_loss(boxes, boxes, kind="ciou"), torch.zeros(50), rtol=0, atol=1e-5)
