"""Calibration images for INT8 quantization (``detkit.export.quantize``): which images, prepared how.

A checkpoint is calibrated on the first N images of its config's validation split (its training
split where the validation files are not on this machine), or on the images the user names (a
folder, or a list of files). Each image is prepared as evaluation prepares it: read as RGB
(upright by its EXIF orientation), letterboxed by the eval transform to the graph's input size.
The detectors that score precomputed proposals (Fast R-CNN, SPP-net, R-CNN) also get each image's
proposals, from the proposal cache with the checkpoint's search settings (searched and cached
where missing), moved through the letterbox with the image, as ``detkit.load``'s predictor does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor

from detkit.data.augment.transforms import eval_transforms
from detkit.data.base import image_to_tensor
from detkit.data.formats.yolo import IMAGE_SUFFIXES
from detkit.data.image_files import read_image
from detkit.data.proposals.cache import ProposalCache, image_file_key
from detkit.engine.config import ConfigError, instantiate_dataset

#: A calibration source: a folder of images, or image files.
CalibrationSource = str | os.PathLike | Sequence[str | os.PathLike]


def data_image_files(cfg: DictConfig, count: int) -> list[Path]:
    """The first ``count`` image files of ``cfg``'s validation split, else of its training split
    (the splits as their loaders list them; no transform, no proposals)."""
    reasons = []
    for split in ("val", "train"):
        try:
            dataset = instantiate_dataset(cfg, split)
        except (ConfigError, FileNotFoundError) as error:
            reasons.append(f"{split}: {error}")
            continue
        if len(dataset):
            return [Path(record.path) for record in dataset.records[:count]]
        reasons.append(f"{split}: no images")
    raise ConfigError(
        "no calibration images for precision=int8: the checkpoint's data is not on this machine ("
        + "; ".join(reasons)
        + "); name a folder of images like those the model will see with calibration=DIR"
    )


def source_image_files(source: CalibrationSource, count: int) -> list[Path]:
    """The first ``count`` image files of ``source``: a folder (its images, sorted by name) or files."""
    if isinstance(source, str | os.PathLike):
        folder = Path(source)
        if folder.is_dir():
            files = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
                raise FileNotFoundError(f"calibration folder {folder} holds no images ({suffixes})")
            return files[:count]
        source = [folder]
    files = [Path(path) for path in source]
    missing = [str(path) for path in files if not path.is_file()]
    if missing or not files:
        raise FileNotFoundError(f"calibration images not found: {', '.join(missing) or 'none given'}")
    return files[:count]


def calibration_images(
    files: Sequence[Path], input_size: int, proposals: ProposalCache | None = None
) -> tuple[list[Tensor], list[Tensor] | None]:
    """``(images, proposals)``: each file as the graph's image input, ``Tensor[3, S, S]`` uint8
    letterboxed by the eval transform, and, with a proposal ``cache``, its ``Tensor[P, 4]`` xyxy
    proposals in the letterboxed image's pixels (else None)."""
    transform = eval_transforms(input_size)
    images, boxes = [], []
    for path in files:
        pixels = read_image(path)
        if proposals is None:
            moved, _, _, _ = transform(pixels, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        else:
            # The proposals go through the letterbox as boxes, so they land where the image does.
            found = proposals.get_or_search(image_file_key(path), pixels)
            moved, moved_boxes, _, _ = transform(pixels, found, np.arange(len(found)))
            boxes.append(torch.as_tensor(np.asarray(moved_boxes, np.float32).reshape(-1, 4)))
        images.append(image_to_tensor(moved))
    return images, (boxes if proposals is not None else None)
