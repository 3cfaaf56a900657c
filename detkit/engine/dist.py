"""torch.distributed helpers for ``torchrun`` / DDP runs.

Every helper also works in a plain single process without ``init_distributed``: rank 0 of a
world of size 1, where collectives are no-ops.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0)) if is_distributed() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def init_distributed(backend: str | None = None, timeout_minutes: float = 30.0) -> DistInfo:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

    Under torchrun a group is formed even of one process (``--nproc_per_node=1``), so that a
    one-GPU run takes the same code path (DDP, distributed sampler) as a many-GPU run. Without
    torchrun's variables nothing is initialised and rank 0 of 1 is returned. The backend defaults
    to NCCL when CUDA is available and gloo otherwise; on CUDA the process is bound to
    ``cuda:LOCAL_RANK`` first, as NCCL requires.
    """
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    launched = all(k in os.environ for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))
    if world_size <= 1 and not launched:
        return DistInfo(rank=0, world_size=1, local_rank=0)
    if is_distributed():
        return DistInfo(rank=get_rank(), world_size=get_world_size(), local_rank=get_local_rank())
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} not set; launch with "
            "`torchrun --nproc_per_node=N tools/train.py ...`"
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) are "
                "visible; use --nproc_per_node at most the number of GPUs"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(minutes=timeout_minutes))
    logger.info("Distributed: rank %d of %d (local rank %d, %s)", rank, world_size, local_rank, backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def select_device(requested: str = "auto") -> torch.device:
    """``auto`` → this rank's CUDA device when CUDA is available, else CPU; or ``cpu``/``cuda``."""
    if requested not in ("auto", "cpu", "cuda") and not requested.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {requested!r}")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device={requested!r} requested but CUDA is not available here")
    if requested.startswith("cuda:"):
        return torch.device(requested)
    return torch.device("cuda", get_local_rank())


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_object_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` on rank 0 (rank order) and ``None`` on the others; ``[obj]`` in a
    single process. Cheaper than :func:`all_gather_object` when only rank 0 needs the result
    (evaluation): the other ranks receive nothing."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] | None = [None] * get_world_size() if is_main_process() else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank; ``obj`` itself in a single process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_max_(tensor: torch.Tensor) -> torch.Tensor:
    """Elementwise maximum of ``tensor`` over all ranks, without a host sync on NCCL (the
    reduction is queued on the device's stream). Returns the reduced tensor: ``tensor`` itself,
    or a CPU copy under gloo, which reduces only CPU tensors. ``tensor`` as is in one process."""
    if not is_distributed():
        return tensor
    if dist.get_backend() != "nccl" and tensor.device.type != "cpu":
        tensor = tensor.cpu()
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP / DataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def wrap_model_ddp(
    model: nn.Module,
    device: torch.device,
    *,
    find_unused_parameters: bool = False,
    sync_batchnorm: bool = False,
) -> nn.Module:
    """Wrap ``model`` (already on ``device``) in DDP when distributed; return it as is otherwise.

    ``find_unused_parameters`` is needed by models whose forward skips some parameters in some
    steps; ``sync_batchnorm`` converts BatchNorm layers so their statistics span all ranks.
    """
    if not is_distributed():
        return model
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = (
        [device.index if device.index is not None else get_local_rank()] if device.type == "cuda" else None
    )
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def distributed_sampler(dataset: Dataset, shuffle: bool = True, seed: int = 0) -> DistributedSampler:
    """A sampler giving each rank its share of ``dataset``, reshuffled per epoch from ``seed``.

    Also used in a single process (world of 1): its order depends only on ``seed`` and the
    epoch the trainer passes to ``set_epoch``, which makes resuming mid-epoch exact. Like every
    DistributedSampler it pads the last round with repeated samples so all ranks get the same
    count; evaluation code must drop those repeats (e.g. by ``image_id``).
    """
    return DistributedSampler(
        dataset, num_replicas=get_world_size(), rank=get_rank(), shuffle=shuffle, seed=seed
    )
