"""Per-detector device checks for ``detkit gpu-check``: AMP box parity and host syncs per
training step, for one shapes experiment of each detector family (random weights, ResNet-18)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch

from detkit.analysis.device.amp_parity import amp_box_parity
from detkit.analysis.device.check_batches import shapes_batch
from detkit.analysis.device.sync_count import syncs_per_step
from detkit.engine.build import build_model, build_optimizer, is_auto, load_config
from detkit.engine.runtime import amp_dtype, configure_backends
from detkit.engine.trainer import Trainer

NUM_CLASSES = 5
# family -> (experiment, extra overrides, precomputed proposals per image)
FAMILIES: dict[str, tuple[str, list[str], int]] = {
    "rcnn": ("rcnn_resnet18_shapes", [], 64),
    "fast_rcnn": ("fast_rcnn_resnet18_shapes", [], 64),
    "faster_rcnn": ("faster_rcnn_resnet18_shapes", [], 0),
    "ssd": ("ssd_resnet18_shapes", [], 0),
    "yolov1": ("yolov1_resnet18_shapes", [], 0),
    # Random weights put YOLOv3's objectness x class scores under the shipped 0.01 threshold.
    "yolov3": ("yolov3_resnet18_shapes", ["model.head.score_threshold=0.0001"], 0),
}
PARITY_LIMIT_PX = 0.5


def _family_setup(family: str, device: torch.device, batch_size: int | None = None):
    experiment, extra, proposals = FAMILIES[family]
    cfg = load_config([f"config={experiment}", "model.backbone.pretrained=false", *extra])
    configure_backends(cfg, device)
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=NUM_CLASSES).to(device)
    if cfg.engine.get("channels_last") and hasattr(model, "use_channels_last"):
        model = model.use_channels_last()
    # Synthetic batches need no data: an `auto` recipe runs the built-in 160 px shapes at its
    # lower limit, so that is the size used here (resolving it would generate the dataset).
    size = int(cfg.data.auto_input_size.min) if is_auto(cfg.data.input_size) else int(cfg.data.input_size)
    images, targets = shapes_batch(size, batch_size or int(cfg.data.batch_size),
                                   proposals_per_image=proposals)  # fmt: skip
    return cfg, model, images, targets, proposals > 0


def parity(family: str, device: torch.device, *, batch_size: int = 4) -> dict:
    """fp32 vs autocast (bf16 where the GPU has it, else fp16) detections of one batch."""
    cfg, model, images, targets, uses_proposals = _family_setup(family, device, batch_size)
    dtype = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
    result = amp_box_parity(model, images, targets if uses_proposals else None, device, dtype)
    result.update(experiment=cfg.experiment, dtype=str(dtype).replace("torch.", ""), limit_px=PARITY_LIMIT_PX)
    result["ok"] = result["max_px"] is not None and result["max_px"] <= PARITY_LIMIT_PX
    return result


def training_syncs(family: str, device: torch.device, *, warmup: int = 2, steps: int = 3) -> dict:
    """Host syncs per real :class:`Trainer` step (the engine's defaults: autocast ``auto``, fused
    optimizer, channels-last) on one pinned in-memory batch, counted after ``warmup`` steps."""
    cfg, model, images, targets, _ = _family_setup(family, device)
    if device.type == "cuda":  # as the training loader delivers batches on a GPU
        images = images.pin_memory()
        targets = [{k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in t.items()} for t in targets]
    dtype = amp_dtype(cfg, device)
    optimizer = build_optimizer(cfg, model, device)
    trainer = Trainer(model, optimizer, [(images, targets)], max_iters=warmup + steps, device=device,
                      amp=dtype is not None, amp_dtype=dtype or torch.float16)  # fmt: skip
    model.train()
    start = time.perf_counter()
    result = syncs_per_step(trainer.run_step, device, warmup=warmup, steps=steps)
    result["where"] = {_short(location): count for location, count in result["where"].items()}
    result.update(
        experiment=cfg.experiment, batch_size=len(images),
        autocast=str(dtype).replace("torch.", "") if dtype else "off",
        seconds=round(time.perf_counter() - start, 2), loss=trainer.storage.get("total_loss"),
    )  # fmt: skip
    return result


def run_families(check: Callable[[str, torch.device], dict], device: torch.device, families=None) -> dict:
    """``check`` on every family; an exception is recorded for its family and the rest go on."""
    results = {}
    for family in families or FAMILIES:
        try:
            results[family] = check(family, device)
        except Exception as error:  # noqa: BLE001 - one broken family must not hide the others
            results[family] = {"error": f"{type(error).__name__}: {error}"}
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def _short(location: str) -> str:
    """An absolute ``file:line`` shortened to the part from the package or library folder."""
    for marker in ("detkit" + os.sep, "torch" + os.sep, "torchvision" + os.sep):
        position = location.rfind(os.sep + marker)
        if position >= 0:
            return location[position + 1 :]
    return location
