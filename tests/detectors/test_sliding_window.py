"""The sliding-window detector (R-CNN over the window grid): training step, windows scored, export."""

from __future__ import annotations

import pytest
import torch

from detkit.analysis.checks.windows import box_statistics, proposal_statistics, with_method
from detkit.engine.build import build_model, load_config
from detkit.export.graphs import detection_graph
from detkit.proposals.sliding_windows import SlidingWindows, count_windows

# Two window sizes over a 64 px image keep every test in seconds.
SMALL = ["model.proposal_generator.sizes=[16,32]", "model.crop_size=32", "model.context_padding=2"]


def _model(config: str = "sliding_window_lenet_shapes", *overrides: str):
    torch.manual_seed(0)
    return build_model(load_config([f"config={config}", *SMALL, *overrides]), num_classes=5)


def _targets() -> list[dict]:
    return [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 28.0]]), "labels": torch.tensor([2]), "image_id": 0},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": 1},
    ]


@pytest.mark.parametrize("config", ["sliding_window_lenet_shapes", "sliding_window_mobilenet_v1_shapes"])
def test_one_training_step_has_finite_losses(config: str) -> None:
    model = _model(
        config, "model.backbone.width_mult=0.25" if "mobilenet" in config else "model.head.hidden_dim=16"
    ).train()
    losses = model(torch.rand(2, 3, 64, 64), _targets())
    assert set(losses) == {"loss_cls", "loss_box"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def test_eval_scores_every_window_and_reports_how_many() -> None:
    model = _model().eval()
    generator = model.proposal_generator
    assert isinstance(generator, SlidingWindows)
    with torch.no_grad():
        detections = model([torch.rand(3, 64, 64), torch.rand(3, 48, 64)])
    expected = [
        count_windows(h, w, sizes=[16, 32], aspect_ratios=[0.5, 1.0, 2.0], stride_fraction=0.34)
        for h, w in [(64, 64), (48, 64)]
    ]
    assert generator.last_windows_per_image == expected and expected[0] > expected[1] > 0
    for detection in detections:
        assert detection["boxes"].shape[1] == 4 and len(detection["scores"]) <= 100


def test_the_experiment_scores_ten_times_more_windows_than_selective_search_proposes() -> None:
    # ~125 selective-search proposals per 160 px shapes image (configs/config/rcnn_resnet18_shapes.yaml).
    model = build_model(load_config(["config=sliding_window_lenet_shapes"]), num_classes=5)
    assert model.proposal_generator.windows_per_image(160, 160) == 3501


def test_box_statistics_count_boxes_and_recall() -> None:
    generator = SlidingWindows(sizes=[32], aspect_ratios=[1.0], stride_fraction=1.0)  # 4 windows on 64 x 64
    target = {
        "boxes": torch.tensor([[0.0, 0, 32, 32], [8.0, 8, 24, 24]]),
        "proposals": torch.tensor([[8.0, 8, 24, 24]]),
    }
    stats = box_statistics(generator, [(torch.zeros(3, 64, 64), target)])
    assert stats["windows"]["boxes_per_image"] == 4 and stats["proposals"]["boxes_per_image"] == 1
    # The first object is a window exactly; the second, 16 x 16 inside it, overlaps it by 0.25.
    assert stats["windows"]["recall@0.5"] == 0.5
    # The proposal is the second object; the first object contains it: IoU 0.25.
    assert stats["proposals"]["recall@0.5"] == 0.5


def test_compare_windows_counts_each_methods_proposals_on_a_config_of_its_own() -> None:
    cfg = load_config(["config=rcnn_resnet18_shapes"])
    edge = with_method(cfg, "edge_boxes")
    assert edge.data.proposals.wrapper.method == "edge_boxes"
    assert cfg.data.proposals.wrapper.method == "selective_search"  # the experiment's own config is untouched
    proposals = torch.tensor([[0.0, 0, 32, 30], [40.0, 40, 60, 60]])
    target = {"boxes": torch.tensor([[0.0, 0, 32, 32]]), "proposals": proposals}
    stats = proposal_statistics([(torch.zeros(3, 64, 64), target)])
    assert stats["boxes_per_image"] == 2 and stats["recall@0.5"] == 1.0 and stats["recall@0.7"] == 1.0


def test_export_refuses_the_sliding_window_detector() -> None:
    with pytest.raises(ValueError, match="sliding-window detector"):
        detection_graph(_model(), input_size=64)


def test_without_box_refinement_the_windows_are_the_boxes() -> None:
    model = _model("sliding_window_lenet_shapes", "model.head.box_refinement=false", "model.head.score_threshold=0.0")
    losses = model.train()(torch.rand(2, 3, 64, 64), _targets())
    assert losses["loss_box"].item() == 0.0
    with torch.no_grad():
        detections = model.eval()([torch.rand(3, 64, 64)])
    windows = model.proposal_generator.grid(64, 64)
    # Every detected box is one of the grid's windows, unchanged.
    assert len(detections[0]["boxes"]) > 0
    gaps = (detections[0]["boxes"][:, None, :] - windows[None, :, :]).abs().amax(dim=2)
    assert gaps.min(dim=1).values.max() < 1e-4
