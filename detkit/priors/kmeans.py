"""Fit priors to a dataset's boxes: k-means anchors for YOLOv3 (distance 1 − IoU of boxes that share
a centre, as in YOLOv2), anchor sizes and aspect ratios for an RPN, and default-box aspect ratios
and scales for SSD.

Every function takes box shapes ``wh: Tensor[M, 2]`` (w, h) in network-input pixels (boxes after
the resize the model sees) and is deterministic for a given ``seed``. Ratios follow each
detector's own convention: ``detkit.priors.anchors`` uses height / width, SSD uses width / height.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from detkit.ops.iou import shape_iou

KMEANS_INITS = ("kmeans++", "random")


def _check_shapes(wh: Tensor, k: int) -> Tensor:
    wh = torch.as_tensor(wh, dtype=torch.float64)
    if wh.dim() != 2 or wh.shape[1] != 2:
        raise ValueError(f"box shapes must be Tensor[M, 2] (w, h), got shape {tuple(wh.shape)}")
    bad = ~torch.isfinite(wh).all(dim=1) | (wh <= 0).any(dim=1)
    if bool(bad.any()):
        raise ValueError(f"{int(bad.sum())} box shapes are non-positive or non-finite, e.g. {wh[bad][:3].tolist()}")
    if k < 1 or wh.shape[0] < k:
        raise ValueError(f"cannot fit {k} clusters to {wh.shape[0]} boxes (need k >= 1 and at least k boxes)")
    return wh


def _init_centres(wh: Tensor, k: int, init: str, generator: torch.Generator) -> Tensor:
    if init == "random":
        return wh[torch.randperm(wh.shape[0], generator=generator)[:k]].clone()
    # k-means++: each new centre drawn with probability ∝ squared distance to the nearest chosen one.
    centres = [wh[torch.randint(wh.shape[0], (1,), generator=generator)][0]]
    nearest = 1.0 - shape_iou(wh, centres[0][None])[:, 0]
    for _ in range(1, k):
        weights = nearest.square()
        if float(weights.sum()) <= 0:  # every box coincides with a centre: take any unused box
            weights = torch.ones_like(weights)
        index = torch.multinomial(weights, 1, generator=generator)
        centres.append(wh[index][0])
        nearest = torch.minimum(nearest, 1.0 - shape_iou(wh, wh[index])[:, 0])
    return torch.stack(centres)


def kmeans_anchors(
    wh: Tensor, k: int = 9, *, seed: int = 0, init: str = "kmeans++", restarts: int = 4, max_iter: int = 300
) -> Tensor:
    """Cluster ``wh: Tensor[M, 2]`` with distance 1 − IoU (boxes centred together) and return the
    ``k`` cluster means ``Tensor[k, 2]`` float32 (w, h), sorted by area (small first).

    Runs ``restarts`` initialisations (one random stream seeded by ``seed``) and keeps the one
    with the highest mean best IoU, since Lloyd's iterations only find a local optimum. Each run
    iterates until the assignment stops changing or ``max_iter``; an emptied cluster is moved to
    the box worst served by the current centres.
    """
    wh = _check_shapes(wh, k)
    if init not in KMEANS_INITS:
        raise ValueError(f"unknown k-means init {init!r}; choose one of {', '.join(KMEANS_INITS)}")
    generator = torch.Generator().manual_seed(seed)
    runs = [_lloyd(wh, _init_centres(wh, k, init, generator), max_iter) for _ in range(max(1, restarts))]
    best = max(runs, key=lambda centres: mean_best_iou(wh, centres))
    return best[(best[:, 0] * best[:, 1]).argsort()].float()


def _lloyd(wh: Tensor, centres: Tensor, max_iter: int) -> Tensor:
    k = centres.shape[0]
    assignment = None
    for _ in range(max_iter):
        iou = shape_iou(wh, centres)
        new_assignment = iou.argmax(dim=1)
        if assignment is not None and torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        counts = torch.bincount(assignment, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, assignment, wh)
        for empty in torch.nonzero(counts == 0).flatten().tolist():
            worst = int(iou.max(dim=1).values.argmin())
            sums[empty], counts[empty] = wh[worst], 1
            iou[worst] = 1.0  # do not hand the same box to two emptied clusters
        centres = sums / counts[:, None]
    return centres


def mean_best_iou(wh: Tensor, anchors: Tensor) -> float:
    """Average, over boxes ``wh: Tensor[M, 2]``, of the IoU with the best-fitting anchor
    (``anchors: Tensor[K, 2]`` (w, h)): YOLOv2's "Avg IOU" measure of how well priors fit."""
    return float(shape_iou(torch.as_tensor(wh, dtype=torch.float64), anchors.double()).max(dim=1).values.mean())


def group_by_level(anchors: Tensor, num_levels: int = 3) -> list[list[list[float]]]:
    """Split area-sorted ``anchors: Tensor[K, 2]`` into ``num_levels`` equal groups, small to large:
    the ``anchors`` argument of ``YOLOv3Head`` (one group per stride, shallow first)."""
    if anchors.shape[0] % num_levels:
        raise ValueError(f"{anchors.shape[0]} anchors do not split evenly into {num_levels} levels")
    ordered = anchors[(anchors[:, 0] * anchors[:, 1]).argsort()]
    rounded = [[round(float(v), 1) for v in pair] for pair in ordered]
    per_level = len(rounded) // num_levels
    return [rounded[i * per_level : (i + 1) * per_level] for i in range(num_levels)]


def kmeans_1d(values: Tensor, k: int, *, max_iter: int = 100) -> Tensor:
    """Plain 1-D k-means (squared distance), initialised at evenly spaced quantiles so it needs no
    seed: ``values: Tensor[M]`` → ``Tensor[k]`` sorted ascending."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    if k < 1 or values.numel() < k:
        raise ValueError(f"cannot fit {k} clusters to {values.numel()} values")
    centres = torch.quantile(values, (torch.arange(k, dtype=torch.float64) + 0.5) / k)
    for _ in range(max_iter):
        assignment = (values[:, None] - centres[None]).abs().argmin(dim=1)
        counts = torch.bincount(assignment, minlength=k)
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, assignment, values)
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        if torch.allclose(updated, centres):
            break
        centres = updated
    return centres.sort().values


def rpn_sizes_and_ratios(wh: Tensor, num_sizes: int = 3, num_ratios: int = 3) -> tuple[list[float], list[float]]:
    """RPN anchors from data: ``num_sizes`` sizes √(w·h) and ``num_ratios`` aspect ratios h / w
    (``AnchorGenerator``'s convention), each a 1-D k-means in log space, so that sizes × ratios
    covers the boxes."""
    wh = _check_shapes(wh, max(num_sizes, num_ratios))
    sizes = kmeans_1d(0.5 * torch.log(wh[:, 0] * wh[:, 1]), num_sizes).exp()
    ratios = kmeans_1d(torch.log(wh[:, 1] / wh[:, 0]), num_ratios).exp()
    return [round(float(s), 1) for s in sizes], [round(float(r), 3) for r in ratios]


def ssd_ratios_and_scales(
    wh: Tensor, image_size: tuple[int, int], num_ratios: int = 2, quantiles: tuple[float, float] = (0.05, 0.95)
) -> tuple[list[float], tuple[float, float]]:
    """SSD default boxes from data: ``num_ratios`` aspect ratios r > 1 besides the square box (each
    gives SSD's r and 1/r boxes, width / height) and the scale range (s_min, s_max).

    The ratios are a 1-D k-means of |log(w / h)| with ``num_ratios + 1`` clusters, the one nearest
    square dropped (SSD always has the square boxes); the scales are the ``quantiles`` of √(w·h)
    over √(W·H) of the input ``image_size`` (H, W).
    """
    wh = _check_shapes(wh, num_ratios + 1)
    folded = kmeans_1d(torch.log(wh[:, 0] / wh[:, 1]).abs(), num_ratios + 1).exp()
    height, width = image_size
    relative = torch.sqrt(wh[:, 0] * wh[:, 1] / (width * height))
    low, high = torch.quantile(relative, torch.tensor(quantiles, dtype=torch.float64))
    return [round(float(r), 3) for r in folded[1:]], (round(float(low), 3), round(float(high), 3))


def _targets_only(batch: list) -> list:
    return [target for _, target in batch]


def dataset_box_shapes(dataset: Dataset, *, num_workers: int = 0, batch_size: int = 16) -> Tensor:
    """The (w, h) of every box of a detection ``dataset`` (yielding ``(image, target)``) as the
    model sees them, i.e. after the dataset's transforms: ``Tensor[M, 2]`` float32."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_targets_only)
    shapes = [t["boxes"][:, 2:] - t["boxes"][:, :2] for batch in loader for t in batch]
    return torch.cat(shapes).float() if shapes else torch.zeros(0, 2)
