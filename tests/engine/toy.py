"""A tiny detector and dataset that follow detkit's contracts, for engine tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

NUM_CLASSES = 3
IMAGE_SIZE = 8
# Each class has its own mean colour, so the classes are learnable from pooled features.
CLASS_COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]])


class ToyDataset(Dataset):
    """``n`` images ``Tensor[3, 8, 8]`` with one box each; image ids are ``100 + index``.

    ``augment`` adds noise drawn from torch's global generator (as a random transform would);
    ``nan_box_index`` puts a NaN coordinate into that image's box, as a broken annotation would.
    """

    def __init__(self, n: int = 8, *, augment: bool = False, nan_box_index: int | None = None) -> None:
        self.n, self.augment, self.nan_box_index = n, augment, nan_box_index

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        generator = torch.Generator().manual_seed(index)
        label = index % NUM_CLASSES
        image = CLASS_COLOURS[label][:, None, None] + 0.1 * torch.rand(
            3, IMAGE_SIZE, IMAGE_SIZE, generator=generator
        )
        if self.augment:
            image = image + 0.01 * torch.randn(image.shape)
        x1 = float(label)
        box = torch.tensor([[x1, 1.0, x1 + 4.0, 5.0]])
        if index == self.nan_box_index:
            box[0, 2] = float("nan")
        target = {"boxes": box, "labels": torch.tensor([label + 1]), "image_id": 100 + index}
        return image, target


def collate(batch):
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)


def make_loader(dataset: Dataset, batch_size: int = 2, **kwargs) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, collate_fn=collate, **kwargs)


class ToyDetector(nn.Module):
    """Train mode: ``{"loss_cls", "loss_box"}`` from the first box of each target.
    Eval mode: one detection per image."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.dropout = nn.Dropout(dropout)
        self.cls = nn.Linear(8, num_classes + 1)
        self.box = nn.Linear(8, 4)

    def forward(self, images, targets=None):
        features = self.dropout(self.features(images))
        logits, boxes = self.cls(features), self.box(features)
        if self.training:
            labels = torch.stack([t["labels"][0] for t in targets])
            gt_boxes = torch.stack([t["boxes"][0] for t in targets])
            return {
                "loss_cls": F.cross_entropy(logits, labels),
                "loss_box": F.smooth_l1_loss(boxes, gt_boxes),
            }
        scores, labels = logits.softmax(-1)[:, 1:].max(-1)
        return [
            {"boxes": box[None], "scores": score[None], "labels": (label + 1)[None]}
            for box, score, label in zip(boxes, scores, labels, strict=True)
        ]


class LinearDetector(nn.Module):
    """A linear model with a mean-squared 'box' loss: gradients average exactly over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * IMAGE_SIZE * IMAGE_SIZE, 4)

    def forward(self, images, targets=None):
        predicted = self.linear(images.flatten(1))
        gt_boxes = torch.stack([t["boxes"][0] for t in targets])
        return {"loss_box": F.mse_loss(predicted, gt_boxes), "aux_not_a_loss": predicted.sum()}
