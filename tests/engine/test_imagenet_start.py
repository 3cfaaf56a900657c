"""The ImageNet-start experiments: one per detector family, each building its detector on the
installed EfficientNet-Lite0 weights with the fine-tuning choices it states, and training a step;
a from-scratch run on one's own data names the experiment that starts from ImageNet."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from detkit.backbones.efficientnet_lite import PIXEL_MEAN, installed_weights_file, read_weights
from detkit.engine.build import build_model
from detkit.engine.config import config_dir, load_config
from detkit.engine.imagenet_start import from_scratch_hint, imagenet_experiment_for

FAMILIES = (
    "faster_rcnn",
    "fast_rcnn",
    "rcnn",
    "rfcn",
    "spp_net",
    "retinanet",
    "ssd",
    "yolov1",
    "yolov2",
    "yolov3",
    "yolov4",
)
EXPERIMENTS = sorted(path.stem for path in (config_dir() / "config").glob("*_efficientnet_lite0.yaml"))


def test_every_family_has_an_imagenet_start() -> None:
    assert EXPERIMENTS == sorted(f"{family}_efficientnet_lite0" for family in FAMILIES)


def _batch(size: int = 96):
    """Two images with one bright square each, its box, and proposals around it and elsewhere."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, size, size, generator=generator) * 0.2
    targets = []
    for index in range(2):
        x, y = 10 + 12 * index, 20
        box = torch.tensor([[x, y, x + 36, y + 36]], dtype=torch.float32)
        images[index, :, y : y + 36, x : x + 36] = 0.9
        proposals = torch.cat(
            (box + torch.randn(8, 4, generator=generator) * 2, torch.tensor([[0.0, 60, 30, 90]]))
        )
        targets.append({"boxes": box, "labels": torch.ones(1, dtype=torch.long), "image_id": index,
                        "proposals": proposals.clamp(0, size)})  # fmt: skip
    return images, targets


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    return read_weights(installed_weights_file())


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_starts_from_imagenet_and_trains_a_step(experiment: str, imagenet_state) -> None:
    cfg = load_config(
        [f"config={experiment}", "model.multiscale=null"]
        if "yolov2" in experiment
        else [f"config={experiment}"]
    )
    assert cfg.model.backbone.pretrained is True and cfg.model.backbone.frozen_stages == 1
    # Schedules sized to the data with a floor: 1000 iterations (SSD 900: its towers make a step dearer).
    assert cfg.engine.refit_priors is True and cfg.engine.min_iters >= 900
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=3).train()
    # The trunk holds the file's ImageNet tensors and normalises inputs as they expect.
    own = model.backbone.state_dict()
    assert torch.equal(own["stem.0.weight"], imagenet_state["stem.0.weight"])
    assert torch.equal(own["blocks.4.project.0.weight"], imagenet_state["blocks.4.project.0.weight"])
    assert torch.allclose(model.pixel_mean.flatten(), torch.tensor(PIXEL_MEAN))
    stem_and_stage_1 = [
        p for group in model.backbone.stage_modules()[:2] for m in group for p in m.parameters()
    ]
    assert not any(p.requires_grad for p in stem_and_stage_1)
    images, targets = _batch()
    losses = model(images, targets)
    total = sum(value for key, value in losses.items() if key.startswith("loss_"))
    assert torch.isfinite(total), losses
    total.backward()
    trained = [p for p in model.backbone.stage_modules()[2][0].parameters()]
    assert trained and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)


def test_from_scratch_run_on_own_data_names_the_imagenet_experiment() -> None:
    own_data = [
        "data=coco",
        "data.train.ann_file=a.json",
        "data.train.img_dir=i",
        "data.val.ann_file=b.json",
        "data.val.img_dir=i",
    ]
    cfg = load_config(["config=faster_rcnn_mobilenet_v1_shapes", *own_data])
    assert "config=faster_rcnn_efficientnet_lite0" in from_scratch_hint(cfg)
    assert "config=rfcn_efficientnet_lite0" in from_scratch_hint(
        load_config(["config=rfcn_mobilenet_v1_shapes_quick", *own_data])
    )
    assert from_scratch_hint(load_config([*own_data])) is None  # the default experiment starts from ImageNet
    # Nothing to say on the built-in data, with a pretrained backbone, or for the ImageNet start itself.
    assert from_scratch_hint(load_config(["config=faster_rcnn_mobilenet_v1_shapes"])) is None
    pretrained = load_config(
        ["config=faster_rcnn_resnet18_shapes", *own_data, "model.backbone.pretrained=/w.pth"]
    )
    assert from_scratch_hint(pretrained) is None
    assert from_scratch_hint(load_config(["config=faster_rcnn_efficientnet_lite0", *own_data])) is None
    assert imagenet_experiment_for("faster_rcnn_fpn_resnet18_shapes") == "faster_rcnn_efficientnet_lite0"
    assert imagenet_experiment_for("yolov3_vgg16_voc0712") == "yolov3_efficientnet_lite0"
    assert imagenet_experiment_for("sliding_window_lenet_shapes") is None
    assert OmegaConf.select(cfg, "model.backbone.pretrained") is False
