"""R-CNN's per-class linear SVMs with hard-negative mining (Girshick et al., 2014, section 2.3).

The paper fine-tunes the CNN with a softmax, then throws the softmax away and scores each class
with a linear SVM on the same features: positives are the class's ground-truth boxes only,
negatives the proposals overlapping every box of that class by less than IoU 0.3 (proposals in
between are ignored), and since the negatives are far too many to hold, training cycles through
the images, keeps only the negatives inside the current margin ("hard") and retrains. The paper
reports +3.3 mAP50 over the softmax on VOC 2007 (54.2 vs 50.9).

``ClassSVMs`` holds the C hyperplanes as buffers (so they travel in the checkpoint) and scores
features; ``SVMTrainer`` does the mining and fitting, one image at a time; ``fit_linear_svm`` fits
one class. Shapes: R feature vectors of size D, C object classes.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn
from torchvision.ops import box_iou

from detkit.heads.roi_outputs import softmax_scores

logger = logging.getLogger(__name__)


class ClassSVMs(nn.Module):
    """C linear SVMs on D-dimensional features: ``margins(features) -> Tensor[R, C]``.

    Features are multiplied by ``feature_scale`` first (the paper scales them to a mean norm of
    20 so that one regularisation constant suits every network). ``fitted`` is False until
    ``SVMTrainer.fit`` (or a checkpoint) sets the hyperplanes.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(num_classes, in_features))
        self.register_buffer("bias", torch.zeros(num_classes))
        self.register_buffer("feature_scale", torch.tensor(1.0))
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def margins(self, features: Tensor) -> Tensor:
        """Signed SVM outputs ``Tensor[R, C]`` (> 0: the class's side of its hyperplane)."""
        return (features.float() * self.feature_scale) @ self.weight.t() + self.bias

    def scores(self, features: Tensor) -> Tensor:
        """Margins squashed to (0, 1) with a sigmoid: the detection scores. Monotonic per class, so
        the ranking (and the AP) is the SVM's own; the squashing only gives the shared score
        threshold a fixed meaning (0.05 is a margin of about -2.9)."""
        return torch.sigmoid(self.margins(features))


def attach_svms(head: nn.Module) -> ClassSVMs:
    """Give a softmax-trained head (R-CNN, SPP-net) unfitted SVMs on its ``feature_dim``-wide
    features, on the device of its weights, for the paper's second training stage; a head that
    has them keeps its own."""
    if head.svms is None:
        head.svms = ClassSVMs(head.feature_dim, head.num_classes).to(head.predictor.cls_score.weight.device)
    return head.svms


def head_class_scores(head: nn.Module, features: Tensor, class_logits: Tensor) -> Tensor:
    """Object-class scores ``Tensor[R, C]`` of a head that may score with SVMs (R-CNN, SPP-net):
    the softmax of ``class_logits`` unless ``head.classifier == "svm"`` and ``head.svms`` are
    fitted, then the SVM scores of ``features``. ``classifier`` may be switched at run time on a
    head that has SVMs, to compare the two on the same network."""
    svms = getattr(head, "svms", None)
    if head.classifier == "softmax" or svms is None:
        return softmax_scores(class_logits)
    if not svms.is_fitted:
        # E.g. the evaluations while training a classifier=svm config: warn once, keep the run going.
        if not getattr(head, "_warned_unfitted", False):
            logger.warning(
                "%s: classifier=svm but the SVMs are not fitted yet; scoring with the softmax "
                "(fit them with `detkit fit-svms checkpoint=...`)",
                type(head).__name__,
            )
            head._warned_unfitted = True
        return softmax_scores(class_logits)
    return svms.scores(features)


def fit_linear_svm(
    features: Tensor,
    labels: Tensor,
    *,
    cost: float,
    positive_weight: float = 1.0,
    init: tuple[Tensor, Tensor] | None = None,
    max_iter: int = 200,
) -> tuple[Tensor, Tensor]:
    """One linear SVM: ``features: Tensor[M, D]``, ``labels: Tensor[M]`` in {-1, +1} → ``(weight:
    Tensor[D], bias: Tensor[])``.

    Minimises ``0.5 |w|^2 + cost * sum_i c_i max(0, 1 - y_i (w.x_i + b))^2`` (the L2-loss SVM of
    LIBLINEAR; its square makes the objective smooth, so L-BFGS solves it exactly), with ``c_i =
    positive_weight`` for positives and 1 for negatives; the bias is not regularised. ``init``
    warm-starts from a previous solution, which makes the retraining rounds of mining cheap.
    """
    x = features.float()
    y = labels.to(x)
    if init is None:
        weight = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        bias = torch.zeros((), dtype=x.dtype, device=x.device)
    else:
        weight, bias = (t.detach().clone().to(x) for t in init)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    sample_weight = torch.where(y > 0, torch.full_like(y, positive_weight), torch.ones_like(y))
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def objective() -> Tensor:
        optimizer.zero_grad()
        violation = (1.0 - y * (x @ weight + bias)).clamp(min=0.0)
        loss = 0.5 * weight.dot(weight) + cost * (sample_weight * violation.square()).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return weight.detach(), bias.detach()


class SVMTrainer:
    """Hard-negative mining over a stream of images, then one linear SVM per class.

    Feed every training image with ``add_image``; call ``fit()`` at the end. The first
    ``warmup_images`` images give all their negatives; after that the SVMs are fitted and only
    negatives with a margin above ``hard_margin`` (inside or beyond the margin: the ones the
    current SVM gets wrong or barely right) join a class's cache. Whenever ``retrain_every`` new
    hard negatives have joined, the SVMs are refitted and the cache drops the negatives that have
    become easy, so memory stays bounded by the hard ones.

    ``cost``: the SVM's C (the paper: 0.001 with features scaled to norm 20). ``positive_weight``:
    the paper's 2. ``negative_iou``: proposals under this IoU with every box of a class are its
    negatives (the paper: 0.3, chosen by a grid search on VOC). ``feature_norm``: the mean
    feature norm the features are scaled to.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        cost: float = 1e-3,
        positive_weight: float = 2.0,
        negative_iou: float = 0.3,
        hard_margin: float = -1.0,
        feature_norm: float = 20.0,
        warmup_images: int = 20,
        retrain_every: int = 5000,
    ) -> None:
        if not 0.0 < negative_iou <= 1.0:
            raise ValueError(f"negative_iou must be in (0, 1], got {negative_iou}")
        if cost <= 0 or positive_weight <= 0:
            raise ValueError(f"cost and positive_weight must be positive, got {cost} and {positive_weight}")
        self.num_classes = num_classes
        self.cost = float(cost)
        self.positive_weight = float(positive_weight)
        self.negative_iou = float(negative_iou)
        self.hard_margin = float(hard_margin)
        self.feature_norm = float(feature_norm)
        self.warmup_images = int(warmup_images)
        self.retrain_every = int(retrain_every)
        self.positives: list[list[Tensor]] = [[] for _ in range(num_classes)]
        self.negatives: list[Tensor | None] = [None] * num_classes
        self.svms: ClassSVMs | None = None
        self.images = 0
        self.new_since_fit = 0
        self.stats = {"negatives_seen": 0, "hard_negatives_added": 0, "fits": 0}

    def add_image(
        self,
        proposal_features: Tensor,
        proposal_boxes: Tensor,
        gt_features: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor,
    ) -> None:
        """One image: its proposals' ``Tensor[P, D]`` features and ``Tensor[P, 4]`` xyxy boxes, its
        ground truth's ``Tensor[G, D]`` features, ``Tensor[G, 4]`` boxes and ``Tensor[G]`` labels
        in 1..C. Features are kept on the CPU."""
        proposal_features = proposal_features.detach().float().cpu()
        gt_features = gt_features.detach().float().cpu()
        gt_labels = gt_labels.cpu()
        for label in gt_labels.unique().tolist():
            self.positives[label - 1].append(gt_features[gt_labels == label])
        # [P, C]: each proposal's best IoU with a ground-truth box of each class (0 without one).
        best = torch.zeros(proposal_boxes.shape[0], self.num_classes)
        if gt_boxes.shape[0] and proposal_boxes.shape[0]:
            iou = box_iou(proposal_boxes.float().cpu(), gt_boxes.float().cpu())  # [P, G]
            best.scatter_reduce_(1, (gt_labels - 1)[None].expand_as(iou), iou, reduce="amax")
        is_negative = best < self.negative_iou
        margins = self.svms.margins(proposal_features) if self.svms is not None else None
        for c in range(self.num_classes):
            chosen = is_negative[:, c]
            self.stats["negatives_seen"] += int(chosen.sum())
            if margins is not None:
                chosen &= margins[:, c] > self.hard_margin
            if chosen.any():
                added = proposal_features[chosen]
                cache = self.negatives[c]
                self.negatives[c] = added if cache is None else torch.cat((cache, added))
                self.new_since_fit += added.shape[0]
                self.stats["hard_negatives_added"] += added.shape[0]
        self.images += 1
        if (self.svms is None and self.images >= self.warmup_images) or (
            self.svms is not None and self.new_since_fit >= self.retrain_every
        ):
            self.fit()

    def fit(self) -> ClassSVMs:
        """Fit (or refit, warm-started) every class's SVM on its positives and cached negatives,
        then drop the cached negatives that are now easy. Returns the fitted ``ClassSVMs``."""
        dim = self._feature_dim()
        if self.svms is None:
            self.svms = ClassSVMs(dim, self.num_classes)
            self.svms.feature_scale.fill_(self._feature_scale())
        scale = float(self.svms.feature_scale)
        for c in range(self.num_classes):
            positives = torch.cat(self.positives[c]) if self.positives[c] else torch.zeros(0, dim)
            negatives = self.negatives[c] if self.negatives[c] is not None else torch.zeros(0, dim)
            if positives.shape[0] == 0:
                # No example of the class: a hyperplane that rejects everything.
                logger.warning("SVM for class %d: no ground-truth box in the training images; it scores nothing", c + 1)
                self.svms.weight[c].zero_()
                self.svms.bias[c].fill_(-10.0)
                continue
            features = torch.cat((positives, negatives)) * scale
            labels = torch.cat((torch.ones(positives.shape[0]), -torch.ones(negatives.shape[0])))
            init = (self.svms.weight[c], self.svms.bias[c]) if self.svms.is_fitted else None
            weight, bias = fit_linear_svm(
                features, labels, cost=self.cost, positive_weight=self.positive_weight, init=init
            )
            self.svms.weight[c] = weight
            self.svms.bias[c] = bias
            if negatives.shape[0]:
                keep = (negatives * scale) @ weight + bias > self.hard_margin
                self.negatives[c] = negatives[keep]
        self.svms.fitted.fill_(True)
        self.new_since_fit = 0
        self.stats["fits"] += 1
        return self.svms

    def summary(self) -> dict:
        """Counts for the report: images, positives and cached hard negatives per class, fits."""
        return dict(
            self.stats,
            images=self.images,
            positives=[sum(p.shape[0] for p in ps) for ps in self.positives],
            cached_negatives=[0 if n is None else n.shape[0] for n in self.negatives],
        )

    def _feature_dim(self) -> int:
        for tensors in (*self.positives, [n for n in self.negatives if n is not None]):
            for tensor in tensors:
                return tensor.shape[1]
        raise ValueError("SVMTrainer.fit: no image was added")

    def _feature_scale(self) -> float:
        norms = [t.norm(dim=1) for ts in self.positives for t in ts]
        norms += [n.norm(dim=1) for n in self.negatives if n is not None]
        mean = torch.cat(norms).mean() if norms else torch.tensor(0.0)
        return self.feature_norm / float(mean) if float(mean) > 0 else 1.0
