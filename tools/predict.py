"""Run a trained detector on images: draw the detections (PNG) and write them as JSON.

    python tools/predict.py checkpoint=outputs/.../best.pt input=IMAGE_OR_DIR output=DIR [score=0.3]

Writes DIR/<image>.png with the boxes drawn and DIR/detections.json:
``{file: [{"box": [x1, y1, x2, y2], "score": s, "label": name}, ...]}`` in the images' pixels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from detkit.data.base import read_image  # noqa: E402
from detkit.data.transforms import eval_transforms  # noqa: E402
from detkit.engine.build import ConfigError, build_model, load_config_with_overrides  # noqa: E402
from detkit.engine.checkpoint import load_model_weights, read_checkpoint  # noqa: E402
from detkit.engine.dist import select_device  # noqa: E402
from detkit.structures import boxes_to_original  # noqa: E402
from detkit.utils.visualization import draw_boxes, save_image  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
USAGE = "usage: tools/predict.py checkpoint=PATH input=IMAGE_OR_DIR output=DIR [score=0.3] [key=value ...]"


def list_images(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    raise FileNotFoundError(f"input not found: {path}")


@torch.no_grad()
def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    own = dict(a.split("=", 1) for a in argv if a.split("=", 1)[0] in ("checkpoint", "input", "output", "score"))
    rest = [a for a in argv if a.split("=", 1)[0] not in own]
    try:
        if not {"checkpoint", "input", "output"} <= set(own):
            raise ConfigError(USAGE)
        state = read_checkpoint(own["checkpoint"])
        cfg = load_config_with_overrides(state["config_yaml"], rest)
        names = list(state["class_names"])
        device = select_device(cfg.engine.device)
        model = build_model(cfg, num_classes=len(names)).to(device).eval()
        load_model_weights(state, model, use_ema=state.get("ema") is not None)
        images = list_images(Path(own["input"]))
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    transform = eval_transforms(int(cfg.data.input_size))
    threshold = float(own.get("score", 0.3))
    out_dir = Path(own["output"])
    results = {}
    for path in images:
        original = read_image(path)
        image, _, _, (sx, sy) = transform(original, torch.zeros(0, 4).numpy(), torch.zeros(0).numpy())
        tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
        det = model(tensor[None].to(device))[0]
        keep = det["scores"] >= threshold
        target = {"scale": torch.tensor([sx, sy]), "orig_size": torch.tensor(original.shape[:2])}
        boxes = boxes_to_original(det["boxes"][keep].float().cpu(), target)
        scores, labels = det["scores"][keep].cpu(), det["labels"][keep].cpu()
        save_image(out_dir / f"{path.stem}.png", draw_boxes(original, boxes, labels, names, scores=scores))
        results[path.name] = [
            {"box": [round(v, 2) for v in b], "score": round(float(s), 4), "label": names[int(lab) - 1]}
            for b, s, lab in zip(boxes.tolist(), scores, labels, strict=True)
        ]
        print(f"{path.name}: {len(results[path.name])} detections")
    (out_dir / "detections.json").write_text(json.dumps(results, indent=2))
    print(f"Wrote {len(images)} images and detections.json to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
