"""The per-rank body of the two-process DDP test (a module of its own so spawned children import it)."""

import os

import torch

from detkit.engine import dist
from detkit.engine.hooks import CheckpointHook, JSONLinesHook, ProgressHook
from detkit.engine.trainer import Trainer

from .toy import ToyDataset, ToyDetector, make_loader


class NaNOnRank(torch.nn.Module):
    def __init__(self, detector, bad_rank):
        super().__init__()
        self.detector, self.bad_rank = detector, bad_rank

    def forward(self, images, targets):
        losses = self.detector(images, targets)
        if dist.get_rank() == self.bad_rank:
            losses["loss_cls"] = losses["loss_cls"] * float("nan")
        return losses


def train_worker(rank: int, world_size: int, port: int, root: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    info = dist.init_distributed(backend="gloo")  # CPU processes even on a machine with a GPU
    try:
        assert info == dist.DistInfo(rank=rank, world_size=world_size, local_rank=rank)
        torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
        device = torch.device("cpu")
        model = dist.wrap_model_ddp(ToyDetector().to(device), device)
        dataset = ToyDataset(8)
        loader = make_loader(
            dataset, batch_size=2, sampler=dist.distributed_sampler(dataset, shuffle=True, seed=0)
        )
        out = os.path.join(root, f"rank{rank}")  # each rank gets its own folder: only rank0's may appear
        hooks = [
            CheckpointHook(out, period=3),
            JSONLinesHook(os.path.join(out, "scalars.jsonl"), every_iters=1),
            ProgressHook(log_every=1, bar=False),
        ]
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        trainer = Trainer(
            model, optimizer, loader, hooks=hooks, max_iters=4, device=device, grad_accum_steps=2
        )
        trainer.train()
        gathered = dist.all_gather_object(torch.cat([p.detach().flatten() for p in model.parameters()]))

        # A non-finite loss on rank 1 only: both ranks must raise instead of rank 0 hanging in all-reduce.
        broken = dist.wrap_model_ddp(NaNOnRank(ToyDetector(), bad_rank=1), device)
        nan_trainer = Trainer(
            broken, torch.optim.SGD(broken.parameters(), lr=0.1), loader, max_iters=2, device=device
        )
        try:
            nan_trainer.train()
            nan_error = ""
        except FloatingPointError as err:
            nan_error = str(err)
        torch.save({"params": gathered, "nan_error": nan_error}, os.path.join(root, f"result{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()
