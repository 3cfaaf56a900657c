"""Console progress: a tqdm bar (loss, lr, images/s, ETA) and a periodic log line."""

from __future__ import annotations

import contextlib
import datetime
import logging
import time

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from detkit.engine.dist import is_main_process
from detkit.engine.hooks.base import HookBase, ScalarWindow, is_due

logger = logging.getLogger(__name__)


class ProgressHook(HookBase):
    """Shows training progress on rank 0.

    The bar updates every iteration; every ``log_every`` iterations a log line gives the
    window's mean losses, learning rate, throughput, data time and the ETA (wall-clock, so it
    includes evaluation and checkpoint time), which also reaches the log file. ``bar=None``
    shows the bar only on a terminal, keeping redirected logs free of carriage returns.
    """

    priority = 60

    def __init__(self, log_every: int = 20, *, bar: bool | None = None) -> None:
        if log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {log_every}")
        self.log_every = log_every
        self.bar_enabled = bar
        self._window = ScalarWindow()
        self._bar: tqdm | None = None
        self._exit_stack = contextlib.ExitStack()
        self._start_time = 0.0

    def before_train(self) -> None:
        trainer = self.trainer
        self._start_time = time.perf_counter()
        if not is_main_process():
            return
        self._bar = tqdm(
            total=trainer.max_iters,
            initial=trainer.start_iter,
            desc="train",
            unit="it",
            dynamic_ncols=True,
            disable=None if self.bar_enabled is None else not self.bar_enabled,
        )
        # Log records would otherwise be drawn through the middle of the bar.
        self._exit_stack.enter_context(logging_redirect_tqdm(loggers=[logging.getLogger("detkit")]))

    def after_step(self) -> None:
        trainer = self.trainer
        if not is_main_process():
            return
        scalars = trainer.storage
        self._window.add(scalars)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(
                loss=f"{scalars.get('total_loss', float('nan')):.4f}",
                lr=f"{scalars.get('lr', float('nan')):.3g}",
                img_s=f"{scalars.get('images_per_s', 0.0):.1f}",
                refresh=False,
            )
        if is_due(trainer.iters_done, self.log_every, trainer.max_iters):
            self._log_line()
            self._window.reset()

    def eta_seconds(self) -> float:
        trainer = self.trainer
        done_here = trainer.iters_done - trainer.start_iter
        if done_here <= 0:
            return float("nan")
        per_iter = (time.perf_counter() - self._start_time) / done_here
        return per_iter * (trainer.max_iters - trainer.iters_done)

    def _log_line(self) -> None:
        trainer = self.trainer
        means = self._window.means()
        losses = "  ".join(f"{k} {v:.4f}" for k, v in means.items() if k.startswith("loss_"))
        eta = self.eta_seconds()
        eta_text = str(datetime.timedelta(seconds=round(eta))) if eta == eta else "?"
        logger.info(
            "iter %d/%d  epoch %d  total_loss %.4f  %s  lr %.4g  %.1f images/s  data %.3fs  eta %s",
            trainer.iters_done,
            trainer.max_iters,
            trainer.epoch_of(trainer.iters_done - 1),
            means.get("total_loss", float("nan")),
            losses,
            trainer.storage.get("lr", float("nan")),
            means.get("images_per_s", 0.0),
            means.get("data_time", 0.0),
            eta_text,
        )

    def after_train(self) -> None:
        trainer = self.trainer
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._exit_stack.close()
        if not is_main_process() or trainer.failed:
            return
        elapsed = datetime.timedelta(seconds=round(time.perf_counter() - self._start_time))
        how = f"stopped early ({trainer.stop_reason})" if trainer.stop_reason else "finished"
        logger.info(
            "Training %s at iteration %d/%d after %s.", how, trainer.iters_done, trainer.max_iters, elapsed
        )
