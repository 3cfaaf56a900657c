"""Everything around the training step: each hook is a small class the trainer calls in turn."""

from detkit.engine.hooks.base import HookBase, ScalarWindow, is_due
from detkit.engine.hooks.checkpoint import CheckpointHook
from detkit.engine.hooks.console import ProgressHook
from detkit.engine.hooks.ema import EMAHook, ModelEMA
from detkit.engine.hooks.eval import EarlyStoppingHook, EvalHook
from detkit.engine.hooks.lr import LR_SCHEDULES, LRSchedulerHook, build_lr_lambda, build_lr_scheduler
from detkit.engine.hooks.metrics import MetricTracker, flatten_metrics, lookup_metric
from detkit.engine.hooks.profile import StepProfileHook
from detkit.engine.hooks.unfreeze import UnfreezeHook
from detkit.engine.hooks.writers import JSONLinesHook, TensorBoardHook

__all__ = [
    "LR_SCHEDULES",
    "CheckpointHook",
    "EMAHook",
    "EarlyStoppingHook",
    "EvalHook",
    "HookBase",
    "JSONLinesHook",
    "LRSchedulerHook",
    "MetricTracker",
    "ModelEMA",
    "ProgressHook",
    "ScalarWindow",
    "StepProfileHook",
    "TensorBoardHook",
    "UnfreezeHook",
    "build_lr_lambda",
    "build_lr_scheduler",
    "flatten_metrics",
    "is_due",
    "lookup_metric",
]
