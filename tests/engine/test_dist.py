import importlib
import socket

import pytest
import torch
import torch.multiprocessing as mp

from detkit.engine import dist

from .toy import ToyDataset, ToyDetector


def test_single_process_helpers_work_without_init(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert dist.init_distributed() == dist.DistInfo(rank=0, world_size=1, local_rank=0)
    assert not dist.is_distributed() and dist.get_rank() == 0 and dist.get_world_size() == 1
    assert dist.is_main_process()
    dist.barrier()
    assert dist.all_gather_object({"a": 1}) == [{"a": 1}]
    assert dist.broadcast_object(5) == 5
    model = ToyDetector()
    assert dist.wrap_model_ddp(model, torch.device("cpu")) is model
    sampler = dist.distributed_sampler(ToyDataset(5), shuffle=True, seed=1)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert sorted(first) == list(range(5)) and list(sampler) != first
    assert dist.select_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="auto"):
        dist.select_device("gpu")


def test_init_distributed_explains_a_missing_launcher(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        dist.init_distributed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_ddp_run(tmp_path):
    # Spawned, not forked: a forked child inherits locks held by the parent's other threads
    # (thread pools of earlier tests) and can hang. Spawned children import the worker by module
    # name: "tests.engine..." resolves from the repository root on their sys.path.
    worker = importlib.import_module("tests.engine.ddp_worker").train_worker
    mp.start_processes(
        worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    assert sorted(p.name for p in (tmp_path / "rank0").iterdir()) == ["last.pt", "scalars.jsonl"]
    assert not (tmp_path / "rank1").exists()
    result = torch.load(tmp_path / "result0.pt", weights_only=True)
    assert torch.equal(result["params"][0], result["params"][1])  # replicas stayed identical
    assert "another rank" in result["nan_error"]
    rank1 = torch.load(tmp_path / "result1.pt", weights_only=True)
    assert "non-finite loss loss_cls at iteration 0" in rank1["nan_error"]
    checkpoint = torch.load(tmp_path / "rank0" / "last.pt", weights_only=True)
    assert checkpoint["iteration"] == 4
    assert len(checkpoint["rng_states"]) == 2 and len(checkpoint["extra"]["trainer"]["data"]) == 2
    # 4 images per rank / batch 2 / 2 accumulation steps = one iteration per epoch.
    assert checkpoint["epoch"] == 4
    assert len((tmp_path / "rank0" / "scalars.jsonl").read_text().splitlines()) == 4


def test_distributed_evaluation_equals_single_process(tmp_path):
    from detkit.data.augment.transforms import eval_transforms
    from detkit.data.synthetic.shapes import ShapesDataset
    from detkit.engine.build import build_model
    from detkit.engine.config import load_config
    from detkit.engine.inference import evaluate_model

    dataset = ShapesDataset(tmp_path / "shapes", "val", num_train=4, num_val=7, image_size=64, max_size=40,
                           transforms=eval_transforms(64))
    torch.manual_seed(0)
    cfg = load_config(["config=yolov1_mobilenet_v1_shapes", "model.backbone.width_mult=0.25",
                       "model.head.score_threshold=0.0"])  # fmt: skip
    model = build_model(cfg, num_classes=5).eval()
    torch.save(model, tmp_path / "model.pt")  # the children score the very same weights
    expected = evaluate_model(model, dataset, torch.device("cpu"), batch_size=2)
    worker = importlib.import_module("tests.engine.eval_worker").eval_worker
    # 7 images over 2 ranks: shards of 4 and 3, no padding duplicates.
    mp.start_processes(worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    on_main = torch.load(tmp_path / "metrics0.pt", weights_only=False)
    assert torch.load(tmp_path / "metrics1.pt", weights_only=False) == {}
    assert on_main["coco"] == expected["coco"] and on_main["voc07"] == expected["voc07"]
    assert on_main["voc12"] == expected["voc12"]


def test_torchrun_with_one_process_forms_a_group(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    try:
        assert dist.init_distributed(backend="gloo") == dist.DistInfo(rank=0, world_size=1, local_rank=0)
        assert dist.is_distributed()
        model = dist.wrap_model_ddp(ToyDetector(), torch.device("cpu"))
        assert isinstance(model, torch.nn.parallel.DistributedDataParallel)
        assert dist.gather_object_to_main("x") == ["x"]
    finally:
        torch.distributed.destroy_process_group()


def test_each_rank_draws_its_own_augmentation():
    from detkit.jobs.train_and_evaluate import loader_seed

    assert loader_seed(7, 0) == 7  # one process: as before
    seeds = [loader_seed(7, rank) for rank in range(8)]
    assert len(set(seeds)) == 8
    draws = [torch.randint(0, 2**31, (4,), generator=torch.Generator().manual_seed(s)) for s in seeds[:2]]
    assert not torch.equal(draws[0], draws[1])
