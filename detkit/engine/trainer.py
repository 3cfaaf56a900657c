"""The training loop: it runs optimisation steps and calls hooks; everything else is a hook.

One iteration is one optimizer step; with ``grad_accum_steps=k`` it consumes k batches.
``max_iters``, LR schedules, checkpoint and evaluation periods all count these iterations.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from detkit.engine.checkpoint import load_checkpoint
from detkit.engine.data_stream import DataStream, move_batch
from detkit.engine.dist import all_gather_object, all_reduce_max_, get_rank, get_world_size, is_distributed
from detkit.engine.hooks.base import HookBase
from detkit.engine.hooks.ema import ModelEMA
from detkit.utils.seeding import capture_rng_state
from detkit.utils.stages import stage

logger = logging.getLogger(__name__)


class Trainer:
    """Runs ``max_iters`` optimisation steps of ``model`` and calls ``hooks`` around each.

    ``data_loader`` yields ``(images, targets)``: ``images`` a ``Tensor[N, 3, H, W]`` (or a list
    of ``Tensor[3, H, W]``), ``targets`` a list of N target dicts (see detkit.structures). The
    model, already on ``device`` (and DDP-wrapped if distributed), returns a dict of losses in
    train mode; every key starting with ``loss_`` is summed into the objective.

    The trainer owns the per-iteration LR ``scheduler`` and the weights' ``ema`` (either may be
    None): checkpoints save them and :meth:`resume` restores them. Hooks act on them through the
    trainer: :class:`~detkit.engine.hooks.LRSchedulerHook` steps ``trainer.scheduler`` and
    :class:`~detkit.engine.hooks.EMAHook` updates ``trainer.ema`` after every step.

    AMP runs on CUDA, and on the CPU in bfloat16 (a note is logged and float32 used elsewhere);
    float16 uses a gradient scaler, bfloat16 needs none. ``grad_clip_norm`` clips the global gradient norm
    (after unscaling). A non-finite loss raises ``FloatingPointError`` naming the loss keys,
    the iteration and the batch's image ids.

    For hooks: ``iter`` (index of the step in progress), ``iters_done`` (completed steps),
    ``start_iter``, ``max_iters``, ``epoch`` (``iter // iters_per_epoch``), ``storage`` (the
    latest scalars: losses, ``total_loss``, ``lr``, ``images_per_s``, ``data_time``,
    ``step_time``, ``grad_norm``), ``metrics`` / ``metrics_iter`` (latest evaluation),
    ``scheduler``, ``ema``, ``request_stop(reason)``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        data_loader: DataLoader | Iterable,
        *,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        ema: ModelEMA | None = None,
        hooks: Sequence[HookBase] = (),
        max_iters: int,
        device: torch.device | str,
        amp: bool = False,
        amp_dtype: torch.dtype = torch.float16,
        grad_clip_norm: float | None = None,
        grad_accum_steps: int = 1,
        iters_per_epoch: int | None = None,
    ) -> None:
        if max_iters < 1:
            raise ValueError(f"max_iters must be >= 1, got {max_iters}")
        if grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        if grad_clip_norm is not None and grad_clip_norm <= 0:
            raise ValueError(f"grad_clip_norm must be > 0 or None, got {grad_clip_norm}")
        if amp_dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"amp_dtype must be torch.float16 or torch.bfloat16, got {amp_dtype}")
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.ema = ema
        self.data_loader = data_loader
        self.max_iters = int(max_iters)
        self.device = torch.device(device)
        self.grad_clip_norm = grad_clip_norm
        self.grad_accum_steps = grad_accum_steps
        self.amp_dtype = amp_dtype
        # CPUs autocast to bfloat16 only (float16 there is neither fast nor scaled).
        cpu_bf16 = self.device.type == "cpu" and amp_dtype == torch.bfloat16
        self.amp_enabled = bool(amp) and (self.device.type == "cuda" or cpu_bf16)
        if amp and not self.amp_enabled:
            logger.info(
                "AMP requested but training on %s with %s; using float32.", self.device, amp_dtype
            )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_enabled and amp_dtype == torch.float16)
        if iters_per_epoch is None and hasattr(data_loader, "__len__"):
            iters_per_epoch = max(len(data_loader) // grad_accum_steps, 1)
        self.iters_per_epoch = iters_per_epoch

        self.iter = 0
        self.iters_done = 0
        self.start_iter = 0
        self.storage: dict[str, float] = {}
        self.metrics: dict[str, Any] = {}
        self.metrics_iter: int | None = None
        self.stop_reason: str | None = None
        self.failed = False
        self._data = DataStream(data_loader)
        self._resume_rng: dict[str, Any] | None = None

        for hook in hooks:
            if not isinstance(hook, HookBase):
                raise TypeError(f"hooks must derive from HookBase, got {type(hook).__name__}")
        # Stable sort: hooks of equal priority keep the caller's order.
        self.hooks: list[HookBase] = sorted(hooks, key=lambda h: h.priority)
        for hook in self.hooks:
            hook.trainer = weakref.proxy(self)  # no reference cycle trainer <-> hook

    # -- what hooks read ---------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self.epoch_of(self.iter)

    def epoch_of(self, iteration: int) -> int:
        """The epoch an iteration index falls in (0 when the loader has no length)."""
        return max(iteration, 0) // self.iters_per_epoch if self.iters_per_epoch else 0

    def request_stop(self, reason: str) -> None:
        """Finish cleanly after the current iteration's hooks (used by early stopping)."""
        self.stop_reason = reason

    # -- the loop ------------------------------------------------------------------------------

    def train(self) -> None:
        """Run from ``iters_done`` (0, or where :meth:`resume` left it) to ``max_iters``."""
        self.start_iter = self.iters_done
        self.failed, self.stop_reason = False, None
        if self.start_iter >= self.max_iters:
            logger.info(
                "Nothing to train: %d of %d iterations already done.", self.start_iter, self.max_iters
            )
        else:
            logger.info("Training iterations %d..%d on %s.", self.start_iter, self.max_iters, self.device)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        try:
            self._call_hooks("before_train")
            self._data.restore_position(self._resume_rng)
            self._resume_rng = None
            for iteration in range(self.start_iter, self.max_iters):
                self.iter = iteration
                self._call_hooks("before_step")
                self.run_step()
                self.iters_done = self.iter + 1
                self._call_hooks("after_step")
                if self.stop_reason is not None:
                    logger.info("Stopping at iteration %d: %s", self.iters_done, self.stop_reason)
                    break
            self.iter = self.iters_done
        except BaseException:
            self.failed = True
            raise
        finally:
            self._call_hooks("after_train", guard=self.failed)

    def run_step(self) -> None:
        """One optimizer step over ``grad_accum_steps`` batches.

        The host waits for the device once per step: the losses (and the gradient norm when
        clipping) are read back together after the last ``backward()``, checked for NaN/Inf
        there, and the step is refused before the optimizer touches the weights.
        """
        step_start = time.perf_counter()
        data_time, num_images = 0.0, 0
        micro_steps: list[MicroStep] = []
        for micro_step in range(self.grad_accum_steps):
            fetch_start = time.perf_counter()
            with stage("data"):
                images, targets = move_batch(self._data.next(), self.device)
            data_time += time.perf_counter() - fetch_start
            num_images += len(images)
            # DDP: all-reduce gradients only on the last micro-batch of the step.
            last = micro_step == self.grad_accum_steps - 1
            sync = nullcontext() if last or not hasattr(self.model, "no_sync") else self.model.no_sync()
            with sync:
                with stage("forward"), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_enabled):
                    loss_dict = self.model(images, targets)
                losses = _loss_terms(loss_dict)
                with stage("backward"):
                    self.scaler.scale(sum(losses.values()) / self.grad_accum_steps).backward()
            # Detached device values: read back with the rest of the step, not one sync each.
            detached = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
            micro_steps.append(MicroStep(list(losses), detached, targets))

        grad_norm = None
        if self.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            params = [
                p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None
            ]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip_norm)
        with stage("read back"):
            loss_sums = self._read_back(micro_steps, grad_norm)
        rates = learning_rates(self.optimizer)
        with stage("optimizer"):
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)

        step_time = time.perf_counter() - step_start
        self.storage = {
            **loss_sums,
            **rates,
            "images_per_s": num_images * get_world_size() / max(step_time, 1e-9),
            "data_time": data_time,
            "step_time": step_time,
        }

    def _read_back(
        self,
        micro_steps: list[MicroStep],
        grad_norm: Tensor | None,
    ) -> dict[str, float]:
        """The step's loss values (averaged over micro-steps), ``total_loss`` and ``grad_norm``
        as floats, in one device-to-host copy; raises ``FloatingPointError`` for a non-finite loss."""
        stacked = torch.cat([step.loss_values for step in micro_steps])
        non_finite = (~torch.isfinite(stacked)).any().reshape(1).to(stacked.dtype)
        if is_distributed():
            # Every rank must raise together, or the healthy ones would wait forever in the next
            # all-reduce; the flag travels in the same collective round on every rank.
            non_finite = all_reduce_max_(non_finite)
        parts = [stacked, non_finite.to(stacked.device)]
        if grad_norm is not None:
            parts.append(grad_norm.detach().float().reshape(1).to(stacked.device))
        host = torch.cat(parts).tolist()  # the step's one sync
        loss_values, any_non_finite = host[: len(stacked)], host[len(stacked)] > 0
        per_step, offset = [], 0
        for step in micro_steps:
            count = len(step.loss_names)
            values = dict(zip(step.loss_names, loss_values[offset : offset + count], strict=True))
            per_step.append((values, step.targets))
            offset += count
        if any_non_finite:  # a non-finite loss here or (distributed) on another rank
            for step_values, targets in per_step:
                bad = [name for name, value in step_values.items() if not math.isfinite(value)]
                if bad:
                    raise FloatingPointError(self._non_finite_message(step_values, bad, targets))
            raise FloatingPointError(self._non_finite_message({}, [], ()))
        sums: dict[str, float] = {}
        for step_values, _ in per_step:
            step_values["total_loss"] = float(sum(step_values.values()))
            for name, value in step_values.items():
                sums[name] = sums.get(name, 0.0) + value / self.grad_accum_steps
        if grad_norm is not None:
            sums["grad_norm"] = host[len(stacked) + 1]
        return sums

    def _non_finite_message(
        self, values: dict[str, float], bad: list[str], targets: Sequence[Mapping[str, Any]]
    ) -> str:
        if not bad:
            return f"rank {get_rank()}: another rank hit a non-finite loss at iteration {self.iter}; see its error"
        image_ids = [_plain(t.get("image_id")) for t in targets]
        all_values = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        return (
            f"non-finite loss {', '.join(bad)} at iteration {self.iter} ({all_values}); "
            f"batch image ids: {image_ids}. Check those images' annotations (degenerate or "
            "out-of-image boxes), or lower the learning rate / enable gradient clipping."
        )

    def _call_hooks(self, event: str, guard: bool = False) -> None:
        for hook in self.hooks:
            if not guard:
                getattr(hook, event)()
                continue
            try:  # already failing: a hook error must not hide the original exception
                getattr(hook, event)()
            except Exception:
                logger.exception("%s.%s failed while handling an earlier error", type(hook).__name__, event)

    # -- resume ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The loop's own state. Collective in distributed runs: call it on every rank."""
        return {
            "iters_done": self.iters_done,
            "data": all_gather_object(self._data.state_dict()),
            "hooks": {name: hook.state_dict() for name, hook in self._stateful_hooks().items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.iters_done = self.iter = int(state["iters_done"])
        data_states = state["data"]
        if len(data_states) != get_world_size():
            logger.warning(
                "Checkpoint comes from %d rank(s), this run has %d: data order restarts at a new pass.",
                len(data_states),
                get_world_size(),
            )
        else:
            self._data.load_state_dict(data_states[get_rank()])
        saved_hooks = state.get("hooks", {})
        for name, hook in self._stateful_hooks().items():
            if name in saved_hooks:
                hook.load_state_dict(saved_hooks[name])

    def checkpointed_parts(self) -> dict[str, Any]:
        """The objects whose state a checkpoint holds besides the trainer's own (``save_checkpoint``
        and ``load_checkpoint`` take them by these names): one list, so saving and resuming agree."""
        return {
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "ema": self.ema,
        }

    def resume(self, path: str | Path, *, restore_rng: bool = True) -> dict[str, Any]:
        """Load a checkpoint written by CheckpointHook so that ``train()`` continues exactly.

        Restores model, optimizer, scheduler, AMP scaler, EMA, iteration, hook state, the data
        order (the interrupted pass is replayed to the same batch) and the RNG states.
        Returns the checkpoint dict (``config_yaml``, ``class_names``, ...).
        """
        checkpoint = load_checkpoint(path, **self.checkpointed_parts(), restore_rng=restore_rng)
        trainer_state = checkpoint["extra"].get("trainer")
        if trainer_state is not None:
            self.load_state_dict(trainer_state)
        else:
            self.iters_done = self.iter = int(checkpoint["iteration"])
        # Replaying the interrupted data pass draws random numbers; train() resets them afterwards.
        self._resume_rng = capture_rng_state() if restore_rng else None
        return checkpoint

    def _stateful_hooks(self) -> dict[str, HookBase]:
        """The hooks that have state to checkpoint, by their ``state_key``."""
        named: dict[str, HookBase] = {}
        for hook in self.hooks:
            if type(hook).state_dict is HookBase.state_dict:
                continue  # nothing to save
            if hook.state_key in named:
                raise ValueError(
                    f"two hooks save their state under {hook.state_key!r} ({type(named[hook.state_key]).__name__}, "
                    f"{type(hook).__name__}); give one of them its own state_key"
                )
            named[hook.state_key] = hook
        return named


@dataclass
class MicroStep:
    """One micro-batch of a step: its loss names, their values still on the device (detached,
    ``float32[len(loss_names)]``, read back with the rest of the step) and its targets (named in
    the error when a loss is not finite)."""

    loss_names: list[str]
    loss_values: Tensor
    targets: Sequence[Mapping[str, Any]]


def learning_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``lr``: the first parameter group's learning rate; ``lr_group<i>`` for each later group whose
    rate differs from it (a backbone trained slower than the head, say)."""
    groups = optimizer.param_groups
    rates = {"lr": float(groups[0]["lr"])}
    for index, group in enumerate(groups[1:], start=1):
        if float(group["lr"]) != rates["lr"]:
            rates[f"lr_group{index}"] = float(group["lr"])
    return rates


def _loss_terms(loss_dict: Any) -> dict[str, Tensor]:
    """The ``loss_*`` entries of a model's output, checked to be scalar tensors (no device sync)."""
    if not isinstance(loss_dict, Mapping):
        raise TypeError(
            f"in train mode the model must return a dict of losses, got {type(loss_dict).__name__} "
            "(was the model left in eval mode?)"
        )
    losses = {k: v for k, v in loss_dict.items() if k.startswith("loss_")}
    if not losses:
        raise ValueError(f"the model returned no 'loss_*' entries (keys: {sorted(loss_dict)})")
    for name, value in losses.items():
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise TypeError(
                f"loss {name!r} must be a scalar tensor, got {getattr(value, 'shape', type(value))}"
            )
    return losses


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, Tensor) and value.numel() == 1 else value
