"""Writes ``last.pt`` periodically and at the end, and ``best.pt`` when the metric improves."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from detkit.engine.checkpoint import save_checkpoint
from detkit.engine.dist import all_gather_object, is_main_process
from detkit.engine.hooks.base import HookBase
from detkit.engine.hooks.metrics import MetricTracker
from detkit.utils.seeding import capture_rng_state

logger = logging.getLogger(__name__)


class CheckpointHook(HookBase):
    """Saves full, resumable checkpoints into ``output_dir`` (rank 0 writes).

    ``last.pt`` every ``period`` iterations and when training ends (also after early stopping,
    but not after a failure, which would overwrite a good file with a broken state). With
    ``metric_key`` (e.g. ``"voc12.mAP"``), ``best.pt`` whenever a fresh evaluation improves it
    (``mode="max"``) — so this hook runs after :class:`EvalHook` (its priority sees to that).
    """

    priority = 50

    def __init__(
        self,
        output_dir: str | Path,
        *,
        period: int,
        config_yaml: str = "",
        class_names: Sequence[str] = (),
        metric_key: str | None = None,
        mode: str = "max",
    ) -> None:
        if period < 1:
            raise ValueError(f"checkpoint period must be >= 1 iteration, got {period}")
        self.output_dir = Path(output_dir)
        self.period = period
        self.config_yaml = config_yaml
        self.class_names = list(class_names)
        self.best = MetricTracker(metric_key, mode=mode) if metric_key else None
        self._last_saved_iter: int | None = None

    @property
    def last_path(self) -> Path:
        return self.output_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.output_dir / "best.pt"

    def after_step(self) -> None:
        trainer = self.trainer
        improved = (
            self.best is not None
            and trainer.metrics_iter == trainer.iters_done
            and self.best.update(trainer.metrics, trainer.iters_done)
        )
        paths = []
        if trainer.iters_done % self.period == 0 or trainer.iters_done == trainer.max_iters:
            paths.append(self.last_path)
        if improved:
            paths.append(self.best_path)
        if paths:
            self._save(paths)
        if improved:
            logger.info(
                "New best %s = %.4f at iteration %d.", self.best.key, self.best.best, trainer.iters_done
            )

    def after_train(self) -> None:
        trainer = self.trainer
        if trainer.failed or trainer.iters_done in (self._last_saved_iter, trainer.start_iter):
            return
        self._save([self.last_path])

    def _save(self, paths: list[Path]) -> None:
        trainer = self.trainer
        # Collective calls: every rank takes part, rank 0 writes.
        trainer_state = trainer.state_dict()
        rng_states = all_gather_object(capture_rng_state())
        if is_main_process():
            for path in paths:
                save_checkpoint(
                    path,
                    **trainer.checkpointed_parts(),
                    iteration=trainer.iters_done,
                    epoch=trainer.epoch_of(trainer.iters_done),
                    config_yaml=self.config_yaml,
                    class_names=self.class_names,
                    extra={"trainer": trainer_state},
                    rng_states=rng_states,
                )
            logger.info("Saved %s at iteration %d.", ", ".join(str(p) for p in paths), trainer.iters_done)
        self._last_saved_iter = trainer.iters_done

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best.state_dict() if self.best is not None else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.best is not None and state.get("best"):
            self.best.load_state_dict(state["best"])
