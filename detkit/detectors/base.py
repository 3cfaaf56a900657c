"""What every detector shares: input handling, target checks and the train/eval dispatch.

``detector(images, targets)`` in ``train()`` mode returns ``dict[str, Tensor]`` of losses; in
``eval()`` mode a list of ``Detections`` in the input images' pixels. ``targets`` are optional in
eval mode; detectors that read precomputed proposals take them from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.backbones.base import IMAGENET_MEAN, IMAGENET_STD
from detkit.ops.image_sizes import image_sizes_tensor
from detkit.ops.pixels import common_dtype, to_unit_float
from detkit.structures import Detections, FeatureInfo, Target
from detkit.utils.stages import stage


def with_backbone_normalization(backbone: nn.Module, detector_kwargs: dict) -> dict:
    """``detector_kwargs`` with the input normalisation the backbone's weights expect
    (``backbone.pixel_mean`` / ``pixel_std``) filled in where the config does not set one."""
    return {
        "pixel_mean": getattr(backbone, "pixel_mean", IMAGENET_MEAN),
        "pixel_std": getattr(backbone, "pixel_std", IMAGENET_STD),
        **detector_kwargs,
    }


def backbone_output(backbone: nn.Module, feature_name: str, owner: str = "backbone") -> FeatureInfo:
    """The backbone (or neck: ``owner="neck"``) output a single-map detector reads (name, channels,
    stride), or a clear error naming the outputs it has."""
    infos = {info.name: info for info in backbone.feature_info}
    if feature_name not in infos:
        setting = "model.backbone.out_features" if owner == "backbone" else "model.feature_name"
        raise ValueError(f"{owner} has no output {feature_name!r}; it has {sorted(infos)} (set {setting})")
    return infos[feature_name]


def build_neck(backbone: nn.Module, neck: Callable[..., nn.Module] | None) -> nn.Module | None:
    """A single-map detector's optional neck, built on the backbone's outputs."""
    return neck(feature_info=list(backbone.feature_info)) if neck is not None else None


def one_map_output(backbone: nn.Module, neck: nn.Module | None, feature_name: str) -> FeatureInfo:
    """The map a single-map detector reads: a backbone output, or the neck's where it has one."""
    return backbone_output(backbone, feature_name) if neck is None else backbone_output(neck, feature_name, "neck")


def read_one_map(backbone: nn.Module, neck: nn.Module | None, feature_name: str, batch: Tensor) -> Tensor:
    """``Tensor[N, C, H', W']``: that map for a normalised ``batch``."""
    with stage("backbone"):
        outputs = backbone(batch)
    if neck is None:
        return outputs[feature_name]
    with stage("neck"):
        return neck(outputs)[feature_name]


class Detector(nn.Module):
    def __init__(
        self,
        *,
        pixel_mean: Sequence[float] = IMAGENET_MEAN,
        pixel_std: Sequence[float] = IMAGENET_STD,
        size_divisor: int = 32,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, 3, 1, 1), persistent=False)
        self.size_divisor = size_divisor
        # channels_last pays off on GPUs with tensor cores (and AMP); on CPUs it depends on the build.
        self.channels_last = channels_last

    def use_channels_last(self) -> Detector:
        """Store weights and feed inputs channels-last (NHWC): faster convolutions on tensor-core
        GPUs and on recent CPU builds (oneDNN)."""
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor | list[Tensor], targets: list[Target] | None = None):
        with stage("preprocess"):
            batch, image_sizes = self.preprocess(images)
        if self.training:
            if targets is None:
                raise ValueError("a detector in train() mode needs targets; call model.eval() for inference")
            check_targets(targets, image_sizes)
            return self.loss(batch, image_sizes, targets)
        return self.predict(batch, image_sizes, targets)

    def loss(self, batch: Tensor, image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        raise NotImplementedError

    def predict(self, batch: Tensor, image_sizes: Tensor, targets: list[Target] | None) -> list[Detections]:
        raise NotImplementedError

    def preprocess(self, images: Tensor | list[Tensor]) -> tuple[Tensor, Tensor]:
        """Stack (padding right/bottom to a multiple of ``size_divisor``) and normalise. Images
        are float in [0, 1] or uint8 in 0..255 (a list may mix them).

        Returns ``batch: Tensor[N, 3, H, W]`` and ``image_sizes: Tensor[N, 2]`` (height, width of
        each image before padding; a batched input tensor counts as unpadded).
        """
        if isinstance(images, Tensor):
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(
                    f"images must be Tensor[N, 3, H, W] or a list of Tensor[3, H, W], got {tuple(images.shape)}"
                )
            sizes = [tuple(images.shape[-2:])] * images.shape[0]
            batch = images
        else:
            for i, image in enumerate(images):
                if image.dim() != 3 or image.shape[0] != 3:
                    raise ValueError(f"image {i} must be Tensor[3, H, W], got {tuple(image.shape)}")
            sizes = [tuple(image.shape[-2:]) for image in images]
            height = max(s[0] for s in sizes)
            width = max(s[1] for s in sizes)
            dtype = common_dtype(images) if any(image.dtype == torch.uint8 for image in images) else images[0].dtype
            batch = images[0].new_zeros((len(images), 3, height, width), dtype=dtype)
            for i, image in enumerate(images):
                batch[i, :, : image.shape[1], : image.shape[2]] = (
                    image if dtype == torch.uint8 else to_unit_float(image)
                )
        # Built on the host and copied without blocking; the heads read the host copy back.
        return self.normalize(batch), image_sizes_tensor(sizes, batch.device)

    def normalize(self, batch: Tensor) -> Tensor:
        """``batch: Tensor[N, 3, H, W]`` float in [0, 1] or uint8 in 0..255 → normalised, padded
        right/bottom to a multiple of ``size_divisor`` (and channels-last when set): what the
        backbone reads. uint8 batches (the loader's) are scaled here, on the model's device."""
        pad_h = (-batch.shape[2]) % self.size_divisor
        pad_w = (-batch.shape[3]) % self.size_divisor
        batch = (to_unit_float(batch).float() - self.pixel_mean) / self.pixel_std
        if pad_h or pad_w:
            batch = F.pad(batch, (0, pad_w, 0, pad_h))
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch


def merge_losses(*parts: dict[str, Tensor]) -> dict[str, Tensor]:
    """The losses of a detector's stages in one dict; two stages naming a loss alike is a bug in
    the stages (one loss would silently replace the other), so it is refused."""
    merged: dict[str, Tensor] = {}
    for part in parts:
        clash = merged.keys() & part.keys()
        if clash:
            raise ValueError(f"two stages of the detector return the same losses: {sorted(clash)}")
        merged.update(part)
    return merged


def check_targets(targets: list[Target], image_sizes: Tensor) -> None:
    """Fail early, naming the image, on targets that would turn into NaN losses later.

    The value checks of all images are reduced on the device and read back once: one host sync
    per batch, not two per image. Only a batch that fails is searched image by image."""
    if len(targets) != image_sizes.shape[0]:
        raise ValueError(f"got {image_sizes.shape[0]} images but {len(targets)} targets")
    flags = []
    for target in targets:
        boxes = target["boxes"]
        image_id = target.get("image_id", "?")
        if boxes.dim() != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"image_id {image_id}: boxes must be Tensor[N, 4] xyxy, got {tuple(boxes.shape)}")
        if target["labels"].shape[0] != boxes.shape[0]:
            raise ValueError(f"image_id {image_id}: {boxes.shape[0]} boxes but {target['labels'].shape[0]} labels")
        if boxes.numel():
            flags += [_bad_boxes(boxes).any(), (target["labels"] < 1).any()]
    if not flags or not bool(torch.stack(flags).any()):
        return
    for target in targets:
        boxes, image_id = target["boxes"], target.get("image_id", "?")
        if boxes.numel() == 0:
            continue
        bad = _bad_boxes(boxes)
        if bool(bad.any()):
            raise ValueError(
                f"image_id {image_id}: degenerate or non-finite boxes (x2 <= x1 or y2 <= y1): "
                f"{boxes[bad][:3].tolist()}; run tools/check_dataset.py on the dataset"
            )
        if bool((target["labels"] < 1).any()):
            raise ValueError(f"image_id {image_id}: object labels must be 1..C (0 is background)")


def _bad_boxes(boxes: Tensor) -> Tensor:
    """``boxes: Tensor[N, 4] xyxy`` → ``Tensor[N]`` bool: non-finite or empty (x2 <= x1 or y2 <= y1)."""
    return ~torch.isfinite(boxes).all(dim=1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
