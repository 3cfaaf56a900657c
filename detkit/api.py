"""``detkit.load(checkpoint)`` → :class:`Predictor`: a trained detector, ready to call on images.

    import detkit

    predictor = detkit.load("outputs/faster_rcnn_mobilenet_v1_shapes/<run>/best.pt")
    result = predictor("street.jpg")                      # one image in, one result out
    results = predictor(["a.jpg", rgb_array, pil_image])  # a list in, a list out
    for box, score, name in zip(result["boxes"], result["scores"], result["names"]):
        print(name, float(score), box.tolist())

The model comes from ``detkit.engine.loading.load_detector``, the one way detkit turns a checkpoint
into a model for inference (evaluation, R-CNN's SVM fitting, the speed tools and export use it
too). Loading is strict: every tensor must match the model its stored config builds, or each
mismatch is named and the load refused; only fine-tuning (``finetune=``) loads leniently.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Union, overload

import numpy as np
import torch

from detkit.data.augment.transforms import eval_transforms
from detkit.data.base import image_to_tensor
from detkit.data.image_files import pil_to_rgb, read_image, require_pixels
from detkit.data.proposals.cache import config_proposal_cache, hash_pixels, image_file_key
from detkit.engine.loading import LoadedDetector, load_detector
from detkit.proposals.precomputed import needs_precomputed_proposals
from detkit.structures import boxes_to_original, detections_to_host

if TYPE_CHECKING:
    from PIL.Image import Image

#: What a predictor accepts as one image: a file path, an RGB array ([H, W, 3] uint8, or float in
#: [0, 1]; [H, W] grey), a PIL image, or a tensor ([3, H, W] float in [0, 1], or uint8). Files and
#: PIL images are turned upright by their EXIF orientation; an empty image, or one holding NaN or
#: Inf, is refused naming it (its path, or "array input #i": its place in the call's list).
ImageInput = Union[str, os.PathLike, np.ndarray, torch.Tensor, "Image"]


class ImageDetections(TypedDict):
    """What a predictor returns for one image, on the CPU, highest score first."""

    boxes: torch.Tensor  #: ``[K, 4]`` xyxy in the image's own pixels
    scores: torch.Tensor  #: ``[K]``
    labels: torch.Tensor  #: ``[K]``, 1..C
    names: list[str]  #: the class name of each label


def load(
    checkpoint: str | os.PathLike,
    *,
    device: str | None = None,
    overrides: Sequence[str] = (),
    backend: str = "torch",
    precision: str = "fp32",
    calibration: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    calibration_images: int = 32,
) -> Predictor:
    """The detector of a detkit checkpoint, its config, class names and preprocessing.

    ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (default: the checkpoint config's
    ``engine.device``). ``overrides``: ``key=value`` config changes applied to the stored config
    before the model is built (e.g. ``model.head.score_threshold=0.3``); a change that alters the
    model's tensors makes the strict load fail. ``backend``: ``torch`` (the model), ``onnxruntime``
    or ``openvino`` (its cached ONNX export run by that runtime on the CPU) or ``auto`` (see
    ``detkit.export.runtimes``); the predictor is called the same way whichever runs it.
    ``precision``: ``fp32``, or ``int8`` for a runtime backend: the export quantized to INT8
    (``detkit.export.quantize``), calibrated on the first ``calibration_images`` images of
    ``calibration`` (a folder of images, or image files; default: the checkpoint's validation
    data) and cached beside the float file.
    """
    if precision == "fp32" and calibration is not None:
        raise ValueError("calibration= is for precision=int8: the images INT8 quantization is calibrated on")
    detector = load_detector(checkpoint, device=device, overrides=overrides)
    if backend != "torch" or precision != "fp32":
        from detkit.export.backend import run_with_backend  # the runtimes are imported only when asked for
        from detkit.export.quantize import QuantizationSettings

        settings = QuantizationSettings(num_images=calibration_images)
        detector = run_with_backend(detector, backend, precision=precision, calibration=calibration, settings=settings)
    return Predictor(detector)


class Predictor:
    """A detector in eval mode with what it needs to score raw images.

    ``predictor(images)`` letterboxes each image as evaluation does (longest side to
    ``input_size``, padding right and bottom), runs the model in batches and maps the boxes back
    to each image's own pixels. Detectors that score precomputed proposals (Fast R-CNN,
    R-CNN) get them searched with the checkpoint's settings, through the on-disk proposal cache.
    """

    def __init__(self, detector: LoadedDetector) -> None:
        self.model = detector.model
        self.cfg = detector.cfg
        self.class_names = detector.class_names
        self.device = detector.device
        self.checkpoint = detector.source
        self.input_size = detector.input_size
        self.amp_dtype = detector.amp_dtype
        self.backend = detector.backend  # what runs the model: detkit.load(..., backend=)
        self.precision = detector.precision  # fp32, or int8 through a runtime backend
        self.export = detector.export  # the cached ONNX file a runtime backend runs, else None
        self.transform = eval_transforms(self.input_size)
        self.proposal_cache = config_proposal_cache(self.cfg) if needs_precomputed_proposals(self.model) else None

    def __repr__(self) -> str:
        return (
            f"Predictor({self.cfg.get('experiment', '?')}, {len(self.class_names)} classes, "
            f"input {self.input_size}px, {self.device}, {self.backend}"
            + (f" {self.precision}" if self.precision != "fp32" else "")
            + f", from {self.checkpoint or 'memory'})"
        )

    @overload
    def __call__(
        self, images: ImageInput, *, score_threshold: float | None = None, batch_size: int = 8
    ) -> ImageDetections: ...

    @overload
    def __call__(
        self, images: Sequence[ImageInput], *, score_threshold: float | None = None, batch_size: int = 8
    ) -> list[ImageDetections]: ...

    @torch.no_grad()
    def __call__(
        self, images: ImageInput | Sequence[ImageInput], *, score_threshold: float | None = None, batch_size: int = 8
    ) -> ImageDetections | list[ImageDetections]:
        """Detections of one image, or of a list of images (a list, in order; a ``[N, 3, H, W]`` tensor
        counts as a list):
        ``boxes: Tensor[K, 4]`` xyxy in the image's own pixels, ``scores: Tensor[K]``,
        ``labels: Tensor[K]`` (1..C) and ``names: list[str]``, on the CPU, highest score first.
        ``score_threshold`` drops detections below it (default: keep all the model returns)."""
        single = not isinstance(images, list | tuple) and not (torch.is_tensor(images) and images.dim() == 4)
        items = [images] if single else list(images)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        results: list[ImageDetections] = []
        for start in range(0, len(items), batch_size):
            results.extend(self._predict_batch(items[start : start + batch_size], start, score_threshold))
        return results[0] if single else results

    def prepare(self, image: ImageInput, *, index: int = 0) -> tuple[torch.Tensor, dict]:
        """One image as the model sees it: ``Tensor[3, S, S]`` uint8 (the model scales it on its
        device, as it does the loader's batches) and a target carrying ``scale`` and
        ``orig_size`` (for mapping boxes back) and, for proposal-scoring detectors, ``proposals``.
        ``index``: the image's place among the inputs, named when an in-memory image is refused."""
        pixels, content_hash = _rgb_pixels(image, index)
        target: dict = {"orig_size": torch.tensor(pixels.shape[:2])}
        if self.proposal_cache is None:
            moved, _, _, scale = self.transform(pixels, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        else:
            # The proposals go through the letterbox as boxes, so they land where the image does.
            proposals = self.proposal_cache.get_or_search(content_hash or hash_pixels(pixels), pixels)
            moved, boxes, _, scale = self.transform(pixels, proposals, np.arange(len(proposals)))
            target["proposals"] = torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4))
        target["scale"] = torch.tensor(scale, dtype=torch.float32)
        return image_to_tensor(moved), target

    def _predict_batch(self, items: list, first: int, score_threshold: float | None) -> list[ImageDetections]:
        prepared = [self.prepare(item, index=first + offset) for offset, item in enumerate(items)]
        batch = torch.stack([tensor for tensor, _ in prepared]).to(self.device)
        targets = None
        if self.proposal_cache is not None:
            targets = [{"proposals": target["proposals"].to(self.device)} for _, target in prepared]
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            detections = self.model(batch, targets)
        results = []
        for det, (_, target) in zip(detections_to_host(detections), prepared, strict=True):
            keep = det["scores"] >= score_threshold if score_threshold is not None else slice(None)
            labels = det["labels"][keep]
            results.append({
                "boxes": boxes_to_original(det["boxes"][keep], target),
                "scores": det["scores"][keep],
                "labels": labels,
                "names": [self.class_names[int(label) - 1] for label in labels],
            })  # fmt: skip
        return results


def _rgb_pixels(image: ImageInput, index: int) -> tuple[np.ndarray, str | None]:
    """``(RGB uint8 [H, W, 3], content hash or None)`` of any accepted image; a file's key is the
    one the proposal cache gives the training images (``image_file_key``). ``index`` names an in-memory image
    in errors (as "array input #" and its place)."""
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        return read_image(path), image_file_key(path)
    if torch.is_tensor(image):
        name = f"tensor input #{index}"
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"{name}: an image tensor must be [3, H, W] (or [1, H, W]), got {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    elif isinstance(image, np.ndarray):
        name = f"array input #{index}"
    else:
        if not hasattr(image, "convert"):
            raise TypeError(
                f"cannot read an image from {type(image).__name__}; give a path, array, PIL image or tensor"
            )
        return pil_to_rgb(image, f"PIL image input #{index}"), None
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name}: an image array must be [H, W], [H, W, 3] or [H, W, 4], got {array.shape}")
    # Before the conversion below: NaN would become 0 with a NumPy warning, an empty image fail deep inside.
    require_pixels(array, name)
    if array.dtype != np.uint8:
        # Float images are taken as [0, 1] (torchvision's convention); rounding back to the 8-bit
        # grid is exact for images that came from 8-bit files.
        array = np.clip(np.rint(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3]), None
