"""Losses shared by the detectors and the standard names of their outputs.

The engine sums every key that starts with ``loss_``; detectors use these names so that logs
and TensorBoard curves line up across detectors.
"""

from detkit.losses.box import smooth_l1, zero_loss
from detkit.losses.classification import binary_cross_entropy, cross_entropy
from detkit.losses.focal import focal_loss

LOSS_KEYS = ("loss_rpn_cls", "loss_rpn_box", "loss_cls", "loss_box", "loss_obj", "loss_noobj")

__all__ = ["LOSS_KEYS", "binary_cross_entropy", "cross_entropy", "focal_loss", "smooth_l1", "zero_loss"]
