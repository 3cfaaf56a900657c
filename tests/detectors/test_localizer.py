"""The single-object localiser end to end: a training step on each backbone's experiment, the
evaluation's localisation metrics, and export of its one detection per image."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from detkit.engine.build import build_model, load_config
from detkit.engine.inference import evaluate_model, is_localizer
from detkit.export.graphs import detection_graph

BACKBONES = ("mobilenet_v1", "resnet18", "vgg16")


def _targets(count: int) -> list[dict]:
    return [
        {"boxes": torch.tensor([[8.0, 10.0, 40.0, 50.0]]), "labels": torch.tensor([1 + i]), "image_id": i}
        for i in range(count)
    ]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_one_training_step_per_experiment(backbone: str) -> None:
    torch.manual_seed(0)
    overrides = ["model.backbone.width_mult=0.25"] if backbone == "mobilenet_v1" else []
    model = build_model(load_config([f"config=localizer_{backbone}_shapes_single", *overrides]), num_classes=5)
    assert is_localizer(model)
    losses = model.train()(torch.rand(2, 3, 64, 64), _targets(2))
    assert set(losses) == {"loss_cls", "loss_box"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


class _OneObjectImages(Dataset):
    """Four 64 px images, one object each, with COCO ground truth (what the evaluator reads)."""

    category_ids = [1, 2, 3, 4, 5]
    class_names = ["a", "b", "c", "d", "e"]

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        target = _targets(4)[index]
        return torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(index)), target

    def coco_ground_truth(self) -> dict:
        return {
            "images": [{"id": i, "width": 64, "height": 64} for i in range(4)],
            "annotations": [
                {
                    "id": i + 1,
                    "image_id": i,
                    "category_id": 1 + i,
                    "bbox": [8.0, 10.0, 32.0, 40.0],
                    "area": 1280.0,
                    "iscrowd": 0,
                }
                for i in range(4)
            ],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)],
        }


def test_evaluation_adds_the_localisation_metrics() -> None:
    torch.manual_seed(0)
    model = build_model(load_config(["config=localizer_resnet18_shapes_single"]), num_classes=5)
    metrics = evaluate_model(model, _OneObjectImages(), torch.device("cpu"), batch_size=2)
    localization = metrics["localization"]
    assert localization["images"] == 4 and localization["missing_predictions"] == 0
    assert 0.0 <= localization["classification_error"] <= 1.0 and 0.0 <= localization["mean_iou_all"] <= 1.0
    assert metrics["counts"]["detections"] == 4  # exactly one detection per image


def test_export_graph_keeps_the_single_detection() -> None:
    torch.manual_seed(0)
    model = build_model(load_config(["config=localizer_resnet18_shapes_single"]), num_classes=5).eval()
    images = torch.rand(2, 3, 64, 64)
    graph = detection_graph(model, input_size=64)
    with torch.no_grad():
        boxes, scores, labels, *_ = graph(images)
        expected = model(images)
    for i in range(2):
        torch.testing.assert_close(boxes[i, :1], expected[i]["boxes"])
        torch.testing.assert_close(scores[i, :1], expected[i]["scores"])
        assert int(labels[i, 0]) == int(expected[i]["labels"][0])
