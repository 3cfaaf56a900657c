"""Training and inference throughput of a detkit detector, side by side with its torchvision peer.

    detkit benchmark                                     # Faster R-CNN R18-C4 at 512 px vs torchvision
    detkit benchmark preset=ssd300                       # SSD300-VGG16 vs torchvision's ssd300_vgg16
    detkit benchmark preset=faster_rcnn size=256 train_batch=2 infer_batch=2 device=cpu iters=3
    detkit benchmark config=yolov3_resnet18_shapes size=416 peer=none output=bench.json
    detkit benchmark mode=nms device=cpu                 # the postprocessing's NMS alone, old vs new
    detkit benchmark preset=faster_rcnn device=cpu peer=none trainer=false backends=onnxruntime,openvino
    detkit benchmark mode=backends checkpoint=best.pt backends=onnxruntime,openvino   # a trained model, its images
    detkit benchmark preset=faster_rcnn device=cpu peer=none trainer=false backends=openvino precision=fp32,int8

Random images with 4 random boxes each, 20 classes (REFERENCES.md's protocol). On CUDA: bf16
autocast and channels_last unless amp=false / channels_last=false; on a CPU amp=true is bf16
autocast where the CPU has bf16 instructions (as `engine.amp=true` trains), float32 elsewhere.
`peer_amp=` (default: as amp) sets the torchvision peer's autocast apart, e.g. `amp=true
peer_amp=false`: detkit in bf16 against torchvision as its own training scripts run on a CPU. Each rate is the median of
`repeats` (3) timings of `iters` (10) steps, with the lowest and highest; inference rows also give
the detections per image, the postprocessing's load (random weights: it depends on the
initialisation, so compare it across rows). Extra rows: detkit's backbone forward+backward alone
(the floor under a training step) and, for SSD, detkit doing torchvision's amount of
postprocessing work. The detkit row also times the real Trainer (forward, loss, backward, the
configured optimizer, LR schedule and EMA hooks) on a few in-memory batches: `trainer_train_images_per_s`
beside the model-only `train_images_per_s` (trainer=false leaves it out); profile=true adds where
those steps' time went, stage by stage (`step_profile`: backbone, neck, proposals, head, target
assignment, backward, optimizer; printed as a table too). `backends=onnxruntime,openvino` adds
inference rows for the detkit model's ONNX export run by those runtimes on the CPU
(`detkit.load(..., backend=)`), at the torch row's batch sizes and on the same images, with their
rates over the torch row's in `ratios_backend_over_torch`. `precision=fp32,int8` (default fp32)
runs each runtime at each precision: rows `(openvino)` for float32 and `(openvino, int8)` for the
INT8 model (`detkit.export.quantize`), with the INT8 rates over the float32 ones in
`ratios_int8_over_fp32`; with random weights the INT8 model is calibrated on random images, so
these rows measure speed only. `mode=backends checkpoint=PATH` times a trained checkpoint through
torch and the `backends=` runtimes (at the `precision=` precisions; INT8 calibrated on the
checkpoint's data, as `detkit.load` does) on its first `images` (16) validation images at batch 1
and `infer_batch` (8), torch and one runtime's rows taking turns for `repeats` (5) rounds, each
runtime in a process of its own (`detkit.analysis.speed.backends`). Prints a table and the ratios;
writes JSON with output=PATH.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
from collections.abc import Sequence
from pathlib import Path

from detkit.engine.config import ConfigError, load_config, split_arguments

# Each preset: detkit config overrides matching the peer's settings, the peer, input size, batches.
PRESETS = {
    "faster_rcnn": {
        "overrides": ["config=faster_rcnn_vgg16_voc07", "model/backbone=resnet18", "model.backbone.pretrained=false",
                      "model.backbone.frozen_stages=0", "model.roi_head.pooler=roi_align"],
        "peer": "fasterrcnn_resnet18_c4", "size": 512, "train_batch": 16, "infer_batch": 32,
    },
    "ssd300": {
        "overrides": ["config=ssd300_vgg16_voc0712", "model.backbone.pretrained=false"],
        "peer": "ssd300_vgg16", "size": 300, "train_batch": 32, "infer_batch": 32,
        # torchvision keeps the 400 best boxes of each class before NMS, detkit the 1000 best
        # (box, class) pairs of all classes: this row lets detkit keep as many as torchvision can.
        "same_work": ["model.head.pre_nms_topk=8000"],
    },
}  # fmt: skip
OWN_KEYS = ("preset", "size", "train_batch", "infer_batch", "peer", "device", "amp", "channels_last", "iters",
            "warmup", "repeats", "num_classes", "output", "mode", "trainer", "profile", "backends", "checkpoint",
            "images", "precision", "peer_amp")  # fmt: skip
MODES = ("models", "nms", "backends")
# Random images the INT8 rows of random-weight models are calibrated on (speed only: any will do).
CALIBRATION_IMAGES = 8


def run(argv: list[str]) -> int:
    own, overrides = split_arguments(argv, OWN_KEYS)
    mode = own.get("mode", "models")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "nms":
        report = nms_report(own)
    elif mode == "backends":
        report = checkpoint_backends_report(own, overrides)
    else:
        report = throughput_report(own, overrides)
    if "output" in own:
        Path(own["output"]).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def throughput_report(own: dict[str, str], overrides: list[str]) -> dict:
    """Measure detkit's model (a preset, or ``config=`` in ``overrides``) and its peer."""
    import torch
    import torchvision

    from detkit.analysis.speed.throughput import (
        autocast_dtype,
        format_rows,
        measure,
        measure_backbone_floor,
        torchvision_peer,
    )
    from detkit.engine.build import build_model
    from detkit.engine.dist import select_device
    from detkit.engine.hooks.profile import format_stage_report

    preset = PRESETS.get(own.get("preset", "faster_rcnn"))
    if preset is None:
        raise ConfigError(f"unknown preset {own['preset']!r}; choose one of {', '.join(PRESETS)}")
    has_config = any(o.startswith("config=") for o in overrides)
    cfg = load_config(overrides if has_config else preset["overrides"] + overrides)
    device = select_device(own.get("device", "auto"))
    on_gpu = device.type == "cuda"
    num_classes = int(own.get("num_classes", 20))
    settings = {
        "size": int(own.get("size", preset["size"])),
        "train_batch": int(own.get("train_batch", preset["train_batch"])),
        "infer_batch": int(own.get("infer_batch", preset["infer_batch"])),
        "amp": own.get("amp", str(on_gpu)).lower() == "true",
        "channels_last": own.get("channels_last", str(on_gpu)).lower() == "true",
        "iters": int(own.get("iters", 10)),
        "warmup": int(own.get("warmup", 3)),
    }
    peer_name = own.get("peer", preset["peer"] if not has_config else "none")
    settings["repeats"] = int(own.get("repeats", 3))
    settings["peer_amp"] = own.get("peer_amp", str(settings["amp"])).lower() == "true"
    settings["autocast"] = str(autocast_dtype(device, settings["amp"]) or "float32").removeprefix("torch.")
    settings["peer_autocast"] = str(autocast_dtype(device, settings["peer_amp"]) or "float32").removeprefix("torch.")
    measured = {k: settings[k] for k in ("size", "train_batch", "infer_batch", "amp", "channels_last", "iters",
                                         "warmup", "repeats")}  # fmt: skip
    torch.manual_seed(0)
    detkit_label = f"detkit {cfg.experiment}"
    models = {detkit_label: lambda: build_model(cfg, num_classes=num_classes)}
    if preset.get("same_work") and not has_config:
        same_cfg = load_config(preset["overrides"] + overrides + preset["same_work"])
        models[f"{detkit_label} (torchvision's postprocessing work)"] = lambda: build_model(
            same_cfg, num_classes=num_classes
        )
    if peer_name != "none":
        models[f"torchvision {peer_name}"] = lambda: torchvision_peer(peer_name, num_classes, settings["size"])
    rows = {}
    for label, factory in models.items():
        torch.manual_seed(0)
        model = factory()
        own_amp = settings["peer_amp"] if label.startswith("torchvision ") else settings["amp"]
        rows[label] = measure(model, num_classes=num_classes, device=device, **{**measured, "amp": own_amp})
        if label == detkit_label:  # before the trainer row's steps change the weights
            backends = own.get("backends", "none")
            rows.update(backend_rows(model, label, backends, num_classes=num_classes, settings=settings,
                                     precisions=parse_precisions(own)))  # fmt: skip
        if label == detkit_label and own.get("trainer", "true").lower() == "true":
            profile = own.get("profile", "false").lower() == "true"
            rows[label].update(
                trainer_row(cfg, model, num_classes=num_classes, device=device, settings=settings, profile=profile)
            )
        if label == detkit_label:
            floor = {k: settings[k] for k in ("size", "amp", "channels_last", "warmup", "iters", "repeats")}
            rows[f"{label} backbone forward+backward (floor)"] = {
                "train_images_per_s": measure_backbone_floor(
                    model.backbone, batch=settings["train_batch"], device=device, **floor
                )
            }
        del model
        if on_gpu:
            torch.cuda.empty_cache()
    print(format_rows(rows))
    for label, row in rows.items():
        if "step_profile" in row:
            print(f"\n{label}, where a training step's time goes:\n{format_stage_report(row['step_profile'])}")
    return {
        "device": torch.cuda.get_device_name(device) if on_gpu else "cpu",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "settings": settings,
        "results": rows,
        "ratios_detkit_over_peer": ratios(rows, detkit_label, f"torchvision {peer_name}"),
        "ratios_backend_over_torch": {
            label.removeprefix(f"{detkit_label} (").removesuffix(")"): ratios(rows, label, detkit_label)
            for label in rows
            if label.startswith(f"{detkit_label} (") and label.endswith(")") and "infer_images_per_s_bs1" in rows[label]
        },
        "ratios_int8_over_fp32": int8_ratios(rows),
        "runtimes": runtime_versions(own.get("backends", "none")),
    }


def trainer_row(cfg, model, *, num_classes: int, device, settings: dict, profile: bool = False) -> dict:
    """The Trainer's images/s with the experiment's optimizer, LR schedule and EMA (no evaluation
    or checkpoint hooks: they run every epoch, not every step) on two random batches in memory."""
    import torch

    from detkit.analysis.speed.throughput import measure_trainer, random_batch
    from detkit.engine.build import build_optimizer, build_scheduler
    from detkit.engine.hooks import EMAHook, LRSchedulerHook, ModelEMA

    batch, size = settings["train_batch"], settings["size"]
    batches = [random_batch(batch, size, num_classes, seed=seed) for seed in (0, 1)]
    if settings["channels_last"]:
        batches = [(images.contiguous(memory_format=torch.channels_last), targets) for images, targets in batches]
    model = model.to(device)
    optimizer = build_optimizer(cfg, model)
    steps = settings["warmup"] + settings["iters"] * settings["repeats"]
    ema = ModelEMA(model, decay=float(cfg.engine.ema_decay)) if cfg.engine.get("ema_decay") else None
    hooks = [LRSchedulerHook()] + ([EMAHook()] if ema is not None else [])
    return measure_trainer(
        model, optimizer, batches, device=device, amp=settings["amp"], warmup=settings["warmup"],
        iters=settings["iters"], repeats=settings["repeats"], scheduler=build_scheduler(cfg, optimizer, steps),
        ema=ema, hooks=hooks, profile=profile,
    )  # fmt: skip


def parse_precisions(own: dict[str, str]) -> list[str]:
    """``precision=fp32,int8`` → the precisions to time the runtimes at (default fp32)."""
    from detkit.export.quantize import PRECISIONS

    names = [name.strip() for name in own.get("precision", "fp32").split(",") if name.strip()]
    unknown = [name for name in names if name not in PRECISIONS]
    if unknown or not names:
        choices = ", ".join(PRECISIONS)
        raise ConfigError(f"unknown precision {unknown or names}; choose from {choices} (comma-separated)")
    return names


def runtime_label(label: str, backend: str, precision: str) -> str:
    """``detkit X (openvino)`` for float32, ``detkit X (openvino, int8)`` for INT8."""
    return f"{label} ({backend})" if precision == "fp32" else f"{label} ({backend}, {precision})"


def backend_rows(
    model, label: str, backends: str, *, num_classes: int, settings: dict, precisions: Sequence[str] = ("fp32",)
) -> dict[str, dict]:
    """``backends=a,b``: the model exported to ONNX (at the benchmark's input size, random weights
    as in the torch row) and run by each runtime at each of ``precisions``, timed at the torch
    row's batch sizes: ``{runtime_label(...): inference rates}``. The runtimes get as many threads
    as torch has. The INT8 model is calibrated on random images like those timed: its
    detections mean nothing, its speed is the point."""
    import copy
    import tempfile

    import torch

    from detkit.analysis.speed.throughput import measure_inference, random_batch
    from detkit.export import export_model
    from detkit.export.quantize import calibration_feeds, import_quantizer, quantize_graph
    from detkit.export.runtimes import SESSIONS, import_runtime, runtime_detector

    names = [name.strip() for name in backends.split(",") if name.strip() and name.strip() != "none"]
    unknown = [name for name in names if name not in SESSIONS]
    if unknown:
        raise ConfigError(f"unknown backends {unknown}; choose from {', '.join(SESSIONS)} (comma-separated)")
    if not names:
        return {}
    for name in names:
        import_runtime(name)  # a missing runtime fails before the export
    if "int8" in precisions:
        import_quantizer()
    model = copy.deepcopy(model).to("cpu").eval()  # the caller's model stays on its device
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        paths = {"fp32": f"{folder}/model.onnx"}
        export_model(model, format="onnx", output=paths["fp32"], input_size=settings["size"], check=False)
        if "int8" in precisions:
            paths["int8"] = f"{folder}/model.int8.onnx"
            images, _ = random_batch(CALIBRATION_IMAGES, settings["size"], num_classes, seed=2)
            quantize_graph(paths["fp32"], paths["int8"], calibration_feeds(list(images)))
        for name in names:
            for precision in precisions:
                detector = runtime_detector(model, paths[precision], backend=name, input_size=settings["size"],
                                            threads=torch.get_num_threads())  # fmt: skip
                rows[runtime_label(label, name, precision)] = measure_inference(
                    detector, size=settings["size"], num_classes=num_classes, batches=(1, settings["infer_batch"]),
                    device=torch.device("cpu"), warmup=settings["warmup"], iters=settings["iters"],
                    repeats=settings["repeats"],
                )  # fmt: skip
    return rows


def int8_ratios(rows: dict[str, dict]) -> dict[str, dict[str, float]]:
    """``{runtime: INT8 rates over float32 rates}`` for every runtime row timed at both precisions."""
    found = {}
    for label in rows:
        if label.endswith(", int8)"):
            backend = label.rsplit("(", 1)[1].removesuffix(", int8)")
            fp32 = label.removesuffix(", int8)") + ")"
            if fp32 in rows:
                found[backend] = ratios(rows, label, fp32)
    return found


def runtime_versions(backends: str) -> dict[str, str]:
    """The version of each runtime named in ``backends=`` (for the JSON report)."""
    import importlib

    versions = {}
    for name in (n.strip() for n in backends.split(",")):
        if name in ("onnxruntime", "openvino"):
            versions[name] = importlib.import_module(name).__version__
    return versions


def checkpoint_backends_report(own: dict[str, str], overrides: list[str]) -> dict:
    """``mode=backends``: a checkpoint through torch and each runtime, on its validation images."""
    import torch

    from detkit.analysis.speed.backends import checkpoint_backend_timings
    from detkit.utils.machine import machine_description

    if "checkpoint" not in own or overrides:
        raise ConfigError("usage: detkit benchmark mode=backends checkpoint=PATH [backends=onnxruntime,openvino] "
                          "[precision=fp32,int8] [infer_batch=8] [images=16] [repeats=5]"
                          f"{f'; unexpected {overrides}' if overrides else ''}")
    names = [n.strip() for n in own.get("backends", "onnxruntime,openvino").split(",") if n.strip()]
    batches = sorted({1, int(own.get("infer_batch", 8))})
    images, rounds = int(own.get("images", 16)), int(own.get("repeats", 5))
    timed_precisions = parse_precisions(own)
    # Each runtime beside torch in a process of its own: two runtimes' thread pools in one process
    # starve each other and torch (measured: torch at batch 1 fifty times slower beside both).
    results, ratios_over_torch, experiment = {}, {}, ""
    context = multiprocessing.get_context("spawn")
    for name in names:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            timings = pool.submit(checkpoint_backend_timings, own["checkpoint"], ["torch", name], batches=batches,
                                  images=images, rounds=rounds, precisions=timed_precisions).result()  # fmt: skip
        experiment = timings["experiment"]
        rows = timings["results"]
        torch_row = rows.pop(f"detkit {experiment} (torch)")
        results[f"detkit {experiment} (torch, beside {name})"] = torch_row
        results.update(rows)
        for precision in timed_precisions:
            label = runtime_label(f"detkit {experiment}", name, precision)
            key = label.removeprefix(f"detkit {experiment} (").removesuffix(")")
            ratios_over_torch[key] = ratios({"runtime": rows[label], "torch": torch_row}, "runtime", "torch")
    return {
        "checkpoint": own["checkpoint"],
        "device": "cpu",
        "machine": machine_description(torch.device("cpu")),
        "torch": torch.__version__,
        "runtimes": runtime_versions(",".join(names)),
        "experiment": experiment,
        "images": images,
        "rounds": rounds,
        "results": results,
        "ratios_backend_over_torch": ratios_over_torch,
        "ratios_int8_over_fp32": int8_ratios(results),
    }


def nms_report(own: dict[str, str]) -> dict:
    """``mode=nms``: the postprocessing's NMS alone, the old way against both new call patterns."""
    import torch
    import torchvision

    from detkit.analysis.speed.nms import nms_timings
    from detkit.engine.dist import select_device

    device = select_device(own.get("device", "auto"))
    results = nms_timings(
        device=device, num_classes=int(own.get("num_classes", 20)), repeats=int(own.get("repeats", 21))
    )
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "nms": results,
    }


def ratios(rows: dict, detkit_label: str, peer_label: str) -> dict[str, float]:
    """detkit's median rate over the peer's, for every rate both rows have."""
    if peer_label not in rows:
        return {}
    ours, theirs = rows[detkit_label], rows[peer_label]
    return {
        key: ours[key]["median"] / theirs[key]["median"]
        for key in ours
        if key.endswith("_per_s") or "_per_s_" in key
        if key in theirs
    }
