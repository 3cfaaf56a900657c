"""The two jobs behind the command line: train an experiment (then evaluate it), and evaluate a
checkpoint. Each takes a composed config; the objects come from ``build.py``."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from detkit.analysis.checks.priors import check_priors
from detkit.data.collate import collate_detection
from detkit.data.validation.problems import problem_report
from detkit.engine import build
from detkit.engine.dist import (
    barrier,
    broadcast_object,
    distributed_sampler,
    get_rank,
    get_world_size,
    init_distributed,
    is_distributed,
    is_main_process,
    select_device,
    unwrap_model,
    wrap_model_ddp,
)
from detkit.engine.finetune import finetune_from
from detkit.engine.hooks import (
    CheckpointHook,
    EarlyStoppingHook,
    EMAHook,
    EvalHook,
    JSONLinesHook,
    LRSchedulerHook,
    ModelEMA,
    ProgressHook,
    StepProfileHook,
    TensorBoardHook,
    UnfreezeHook,
)
from detkit.engine.imagenet_start import from_scratch_hint
from detkit.engine.inference import evaluate_model, move_targets
from detkit.engine.loading import load_detector
from detkit.engine.runtime import amp_dtype, compile_model, configure_backends, set_cpu_threads
from detkit.engine.trainer import Trainer
from detkit.engine.workers import loader_workers
from detkit.evaluation.errors import error_breakdown
from detkit.export.backend import run_with_backend
from detkit.export.quantize import QuantizationSettings
from detkit.reporting import format_metrics_table, save_metrics, write_evaluation_report
from detkit.utils.logging import setup_logging
from detkit.utils.machine import machine_description
from detkit.utils.seeding import seed_everything, worker_init_fn
from detkit.utils.visualization import draw_boxes, save_image, tile

logger = logging.getLogger("detkit")
LOADER_SEED_STRIDE = 1_000_003  # apart enough that rank r's seeds never meet rank r+1's


def loader_seed(seed: int, rank: int) -> int:
    """The training loader's seed on ``rank``: ``seed`` itself on rank 0 (a one-process run is
    unchanged), a separate stream on every other rank."""
    return seed + LOADER_SEED_STRIDE * rank


def schedule_length(engine: DictConfig, iters_per_epoch: int) -> int:
    """Training iterations: ``engine.max_iters`` when set, else ``engine.epochs`` passes over the
    data but at least ``engine.min_iters`` — the floor that lets a recipe tuned on a thousand
    images train as long on a few hundred (it then runs more epochs; logged at the start)."""
    if engine.get("max_iters"):
        return int(engine.max_iters)
    return max(int(engine.epochs) * iters_per_epoch, int(engine.get("min_iters") or 0), 1)


def make_run_dir(cfg: DictConfig) -> Path:
    """``output_dir`` or ``outputs/<experiment>/<date-time>``; created by rank 0, shared by all."""
    path = None
    if is_main_process():
        path = (
            Path(cfg.output_dir)
            if cfg.output_dir
            else Path("outputs") / cfg.experiment / datetime.now().strftime("%Y%m%d-%H%M%S")
        )
        path.mkdir(parents=True, exist_ok=True)
        path = str(path.resolve())
    return Path(broadcast_object(path))


def train(cfg: DictConfig) -> dict:
    """Train ``cfg``'s experiment, evaluate on the validation split, write the run folder.
    Returns the final metrics (rank 0; ``{}`` elsewhere)."""
    init_distributed()
    rank, world = get_rank(), get_world_size()
    set_cpu_threads(cfg)
    device = select_device(cfg.engine.device)
    run_dir = make_run_dir(cfg)
    setup_logging(run_dir, rank=rank)
    switches = configure_backends(cfg, device)
    seed_everything(int(cfg.seed) + rank)
    logger.info("Experiment %s on %s (world size %d); run folder %s", cfg.experiment, device, world, run_dir)
    hint = from_scratch_hint(cfg)
    if hint is not None:
        logger.info(hint)
    dtype = amp_dtype(cfg, device)
    logger.info(
        "Autocast %s; %s",
        dtype or "off (float32)",
        ", ".join(f"{k} {'on' if v else 'off'}" for k, v in switches.items()),
    )

    # The data's problems are found here, before the model exists: data.on_bad_data=error stops
    # with every one of them named, skip drops them; either way rank 0 lists them in the run folder.
    with problem_report(run_dir / "data_problems.jsonl" if is_main_process() else None):
        train_set = build.build_dataset(cfg, "train")
        val_set = build.build_dataset(cfg, "val")
    if is_main_process():  # after the datasets: data.input_size=auto is a number now
        (run_dir / "config.yaml").write_text(build.config_to_yaml(cfg))
    class_names = list(train_set.class_names)
    model = build.build_model(cfg, num_classes=len(class_names))
    # Anchors / default boxes against the training boxes: logged, warned about, refit on request
    # (cfg then holds the refit priors, so config.yaml and the checkpoints rebuild this model).
    model, prior_report = check_priors(
        cfg, model, train_set, lambda c: build.build_model(c, num_classes=len(class_names))
    )
    if is_main_process():
        (run_dir / "prior_coverage.json").write_text(json.dumps(prior_report, indent=2))
        if prior_report.get("refit", {}).get("kept"):
            (run_dir / "config.yaml").write_text(build.config_to_yaml(cfg))
    model = model.to(device)
    if cfg.engine.channels_last and hasattr(model, "use_channels_last"):
        model = model.use_channels_last()
    if cfg.get("finetune"):
        finetune_from(cfg.finetune, model, cfg, class_names,
                      report_path=run_dir / "finetune_report.json" if is_main_process() else None)
    unfreeze_epochs = cfg.engine.get("unfreeze_after_epochs")
    if unfreeze_epochs is not None and is_distributed():
        raise build.ConfigError("engine.unfreeze_after_epochs is single-process only: DDP fixes the trained "
                                "parameters when it wraps the model (freeze or not, for the whole run)")
    optimizer = build.build_optimizer(cfg, model, device, include_frozen=unfreeze_epochs is not None)
    if cfg.engine.get("compile", False):
        logger.info("torch.compile: %s (the first steps of each input shape compile)", ", ".join(compile_model(model)))
    if is_distributed():  # torchrun, even with one process: the same code path at every scale
        model = wrap_model_ddp(model, device, sync_batchnorm=bool(cfg.engine.get("sync_bn", False)))

    batch_size = int(cfg.data.batch_size)
    workers = loader_workers(cfg.data.num_workers, device.type)
    sampler = distributed_sampler(train_set, shuffle=True, seed=int(cfg.seed)) if is_distributed() else None
    # The generator seeds the loader's workers (and through them the augmentation): one stream per
    # rank, or every rank would flip, crop and pick mosaic partners alike. Rank 0 keeps `seed`.
    generator = torch.Generator().manual_seed(loader_seed(int(cfg.seed), rank))
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=generator,
        num_workers=workers,
        collate_fn=collate_detection,
        drop_last=len(train_set) >= batch_size * world,
        worker_init_fn=worker_init_fn,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    accum = int(cfg.engine.grad_accum_steps)
    iters_per_epoch = max(len(loader) // accum, 1)
    max_iters = schedule_length(cfg.engine, iters_per_epoch)
    logger.info(
        "Recipe: input %d px, batch %d, %d loader workers, %d iterations (%.1f epochs of %d training images)",
        int(cfg.data.input_size), batch_size, workers, max_iters, max_iters / iters_per_epoch, len(train_set),
    )
    scheduler = build.build_scheduler(cfg, optimizer, max_iters)
    # Evaluation loader workers on GPUs, where decoding would otherwise leave the device idle; on
    # a CPU the model already has every core, and starting workers for each evaluation costs more.
    eval_workers = workers if device.type == "cuda" else 0

    last_eval: dict[str, list[dict]] = {}  # the latest evaluation's detections, for the report

    def evaluate_fn() -> dict:
        metrics, last_eval["results"] = evaluate_model(
            model, val_set, device, batch_size=batch_size, amp_dtype=dtype, return_results=True,
            num_workers=eval_workers,
        )
        return metrics

    eng = cfg.engine
    ema = ModelEMA(model, decay=float(eng.ema_decay)) if eng.ema_decay else None
    hooks = [LRSchedulerHook(), ProgressHook(int(eng.log_every_iters))]
    if unfreeze_epochs is not None:
        hooks.append(UnfreezeHook(unwrap_model(model).backbone, at_iter=int(unfreeze_epochs) * iters_per_epoch))
    if ema is not None:
        hooks.append(EMAHook())
    eval_every = max(int(eng.eval_every_epochs) * iters_per_epoch, 1)
    hooks.append(EvalHook(evaluate_fn, eval_every))
    if eng.early_stop_patience:
        hooks.append(EarlyStoppingHook(eng.best_metric, patience=int(eng.early_stop_patience)))
    hooks.append(
        CheckpointHook(
            run_dir,
            period=max(int(eng.checkpoint_every_epochs) * iters_per_epoch, 1),
            config_yaml=build.config_to_yaml(cfg),
            class_names=class_names,
            metric_key=eng.best_metric,
        )
    )
    hooks.append(JSONLinesHook(run_dir / "log.jsonl", every_iters=int(eng.log_every_iters)))
    if int(eng.get("profile_steps", 0)) > 0:
        hooks.append(StepProfileHook(run_dir, start=int(eng.get("profile_start", 20)), steps=int(eng.profile_steps)))
    if eng.tensorboard:
        hooks.append(TensorBoardHook(run_dir / "tensorboard", every_iters=int(eng.log_every_iters)))
    trainer = Trainer(
        model,
        optimizer,
        loader,
        scheduler=scheduler,
        ema=ema,
        hooks=hooks,
        max_iters=max_iters,
        device=device,
        amp=dtype is not None,
        amp_dtype=dtype or torch.float16,
        grad_clip_norm=eng.grad_clip_norm,
        grad_accum_steps=accum,
        iters_per_epoch=iters_per_epoch,
    )
    if cfg.get("resume"):
        trainer.resume(cfg.resume)
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start

    # The final numbers: the last evaluation if it saw the final weights, else a fresh one.
    fresh = trainer.metrics_iter == trainer.iters_done and "results" in last_eval
    metrics = dict(trainer.metrics) if fresh else evaluate_fn()
    barrier()
    if not is_main_process():
        return {}
    metrics.update(
        experiment=cfg.experiment,
        run_dir=str(run_dir),
        split="val",
        train_seconds=round(train_seconds, 1),
        iterations=trainer.iters_done,
        train_images=len(train_set),
        val_images=len(val_set),
        device=str(device),
        machine=machine_description(device),
        world_size=world,
    )
    metrics["errors"] = error_breakdown(val_set.coco_ground_truth(), last_eval["results"])
    save_metrics(metrics, run_dir / "metrics.json")
    draw_predictions(
        unwrap_model(model), val_set, device, class_names, run_dir / "predictions.png", count=int(eng.vis_images)
    )
    try:
        write_evaluation_report(val_set.coco_ground_truth(), last_eval["results"], metrics, run_dir,
                                log_jsonl=run_dir / "log.jsonl", image_paths=image_paths(val_set))
    except (OSError, ValueError) as error:  # the run's results are saved already; a picture must not fail it
        logger.warning("Could not write the evaluation report into %s: %s", run_dir, error)
    print(format_metrics_table(metrics))
    print(f"\nTrained {trainer.iters_done} iterations in {train_seconds:.0f} s; validation mAP50 (VOC12) "
          f"{metrics['voc12']['mAP']:.3f}, COCO AP {metrics['coco']['AP']:.3f}.\nRun folder: {run_dir}")
    return metrics


def image_paths(dataset) -> dict[int, Path]:
    """Image id -> file of a dataset's records, for the report's error galleries."""
    return {record.image_id: record.path for record in dataset.records}


@torch.no_grad()
def draw_predictions(
    model, dataset, device, class_names, path: Path, *, count: int, score_threshold: float = 0.3
) -> None:
    """One PNG with the first ``count`` validation images: predictions coloured, ground truth white."""
    if count <= 0:
        return
    was_training = model.training
    model.eval()
    canvases = []
    for index in range(min(count, len(dataset))):
        image, target = dataset[index]
        det = model(image[None].to(device), move_targets([target], device))[0]
        keep = det["scores"] >= score_threshold
        canvases.append(
            draw_boxes(image, det["boxes"][keep].cpu(), det["labels"][keep].cpu(), class_names,
                       scores=det["scores"][keep].cpu(), ground_truth=target["boxes"])
        )
    model.train(was_training)
    if canvases:
        save_image(path, tile(canvases))


def evaluate_checkpoint(
    checkpoint: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    report_dir: str | Path | None = None,
    backend: str = "torch",
    precision: str = "fp32",
    calibration: str | Path | None = None,
    calibration_images: int = 32,
) -> dict:
    """Evaluate a training checkpoint on the validation split of its stored config (with
    ``overrides`` on top, e.g. another ``data=``). The model comes from
    :func:`detkit.engine.loading.load_detector`, so a checkpoint that does not fully match its
    model is refused with every mismatch named. With ``report_dir``, the evaluation report
    (pictures, per-class table, error breakdown; training curves from the ``log.jsonl`` beside the
    checkpoint) is written there too. ``backend``: what runs the model (``torch``, or the
    checkpoint's ONNX export through ``onnxruntime`` / ``openvino``: ``detkit.export.backend``) at
    ``precision`` (``fp32``; ``int8`` for a runtime, calibrated on the first ``calibration_images``
    images of the folder ``calibration``, default the checkpoint's validation data)."""
    settings = QuantizationSettings(num_images=calibration_images)
    detector = run_with_backend(load_detector(checkpoint, overrides=overrides), backend, precision=precision,
                                calibration=calibration, settings=settings)  # fmt: skip
    cfg = detector.cfg
    set_cpu_threads(cfg)
    val_set = build.build_dataset(cfg, "val")
    names = detector.class_names
    if len(names) != len(val_set.class_names):
        raise build.ConfigError(
            f"{checkpoint} was trained on {len(names)} classes but the validation data has {len(val_set.class_names)}"
        )
    device = detector.device
    metrics, results = evaluate_model(
        detector.model, val_set, device, batch_size=int(cfg.data.batch_size), amp_dtype=detector.amp_dtype,
        return_results=True,
        num_workers=loader_workers(cfg.data.num_workers) if device.type == "cuda" else 0,  # as in training
    )
    metrics.update(checkpoint=str(checkpoint), split="val", device=str(device), machine=machine_description(device),
                   backend=detector.backend, precision=detector.precision)  # fmt: skip
    metrics["errors"] = error_breakdown(val_set.coco_ground_truth(), results)
    if report_dir is not None:
        log = Path(checkpoint).parent / "log.jsonl"
        write_evaluation_report(val_set.coco_ground_truth(), results, metrics, report_dir,
                                log_jsonl=log if log.is_file() else None, image_paths=image_paths(val_set))
        metrics["report_dir"] = str(report_dir)
    return metrics
