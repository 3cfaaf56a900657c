"""The single-object localisation head: targets, losses, one detection per image, learning."""

from __future__ import annotations

import torch

from detkit.heads.localization import LocalizationHead, single_object_targets
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("c4", 8, 16)]
SIZES = torch.tensor([[64, 128], [64, 64]])


def _head(**kwargs) -> LocalizationHead:
    torch.manual_seed(0)
    return LocalizationHead(feature_info=INFO, num_classes=3, reduce_channels=4, pool_size=2, hidden_dim=16, **kwargs)


def _target(boxes: list[list[float]], labels: list[int]) -> dict:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def test_targets_are_the_largest_object_normalised_by_the_image() -> None:
    targets = [_target([[0, 0, 10, 10], [32, 16, 96, 48]], [1, 2]), _target([], [])]
    labels, boxes, has_object = single_object_targets(targets, SIZES)
    assert labels.tolist() == [2, 0] and has_object.tolist() == [True, False]
    # Largest box: centre (64, 32), size 64 x 32 in a 128 wide, 64 high image.
    torch.testing.assert_close(boxes[0], torch.tensor([0.5, 0.5, 0.5, 0.5]))
    torch.testing.assert_close(boxes[1], torch.zeros(4))


def test_losses_are_finite_and_an_empty_batch_has_zero_box_loss() -> None:
    head = _head()
    features = {"c4": torch.randn(2, 8, 4, 8)}
    losses = head.loss(features, SIZES, [_target([[10, 10, 50, 40]], [3]), _target([], [])])
    assert set(losses) == {"loss_cls", "loss_box"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_box"] > 0
    empty = head.loss(features, SIZES, [_target([], []), _target([], [])])
    assert empty["loss_box"].item() == 0.0
    sum(empty.values()).backward()
    assert all(p.grad is not None for p in head.parameters())


def test_predict_gives_one_detection_per_image_inside_it() -> None:
    head = _head().eval()
    detections = head.predict({"c4": torch.randn(2, 8, 4, 8)}, SIZES)
    assert len(detections) == 2
    for detection, (height, width) in zip(detections, SIZES.tolist(), strict=True):
        assert detection["boxes"].shape == (1, 4) and detection["scores"].shape == (1,)
        assert 1 <= int(detection["labels"]) <= 3
        assert (detection["boxes"][:, 0::2] <= width).all() and (detection["boxes"][:, 1::2] <= height).all()
        assert (detection["boxes"] >= 0).all()
    # The dense form (used by export) holds the same best (box, class) pair.
    boxes, scores = head.dense_predictions({"c4": torch.randn(2, 8, 4, 8)}, SIZES)
    assert boxes.shape == (2, 1, 4) and scores.shape == (2, 1, 3)


def test_head_learns_a_fixed_box_and_class() -> None:
    head = _head()
    features = {"c4": torch.randn(4, 8, 4, 8, generator=torch.Generator().manual_seed(1))}
    sizes = SIZES[:1].expand(4, 2)
    targets = [_target([[16, 8, 80, 40]], [2])] * 4
    optimizer = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(150):
        loss = sum(head.loss(features, sizes, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    detection = head.eval().predict(features, sizes)[0]
    assert int(detection["labels"]) == 2
    torch.testing.assert_close(detection["boxes"][0], torch.tensor([16.0, 8, 80, 40]), atol=2.0, rtol=0)
