"""The detections' one-transfer copy to the host keeps every value and type."""

import torch

from detkit.structures import detections_to_host


def test_detections_to_host_keeps_values_and_types():
    detections = [
        {"boxes": torch.tensor([[1.5, 2, 30, 40], [0, 0, 5, 5]]), "scores": torch.tensor([0.9, 0.25]),
         "labels": torch.tensor([3, 20])},
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)},
        {"boxes": torch.tensor([[7.0, 8, 9, 10]], dtype=torch.bfloat16),
         "scores": torch.tensor([0.5], dtype=torch.bfloat16), "labels": torch.tensor([16_000_000])},
    ]  # fmt: skip
    host = detections_to_host(detections)
    assert len(host) == 3
    for got, want in zip(host, detections, strict=True):
        assert got["boxes"].dtype == got["scores"].dtype == torch.float32 and got["labels"].dtype == torch.long
        assert got["boxes"].device.type == "cpu"
        assert torch.equal(got["boxes"], want["boxes"].float()) and torch.equal(got["scores"], want["scores"].float())
        assert torch.equal(got["labels"], want["labels"])
    assert host[1]["boxes"].shape == (0, 4) and host[1]["labels"].shape == (0,)
    assert detections_to_host([]) == []
