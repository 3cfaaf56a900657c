"""A detector given the loader's uint8 pixels computes exactly what it computes from the same
image as floats in [0, 1]: losses and detections are bit-identical, for each detector family."""

import pytest
import torch

from detkit.engine.build import build_model, load_config
from detkit.ops.pixels import to_unit_float

NUM_CLASSES = 5


def _pixels(size: int) -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


TARGETS = [
    {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1]), "image_id": 0},
    {"boxes": torch.tensor([[10.0, 10.0, 40.0, 30.0]]), "labels": torch.tensor([3]), "image_id": 1},
]


@pytest.mark.parametrize("experiment", ["ssd_resnet18_shapes", "yolov3_resnet18_shapes", "faster_rcnn_resnet18_shapes"])
def test_uint8_and_float_inputs_give_identical_outputs(experiment):
    torch.manual_seed(0)
    model = build_model(load_config([f"config={experiment}", "model.backbone.pretrained=false"]), NUM_CLASSES)
    pixels = _pixels(64)
    floats = to_unit_float(pixels)
    model.train()
    torch.manual_seed(1)  # the samplers draw random numbers: the same draws for both inputs
    from_uint8 = model(pixels, TARGETS)
    torch.manual_seed(1)
    from_float = model(floats, TARGETS)
    assert from_uint8.keys() == from_float.keys()
    for name in from_uint8:
        assert torch.equal(from_uint8[name], from_float[name]), name
    model.eval()
    with torch.no_grad():
        # A list of images of different sizes takes the stacking path.
        got = model([pixels[0], pixels[1, :, :48, :56]])
        want = model([floats[0], floats[1, :, :48, :56]])
    for det_uint8, det_float in zip(got, want, strict=True):
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(det_uint8[key], det_float[key]), key
