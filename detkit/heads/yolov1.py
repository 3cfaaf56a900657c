"""YOLOv1 head (Redmon et al., 2016): an S×S grid over the image; per cell B boxes with a
confidence each and one set of C class probabilities.

Shapes: N images, S_y × S_x grid (S × S, 7 by default), B boxes per cell (2), C classes,
G ground-truth boxes per image (padded to the batch maximum), K kept detections.

Network: one backbone map (``in_feature``, the deepest by default: c5, or c4) → a 3×3 conv at its
own resolution → adaptive average pooling to S_y × S_x (so any input size and any S work) →
``num_convs`` 3×3 convs at S×S → a predictor: a 1×1 conv, or the paper's two fully connected
layers (``fc_hidden=4096``, dropout 0.5). Per cell it outputs B·(x, y, √w, √h, confidence) + C.
Box numbers and confidences pass through a sigmoid (their targets lie in [0, 1]; the paper's linear
outputs need its careful warm-up to stay finite); class scores through a softmax over the C classes.
The grid covers the batch canvas (the images padded to one size).

Losses, each summed over the batch and divided by N (the paper sums; darknet divides by the batch):
  ``paper``:        loss_box   = λcoord Σ_resp [(x−x̂)² + (y−ŷ)² + (√w−√ŵ)² + (√h−√ĥ)²]
                    loss_obj   = Σ_resp (C − IoU(box, gt))²     (the IoU is a constant target)
                    loss_noobj = λnoobj Σ_other predictors C²
                    loss_cls   = Σ_cells with an object Σ_c (p(c) − 1[c = class])²
  ``smooth_l1_ce``: loss_box   = λcoord Σ_resp smooth-L1 over the same four numbers
                    loss_obj   = Σ_resp BCE(C, IoU);  loss_noobj = λnoobj Σ_other BCE(C, 0)
                    loss_cls   = Σ_cells with an object CE(class scores, class)
"resp" is the responsible predictor of each object (``detkit.assign.yolo.assign_yolov1``, which
also says what happens to a second object whose centre falls into an occupied cell).

Prediction: class-specific confidence C_b · p(c) for every (cell, box, class), decoded boxes
clipped to each image, then ``postprocess_dense`` (threshold → top-k → class-aware NMS → cap).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.assign.yolo import assign_yolov1
from detkit.coders.yolo import YOLOv1Coder
from detkit.heads.dense_head_base import DenseHeadBase
from detkit.layers.conv_bn_act import ConvBNLeaky
from detkit.losses import binary_cross_entropy, cross_entropy, smooth_l1
from detkit.ops.boxes import clip_boxes_per_image, pad_boxes, pad_values
from detkit.ops.pool import adaptive_avg_pool2d
from detkit.priors.coverage import BlankBatch
from detkit.priors.grid import grid_cells
from detkit.structures import FeatureInfo, Target
from detkit.utils.stages import stage

YOLOV1_LOSSES = ("paper", "smooth_l1_ce")


class YOLOv1Head(DenseHeadBase):
    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        num_classes: int,
        grid_size: int | Sequence[int] = 7,
        boxes_per_cell: int = 2,
        in_feature: str | None = None,
        hidden_channels: int = 512,
        num_convs: int = 2,
        fc_hidden: int | None = None,
        dropout: float = 0.5,
        loss: str = "paper",
        lambda_coord: float = 5.0,
        lambda_noobj: float = 0.5,
        box_loss_beta: float = 1.0 / 9,
        score_threshold: float = 0.01,
        pre_nms_topk: int = 1000,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
    ) -> None:
        super().__init__(
            score_threshold=score_threshold, pre_nms_topk=pre_nms_topk, nms_threshold=nms_threshold,
            max_detections=max_detections,
        )
        if loss not in YOLOV1_LOSSES:
            raise ValueError(f"YOLOv1Head: unknown loss {loss!r}; choose one of {', '.join(YOLOV1_LOSSES)}")
        by_name = {info.name: info for info in feature_info}
        if in_feature is None:
            in_feature = max(feature_info, key=lambda info: info.stride).name
        if in_feature not in by_name:
            raise ValueError(f"YOLOv1Head: in_feature {in_feature!r} is not among the inputs {sorted(by_name)}")
        rows, cols = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(int(s) for s in grid_size)
        self.in_feature = in_feature
        self.stride = by_name[in_feature].stride
        self.grid_size = (rows, cols)
        self.boxes_per_cell = boxes_per_cell
        self.num_classes = num_classes
        outputs_per_cell = boxes_per_cell * 5 + num_classes
        self.reduce = ConvBNLeaky(by_name[in_feature].channels, hidden_channels, 3)
        self.convs = nn.Sequential(*(ConvBNLeaky(hidden_channels, hidden_channels, 3) for _ in range(num_convs)))
        if fc_hidden is None:
            self.predictor: nn.Module = nn.Conv2d(hidden_channels, outputs_per_cell, 1)
        else:
            self.predictor = nn.Sequential(
                nn.Flatten(),
                nn.Linear(hidden_channels * rows * cols, fc_hidden),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Dropout(dropout),
                nn.Linear(fc_hidden, rows * cols * outputs_per_cell),
            )
        last = self.predictor if fc_hidden is None else self.predictor[-1]
        nn.init.normal_(last.weight, std=0.01)
        nn.init.zeros_(last.bias)
        self.loss_kind = loss
        self.lambda_coord = lambda_coord
        self.lambda_noobj = lambda_noobj
        self.box_loss_beta = box_loss_beta
        self.coder = YOLOv1Coder()

    def coverage_priors(self, detector: nn.Module, blank_batch: BlankBatch) -> str:
        """Nothing for the prior coverage check (``detkit.priors.coverage``) to measure."""
        return "YOLOv1 has no priors: each object belongs to the grid cell holding its centre"

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """→ ``codes: Tensor[N, S·S, B, 4]`` (sigmoid-activated x, y, √w, √h),
        ``confidence_logits: Tensor[N, S·S, B]``, ``class_logits: Tensor[N, S·S, C]`` (cells
        row-major) and ``canvas: Tensor[2]`` (w, h) of the batch canvas in pixels."""
        x = features[self.in_feature]
        canvas = x.new_tensor([x.shape[3] * self.stride, x.shape[2] * self.stride], dtype=torch.float32)
        x = self.convs(adaptive_avg_pool2d(self.reduce(x), self.grid_size))
        rows, cols = self.grid_size
        out = self.predictor(x)
        out = out.view(x.shape[0], rows, cols, -1) if out.dim() == 2 else out.permute(0, 2, 3, 1)
        out = out.reshape(x.shape[0], rows * cols, -1).float()
        boxes = out[..., : 5 * self.boxes_per_cell].reshape(x.shape[0], rows * cols, self.boxes_per_cell, 5)
        return boxes[..., :4].sigmoid(), boxes[..., 4], out[..., 5 * self.boxes_per_cell :], canvas

    def _grid(self, canvas: Tensor) -> tuple[Tensor, Tensor]:
        """Cells ``Tensor[S·S, 1, 2]`` (broadcast over B) and the cell size ``Tensor[2]`` (w, h)."""
        rows, cols = self.grid_size
        cells = grid_cells(rows, cols, device=canvas.device)[:, None, :]
        return cells, canvas / canvas.new_tensor([cols, rows])

    def loss(self, features: dict[str, Tensor], image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        codes, confidence_logits, class_logits, canvas = self(features)
        num_images = codes.shape[0]
        cells, cell_size = self._grid(canvas)
        pred_boxes = self.coder.decode(codes, cells, cell_size, canvas)
        gt_boxes, gt_valid = pad_boxes([t["boxes"].to(codes) for t in targets])
        gt_labels = pad_values([t["labels"].to(codes.device) for t in targets])
        with stage("assign"):
            assignment = assign_yolov1(
                gt_boxes, gt_valid, pred_boxes.detach(), grid_size=self.grid_size, cell_size=cell_size
            )
        responsible = assignment.responsible
        has_object = assignment.gt_index >= 0
        target_codes = self.coder.encode(assignment.matched_boxes[:, :, None, :], cells, cell_size, canvas)
        target_codes = target_codes.expand_as(codes)
        iou_target = assignment.iou.detach()
        if gt_labels.shape[1] == 0:
            cell_classes = gt_labels.new_zeros(has_object.shape)
        else:
            # Cells without an object read the padding label 0; clamp keeps one_hot valid (masked out).
            cell_classes = (gt_labels.gather(1, assignment.gt_index.clamp(min=0)) - 1).clamp(min=0)
        others = ~responsible
        if self.loss_kind == "paper":
            confidence = confidence_logits.sigmoid()
            loss_box = (codes[responsible] - target_codes[responsible]).square().sum()
            loss_obj = (confidence[responsible] - iou_target[responsible]).square().sum()
            loss_noobj = confidence[others].square().sum()
            class_probs = class_logits.softmax(dim=-1)
            one_hot = F.one_hot(cell_classes, self.num_classes).to(class_probs)
            loss_cls = (class_probs - one_hot)[has_object].square().sum()
        else:
            loss_box = smooth_l1(codes[responsible], target_codes[responsible], beta=self.box_loss_beta)
            loss_obj = binary_cross_entropy(confidence_logits[responsible], iou_target[responsible])
            negatives = confidence_logits[others]
            loss_noobj = binary_cross_entropy(negatives, torch.zeros_like(negatives))
            loss_cls = cross_entropy(class_logits[has_object], cell_classes[has_object])
        return {
            "loss_box": self.lambda_coord * loss_box / num_images,
            "loss_obj": loss_obj / num_images,
            "loss_noobj": self.lambda_noobj * loss_noobj / num_images,
            "loss_cls": loss_cls / num_images,
        }

    @torch.no_grad()
    def dense_predictions(self, features: dict[str, Tensor], image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """Boxes ``Tensor[N, S·S·B, 4] xyxy`` (clipped to each image) and class-specific confidences
        ``Tensor[N, S·S·B, C]``: what the postprocessing selects from."""
        codes, confidence_logits, class_logits, canvas = self(features)
        num_images = codes.shape[0]
        cells, cell_size = self._grid(canvas)
        boxes = self.coder.decode(codes, cells, cell_size, canvas).reshape(num_images, -1, 4)
        boxes = clip_boxes_per_image(boxes, image_sizes)
        scores = confidence_logits.sigmoid()[..., None] * class_logits.softmax(dim=-1)[:, :, None, :]
        return boxes, scores.reshape(num_images, -1, self.num_classes)
