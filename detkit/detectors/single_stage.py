"""Single-stage detectors: backbone → optional neck → dense head. SSD, YOLOv1 and YOLOv3 are this
class with different heads; each head owns its priors, assigner, box coder, ``loss`` and ``predict``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from detkit.detectors.base import Detector, with_backbone_normalization
from detkit.heads.base import DenseHead
from detkit.structures import Detections, FeatureInfo, Target
from detkit.utils.stages import stage


class SingleStageDetector(Detector):
    """``neck`` and ``head`` are factories (``_partial_: true`` in the config). The neck is called
    with ``feature_info`` (the backbone's) and must expose its own ``feature_info``; the head is
    called with ``feature_info`` (of what feeds it) and ``num_classes``.

    The head follows the dense-head contract, ``detkit.heads.base.DenseHead``. ``multiscale``
    (optional, e.g. ``detkit.detectors.multiscale.MultiScaleTraining``) resizes training batches.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: Callable[..., nn.Module],
        num_classes: int,
        neck: Callable[..., nn.Module] | None = None,
        multiscale: nn.Module | None = None,
        **detector_kwargs,
    ) -> None:
        super().__init__(**with_backbone_normalization(backbone, detector_kwargs))
        self.backbone = backbone
        feature_info: list[FeatureInfo] = list(backbone.feature_info)
        self.neck = neck(feature_info=feature_info) if neck is not None else None
        if self.neck is not None:
            feature_info = list(self.neck.feature_info)
        self.head: DenseHead = head(feature_info=feature_info, num_classes=num_classes)
        self.num_classes = num_classes
        self.multiscale = multiscale

    def features(self, batch: Tensor) -> dict[str, Tensor]:
        with stage("backbone"):
            features = self.backbone(batch)
        if self.neck is None:
            return features
        with stage("neck"):
            return self.neck(features)

    def loss(self, batch: Tensor, image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        if self.multiscale is not None:
            batch, image_sizes, targets = self.multiscale(batch, image_sizes, targets)
        features = self.features(batch)
        with stage("head"):
            return self.head.loss(features, image_sizes, targets)

    def predict(self, batch: Tensor, image_sizes: Tensor, targets: list[Target] | None) -> list[Detections]:
        return self.head.predict(self.features(batch), image_sizes)
