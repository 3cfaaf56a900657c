"""Endless batches from a data loader, pass after pass, with a position a checkpoint can restore;
and moving a batch to the training device."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from detkit.utils.seeding import restore_rng_state

logger = logging.getLogger(__name__)


class DataStream:
    """Yields batches from ``loader`` forever, starting a new pass when one runs out.

    Before each pass it calls ``set_epoch(pass)`` on every sampler that has it (how a
    DistributedSampler reshuffles) and records the states of the torch generators that decide
    the pass's order: the global one (a DataLoader without its own ``generator`` draws its
    shuffling seed and worker seeds there) and the loader's and sampler's own. From those states
    and the number of batches already taken, :meth:`restore_position` rebuilds the interrupted
    pass and replays it to the same batch. The replay loads those batches again (it cannot skip
    them without DataLoader internals), and augmentations in ``persistent_workers`` loaders
    continue from a fresh worker state, so only their sample order is exact.
    """

    def __init__(self, loader: Iterable) -> None:
        self.loader = loader
        self.epoch = -1  # index of the current pass; -1 before the first
        self.consumed = 0  # batches taken from the current pass
        self._iterator: Iterator | None = None
        self._pass_generator_states: list[torch.Tensor] = []
        self._pending: dict[str, Any] | None = None

    def next(self) -> Any:
        if self._iterator is None:
            self._start_pass(self.epoch + 1)
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._start_pass(self.epoch + 1)
            try:
                batch = next(self._iterator)
            except StopIteration:
                raise RuntimeError(
                    "the data loader yielded no batches (empty dataset, or drop_last=True with fewer "
                    "images than the batch size)"
                ) from None
        self.consumed += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "consumed": self.consumed,
            "generator_states": [state.clone() for state in self._pass_generator_states],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Remember a position; :meth:`restore_position` moves there before training resumes."""
        self._pending = dict(state)

    def restore_position(self, rng_after: dict[str, Any] | None = None) -> None:
        """Replay the pending pass up to its saved batch, then set all RNGs to ``rng_after``.

        The replay consumes random numbers (augmentations of the replayed batches); resetting to
        the checkpoint's RNG states afterwards makes the next batch and step match an
        uninterrupted run.
        """
        pending, self._pending = self._pending, None
        if pending is not None and pending["epoch"] >= 0:
            states = pending["generator_states"]
            if len(states) != len(self._generators()):
                logger.warning(
                    "The data loader's random generators differ from the checkpoint's; the resumed "
                    "data pass may be ordered differently from the original run."
                )
                states = None
            self._start_pass(pending["epoch"], states)
            if pending["consumed"]:
                logger.info(
                    "Replaying %d batch(es) of data pass %d to resume where the checkpoint left off.",
                    pending["consumed"],
                    pending["epoch"],
                )
            for _ in range(pending["consumed"]):
                try:
                    next(self._iterator)
                except StopIteration:
                    logger.warning(
                        "Data pass %d has fewer than %d batches now (did the dataset change?); "
                        "continuing with the next pass.",
                        pending["epoch"],
                        pending["consumed"],
                    )
                    self._iterator = None
                    break
                self.consumed += 1
        if rng_after is not None:
            restore_rng_state(rng_after)

    def _start_pass(self, epoch: int, generator_states: list[torch.Tensor] | None = None) -> None:
        self.epoch, self.consumed = epoch, 0
        for sampler in self._samplers():
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
        generators = self._generators()
        if generator_states is not None:
            for generator, state in zip(generators, generator_states, strict=True):
                generator.set_state(state)
        self._pass_generator_states = [generator.get_state() for generator in generators]
        self._iterator = iter(self.loader)

    def _samplers(self) -> list[Any]:
        batch_sampler = getattr(self.loader, "batch_sampler", None)
        candidates = [
            getattr(self.loader, "sampler", None),
            batch_sampler,
            getattr(batch_sampler, "sampler", None),
        ]
        return _unique(candidates)

    def _generators(self) -> list[torch.Generator]:
        candidates = [torch.default_generator, getattr(self.loader, "generator", None)]
        candidates += [getattr(sampler, "generator", None) for sampler in self._samplers()]
        return [g for g in _unique(candidates) if isinstance(g, torch.Generator)]


def move_batch(batch: Any, device: torch.device) -> tuple[Tensor | list[Tensor], list[dict[str, Any]]]:
    """Split a collated batch into ``images`` and ``targets`` and move their tensors to ``device``.

    ``batch`` is ``(images, targets)`` (or a dict with those keys): ``images`` a
    ``Tensor[N, 3, H, W]`` or a list of ``Tensor[3, H, W]``, ``targets`` N target dicts whose
    non-tensor entries (``image_id``) stay as they are.
    """
    if isinstance(batch, Mapping) and "images" in batch and "targets" in batch:
        images, targets = batch["images"], batch["targets"]
    elif isinstance(batch, Sequence) and len(batch) == 2:
        images, targets = batch
    else:
        raise TypeError(
            f"the data loader must yield (images, targets) pairs, got {type(batch).__name__}; "
            "use detkit.data.collate.collate_detection as its collate_fn"
        )
    if isinstance(images, Tensor):
        images = images.to(device, non_blocking=True)
    else:
        images = [image.to(device, non_blocking=True) for image in images]
    targets = [
        {
            key: value.to(device, non_blocking=True) if isinstance(value, Tensor) else value
            for key, value in t.items()
        }
        for t in targets
    ]
    return images, targets


def _unique(objects: list[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for obj in objects:
        if obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            out.append(obj)
    return out
