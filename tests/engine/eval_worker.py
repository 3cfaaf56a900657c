"""The per-rank body of the distributed evaluation test (a module of its own so spawned children
import it): every rank scores its shard, rank 0 alone receives and evaluates the results."""

import os

import torch

from detkit.data.augment.transforms import eval_transforms
from detkit.data.synthetic.shapes import ShapesDataset
from detkit.engine import dist
from detkit.engine.inference import evaluate_model


def eval_worker(rank: int, world_size: int, port: int, root: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    dist.init_distributed(backend="gloo")
    try:
        dataset = ShapesDataset(os.path.join(root, "shapes"), "val", num_train=4, num_val=7, image_size=64, max_size=40,
                                transforms=eval_transforms(64))  # fmt: skip
        model = torch.load(os.path.join(root, "model.pt"), weights_only=False)
        metrics = evaluate_model(model, dataset, torch.device("cpu"), batch_size=2)
        torch.save(metrics, os.path.join(root, f"metrics{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()
