import pytest
import torch

from detkit.detectors.base import merge_losses


def test_stage_losses_are_merged_and_a_name_used_twice_is_refused():
    rpn = {"loss_rpn_cls": torch.tensor(1.0), "loss_rpn_box": torch.tensor(2.0)}
    roi = {"loss_cls": torch.tensor(3.0), "loss_box": torch.tensor(4.0)}
    merged = merge_losses(rpn, roi)
    assert {key: float(value) for key, value in merged.items()} == {
        "loss_rpn_cls": 1.0, "loss_rpn_box": 2.0, "loss_cls": 3.0, "loss_box": 4.0
    }  # fmt: skip
    assert "loss_cls" not in rpn  # the stages' own dicts are left alone
    with pytest.raises(ValueError, match=r"same losses: \['loss_cls'\]"):
        merge_losses(roi, {"loss_cls": torch.tensor(0.0)})
