"""Sample inputs for tracing an exported graph and for checking it against PyTorch.

Images become what the graphs take: ``Tensor[3, S, S]`` float32 RGB in [0, 1], letterboxed by
detkit's eval transform (``detkit.data.augment.transforms.eval_transforms``). Detectors that score
precomputed proposals get selective-search proposals of each letterboxed image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from detkit.data.augment.transforms import eval_transforms
from detkit.data.base import image_to_tensor
from detkit.data.image_files import read_image, require_pixels
from detkit.data.proposals.selective_search import SelectiveSearchParams, selective_search
from detkit.data.synthetic.shapes_render import ShapesParams, generate_sample
from detkit.ops.boxes import pad_boxes
from detkit.ops.pixels import to_unit_float

SampleSource = str | Path | np.ndarray | Tensor


def letterbox(image: np.ndarray, input_size: int) -> Tensor:
    """RGB uint8 ``[H, W, 3]`` → ``Tensor[3, S, S]`` in [0, 1], exactly as the eval transform."""
    empty = np.zeros((0, 4), np.float32)
    transformed, _, _, _ = eval_transforms(input_size)(image, empty, np.zeros(0, np.int64))
    return to_unit_float(image_to_tensor(transformed))


def sample_tensor(source: SampleSource, input_size: int) -> Tensor:
    """One sample as the graph's image input: an image file, an RGB uint8 ``[H, W, 3]`` array
    (both letterboxed) or an already prepared ``Tensor[3, S, S]`` in [0, 1] (or uint8, as datasets yield)."""
    if isinstance(source, Tensor):
        if source.dim() != 3 or tuple(source.shape) != (3, input_size, input_size):
            raise ValueError(
                f"a sample image tensor must be Tensor[3, {input_size}, {input_size}] in [0, 1] (letterboxed); "
                f"got {tuple(source.shape)}. Pass image files or uint8 arrays to have them letterboxed."
            )
        return to_unit_float(source.detach()).float().cpu()
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
            raise ValueError(f"a sample image array must be RGB uint8 [H, W, 3], got {source.shape} {source.dtype}")
        return letterbox(require_pixels(source, "sample image array"), input_size)
    return letterbox(read_image(source), input_size)


def synthetic_images(count: int, input_size: int) -> list[Tensor]:
    """``count`` images of detkit's synthetic shapes task, drawn at S × S (validation split)."""
    params = ShapesParams(image_size=input_size, max_size=min(90, input_size), min_size=min(12, input_size))
    return [letterbox(generate_sample(params, "val", index).image, input_size) for index in range(count)]


def prepare_samples(sources: Sequence[SampleSource] | Tensor | None, input_size: int, count: int) -> Tensor:
    """``Tensor[n, 3, S, S]``: ``sources`` prepared by ``sample_tensor`` (a batched
    ``Tensor[n, 3, S, S]`` counts as n tensors), or ``count`` synthetic images when None."""
    if sources is None:
        images = synthetic_images(count, input_size)
    else:
        images = [sample_tensor(source, input_size) for source in sources]
    if not images:
        raise ValueError("no sample images: pass at least one")
    return torch.stack(images)


def search_proposals(images: Tensor, params: SelectiveSearchParams | None = None) -> list[Tensor]:
    """Selective-search proposals ``Tensor[P_i, 4] xyxy`` of each image of ``images: Tensor[n, 3,
    S, S]`` (searched at the input size, ``fast`` strategy unless ``params`` say otherwise)."""
    params = params or SelectiveSearchParams(search_size=None)
    proposals = []
    for image in images:
        pixels = (image.permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        proposals.append(torch.from_numpy(selective_search(pixels, params)))
    return proposals


def padded_proposals(proposals: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-image ``Tensor[P_i, 4]`` → the graphs' ``proposals: Tensor[n, P, 4]`` (zero rows as
    padding, P = max P_i, at least 1) and ``num_proposals: Tensor[n]`` int64."""
    boxes, valid = pad_boxes([p.float().reshape(-1, 4) for p in proposals])
    if boxes.shape[1] == 0:
        boxes = boxes.new_zeros((boxes.shape[0], 1, 4))
    return boxes, valid.sum(dim=1)
