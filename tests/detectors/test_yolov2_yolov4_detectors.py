"""YOLOv2 and YOLOv4 as configured in configs/config/: the papers' parts are in place. The training
step per backbone, negative samples and eval-mode output are in test_yolo_detectors.py."""

from detkit.detectors.multiscale import MultiScaleTraining
from detkit.engine.build import build_model, load_config
from detkit.heads.yolov2 import YOLOv2Head
from detkit.necks.pan import PANNeck
from detkit.necks.passthrough import PassthroughNeck


def build(detector, backbone, *overrides):
    cfg = load_config([f"config={detector}_{backbone}_shapes", *overrides])
    return build_model(cfg, num_classes=5)


def test_configs_hold_the_papers_parts():
    v2 = build("yolov2", "mobilenet_v1")
    assert isinstance(v2.neck, PassthroughNeck) and isinstance(v2.head, YOLOv2Head)
    assert v2.head.anchor_grid.anchors.shape == (1, 5, 2) and v2.head.class_activation == "softmax"
    assert isinstance(v2.multiscale, MultiScaleTraining) and v2.multiscale.candidate_sizes(160) == (128, 160, 192, 224)
    v4 = build("yolov4", "mobilenet_v1")
    assert isinstance(v4.neck, PANNeck) and v4.head.box_loss == "ciou" and v4.head.scale_xy > 1
    assert v4.head.extra_positive_threshold is not None and v4.multiscale is None
    assert isinstance(build("yolov4", "mobilenet_v1", "model.neck.csp=true").neck, PANNeck)
