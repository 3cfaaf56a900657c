"""Training and inference throughput of a detkit detector, side by side with its torchvision peer.

    python tools/benchmark.py                                     # Faster R-CNN R18-C4 at 512 px vs torchvision
    python tools/benchmark.py preset=ssd300                       # SSD300-VGG16 vs torchvision's ssd300_vgg16
    python tools/benchmark.py preset=faster_rcnn size=256 train_batch=2 infer_batch=2 device=cpu iters=3
    python tools/benchmark.py config=yolov3_resnet18_shapes size=416 peer=none output=bench.json

Random images with 4 random boxes each, 20 classes (REFERENCES.md's protocol). On CUDA: bf16
autocast and channels_last unless amp=false / channels_last=false. Prints a table, and writes JSON
with output=PATH.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
import torchvision  # noqa: E402

from detkit.engine.build import ConfigError, build_model, load_config  # noqa: E402
from detkit.engine.config import split_arguments  # noqa: E402
from detkit.engine.dist import select_device  # noqa: E402
from detkit.utils.benchmark import measure, torchvision_peer  # noqa: E402

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
    },
}
OWN_KEYS = ("preset", "size", "train_batch", "infer_batch", "peer", "device", "amp", "channels_last", "iters",
            "warmup", "num_classes", "output")


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    own, overrides = split_arguments(argv, OWN_KEYS)
    preset = PRESETS.get(own.get("preset", "faster_rcnn"))
    if preset is None:
        print(f"error: unknown preset {own['preset']!r}; choose one of {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    has_config = any(o.startswith("config=") for o in overrides)
    try:
        cfg = load_config(overrides if has_config else preset["overrides"] + overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
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
    rows = {}
    torch.manual_seed(0)
    models = {f"detkit {cfg.experiment}": lambda: build_model(cfg, num_classes=num_classes)}
    if peer_name != "none":
        models[f"torchvision {peer_name}"] = lambda: torchvision_peer(peer_name, num_classes, settings["size"])
    for label, factory in models.items():
        model = factory()
        rows[label] = measure(model, num_classes=num_classes, device=device, **settings)
        del model
        if on_gpu:
            torch.cuda.empty_cache()
        print(f"{label}: " + ", ".join(f"{k} {v:.1f}" for k, v in rows[label].items()), flush=True)
    report = {
        "device": torch.cuda.get_device_name(device) if on_gpu else "cpu",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "settings": settings,
        "results": rows,
    }
    if "output" in own:
        Path(own["output"]).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
